//! One run: read the model chunk by chunk, look each key up in the
//! snapshot, send what is new or changed in batches the connector sizes,
//! and advance the snapshot for the rows the destination accepted. Only
//! new keys and accepted rows are written: an unchanged row costs a read.

use std::collections::HashMap;
use std::collections::hash_map::{Entry, RandomState};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use super::config::{ActivationConfig, SyncMode};
use super::confine::SourceAccess;
use super::diff::{RowHashes, changed, name_hash, value_hash};
use super::seen::SeenKeys;
use super::source::{ModelReader, SourceItem};
use crate::runtime::{
    Destination, IntegrationContext, RowOutcome, SyncBatch, SyncError, SyncRow, Value,
};
use crate::store::{SnapshotEntry, Store};

/// Rows looked up in the snapshot at once.
const CHUNK_ROWS: usize = 1_000;
/// Row errors kept in a run's summary.
const KEPT_ERRORS: usize = 20;
/// Tries of one batch when the destination answers "later".
const BATCH_ATTEMPTS: u32 = 4;

const LOST_LEASE: &str = "the run lost its lease (another run of this activation took over)";

/// How often a running run reports its progress ([`Lease::report`]): well
/// under a second, so what is shown is never more than a second old.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// What a run did, as the history shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunSummary {
    pub rows_read: u64,
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Rows rejected by the source checks (missing or repeated key,
    /// unreadable line) or by the destination.
    pub failed: u64,
    /// Rows not written on purpose (`insert` mode and a known key, `update`
    /// mode and a key the destination lacks).
    pub skipped: u64,
    /// Calls to the connector's `sync`.
    pub batches: u64,
    pub duration_ms: u64,
    /// Why the run could not finish, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The warnings it raised.
    pub warnings: Vec<String>,
    /// The first rejected rows, with their keys.
    pub errors: Vec<RowError>,
    /// More rejected rows than `errors` holds.
    pub errors_truncated: bool,
}

impl RunSummary {
    /// Share of the rows read that were rejected.
    pub fn rejected_share(&self) -> f64 {
        if self.rows_read == 0 {
            0.0
        } else {
            self.failed as f64 / self.rows_read as f64
        }
    }

    fn reject(&mut self, error: RowError) {
        self.failed += 1;
        if self.errors.len() < KEPT_ERRORS {
            self.errors.push(error);
        } else {
            self.errors_truncated = true;
        }
    }
}

/// One rejected row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RowError {
    /// Its key, for a row the destination rejected; a source problem
    /// (empty or repeated key, unreadable line) names only its row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Its line (CSV) or row number (SQL).
    pub row: u64,
    /// `source` (the model) or `destination`.
    pub stage: String,
    /// The destination field at fault, when it says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

/// How far a run has come, for progress bars.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub rows_read: u64,
    pub sent: u64,
    pub failed: u64,
    /// Share of the source read, when it is a file.
    pub fraction: Option<f64>,
}

/// Keeps the run's lease; false when it was lost (another host took over).
#[async_trait::async_trait]
pub trait Lease: Send + Sync {
    async fn renew(&self) -> bool;
    /// Shows how far the running run has come (`{"progress": {"rows_read",
    /// "rows_sent", "updated_at_ms"}}`, the run's stored summary while it
    /// runs); called every [`PROGRESS_EVERY`] from the run's start to its
    /// end, never after [`execute`] returns. Does nothing by default.
    async fn report(&self, progress: &Json) {
        let _ = progress;
    }
}

/// The counts a running run reports, updated as it goes.
#[derive(Debug, Default)]
struct LiveCounts {
    rows_read: AtomicU64,
    rows_sent: AtomicU64,
}

impl LiveCounts {
    /// The progress document: `{"progress": {"rows_read", "rows_sent", "updated_at_ms"}}`.
    fn progress(&self) -> Json {
        json!({"progress": {
            "rows_read": self.rows_read.load(Ordering::Relaxed),
            "rows_sent": self.rows_sent.load(Ordering::Relaxed),
            "updated_at_ms": crate::now_ms(),
        }})
    }
}

/// What a run needs.
pub struct RunInputs<'a> {
    pub config: &'a ActivationConfig,
    pub store: Arc<dyn Store>,
    pub destination: Arc<dyn Destination>,
    pub integration: Arc<IntegrationContext>,
    /// What the source may read and reach.
    pub access: &'a SourceAccess,
    pub full_resync: bool,
    pub lease: &'a dyn Lease,
    pub progress: &'a (dyn Fn(&Progress) + Send + Sync),
}

/// A row waiting to be sent, with the snapshot it earns if accepted.
struct Pending {
    row: SyncRow,
    number: u64,
    hashes: Vec<u8>,
}

/// Runs an activation once; never fails as a whole: a run that cannot
/// finish says why in `error`.
pub async fn execute(inputs: RunInputs<'_>) -> RunSummary {
    let started = Instant::now();
    let mut summary = RunSummary::default();
    let live = LiveCounts::default();
    let finished = tokio::sync::Notify::new();
    let work = async {
        let result = execute_into(&inputs, &mut summary, &live).await;
        // Stored as a permit if the reporter is busy writing: it stops next.
        finished.notify_one();
        result
    };
    // Beside the work, not between its steps, so a long connector call or a
    // slow source still shows progress; the report in flight ends before
    // `execute` returns, so none lands after the finished summary.
    let reporter = async {
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = finished.notified() => break,
                _ = tick.tick() => inputs.lease.report(&live.progress()).await,
            }
        }
    };
    let (result, ()) = tokio::join!(work, reporter);
    if let Err(error) = result {
        summary.error = Some(error);
    }
    summary.duration_ms = started.elapsed().as_millis() as u64;
    summary
}

/// A mapped attribute: its column in the source, the hash of its name, and
/// the name the destination knows it by.
type Attribute<'c> = (usize, u64, &'c str);

/// A chunk's rows with a usable key, each key once: the keys (moved into
/// the snapshot lookup and back), and each row's number and values; and
/// what the chunk adds to the summary before its rows are judged (rows
/// read, rows rejected for their key), kept apart while the chunk waits
/// for its lookup so the summary keeps the source's order.
#[derive(Default)]
struct KeyedChunk {
    keys: Vec<String>,
    rows: Vec<(u64, Vec<Value>)>,
    rows_read: u64,
    rejected: Vec<RowError>,
}

/// A keyed chunk's rows with what the snapshot knows of each key.
struct LookedUp {
    rows: Vec<(u64, Vec<Value>)>,
    entries: Vec<SnapshotEntry>,
    rows_read: u64,
    rejected: Vec<RowError>,
    position_bytes: Option<u64>,
}

async fn execute_into(
    inputs: &RunInputs<'_>,
    summary: &mut RunSummary,
    live: &LiveCounts,
) -> Result<(), String> {
    let config = inputs.config;
    let max_rows = inputs
        .destination
        .max_rows(&inputs.integration)
        .await
        .map_err(|e| format!("the connector cannot sync: {e}"))? as usize;
    let mut reader = ModelReader::open(&config.source, inputs.access, CHUNK_ROWS).await?;
    let (key_index, attributes) = resolve_columns(config, &reader.columns)?;
    let total_bytes = reader.total_bytes;
    let mut pending: Vec<Pending> = Vec::new();
    let mut progress = Progress::default();
    let mut seen = SeenKeys::default();
    let key_hasher = RandomState::new();
    // One chunk ahead: the next chunk's snapshot lookup runs on the store's
    // thread while this chunk's rows are hashed, compared and sent (in an
    // unchanged run the lookups are a third of the CPU). Lookups still run
    // one after the other, in the source's order, so key numbers — and a
    // key repeated in a later chunk — come out as without the overlap.
    let mut looked_up: Option<LookedUp> = None;
    loop {
        let upcoming = match reader.next_chunk().await {
            Some(chunk) => Some(chunk?),
            None => None,
        };
        if upcoming.is_some() && !inputs.lease.renew().await {
            return Err(LOST_LEASE.into());
        }
        let lookup = async {
            let Some(chunk) = upcoming else {
                return Ok(None);
            };
            let keyed = keyed_rows(chunk.items, key_index, &config.key.column, &key_hasher);
            let entries = lookup_snapshot(inputs, keyed.keys).await?;
            Ok::<_, String>(Some(LookedUp {
                rows: keyed.rows,
                entries,
                rows_read: keyed.rows_read,
                rejected: keyed.rejected,
                position_bytes: chunk.position_bytes,
            }))
        };
        let judge = async {
            let Some(chunk) = looked_up.take() else {
                return Ok(());
            };
            summary.rows_read += chunk.rows_read;
            for error in chunk.rejected {
                summary.reject(error);
            }
            live.rows_read.store(summary.rows_read, Ordering::Relaxed);
            for (row, entry) in chunk.rows.into_iter().zip(chunk.entries) {
                if !seen.first_sight(entry.key_number) {
                    summary.reject(duplicate(row.0));
                    continue;
                }
                let Some(row) = pending_for(inputs, &attributes, row, entry, summary) else {
                    continue;
                };
                pending.push(row);
                if pending.len() >= max_rows {
                    let batch = std::mem::take(&mut pending);
                    progress.sent += batch.len() as u64;
                    send(inputs, batch, summary).await?;
                    live.rows_sent.store(progress.sent, Ordering::Relaxed);
                }
            }
            progress.rows_read = summary.rows_read;
            progress.failed = summary.failed;
            progress.fraction = read_fraction(chunk.position_bytes, total_bytes);
            (inputs.progress)(&progress);
            Ok::<_, String>(())
        };
        // The lookup is polled first, so its job is on the store's thread
        // before the judging starts.
        let (next, judged) = tokio::join!(lookup, judge);
        judged?;
        match next? {
            Some(next) => looked_up = Some(next),
            None => break,
        }
    }
    if !pending.is_empty() {
        progress.sent += pending.len() as u64;
        send(inputs, pending, summary).await?;
        live.rows_sent.store(progress.sent, Ordering::Relaxed);
        progress.failed = summary.failed;
        (inputs.progress)(&progress);
    }
    Ok(())
}

/// The source columns of the key and of each mapped attribute; an error
/// names any the source lacks.
fn resolve_columns<'c>(
    config: &'c ActivationConfig,
    columns: &[String],
) -> Result<(usize, Vec<Attribute<'c>>), String> {
    // Only the name the activation gave and a count: the header's own
    // values are the file's content.
    let column = |name: &str, path: String| {
        columns.iter().position(|c| c == name).ok_or_else(|| {
            format!(
                "column `{name}` ({path}) is not in the source (it has {} columns)",
                columns.len()
            )
        })
    };
    let key_index = column(&config.key.column, "key.column".into())?;
    let attributes: Vec<Attribute<'c>> = config
        .mappings
        .iter()
        .enumerate()
        .map(|(i, m)| {
            Ok((
                column(&m.value, format!("mappings[{i}].value"))?,
                name_hash(&m.id),
                m.id.as_str(),
            ))
        })
        .collect::<Result<_, String>>()?;
    Ok((key_index, attributes))
}

/// Rows with a usable key, not repeated within the chunk; the others are
/// kept as rejected, for the summary. (A key repeated from an earlier chunk is caught
/// by its key number after the lookup.)
fn keyed_rows(
    items: Vec<SourceItem>,
    key_index: usize,
    key_column: &str,
    key_hasher: &RandomState,
) -> KeyedChunk {
    let mut keyed = KeyedChunk {
        keys: Vec::with_capacity(items.len()),
        rows: Vec::with_capacity(items.len()),
        ..KeyedChunk::default()
    };
    // A key's hash → the first key with that hash; equal hashes are
    // compared as text, so the keys need not be copied into a set.
    let mut in_chunk: HashMap<u64, usize> = HashMap::with_capacity(items.len());
    for item in items {
        keyed.rows_read += 1;
        match item {
            SourceItem::Unreadable { number, message } => keyed.rejected.push(RowError {
                key: None,
                row: number,
                stage: "source".into(),
                field: None,
                message,
            }),
            SourceItem::Row { number, values } => match key_of(values.get(key_index)) {
                None => keyed.rejected.push(RowError {
                    key: None,
                    row: number,
                    stage: "source".into(),
                    field: None,
                    message: format!("the key column `{key_column}` is empty"),
                }),
                Some(key) => {
                    let repeated = match in_chunk.entry(key_hasher.hash_one(&key)) {
                        Entry::Vacant(slot) => {
                            slot.insert(keyed.keys.len());
                            false
                        }
                        Entry::Occupied(first) => {
                            keyed.keys[*first.get()] == key || keyed.keys.contains(&key)
                        }
                    };
                    if repeated {
                        keyed.rejected.push(duplicate(number));
                    } else {
                        keyed.keys.push(key);
                        keyed.rows.push((number, values));
                    }
                }
            },
        }
    }
    keyed
}

/// What the snapshot knows of each key, in order (new keys are numbered).
async fn lookup_snapshot(
    inputs: &RunInputs<'_>,
    keys: Vec<String>,
) -> Result<Vec<SnapshotEntry>, String> {
    inputs
        .store
        .snapshot_lookup(&inputs.config.id, keys)
        .await
        .map_err(|e| format!("the snapshot could not be read: {e:#}"))
}

/// The row to send, with only its new or changed attributes (its values
/// moved, not copied); `None` when there is nothing to send (an unchanged
/// row, a known key in `insert` mode), counted in `summary`.
fn pending_for(
    inputs: &RunInputs<'_>,
    attributes: &[Attribute<'_>],
    (number, mut values): (u64, Vec<Value>),
    entry: SnapshotEntry,
    summary: &mut RunSummary,
) -> Option<Pending> {
    let current: Vec<(u64, u64)> = attributes
        .iter()
        .map(|(index, name, _)| {
            (
                *name,
                value_hash(values.get(*index).unwrap_or(&Value::Null)),
            )
        })
        .collect();
    let known = entry.accepted.is_some();
    let accepted = entry
        .accepted
        .as_deref()
        .filter(|_| !inputs.full_resync)
        .map(RowHashes::decode);
    let to_send = changed(&current, accepted.as_ref());
    if to_send.is_empty() {
        summary.unchanged += 1;
        return None;
    }
    if known && inputs.config.mode == SyncMode::Insert {
        summary.skipped += 1;
        return None;
    }
    let properties = to_send
        .iter()
        .enumerate()
        .map(|(at, &i)| {
            let column = attributes[i].0;
            // Moved out of the row, unless a later attribute maps the same column.
            let shared = to_send[at + 1..].iter().any(|&j| attributes[j].0 == column);
            let value = match values.get_mut(column) {
                Some(value) if shared => value.clone(),
                Some(value) => std::mem::replace(value, Value::Null),
                None => Value::Null,
            };
            crate::runtime::Property {
                name: attributes[i].2.to_string(),
                value,
            }
        })
        .collect();
    Some(Pending {
        row: SyncRow {
            key: entry.key,
            attributes: properties,
            known,
        },
        number,
        hashes: RowHashes::new(current).encode(),
    })
}

/// Share of a file source read so far, when its size is known.
fn read_fraction(position_bytes: Option<u64>, total_bytes: Option<u64>) -> Option<f64> {
    match (position_bytes, total_bytes) {
        (Some(at), Some(total)) if total > 0 => Some((at as f64 / total as f64).min(1.0)),
        _ => None,
    }
}

/// A repeated key, named by its row: a source problem never shows a
/// value (the key column could hold anything the model selects).
fn duplicate(number: u64) -> RowError {
    RowError {
        message: "its key appears earlier in the model; only the first row with a key is used"
            .into(),
        key: None,
        row: number,
        stage: "source".into(),
        field: None,
    }
}

/// A key as text; `None` when there is none.
fn key_of(value: Option<&Value>) -> Option<String> {
    let text = match value? {
        Value::Null => return None,
        Value::Text(t) => t.trim().to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => format!("{}", *n as i64),
        Value::Number(n) => n.to_string(),
    };
    (!text.is_empty()).then_some(text)
}

/// Sends one batch, trying again while the destination says "later";
/// records outcomes and advances the snapshot for the accepted rows. The
/// rows move into the request; each try gets a copy, because the
/// destination takes its batch by value and a retry needs the rows again.
async fn send(
    inputs: &RunInputs<'_>,
    batch: Vec<Pending>,
    summary: &mut RunSummary,
) -> Result<(), String> {
    let config = inputs.config;
    let mut rows = Vec::with_capacity(batch.len());
    let mut earned = Vec::with_capacity(batch.len());
    for pending in batch {
        rows.push(pending.row);
        earned.push((pending.number, pending.hashes));
    }
    let request = SyncBatch {
        key_field: config.key.field.clone(),
        mode: match config.mode {
            SyncMode::Upsert => crate::runtime::SyncMode::Upsert,
            SyncMode::Insert => crate::runtime::SyncMode::Insert,
            SyncMode::Update => crate::runtime::SyncMode::Update,
        },
        rows,
    };
    let mut attempt = 0;
    let outcomes = loop {
        attempt += 1;
        summary.batches += 1;
        if !inputs.lease.renew().await {
            return Err(LOST_LEASE.into());
        }
        match inputs
            .destination
            .sync(&inputs.integration, request.clone())
            .await
        {
            Ok(outcomes) => break outcomes,
            Err(error) if error.retryable() && attempt < BATCH_ATTEMPTS => {
                let wait = Duration::from_millis(250 << attempt);
                tracing::info!(
                    activation = %config.id,
                    attempt,
                    wait_ms = wait.as_millis() as u64,
                    error = %crate::log_safe::escaped(&error.to_string()),
                    "destination asked to try the batch later"
                );
                tokio::time::sleep(wait).await;
            }
            Err(error) => {
                let kind = match &error {
                    SyncError::Refused(_) => "the destination refused the batch",
                    SyncError::Unsupported(_) => "the connector cannot sync",
                    SyncError::Call(_) => "the connector call failed",
                };
                return Err(format!("{kind}: {error}"));
            }
        }
    };
    let mut accepted = Vec::new();
    for ((row, (number, hashes)), outcome) in request.rows.into_iter().zip(earned).zip(outcomes) {
        match outcome {
            RowOutcome::Inserted => {
                summary.inserted += 1;
                accepted.push((row.key, hashes));
            }
            RowOutcome::Updated => {
                summary.updated += 1;
                accepted.push((row.key, hashes));
            }
            RowOutcome::Skipped(_) => summary.skipped += 1,
            RowOutcome::Failed(failure) => summary.reject(RowError {
                key: Some(row.key),
                row: number,
                stage: "destination".into(),
                field: failure.field,
                message: failure.message,
            }),
        }
    }
    if !accepted.is_empty() {
        inputs
            .store
            .snapshot_accept(&config.id, accepted)
            .await
            .map_err(|e| format!("the snapshot could not be written: {e:#}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    use crate::runtime::testing::NullDestination;
    use crate::runtime::{CallError, ConnectorInfo, Delivery, ValidationProblem};

    /// A destination whose `sync` takes `pause` per batch of one row.
    struct SlowSync {
        inner: NullDestination,
        pause: Duration,
    }

    #[async_trait::async_trait]
    impl Destination for SlowSync {
        fn info(&self) -> &ConnectorInfo {
            self.inner.info()
        }
        async fn validate(&self, config: &Json) -> Result<Vec<ValidationProblem>, CallError> {
            self.inner.validate(config).await
        }
        async fn deliver(
            &self,
            integration: &Arc<IntegrationContext>,
            batch: Vec<crate::runtime::ConsentRecord>,
        ) -> Delivery {
            self.inner.deliver(integration, batch).await
        }
        async fn max_rows(&self, _: &Arc<IntegrationContext>) -> Result<u32, SyncError> {
            Ok(1)
        }
        async fn sync(
            &self,
            _: &Arc<IntegrationContext>,
            batch: SyncBatch,
        ) -> Result<Vec<RowOutcome>, SyncError> {
            tokio::time::sleep(self.pause).await;
            Ok(batch.rows.iter().map(|_| RowOutcome::Inserted).collect())
        }
    }

    /// A lease always held, keeping every progress report with its time.
    #[derive(Default)]
    struct Recorder {
        reports: Mutex<Vec<(Instant, Json)>>,
    }

    #[async_trait::async_trait]
    impl Lease for Recorder {
        async fn renew(&self) -> bool {
            true
        }
        async fn report(&self, progress: &Json) {
            self.reports
                .lock()
                .unwrap()
                .push((Instant::now(), progress.clone()));
        }
    }

    #[tokio::test]
    async fn a_running_run_reports_its_progress_at_least_every_second_and_never_after() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("model.csv"),
            "email,name\na@x.test,Ann\nb@x.test,Bob\nc@x.test,Cy\n",
        )
        .unwrap();
        let access = SourceAccess {
            source_dir: Some(dir.path().to_path_buf()),
            data_dir: dir.path().join("data"),
            egress: Default::default(),
        };
        let config = ActivationConfig::parse(
            br#"{"id": "users", "integration": "dd", "source": {"type": "csv", "path": "model.csv"},
                 "key": {"column": "email", "field": "EMAIL"},
                 "mappings": [{"id": "NAME", "value": "name"}]}"#,
            None,
        )
        .unwrap();
        let store: Arc<dyn Store> =
            Arc::new(crate::store::SqliteStore::open(&dir.path().join("store.db")).unwrap());
        store
            .put_activation(&crate::store::ActivationRecord {
                id: "users".into(),
                integration_id: "dd".into(),
                config: json!({}),
                created_at_ms: 1,
                updated_at_ms: 1,
                next_run_at_ms: None,
            })
            .await
            .unwrap();
        let destination: Arc<dyn Destination> = Arc::new(SlowSync {
            inner: NullDestination::new("slow", "0.1.0"),
            pause: Duration::from_millis(800),
        });
        let integration = destination.integration("dd", &json!({}));
        let lease = Recorder::default();
        let started = Instant::now();
        let summary = execute(RunInputs {
            config: &config,
            store,
            destination,
            integration,
            access: &access,
            full_resync: false,
            lease: &lease,
            progress: &|_| {},
        })
        .await;
        let ended = Instant::now();
        assert_eq!((summary.error.as_deref(), summary.inserted), (None, 3));

        let reports = lease.reports.lock().unwrap().clone();
        let mut times = vec![started];
        times.extend(reports.iter().map(|(at, _)| *at));
        times.push(ended);
        let longest = times.windows(2).map(|w| w[1] - w[0]).max().unwrap();
        assert!(
            longest < Duration::from_secs(1),
            "{longest:?} without a report in a run of {:?}",
            ended - started
        );
        let counts: Vec<(u64, u64)> = reports
            .iter()
            .map(|(_, json)| {
                let p = &json["progress"];
                assert!(p["updated_at_ms"].as_i64().unwrap() > 0, "{json}");
                (
                    p["rows_read"].as_u64().unwrap(),
                    p["rows_sent"].as_u64().unwrap(),
                )
            })
            .collect();
        assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
        assert!(
            counts
                .iter()
                .any(|&(read, sent)| read == 3 && (1..3).contains(&sent)),
            "a report during the sends: {counts:?}"
        );
        // Nothing is reported once the run has returned.
        tokio::time::sleep(PROGRESS_EVERY * 2).await;
        assert_eq!(lease.reports.lock().unwrap().len(), reports.len());
    }

    #[test]
    fn keys_read_as_text() {
        assert_eq!(key_of(Some(&Value::Number(42.0))).as_deref(), Some("42"));
        assert_eq!(
            key_of(Some(&Value::Text("  a@x.test ".into()))).as_deref(),
            Some("a@x.test")
        );
        assert_eq!(key_of(Some(&Value::Text("  ".into()))), None);
        assert_eq!(key_of(Some(&Value::Null)), None);
        assert_eq!(key_of(None), None);
    }
}
