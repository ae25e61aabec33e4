//! The one writer: a thread that owns the write connection and commits
//! whatever work is waiting together (group commit).
//!
//! Every write of the store is a *job* sent to this thread. The thread takes
//! the first job, opens one transaction (`BEGIN IMMEDIATE`), runs that job and
//! every other job already waiting — each inside its own savepoint, so a job
//! that fails or panics is undone alone — and commits once. Only then does
//! each job's caller get its answer: nothing is reported written before it is
//! durable, and N concurrent writes cost one fsync instead of N.
//!
//! No timer is involved: a group is whatever arrived while the previous
//! commit was being made, so an idle store commits at once and a busy one
//! commits in larger groups.
//!
//! A job that needs no fsync ([`Durability::Deferred`], e.g. a lease) is
//! committed with `synchronous = NORMAL` when its whole group is deferred:
//! its commit reaches the WAL file (the kernel's page cache) at once, so a
//! process that dies loses nothing, and the disk with the next synced commit
//! — WAL frames are appended in order, so syncing a later commit syncs every
//! earlier one. Only a crash of the machine can undo it. A synced job never
//! joins a deferred group: `synchronous` cannot change inside a transaction,
//! so it starts the next group.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use anyhow::{Context, anyhow};
use rusqlite::Connection;

use crate::Result;

/// Most jobs one transaction takes; bounds a group's latency and the WAL
/// growth of one commit.
const MAX_GROUP: usize = 256;

/// What a job hands back after it ran: sends its answer once the group's
/// commit is known (`None`: committed; `Some`: why the commit failed).
type Finish = Box<dyn FnOnce(Option<&anyhow::Error>) + Send>;
/// A job's body: runs inside a savepoint on the write connection.
type Body = Box<dyn FnOnce(&Connection) -> Finish + Send>;

/// When a write must be on disk for its caller to be answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Durability {
    /// Answered after its commit is fsynced (`synchronous = FULL`).
    Synced,
    /// Answered after its commit is in the WAL file, before any fsync: for
    /// writes a crash of the machine may undo without harm (a lease, which
    /// the crash ends anyway).
    Deferred,
}

struct Job {
    durability: Durability,
    body: Body,
}

/// The handle to the writer thread; dropping the last one stops it after the
/// jobs already sent.
pub(super) struct Writer {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    commits: Arc<AtomicU64>,
}

impl Writer {
    /// Starts the thread that owns `conn` (configured and migrated).
    pub(super) fn start(conn: Connection) -> anyhow::Result<Writer> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let commits = Arc::new(AtomicU64::new(0));
        let counted = commits.clone();
        let thread = std::thread::Builder::new()
            .name("prefsync-sqlite-writer".into())
            .spawn(move || run(&conn, &queue, &counted))
            .context("starting the SQLite writer thread")?;
        Ok(Writer {
            jobs: Some(jobs),
            thread: Some(thread),
            commits,
        })
    }

    /// Transactions committed so far (each one fsync); with the jobs'
    /// count it shows how much group commit saves.
    pub(super) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Runs `body` in the next group and answers once that group committed
    /// as `durability` asks. `body`'s error (or panic) undoes its own writes
    /// only.
    pub(super) async fn write<T, F>(
        &self,
        op: &'static str,
        durability: Durability,
        body: F,
    ) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel::<Result<T>>();
        let body: Body = Box::new(move |conn| {
            let result = in_savepoint(conn, body);
            Box::new(move |commit_error| {
                let result = match (result, commit_error) {
                    (Ok(value), None) => Ok(value),
                    (Ok(_), Some(error)) => Err(anyhow!("commit failed: {error:#}")),
                    (Err(error), _) => Err(error),
                };
                // The caller may have gone away; the write stands regardless.
                let _ = answer.send(result);
            })
        });
        let job = Job { durability, body };
        self.jobs
            .as_ref()
            .and_then(|jobs| jobs.send(job).ok())
            .ok_or_else(|| anyhow!("sqlite store: {op}: the writer has stopped"))?;
        answered
            .await
            .map_err(|_| anyhow!("the writer stopped before answering"))
            .and_then(|result| result)
            .with_context(|| format!("sqlite store: {op}"))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel ends the thread once it has drained it; joining
        // closes the connection before whoever dropped the store goes on
        // (a test reopening the file, a process about to exit).
        self.jobs.take();
        if let Some(thread) = self.thread.take()
            && thread.thread().id() != std::thread::current().id()
        {
            let _ = thread.join();
        }
    }
}

/// The thread: a group per wake-up until every sender is gone.
fn run(conn: &Connection, queue: &mpsc::Receiver<Job>, commits: &AtomicU64) {
    // As `configure` left it.
    let mut level = Durability::Synced;
    // A synced job that arrived during a deferred group: it opens the next.
    let mut held: Option<Job> = None;
    while let Some(first) = held.take().or_else(|| queue.recv().ok()) {
        if let Err(error) = set_level(conn, &mut level, first.durability)
            .and_then(|()| Ok(conn.execute_batch("BEGIN IMMEDIATE")?))
        {
            let error = error.context("starting a transaction");
            // Nothing ran: the job is answered with the error, unrun.
            (first.body)(conn)(Some(&error));
            continue;
        }
        let mut finishes = Vec::with_capacity(8);
        finishes.push((first.body)(conn));
        while finishes.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job)
                    if level == Durability::Deferred && job.durability == Durability::Synced =>
                {
                    held = Some(job);
                    break;
                }
                Ok(job) => finishes.push((job.body)(conn)),
                Err(_) => break,
            }
        }
        let commit = conn.execute_batch("COMMIT").map_err(|error| {
            // A failed COMMIT may leave the transaction open; undo it so the
            // next group starts clean.
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            anyhow::Error::new(error)
        });
        let commit_error = commit.err();
        if commit_error.is_none() {
            commits.fetch_add(1, Ordering::Relaxed);
        }
        for finish in finishes {
            finish(commit_error.as_ref());
        }
    }
}

/// Sets `synchronous` for the next group when it differs from the last
/// (outside a transaction: SQLite refuses the change inside one).
fn set_level(conn: &Connection, level: &mut Durability, wanted: Durability) -> Result<()> {
    if *level != wanted {
        let value = match wanted {
            Durability::Synced => "FULL",
            Durability::Deferred => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", value)?;
        *level = wanted;
    }
    Ok(())
}

/// Runs `body` inside a savepoint: kept when it returns `Ok`, rolled back
/// when it returns an error or panics (the panic becomes the error).
fn in_savepoint<T>(conn: &Connection, body: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    conn.execute_batch("SAVEPOINT job")?;
    let result = match catch_unwind(AssertUnwindSafe(|| body(conn))) {
        Ok(result) => result,
        Err(panic) => Err(anyhow!("panicked: {}", panic_message(&*panic))),
    };
    let failed = match result {
        Ok(value) => match conn.execute_batch("RELEASE job") {
            Ok(()) => return Ok(value),
            Err(error) => anyhow::Error::new(error).context("keeping the job's writes"),
        },
        Err(error) => error,
    };
    // Undone, whether the body failed or keeping its writes did: a job
    // answered with an error leaves nothing behind.
    conn.execute_batch("ROLLBACK TO job; RELEASE job")?;
    Err(failed)
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> (tempfile::TempDir, Writer, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("w.db");
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER UNIQUE);")
            .expect("schema");
        (dir, Writer::start(conn).expect("start"), path)
    }

    fn count(path: &std::path::Path) -> i64 {
        Connection::open(path)
            .expect("reader")
            .query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0))
            .expect("count")
    }

    #[tokio::test]
    async fn a_failing_or_panicking_job_is_undone_alone() {
        let (_dir, writer, path) = writer();
        let (ok, failed, panicked, after) = tokio::join!(
            writer.write("ok", Durability::Synced, |c| Ok(
                c.execute("INSERT INTO t VALUES (1)", [])?
            )),
            writer.write("fails", Durability::Synced, |c| -> Result<()> {
                c.execute("INSERT INTO t VALUES (2)", [])?;
                Err(anyhow!("no"))
            }),
            writer.write("panics", Durability::Synced, |c| -> Result<()> {
                c.execute("INSERT INTO t VALUES (3)", [])?;
                panic!("a bug")
            }),
            writer.write("after", Durability::Synced, |c| Ok(
                c.execute("INSERT INTO t VALUES (4)", [])?
            )),
        );
        assert_eq!(ok.expect("ok"), 1);
        assert!(format!("{:#}", failed.expect_err("fails")).contains("no"));
        assert!(format!("{:#}", panicked.expect_err("panics")).contains("a bug"));
        assert_eq!(after.expect("after"), 1);
        let rows: Vec<i64> = Connection::open(&path)
            .expect("reader")
            .prepare("SELECT x FROM t ORDER BY x")
            .expect("prepare")
            .query_map([], |row| row.get(0))
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows");
        assert_eq!(rows, [1, 4]);
    }

    #[tokio::test]
    async fn writes_waiting_together_share_one_commit_and_answer_after_it() {
        let (_dir, writer, path) = writer();
        let writer = Arc::new(writer);
        // The first job holds the thread until every other job is queued.
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let mut tasks = tokio::task::JoinSet::new();
        let first = writer.clone();
        tasks.spawn(async move {
            first
                .write("first", Durability::Synced, move |c| {
                    hold.recv().expect("released");
                    Ok(c.execute("INSERT INTO t VALUES (0)", [])?)
                })
                .await
        });
        // On this one-thread runtime a yield lets every spawned task run up
        // to its first await, i.e. send its job.
        tokio::task::yield_now().await;
        for i in 1..200 {
            let writer = writer.clone();
            tasks.spawn(async move {
                writer
                    .write("insert", Durability::Synced, move |c| {
                        Ok(c.execute("INSERT INTO t VALUES (?1)", [i])?)
                    })
                    .await
            });
        }
        tokio::task::yield_now().await;
        assert_eq!(count(&path), 0, "nothing is visible before the commit");
        release.send(()).expect("release");
        while let Some(done) = tasks.join_next().await {
            assert_eq!(done.expect("task").expect("insert"), 1);
        }
        assert_eq!(count(&path), 200);
        assert_eq!(writer.commits(), 1, "200 writes, one commit");
    }

    fn synchronous(c: &Connection) -> Result<i64> {
        Ok(c.query_row("PRAGMA synchronous", [], |row| row.get(0))?)
    }

    #[tokio::test]
    async fn a_synced_write_never_shares_a_deferred_commit() {
        let (_dir, writer, path) = writer();
        let writer = Arc::new(writer);
        // A deferred job holds the thread while a synced one and another
        // deferred one queue behind it.
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let first = writer.clone();
        let first = tokio::spawn(async move {
            first
                .write("lease", Durability::Deferred, move |c| {
                    hold.recv().expect("released");
                    c.execute("INSERT INTO t VALUES (1)", [])?;
                    synchronous(c)
                })
                .await
        });
        tokio::task::yield_now().await;
        let synced = writer.clone();
        let synced = tokio::spawn(async move {
            synced
                .write("ingest", Durability::Synced, |c| {
                    c.execute("INSERT INTO t VALUES (2)", [])?;
                    synchronous(c)
                })
                .await
        });
        let deferred = writer.clone();
        let deferred = tokio::spawn(async move {
            deferred
                .write("lease", Durability::Deferred, |c| {
                    c.execute("INSERT INTO t VALUES (3)", [])?;
                    synchronous(c)
                })
                .await
        });
        tokio::task::yield_now().await;
        release.send(()).expect("release");
        // NORMAL is 1, FULL 2: the first group committed without an fsync,
        // the synced job opened a group of its own, which the deferred job
        // behind it joined.
        assert_eq!(first.await.expect("task").expect("first"), 1);
        assert_eq!(synced.await.expect("task").expect("synced"), 2);
        assert_eq!(deferred.await.expect("task").expect("deferred"), 2);
        assert_eq!(writer.commits(), 2);
        assert_eq!(count(&path), 3);
    }
}
