//! Reading a model: a CSV file or a SQL query (SQLite or PostgreSQL),
//! streamed in chunks through a bounded channel, so a run holds a few
//! chunks in memory whatever the model's size.

use std::path::PathBuf;

use tokio::sync::mpsc;

use super::config::SourceConfig;
use crate::runtime::Value;

/// Chunks read ahead of the run.
const CHUNKS_AHEAD: usize = 2;

/// A SQL source's connection string, checked.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl SqlUrl {
    pub fn parse(url: &str) -> Result<SqlUrl, String> {
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(
                    "`sqlite:` needs a file: `sqlite:///absolute/path.db` or `sqlite:relative.db`"
                        .into(),
                );
            }
            return Ok(SqlUrl::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(SqlUrl::Postgres(url.to_string()));
        }
        Err(format!(
            "`{}` is not a connection string this host reads; use `sqlite:///path.db` or `postgres://user:password@host/db`",
            crate::store::postgres::redacted_url(url)
        ))
    }
}

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
    /// could not be opened and why.
    pub async fn open(source: &SourceConfig, chunk_rows: usize) -> Result<ModelReader, String> {
        let (sender, mut receiver) = mpsc::channel(CHUNKS_AHEAD);
        let chunk_rows = chunk_rows.max(1);
        let mut total_bytes = None;
        match source {
            SourceConfig::Csv { path, delimiter } => {
                total_bytes = std::fs::metadata(path).ok().map(|m| m.len());
                let (path, delimiter) = (path.clone(), *delimiter as u8);
                tokio::task::spawn_blocking(move || {
                    read_csv(&path, delimiter, chunk_rows, &sender)
                });
            }
            SourceConfig::Sql { url, query } => match SqlUrl::parse(url)? {
                SqlUrl::Sqlite(path) => {
                    let query = query.clone();
                    tokio::task::spawn_blocking(move || {
                        if let Err(error) = read_sqlite(&path, &query, chunk_rows, &sender) {
                            let _ = sender.blocking_send(Message::Failed(format!(
                                "SQLite database {}: {error}",
                                path.display()
                            )));
                        }
                    });
                }
                SqlUrl::Postgres(url) => {
                    let query = query.clone();
                    tokio::spawn(async move {
                        if let Err(error) = read_postgres(&url, &query, chunk_rows, &sender).await {
                            let _ = sender
                                .send(Message::Failed(format!(
                                    "PostgreSQL {}: {error}",
                                    crate::store::postgres::redacted_url(&url)
                                )))
                                .await;
                        }
                    });
                }
            },
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

fn read_csv(
    path: &std::path::Path,
    delimiter: u8,
    chunk_rows: usize,
    sender: &mpsc::Sender<Message>,
) {
    let fail = |error: String| {
        let _ = sender.blocking_send(Message::Failed(format!(
            "CSV file {}: {error}",
            path.display()
        )));
    };
    let mut reader = match csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .from_path(path)
    {
        Ok(reader) => reader,
        Err(error) => return fail(error.to_string()),
    };
    let columns: Vec<String> = match reader.headers() {
        Ok(headers) => headers.iter().map(|h| h.trim().to_string()).collect(),
        Err(error) => return fail(format!("its header row cannot be read: {error}")),
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
            Err(error) => match error.kind() {
                csv::ErrorKind::UnequalLengths {
                    pos,
                    expected_len,
                    len,
                } => items.push(SourceItem::Unreadable {
                    number: pos.as_ref().map_or(line, |p| p.line()),
                    message: format!("{len} fields where the header has {expected_len}"),
                }),
                csv::ErrorKind::Utf8 { pos, err } => items.push(SourceItem::Unreadable {
                    number: pos.as_ref().map_or(line, |p| p.line()),
                    message: format!("not UTF-8 text ({err})"),
                }),
                _ => return fail(error.to_string()),
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

fn read_sqlite(
    path: &std::path::Path,
    query: &str,
    chunk_rows: usize,
    sender: &mpsc::Sender<Message>,
) -> Result<(), String> {
    use rusqlite::types::ValueRef;
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| e.to_string())?;
    let mut statement = conn
        .prepare(query)
        .map_err(|e| format!("the query does not prepare: {e}"))?;
    let columns: Vec<String> = statement.column_names().map(str::to_string).collect();
    if sender.blocking_send(Message::Columns(columns)).is_err() {
        return Ok(());
    }
    let mut rows = statement.query([]).map_err(|e| e.to_string())?;
    let mut items = Vec::with_capacity(chunk_rows);
    let mut number = 0;
    while let Some(row) = rows.next().map_err(|e| e.to_string())? {
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

/// Integers beyond what a double holds exactly travel as text.
fn integer(n: i64) -> Value {
    if n.unsigned_abs() <= (1 << 53) {
        Value::Number(n as f64)
    } else {
        Value::Text(n.to_string())
    }
}

async fn read_postgres(
    url: &str,
    query: &str,
    chunk_rows: usize,
    sender: &mpsc::Sender<Message>,
) -> Result<(), String> {
    use tokio_postgres::types::Type;
    let (mut client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let connection = tokio::spawn(connection);
    // A portal inside a read-only transaction fetches `chunk_rows` at a
    // time, so the server, not this host, holds the rest of the result.
    let tx = client
        .build_transaction()
        .read_only(true)
        .start()
        .await
        .map_err(|e| e.to_string())?;
    let statement = tx
        .prepare(query)
        .await
        .map_err(|e| format!("the query does not prepare: {e}"))?;
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
    let portal = tx.bind(&statement, &[]).await.map_err(|e| e.to_string())?;
    let mut number = 0;
    loop {
        let rows = tx
            .query_portal(&portal, chunk_rows as i32)
            .await
            .map_err(|e| e.to_string())?;
        if rows.is_empty() {
            break;
        }
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            number += 1;
            let values = readable
                .iter()
                .enumerate()
                .map(|(index, ty)| pg_value(&row, index, ty))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("row {number}: {e}"))?;
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

    async fn read_all(source: &SourceConfig) -> (Vec<String>, Vec<SourceItem>) {
        let mut reader = ModelReader::open(source, 2).await.unwrap();
        let mut items = Vec::new();
        while let Some(chunk) = reader.next_chunk().await {
            items.extend(chunk.unwrap().items);
        }
        (reader.columns, items)
    }

    #[tokio::test]
    async fn csv_rows_come_with_their_line_and_bad_lines_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.csv");
        std::fs::write(&path, "email;name\na@x.test;Ann\nb@x.test\n\"c@x.test\";\n").unwrap();
        let (columns, items) = read_all(&SourceConfig::Csv {
            path,
            delimiter: ';',
        })
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
            ]
        );
    }

    #[tokio::test]
    async fn a_missing_file_or_bad_query_is_a_clear_error() {
        let missing = ModelReader::open(
            &SourceConfig::Csv {
                path: "/nonexistent/model.csv".into(),
                delimiter: ',',
            },
            10,
        )
        .await
        .err()
        .unwrap();
        assert!(missing.contains("/nonexistent/model.csv"), "{missing}");

        let dir = tempfile::tempdir().unwrap();
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
            10,
        )
        .await
        .err()
        .unwrap();
        assert!(bad.contains("no such column: nope"), "{bad}");

        let (columns, items) = read_all(&SourceConfig::Sql {
            url,
            query: "SELECT email, age, score FROM users ORDER BY email".into(),
        })
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
}
