//! Reading a model: a CSV file or a SQL query (SQLite or PostgreSQL),
//! streamed in chunks through a bounded channel, so a run holds a few
//! chunks in memory whatever the model's size. Files are opened through
//! [`SourceAccess`] (confined to `[activations] source_dir`), PostgreSQL
//! hosts are connected to at an address `[egress]` allows, and no error
//! carries what a file or a database holds: only line, row and column
//! numbers, column names the activation gave, and classified causes.

use std::path::Path;

use tokio::sync::mpsc;

use super::config::{Problem, SourceConfig, SqlUrl};
use super::confine::SourceAccess;
use crate::egress::{self, EgressOptions};
use crate::runtime::Value;
use crate::store::postgres_tls::{MakeRustlsConnect, PgConnectionString, error_chain};

/// Chunks read ahead of the run.
const CHUNKS_AHEAD: usize = 2;

/// One row of the model, or the reason the source could not give it.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceItem {
    Row {
        /// Its position: the CSV line, or the result set's row number (from 1).
        number: u64,
        /// One value per column, in the header's order.
        values: Vec<Value>,
    },
    /// A row that cannot be read (a CSV line with the wrong number of fields).
    Unreadable { number: u64, message: String },
}

/// A chunk of rows, and how far into the source it reaches.
#[derive(Debug)]
pub struct Chunk {
    pub items: Vec<SourceItem>,
    /// Bytes read so far, for a file.
    pub position_bytes: Option<u64>,
}

enum Message {
    Columns(Vec<String>),
    Chunk(Chunk),
    Failed(String),
}

/// An open model: its columns, and its rows chunk by chunk.
pub struct ModelReader {
    pub columns: Vec<String>,
    /// The file's size, for a file (progress).
    pub total_bytes: Option<u64>,
    receiver: mpsc::Receiver<Message>,
}

impl ModelReader {
    /// Opens the source and reads its column names; an error says what
    /// could not be opened and why, naming the field at fault
    /// (`source.path`, `source.url`).
    pub async fn open(
        source: &SourceConfig,
        access: &SourceAccess,
        chunk_rows: usize,
    ) -> Result<ModelReader, String> {
        let (sender, mut receiver) = mpsc::channel(CHUNKS_AHEAD);
        let chunk_rows = chunk_rows.max(1);
        let mut total_bytes = None;
        match source {
            SourceConfig::Csv { path, delimiter } => {
                let (file, _) = access
                    .open(path)
                    .map_err(|why| format!("source.path: {why}"))?;
                total_bytes = file.metadata().ok().map(|m| m.len());
                let (shown, delimiter) = (path.display().to_string(), *delimiter as u8);
                tokio::task::spawn_blocking(move || {
                    read_csv(file, &shown, delimiter, chunk_rows, &sender)
                });
            }
            SourceConfig::Sql { url, query } => {
                match SqlUrl::parse(url).map_err(|why| format!("source.url: {why}"))? {
                    SqlUrl::Sqlite(path) => {
                        let (file, canonical) = access
                            .open(&path)
                            .map_err(|why| format!("source.url: {why}"))?;
                        let query = query.clone();
                        tokio::task::spawn_blocking(move || {
                            if let Err(error) =
                                read_sqlite(&file, &canonical, &query, chunk_rows, &sender)
                            {
                                let _ = sender.blocking_send(Message::Failed(format!(
                                    "SQLite database {}: {error}",
                                    path.display()
                                )));
                            }
                        });
                    }
                    SqlUrl::Postgres(url) => {
                        let shown = crate::store::postgres::redacted_url(&url);
                        let (config, tls) = checked_postgres(&url, access)
                            .await
                            .map_err(|why| format!("source.url: PostgreSQL {shown}: {why}"))?;
                        let query = query.clone();
                        tokio::spawn(async move {
                            if let Err(error) =
                                read_postgres(&config, tls, &query, chunk_rows, &sender).await
                            {
                                let _ = sender
                                    .send(Message::Failed(format!("PostgreSQL {shown}: {error}")))
                                    .await;
                            }
                        });
                    }
                }
            }
        }
        match receiver.recv().await {
            Some(Message::Columns(columns)) => Ok(ModelReader {
                columns,
                total_bytes,
                receiver,
            }),
            Some(Message::Failed(error)) => Err(error),
            _ => Err("the source ended before naming its columns".into()),
        }
    }

    /// The next chunk; `None` at the end; an error when reading failed
    /// part-way (the rows before it were given).
    pub async fn next_chunk(&mut self) -> Option<Result<Chunk, String>> {
        match self.receiver.recv().await? {
            Message::Chunk(chunk) => Some(Ok(chunk)),
            Message::Failed(error) => Some(Err(error)),
            Message::Columns(_) => Some(Err("the source named its columns twice".into())),
        }
    }
}

/// Checks, when an activation is stored, that its source may be read or
/// reached here: a file source must be confined (it may not exist yet); a
/// URL must parse. Addresses are judged when a run connects.
pub fn source_problem(source: &SourceConfig, access: &SourceAccess) -> Option<Problem> {
    let (path, field) = match source {
        SourceConfig::Csv { path, .. } => (path.clone(), "source.path"),
        SourceConfig::Sql { url, .. } => match SqlUrl::parse(url) {
            Ok(SqlUrl::Sqlite(path)) => (path, "source.url"),
            // Refused by the document's own checks.
            Ok(SqlUrl::Postgres(_)) | Err(_) => return None,
        },
    };
    access.confine(&path, false).err().map(|why| Problem {
        path: field.into(),
        message: why.to_string(),
    })
}

fn read_csv(
    file: std::fs::File,
    shown: &str,
    delimiter: u8,
    chunk_rows: usize,
    sender: &mpsc::Sender<Message>,
) {
    let fail = |error: String| {
        let _ = sender.blocking_send(Message::Failed(format!("CSV file {shown}: {error}")));
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .from_reader(std::io::BufReader::new(file));
    let columns: Vec<String> = match reader.headers() {
        Ok(headers) => headers.iter().map(|h| h.trim().to_string()).collect(),
        Err(error) => {
            return fail(format!(
                "its header row cannot be read: {}",
                csv_problem(&error).1
            ));
        }
    };
    if columns.iter().all(String::is_empty) {
        return fail("it has no header row naming the columns".into());
    }
    if sender.blocking_send(Message::Columns(columns)).is_err() {
        return;
    }
    let mut items = Vec::with_capacity(chunk_rows);
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line() + 1;
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => items.push(SourceItem::Row {
                number: record.position().map_or(line, |p| p.line()),
                values: record
                    .iter()
                    .map(|cell| {
                        if cell.is_empty() {
                            Value::Null
                        } else {
                            Value::Text(cell.to_string())
                        }
                    })
                    .collect(),
            }),
            Err(error) => match csv_problem(&error) {
                (Some(at), message) => items.push(SourceItem::Unreadable {
                    number: at.unwrap_or(line),
                    message,
                }),
                (None, message) => return fail(format!("line {line}: {message}")),
            },
        }
        if items.len() >= chunk_rows {
            let chunk = Chunk {
                items: std::mem::replace(&mut items, Vec::with_capacity(chunk_rows)),
                position_bytes: Some(reader.position().byte()),
            };
            if sender.blocking_send(Message::Chunk(chunk)).is_err() {
                return;
            }
        }
    }
    if !items.is_empty() {
        let _ = sender.blocking_send(Message::Chunk(Chunk {
            items,
            position_bytes: Some(reader.position().byte()),
        }));
    }
}

/// A CSV error in words that never quote the file: `(Some(line), …)` for
/// a line the run can skip, `(None, …)` for a failure of the whole read.
fn csv_problem(error: &csv::Error) -> (Option<Option<u64>>, String) {
    match error.kind() {
        csv::ErrorKind::UnequalLengths {
            pos,
            expected_len,
            len,
        } => (
            Some(pos.as_ref().map(|p| p.line())),
            format!("{len} fields where the header has {expected_len}"),
        ),
        csv::ErrorKind::Utf8 { pos, err } => (
            Some(pos.as_ref().map(|p| p.line())),
            format!("field {} is not UTF-8 text", err.field() + 1),
        ),
        csv::ErrorKind::Io(io) => (None, format!("it cannot be read ({})", io.kind())),
        _ => (None, "it cannot be read as CSV".into()),
    }
}

fn read_sqlite(
    held: &std::fs::File,
    canonical: &Path,
    query: &str,
    chunk_rows: usize,
    sender: &mpsc::Sender<Message>,
) -> Result<(), String> {
    use rusqlite::OpenFlags;
    use rusqlite::types::ValueRef;
    let conn = rusqlite::Connection::open_with_flags(
        canonical,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW,
    )
    .map_err(|e| format!("it cannot be opened ({})", sqlite_cause(&e)))?;
    // SQLite opened the path again: it must still be the file checked.
    if !super::confine::same_open_file(held, canonical) {
        return Err("it changed while it was opened; it was not read".into());
    }
    let mut statement = conn
        .prepare(query)
        .map_err(|e| format!("the query does not prepare: {}", sqlite_query_error(&e)))?;
    // One statement that reads: no `VACUUM INTO`, `ATTACH` or write.
    if !statement.readonly() || statement.column_count() == 0 {
        return Err(
            "the query must be one SELECT returning columns; it may not write or attach".into(),
        );
    }
    let columns: Vec<String> = statement.column_names().map(str::to_string).collect();
    if sender.blocking_send(Message::Columns(columns)).is_err() {
        return Ok(());
    }
    let mut rows = statement
        .query([])
        .map_err(|e| format!("the query failed ({})", sqlite_cause(&e)))?;
    let mut items = Vec::with_capacity(chunk_rows);
    let mut number = 0;
    loop {
        let row = match rows.next() {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(e) => {
                return Err(format!(
                    "row {} cannot be read ({})",
                    number + 1,
                    sqlite_cause(&e)
                ));
            }
        };
        number += 1;
        let values = (0..row.as_ref().column_count())
            .map(|index| match row.get_ref(index) {
                Ok(ValueRef::Null) | Err(_) => Value::Null,
                Ok(ValueRef::Integer(n)) => integer(n),
                Ok(ValueRef::Real(x)) => Value::Number(x),
                Ok(ValueRef::Text(t)) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                Ok(ValueRef::Blob(b)) => Value::Text(hex::encode(b)),
            })
            .collect();
        items.push(SourceItem::Row { number, values });
        if items.len() >= chunk_rows {
            let chunk = Chunk {
                items: std::mem::replace(&mut items, Vec::with_capacity(chunk_rows)),
                position_bytes: None,
            };
            if sender.blocking_send(Message::Chunk(chunk)).is_err() {
                return Ok(());
            }
        }
    }
    if !items.is_empty() {
        let _ = sender.blocking_send(Message::Chunk(Chunk {
            items,
            position_bytes: None,
        }));
    }
    Ok(())
}

/// SQLite's class of failure ("database is locked", "file is not a
/// database"), without its message, which may quote data or schema.
fn sqlite_cause(error: &rusqlite::Error) -> String {
    match error {
        rusqlite::Error::SqliteFailure(code, _) => code.to_string(),
        _ => "an error reading the database".into(),
    }
}

/// A query that does not prepare: SQLite's own message when the fault is
/// in the query text (`no such column: nope`), its class otherwise (a
/// corrupt schema's message would quote the file).
fn sqlite_query_error(error: &rusqlite::Error) -> String {
    match error {
        rusqlite::Error::SqliteFailure(code, Some(message))
            if code.code == rusqlite::ErrorCode::Unknown && !message.starts_with("malformed") =>
        {
            message.clone()
        }
        rusqlite::Error::SqlInputError { msg, offset, .. } => {
            format!("{msg} (at character {offset})")
        }
        other => sqlite_cause(other),
    }
}

/// Integers beyond what a double holds exactly travel as text.
fn integer(n: i64) -> Value {
    if n.unsigned_abs() <= (1 << 53) {
        Value::Number(n as f64)
    } else {
        Value::Text(n.to_string())
    }
}

/// Where a PostgreSQL source may connect, decided before connecting: every
/// TCP host resolved here and checked with the egress options, and the
/// connection pinned (`hostaddr`) to the addresses checked, so a second DNS
/// answer cannot differ (TLS still checks the certificate against the name);
/// a Unix socket counts as loopback. With it, the TLS connector its
/// `sslmode` asks for, an `sslrootcert` file opened through `access` (confined
/// to `[activations] source_dir`, as every file a source reads). The refusal
/// names the host and the reason, never the password.
async fn checked_postgres(
    url: &str,
    access: &SourceAccess,
) -> Result<(tokio_postgres::Config, MakeRustlsConnect), String> {
    use crate::store::postgres_tls::{RootCert, SslMode};
    use std::io::Read as _;
    let options = &access.egress;
    let parsed = PgConnectionString::parse(url).map_err(|why| why.to_string())?;
    let mut config = parsed.config.clone();
    for target in postgres_targets(&config, options)? {
        match target {
            PgTarget::Checked(ip) => {
                config.hostaddr(ip);
            }
            PgTarget::Resolve { host, port } => {
                let allowed = egress::resolve_allowed(&host, port, options)
                    .await
                    .map_err(|why| why.to_string())?;
                config.hostaddr(allowed[0]);
            }
            PgTarget::Socket => {}
        }
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(10));
    }
    // After the egress decision: a refused host reads no file.
    let root_pem = match &parsed.root_cert {
        Some(RootCert::File(path)) if parsed.ssl_mode != SslMode::Disable => {
            let (mut file, _) = access
                .open(path)
                .map_err(|why| format!("sslrootcert: {why}"))?;
            let mut pem = Vec::new();
            file.by_ref()
                .take(1024 * 1024)
                .read_to_end(&mut pem)
                .map_err(|e| format!("sslrootcert {}: cannot read it: {e}", path.display()))?;
            Some((path.clone(), pem))
        }
        _ => None,
    };
    let tls = parsed
        .connector_with(
            root_pem
                .as_ref()
                .map(|(path, pem)| (path.as_path(), &pem[..])),
        )
        .map_err(|why| why.to_string())?;
    Ok((config, tls))
}

/// One host of a PostgreSQL connection string, as far as it can be decided
/// without a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PgTarget {
    /// An address allowed (an IP literal, or a `hostaddr` given).
    Checked(std::net::IpAddr),
    /// A name to resolve, then check.
    Resolve { host: String, port: u16 },
    /// A Unix socket directory, allowed as loopback.
    Socket,
}

/// The decision before DNS: IP literals, `hostaddr`s and socket paths are
/// judged here; names are left to resolve.
fn postgres_targets(
    config: &tokio_postgres::Config,
    options: &EgressOptions,
) -> Result<Vec<PgTarget>, String> {
    use tokio_postgres::config::Host;
    let hosts = config.get_hosts();
    let given = config.get_hostaddrs();
    if !given.is_empty() {
        // libpq's `hostaddr`: the addresses connected to, whatever the names.
        for (index, address) in given.iter().enumerate() {
            let name = match hosts.get(index) {
                Some(Host::Tcp(name)) => name.clone(),
                _ => address.to_string(),
            };
            egress::check_address(&name, *address, options).map_err(|why| why.to_string())?;
        }
        return Ok(Vec::new());
    }
    if hosts.is_empty() {
        return Err("it names no host".into());
    }
    let sockets = hosts.iter().filter(|h| matches!(h, Host::Unix(_))).count();
    if sockets != 0 && sockets != hosts.len() {
        return Err(
            "it mixes socket directories and TCP hosts; an activation source names one kind".into(),
        );
    }
    let ports = config.get_ports();
    hosts
        .iter()
        .enumerate()
        .map(|(index, host)| match host {
            #[cfg(unix)]
            Host::Unix(path) => egress::check_local_socket(&path.display().to_string(), options)
                .map(|()| PgTarget::Socket)
                .map_err(|why| why.to_string()),
            Host::Tcp(name) => {
                let bare = name.trim_start_matches('[').trim_end_matches(']');
                match bare.parse::<std::net::IpAddr>() {
                    Ok(ip) => egress::check_address(bare, ip, options)
                        .map(|()| PgTarget::Checked(ip))
                        .map_err(|why| why.to_string()),
                    Err(_) => Ok(PgTarget::Resolve {
                        host: name.clone(),
                        port: ports
                            .get(index)
                            .or_else(|| ports.first())
                            .copied()
                            .unwrap_or(5432),
                    }),
                }
            }
        })
        .collect()
}

/// A PostgreSQL failure in words that never quote a row: the server's
/// message where it is about the connection or the query text, only the
/// SQLSTATE where it could be about data.
fn pg_cause(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("the server answered SQLSTATE {}", db.code().code()),
        None if error.is_closed() => "the connection closed".into(),
        None => "the connection failed".into(),
    }
}

async fn read_postgres(
    config: &tokio_postgres::Config,
    tls: MakeRustlsConnect,
    query: &str,
    chunk_rows: usize,
    sender: &mpsc::Sender<Message>,
) -> Result<(), String> {
    use tokio_postgres::types::Type;
    let (mut client, connection) = config.connect(tls).await.map_err(|e| {
        match e.as_db_error() {
            // Authentication, a missing database: about the connection.
            Some(db) => format!("cannot connect: {}", db.message()),
            // tokio-postgres' text and its cause (refused, timed out, the
            // TLS check that failed), no password.
            None => format!("cannot connect: {}", error_chain(&e)),
        }
    })?;
    let connection = tokio::spawn(connection);
    // A portal inside a read-only transaction fetches `chunk_rows` at a
    // time, so the server, not this host, holds the rest of the result.
    let tx = client
        .build_transaction()
        .read_only(true)
        .start()
        .await
        .map_err(|e| format!("the read-only transaction did not start ({})", pg_cause(&e)))?;
    let statement = tx.prepare(query).await.map_err(|e| match e.as_db_error() {
        // Planning reads no row: the message is about the query text.
        Some(db) => format!("the query does not prepare: {}", db.message()),
        None => format!("the query does not prepare ({})", pg_cause(&e)),
    })?;
    let mut readable = Vec::new();
    for column in statement.columns() {
        let ty = column.type_();
        if ![
            Type::TEXT,
            Type::VARCHAR,
            Type::BPCHAR,
            Type::NAME,
            Type::BOOL,
            Type::INT2,
            Type::INT4,
            Type::INT8,
            Type::FLOAT4,
            Type::FLOAT8,
        ]
        .contains(ty)
        {
            return Err(format!(
                "column `{}` has type {ty}, which this host does not read; cast it in the query (`::text`, `::float8`)",
                column.name()
            ));
        }
        readable.push(ty.clone());
    }
    let columns = statement
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    if sender.send(Message::Columns(columns)).await.is_err() {
        return Ok(());
    }
    let portal = tx
        .bind(&statement, &[])
        .await
        .map_err(|e| format!("the query failed ({})", pg_cause(&e)))?;
    let mut number = 0;
    loop {
        let rows = tx
            .query_portal(&portal, i32::try_from(chunk_rows).unwrap_or(i32::MAX))
            .await
            .map_err(|e| format!("rows after row {number} cannot be read ({})", pg_cause(&e)))?;
        if rows.is_empty() {
            break;
        }
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            number += 1;
            let values = readable
                .iter()
                .enumerate()
                .map(|(index, ty)| pg_value(&row, index, ty).map_err(|_| index))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|index| {
                    format!(
                        "row {number}, column `{}`: the value cannot be read",
                        statement.columns()[index].name()
                    )
                })?;
            items.push(SourceItem::Row { number, values });
        }
        let chunk = Chunk {
            items,
            position_bytes: None,
        };
        if sender.send(Message::Chunk(chunk)).await.is_err() {
            break;
        }
    }
    drop(tx);
    drop(client);
    let _ = connection.await;
    Ok(())
}

fn pg_value(
    row: &tokio_postgres::Row,
    index: usize,
    ty: &tokio_postgres::types::Type,
) -> Result<Value, tokio_postgres::Error> {
    use tokio_postgres::types::Type;
    Ok(match *ty {
        Type::BOOL => row.try_get::<_, Option<bool>>(index)?.map(Value::Boolean),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(index)?
            .map(|n| Value::Number(n.into())),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(index)?
            .map(|n| Value::Number(n.into())),
        Type::INT8 => row.try_get::<_, Option<i64>>(index)?.map(integer),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(index)?
            .map(|x| Value::Number(x.into())),
        Type::FLOAT8 => row.try_get::<_, Option<f64>>(index)?.map(Value::Number),
        _ => row.try_get::<_, Option<String>>(index)?.map(Value::Text),
    }
    .unwrap_or(Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sources may read `dir`.
    fn access(dir: &Path) -> SourceAccess {
        SourceAccess {
            source_dir: Some(dir.to_path_buf()),
            data_dir: dir.join("data"),
            egress: EgressOptions::default(),
        }
    }

    async fn read_all(
        source: &SourceConfig,
        access: &SourceAccess,
    ) -> (Vec<String>, Vec<SourceItem>) {
        let mut reader = ModelReader::open(source, access, 2).await.unwrap();
        let mut items = Vec::new();
        while let Some(chunk) = reader.next_chunk().await {
            items.extend(chunk.unwrap().items);
        }
        (reader.columns, items)
    }

    #[tokio::test]
    async fn csv_rows_come_with_their_line_and_bad_lines_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("model.csv"),
            b"email;name\na@x.test;Ann\nb@x.test\n\"c@x.test\";\nd@x.test;\xff\xfeSECRET-CELL\n",
        )
        .unwrap();
        let (columns, items) = read_all(
            &SourceConfig::Csv {
                path: "model.csv".into(),
                delimiter: ';',
            },
            &access(dir.path()),
        )
        .await;
        assert_eq!(columns, ["email", "name"]);
        assert_eq!(
            items,
            [
                SourceItem::Row {
                    number: 2,
                    values: vec![Value::Text("a@x.test".into()), Value::Text("Ann".into())]
                },
                SourceItem::Unreadable {
                    number: 3,
                    message: "1 fields where the header has 2".into()
                },
                SourceItem::Row {
                    number: 4,
                    values: vec![Value::Text("c@x.test".into()), Value::Null]
                },
                SourceItem::Unreadable {
                    number: 5,
                    message: "field 2 is not UTF-8 text".into()
                },
            ]
        );
    }

    #[tokio::test]
    async fn a_missing_file_or_bad_query_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let access = access(dir.path());
        let missing = ModelReader::open(
            &SourceConfig::Csv {
                path: "nonexistent/model.csv".into(),
                delimiter: ',',
            },
            &access,
            10,
        )
        .await
        .err()
        .unwrap();
        assert!(
            missing.starts_with("source.path: `nonexistent/model.csv`"),
            "{missing}"
        );

        let db = dir.path().join("model.db");
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute_batch(
                "CREATE TABLE users (email TEXT, age INTEGER, score REAL);
                 INSERT INTO users VALUES ('a@x.test', 41, 0.5), ('b@x.test', NULL, 2);",
            )
            .unwrap();
        let url = format!("sqlite://{}", db.display());
        let bad = ModelReader::open(
            &SourceConfig::Sql {
                url: url.clone(),
                query: "SELECT nope FROM users".into(),
            },
            &access,
            10,
        )
        .await
        .err()
        .unwrap();
        assert!(bad.contains("no such column: nope"), "{bad}");

        let (columns, items) = read_all(
            &SourceConfig::Sql {
                url: "sqlite:model.db".into(),
                query: "SELECT email, age, score FROM users ORDER BY email".into(),
            },
            &access,
        )
        .await;
        assert_eq!(columns, ["email", "age", "score"]);
        assert_eq!(
            items[1],
            SourceItem::Row {
                number: 2,
                values: vec![
                    Value::Text("b@x.test".into()),
                    Value::Null,
                    Value::Number(2.0)
                ]
            }
        );
    }

    #[tokio::test]
    async fn header_values_and_cells_never_reach_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let access = access(dir.path());
        // A file whose header is someone's secret: "its columns are" no more.
        std::fs::write(dir.path().join("shadow"), "root:HASH-TOKEN-1:0:0\n").unwrap();
        let mut reader = ModelReader::open(
            &SourceConfig::Csv {
                path: "shadow".into(),
                delimiter: ',',
            },
            &access,
            10,
        )
        .await
        .unwrap();
        assert_eq!(reader.columns.len(), 1);
        assert!(reader.next_chunk().await.is_none());
        // A header that is not UTF-8.
        std::fs::write(dir.path().join("binary.csv"), b"a,\xffHASH-TOKEN-2\n1,2\n").unwrap();
        let error = ModelReader::open(
            &SourceConfig::Csv {
                path: "binary.csv".into(),
                delimiter: ',',
            },
            &access,
            10,
        )
        .await
        .err()
        .unwrap();
        assert!(!error.contains("HASH-TOKEN"), "{error}");
        assert!(error.contains("header row"), "{error}");
    }

    #[tokio::test]
    async fn a_sqlite_query_may_only_read() {
        let dir = tempfile::tempdir().unwrap();
        let access = access(dir.path());
        let db = dir.path().join("model.db");
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute_batch("CREATE TABLE users (email TEXT); INSERT INTO users VALUES ('a');")
            .unwrap();
        let copy = dir.path().join("copy.db");
        for query in [
            format!("VACUUM INTO '{}'", copy.display()),
            "ATTACH DATABASE ':memory:' AS other".into(),
            "DELETE FROM users".into(),
        ] {
            let error = ModelReader::open(
                &SourceConfig::Sql {
                    url: "sqlite:model.db".into(),
                    query: query.clone(),
                },
                &access,
                10,
            )
            .await
            .err()
            .unwrap_or_else(|| panic!("{query} was run"));
            assert!(
                error.contains("must be one SELECT") || error.contains("readonly"),
                "{query}: {error}"
            );
        }
        assert!(!copy.exists(), "VACUUM INTO wrote a file");
    }

    #[tokio::test]
    async fn sources_outside_the_source_dir_are_refused_at_open_and_when_stored() {
        let dir = tempfile::tempdir().unwrap();
        let models = dir.path().join("models");
        std::fs::create_dir_all(models.join("data")).unwrap();
        let access = access(&models);
        let outside = SourceConfig::Csv {
            path: "/etc/passwd".into(),
            delimiter: ',',
        };
        let error = ModelReader::open(&outside, &access, 10)
            .await
            .err()
            .unwrap();
        assert!(
            error.starts_with("source.path: `/etc/passwd` is outside"),
            "{error}"
        );
        assert_eq!(
            source_problem(&outside, &access).unwrap().path,
            "source.path"
        );
        let store = SourceConfig::Sql {
            url: format!("sqlite://{}", models.join("data/prefsync.db").display()),
            query: "SELECT 1".into(),
        };
        let problem = source_problem(&store, &access).unwrap();
        assert_eq!(problem.path, "source.url");
        assert!(problem.message.contains("data directory"), "{problem}");
        let disabled = SourceAccess::default();
        let problem = source_problem(
            &SourceConfig::Csv {
                path: "users.csv".into(),
                delimiter: ',',
            },
            &disabled,
        )
        .unwrap();
        assert!(problem.message.contains("source_dir"), "{problem}");
        // PostgreSQL is judged when a run connects, not here.
        let pg = SourceConfig::Sql {
            url: "postgres://u:pw@10.0.0.5/db".into(),
            query: "SELECT 1".into(),
        };
        assert_eq!(source_problem(&pg, &disabled), None);
    }

    fn targets(url: &str, options: &EgressOptions) -> Result<Vec<PgTarget>, String> {
        postgres_targets(&url.parse().unwrap(), options)
    }

    #[test]
    fn postgres_hosts_are_decided_before_any_connection() {
        let strict = EgressOptions::default();
        let error =
            targets("postgres://model:Hunter2-pw@10.0.0.5:5432/model", &strict).unwrap_err();
        assert_eq!(
            error,
            "host 10.0.0.5 resolves to 10.0.0.5, a private address, which is not allowed (egress.allow_private is off)"
        );
        let error = targets("postgres://model:Hunter2-pw@127.0.0.1/model", &strict).unwrap_err();
        assert!(error.contains("allow_loopback"), "{error}");
        assert!(targets("postgres://u@169.254.169.254/db", &strict).is_err());
        assert!(targets("postgres://u@[::1]/db", &strict).is_err());
        // hostaddr is what is connected to: it is what is judged.
        let error =
            targets("postgres://u@db.example.com/db?hostaddr=10.0.0.5", &strict).unwrap_err();
        assert!(
            error.contains("db.example.com") && error.contains("private"),
            "{error}"
        );
        let error = targets("postgres://u@%2Frun%2Fpostgresql/db", &strict).unwrap_err();
        assert!(error.contains("/run/postgresql"), "{error}");
        let error = targets("host=/run/postgresql,db.example.com user=u", &strict).unwrap_err();
        assert!(error.contains("mixes"), "{error}");

        let open = EgressOptions {
            allow_loopback: true,
            allow_private: true,
            allow_http: false,
            ..Default::default()
        };
        assert_eq!(
            targets("postgres://u@10.0.0.5/db", &open),
            Ok(vec![PgTarget::Checked("10.0.0.5".parse().unwrap())])
        );
        assert_eq!(
            targets("postgres://u@%2Frun%2Fpostgresql/db", &open),
            Ok(vec![PgTarget::Socket])
        );
        assert_eq!(
            targets("postgres://u@db.example.com:6543/db", &strict),
            Ok(vec![PgTarget::Resolve {
                host: "db.example.com".into(),
                port: 6543
            }])
        );
    }

    #[tokio::test]
    async fn a_refused_postgres_source_names_the_policy_and_hides_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let error = ModelReader::open(
            &SourceConfig::Sql {
                url: "postgres://model:Hunter2-pw@10.0.0.5/model?password=Other-pw".into(),
                query: "SELECT 1".into(),
            },
            &access(dir.path()),
            10,
        )
        .await
        .err()
        .unwrap();
        assert!(error.starts_with("source.url: PostgreSQL"), "{error}");
        assert!(error.contains("allow_private is off"), "{error}");
        assert!(!error.contains("Hunter2-pw"), "{error}");
    }

    #[test]
    fn connection_strings_are_checked_without_showing_passwords() {
        assert_eq!(
            SqlUrl::parse("sqlite:///data/model.db"),
            Ok(SqlUrl::Sqlite("/data/model.db".into()))
        );
        assert_eq!(
            SqlUrl::parse("sqlite:model.db"),
            Ok(SqlUrl::Sqlite("model.db".into()))
        );
        let error = SqlUrl::parse("mysql://u:hunter2@db/x").unwrap_err();
        assert!(!error.contains("hunter2"), "{error}");
    }

    /// A PostgreSQL source over TLS against the test server
    /// (`scripts/postgres.sh` turns TLS on, with a certificate for
    /// `localhost` signed by `DIR/ca.crt`). Skipped without
    /// `PREFSYNC_TEST_POSTGRES` (the host's other tests need no server);
    /// with it, a server without TLS fails the test.
    #[tokio::test]
    async fn a_postgres_source_checks_the_server_s_certificate_as_its_sslmode_says() {
        let Ok(admin) = std::env::var("PREFSYNC_TEST_POSTGRES") else {
            eprintln!(
                "PREFSYNC_TEST_POSTGRES is not set: the PostgreSQL TLS source test is skipped"
            );
            return;
        };
        let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .expect("connecting to the test server");
        tokio::spawn(connection);
        let show = async |name: &str| -> String {
            client
                .query_one(&format!("SHOW {name}"), &[])
                .await
                .expect("SHOW")
                .get(0)
        };
        assert_eq!(show("ssl").await, "on", "the test server has no TLS");
        let cert = std::path::PathBuf::from(show("ssl_cert_file").await);
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(cert.with_file_name("ca.crt"), dir.path().join("ca.crt"))
            .expect("the test CA next to the server's certificate");
        let mut access = access(dir.path());
        access.egress.allow_loopback = true;
        let port = url::Url::parse(&admin).unwrap().port().unwrap();
        let open = async |host: &str, params: &str| {
            let source = SourceConfig::Sql {
                url: format!("postgres://postgres:s3cret-pw@{host}:{port}/postgres?{params}"),
                query: "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()".into(),
            };
            match ModelReader::open(&source, &access, 10).await {
                Ok(mut reader) => {
                    let chunk = reader.next_chunk().await.unwrap().unwrap();
                    Ok(chunk.items)
                }
                Err(error) => {
                    assert!(!error.contains("s3cret-pw"), "{error}");
                    Err(error)
                }
            }
        };
        let encrypted = Ok(vec![SourceItem::Row {
            number: 1,
            values: vec![Value::Text("true".into())],
        }]);
        // `localhost` is resolved and pinned by the egress check; TLS still
        // checks the certificate against the name.
        assert_eq!(
            open("localhost", "sslmode=verify-full&sslrootcert=ca.crt").await,
            encrypted
        );
        let error = open("127.0.0.1", "sslmode=verify-full&sslrootcert=ca.crt")
            .await
            .unwrap_err();
        assert!(
            error.contains("not valid for host name `127.0.0.1`"),
            "{error}"
        );
        assert_eq!(
            open("127.0.0.1", "sslmode=verify-ca&sslrootcert=ca.crt").await,
            encrypted
        );
        assert_eq!(open("127.0.0.1", "sslmode=require").await, encrypted);
        // The root certificate is a file like any other a source reads:
        // inside `source_dir` only.
        let outside = cert.with_file_name("ca.crt");
        let error = open(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={}", outside.display()),
        )
        .await
        .unwrap_err();
        assert!(error.contains("sslrootcert: "), "{error}");
        let error = open("localhost", "sslmode=verify_full").await.unwrap_err();
        assert!(
            error.starts_with("source.url: PostgreSQL postgres://postgres:%5BREDACTED%5D@localhost:")
                && error.ends_with(": sslmode `verify_full` is not one of disable, prefer, require, verify-ca, verify-full"),
            "{error}"
        );
    }
}
