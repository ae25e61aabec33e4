//! What a `/metrics` scrape costs the store as the outbox grows: the reads
//! of the scrape before 0.3 (`queue_depth`, a count over every outbox row,
//! plus every dead letter listed and counted) against `queue_stats` (per
//! integration, through the partial indexes over the waiting rows and the
//! unreplayed dead letters), on one SQLite file, same run.
//!
//! `cargo bench -p prefsync-store --bench scrape` (SCRAPE_BENCH_USERS sets
//! the users per integration; 100,000 by default, over 10 integrations).

use std::time::{Duration, Instant};

use prefsync_store::{SqliteStore, Store};

const INTEGRATIONS: usize = 10;
/// One user in this many waits for a delivery; one in this many has a
/// dead letter, nine in ten of them replayed.
const PENDING_EVERY: usize = 100;
const DEAD_EVERY: usize = 20;
const SCRAPES: u32 = 200;

/// This process's user + system CPU time (`/proc/self/stat`, USER_HZ 100).
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// Fills the store's tables straight through SQLite: `users` per
/// integration, in one transaction.
fn fill(path: &std::path::Path, users: usize) {
    let mut db = rusqlite::Connection::open(path).unwrap();
    let tx = db.transaction().unwrap();
    for i in 0..INTEGRATIONS {
        let id = format!("crm-{i}");
        tx.execute(
            "INSERT INTO integrations (id, type_id, enabled, config, created_at_ms, updated_at_ms)
             VALUES (?1, 'dotdigital', 1, '{}', 0, 0)",
            [&id],
        )
        .unwrap();
        let mut outbox = tx
            .prepare(
                "INSERT INTO outbox (integration_id, organization_user_id, wanted_version,
                     acked_version, attempts, next_attempt_at_ms, updated_at_ms, pending_since_ms)
                 VALUES (?1, ?2, 2, ?3, 0, 0, ?4, ?4)",
            )
            .unwrap();
        let mut dead = tx
            .prepare(
                "INSERT INTO dead_letters (integration_id, organization_user_id, version,
                     attempts, last_error, created_at_ms, replayed_at_ms)
                 VALUES (?1, ?2, 1, 7, '400 Bad Request: the address is not valid', 0, ?3)",
            )
            .unwrap();
        for u in 0..users {
            let user = format!("user-{u:08}@example.com");
            let acked = if u.is_multiple_of(PENDING_EVERY) {
                1
            } else {
                2
            };
            outbox
                .execute(rusqlite::params![id, user, acked, u as i64])
                .unwrap();
            if u.is_multiple_of(DEAD_EVERY) {
                let replayed = (!(u / DEAD_EVERY).is_multiple_of(10)).then_some(1_i64);
                dead.execute(rusqlite::params![id, user, replayed]).unwrap();
            }
        }
    }
    tx.commit().unwrap();
}

async fn time<F, Fut>(mut scrape: F) -> (Duration, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    let (wall, cpu_before) = (Instant::now(), cpu());
    let mut check = 0;
    for _ in 0..SCRAPES {
        check += scrape().await;
    }
    assert!(check > 0);
    (wall.elapsed() / SCRAPES, (cpu() - cpu_before) / SCRAPES)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let users: usize = std::env::var("SCRAPE_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    println!("| outbox rows | dead letters | scrape | wall ms | CPU ms |");
    println!("|---:|---:|---|---:|---:|");
    for size in [users / 10, users] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prefsync.db");
        drop(SqliteStore::open(&path).unwrap());
        fill(&path, size);
        let store = SqliteStore::open(&path).unwrap();
        let rows = size * INTEGRATIONS;
        let dead_rows = rows.div_ceil(DEAD_EVERY);
        // The same answers both ways, so the figures compare equal work.
        let stats = store.queue_stats().await.unwrap();
        let pending: u64 = stats.iter().map(|s| s.pending).sum();
        assert_eq!(pending, store.queue_depth().await.unwrap());
        let unreplayed = store
            .dead_letters(None)
            .await
            .unwrap()
            .iter()
            .filter(|d| d.replayed_at_ms.is_none())
            .count() as u64;
        assert_eq!(
            stats.iter().map(|s| s.dead_letters).sum::<u64>(),
            unreplayed
        );

        let before = time(|| async {
            let depth = store.queue_depth().await.unwrap();
            let dead = store.dead_letters(None).await.unwrap();
            depth + dead.iter().filter(|d| d.replayed_at_ms.is_none()).count() as u64
        })
        .await;
        let now = time(|| async { store.queue_stats().await.unwrap().len() as u64 }).await;
        for (name, (wall, cpu)) in [("before 0.3: count + list", before), ("queue_stats", now)] {
            println!(
                "| {rows} | {dead_rows} | {name} | {:.2} | {:.1} |",
                wall.as_secs_f64() * 1e3,
                cpu.as_secs_f64() * 1e3
            );
        }
        println!(
            "| | | ratio (before / now) | {:.1}× | {:.1}× |",
            before.0.as_secs_f64() / now.0.as_secs_f64(),
            before.1.as_secs_f64() / now.1.as_secs_f64().max(1e-4)
        );
    }
}
