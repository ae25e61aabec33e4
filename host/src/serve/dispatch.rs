//! The dispatcher: claims due deliveries per integration (with a lease, so
//! several hosts can share a store), delivers the users' *current* state in
//! batches of the connector's size, and records each outcome: acknowledged,
//! retried later per the retry policy, or dead-lettered — with an audit row
//! per attempt.
//!
//! A tick never waits for deliveries: it claims at most what the
//! integration's concurrency and batch size allow beyond what is already in
//! flight, spawns the batches, and goes on, so one slow destination never
//! holds up another.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::App;
use super::canary::CanaryRun;
use crate::now_ms;
use crate::pipeline::retry::at_after;
use crate::pipeline::{RetryPolicy, mapped_properties, record_for, write_back};
use crate::runtime::{ConsentRecord, DeliveredKind, Destination, IntegrationContext, Outcome};
use crate::store::{
    AuditOutcome, AuditRow, Claim, Completed, Completion, IntegrationRecord, Store,
};

/// Per integration: its runtime context per connector version (rebuilt when
/// the config changes; the allowlist depends on the version's schema and
/// default hosts) and how many claimed deliveries are in flight.
#[derive(Default)]
struct IntegrationSlot {
    updated_at_ms: i64,
    contexts: HashMap<String, Arc<IntegrationContext>>,
    in_flight: Arc<AtomicUsize>,
}

impl IntegrationSlot {
    fn context(
        &mut self,
        integration: &IntegrationRecord,
        connector: &Arc<dyn Destination>,
    ) -> Arc<IntegrationContext> {
        if self.updated_at_ms != integration.updated_at_ms {
            self.contexts.clear();
            self.updated_at_ms = integration.updated_at_ms;
        }
        self.contexts
            .entry(connector.info().content_hash.clone())
            .or_insert_with(|| connector.integration(&integration.id, &integration.config))
            .clone()
    }
}

/// The integrations a tick works from. Read again when this process wrote
/// integrations since (an API call, a load), or once older than `max_age`,
/// for writes this process cannot count (another host on PostgreSQL, the
/// CLI on the same file): a busy dispatcher ticks thousands of times a
/// second, and the list rarely changes.
struct IntegrationList {
    max_age: Duration,
    read: Option<(u64, Instant, Vec<IntegrationRecord>)>,
}

impl IntegrationList {
    async fn current(&mut self, store: &dyn Store) -> Result<&[IntegrationRecord]> {
        let written = store.integrations_written();
        let fresh = self.read.as_ref().is_some_and(|(at_count, read_at, _)| {
            *at_count == written && read_at.elapsed() < self.max_age
        });
        if !fresh {
            // The count is taken before the read: a write that ends during
            // it changes the count, so the next tick reads again.
            self.read = Some((written, Instant::now(), store.integrations().await?));
        }
        Ok(self
            .read
            .as_ref()
            .map_or(&[], |(_, _, list)| list.as_slice()))
    }
}

/// Runs until `shutdown` turns true, then waits for the batches in flight.
///
/// A tick runs when work may be due: on the ingest's notification, every
/// `poll_ms` (retries coming due, other hosts' work), and when a batch ends
/// if the last tick left something behind — its claims filled some
/// integration's room, or batches were in flight, whose leased users may
/// have had newer changes queued behind them. Otherwise a batch's end wakes
/// no claim: a paced event costs one claim, not one per wake-up.
pub async fn run(app: Arc<App>, owner: String, mut shutdown: watch::Receiver<bool>) {
    let poll = Duration::from_millis(app.config.dispatch.poll_ms.max(10));
    let mut slots: HashMap<String, IntegrationSlot> = HashMap::new();
    let mut integrations = IntegrationList {
        max_age: poll,
        read: None,
    };
    let mut batches = JoinSet::new();
    let mut tick_now = true;
    let mut recheck_when_a_batch_ends = false;
    while !*shutdown.borrow() {
        if tick_now {
            let busy = !batches.is_empty();
            let ticked = tick(&app, &owner, &mut integrations, &mut slots, &mut batches).await;
            let left_behind = match ticked {
                Ok(left_behind) => left_behind,
                Err(error) => {
                    tracing::error!(error = %format!("{error:#}"), "dispatch tick failed");
                    false
                }
            };
            recheck_when_a_batch_ends |= left_behind || busy;
        }
        let mut ended = false;
        while batches.try_join_next().is_some() {
            ended = true;
        }
        tick_now = ended && recheck_when_a_batch_ends;
        if !tick_now {
            tokio::select! {
                _ = app.work.notified() => tick_now = true,
                _ = tokio::time::sleep(poll) => tick_now = true,
                _ = shutdown.changed() => {}
                Some(_) = batches.join_next(), if !batches.is_empty() => {
                    tick_now = recheck_when_a_batch_ends;
                }
            }
        }
        if tick_now {
            recheck_when_a_batch_ends = false;
        }
    }
    while batches.join_next().await.is_some() {}
}

/// Claims and spawns what is due for every enabled integration; true when
/// some integration had no room left for all of it (its in-flight batches
/// must end before more is claimed).
async fn tick(
    app: &Arc<App>,
    owner: &str,
    integrations: &mut IntegrationList,
    slots: &mut HashMap<String, IntegrationSlot>,
    batches: &mut JoinSet<()>,
) -> Result<bool> {
    let mut left_behind = false;
    for integration in integrations.current(app.store.as_ref()).await? {
        if !integration.enabled {
            continue;
        }
        let Some(connector) = app.connectors.get(&integration.type_id) else {
            continue;
        };
        let slot = slots.entry(integration.id.clone()).or_default();
        let batch_size = connector.info().max_batch_size.max(1) as usize;
        let capacity = batch_size * connector.info().max_concurrency.max(1) as usize;
        let room = capacity.saturating_sub(slot.in_flight.load(Ordering::SeqCst));
        if room == 0 {
            left_behind = true;
            continue;
        }
        let lease_ms = i64::try_from(app.config.dispatch.lease_ms).unwrap_or(i64::MAX);
        let claims = app
            .store
            .claim_due(&integration.id, owner, now_ms(), lease_ms, room as u32)
            .await?;
        left_behind |= claims.len() == room;
        for chunk in claims.chunks(batch_size) {
            // Picked per batch, at its start: a switch after this point
            // leaves this batch on the version it started with.
            let first_attempts = chunk.iter().all(|claim| claim.attempts == 0);
            let Some(picked) = app.connectors.pick(&integration.type_id, first_attempts) else {
                continue;
            };
            let in_flight = slot.in_flight.clone();
            in_flight.fetch_add(chunk.len(), Ordering::SeqCst);
            // A root span per batch, linked to each ingest whose change it
            // carries (the outbox wait is no parent–child relation).
            let span = tracing::info_span!(
                parent: None,
                "delivery",
                otel.name = %format_args!("deliver {}", integration.id),
                prefsync.integration = %integration.id,
                prefsync.deliveries = chunk.len(),
                prefsync.first_attempts = first_attempts,
            );
            let mut linked = Vec::new();
            for context in chunk
                .iter()
                .filter_map(|claim| claim.trace_context.as_deref())
            {
                if !linked.contains(&context) {
                    crate::telemetry::link(&span, context);
                    linked.push(context);
                }
            }
            let job = Batch {
                app: app.clone(),
                context: slot.context(integration, &picked.destination),
                connector: picked.destination,
                canary: picked.canary.map(|run| (run, picked.is_candidate)),
                integration: integration.clone(),
                claims: chunk.to_vec(),
            };
            batches.spawn(tracing::Instrument::instrument(
                async move {
                    let count = job.claims.len();
                    job.deliver().await;
                    in_flight.fetch_sub(count, Ordering::SeqCst);
                },
                span,
            ));
        }
    }
    Ok(left_behind)
}

struct Batch {
    app: Arc<App>,
    connector: Arc<dyn Destination>,
    /// The canary running for the connector type, and whether `connector`
    /// is its candidate: outcomes are counted on it.
    canary: Option<(Arc<CanaryRun>, bool)>,
    context: Arc<IntegrationContext>,
    integration: IntegrationRecord,
    claims: Vec<Claim>,
}

/// One claim's outcome, waiting to be recorded with the rest of its batch.
struct Finished<'c> {
    claim: &'c Claim,
    /// The state version sent; `None` when no call was made for it.
    sent_version: Option<u64>,
    completion: Completion,
    outcome: AuditOutcome,
    detail: String,
}

impl Batch {
    async fn deliver(self) {
        let (records, claims, mut finished) = self.load_states().await;
        if records.is_empty() {
            self.finish(finished, &[], 0).await;
            return;
        }
        let info = self.connector.info();
        let call = tracing::info_span!(
            "connector call",
            otel.name = %format_args!("{} deliver", info.type_id),
            prefsync.connector.type = %info.type_id,
            prefsync.connector.version = %info.version,
            prefsync.integration = %self.integration.id,
            prefsync.records = records.len(),
        );
        let delivery =
            tracing::Instrument::instrument(self.connector.deliver(&self.context, records), call)
                .await;
        let statuses = delivery.report.stats.http_statuses.clone();
        let duration_ms = u64::try_from(delivery.report.duration.as_millis()).unwrap_or(u64::MAX);
        self.app.metrics.call(
            &self.connector.info().type_id,
            delivery.report.duration,
            &statuses,
        );
        // Checked when the integration was saved; the host default otherwise.
        let policy = self
            .integration
            .config
            .get("retry")
            .and_then(|r| crate::integrations::retry_policy(r).ok())
            .unwrap_or_else(|| self.app.config.retry.clone());
        let on_candidate = self
            .canary
            .as_ref()
            .is_some_and(|(_, candidate)| *candidate);
        self.count_on_canary(&delivery.outcomes);
        for ((claim, state_version), outcome) in claims.into_iter().zip(delivery.outcomes) {
            let (completion, outcome, detail) =
                completion_for(claim, outcome, &policy, on_candidate);
            finished.push(Finished {
                claim,
                sent_version: Some(state_version),
                completion,
                outcome,
                detail,
            });
        }
        self.finish(finished, &statuses, duration_ms).await;
    }

    /// The records of the claimed users' current states (read together),
    /// each with its claim and the state version sent. A user with no state
    /// is acknowledged as skipped; if the states cannot be read, the leases
    /// are left to expire and the deliveries retried.
    async fn load_states(&self) -> (Vec<ConsentRecord>, Vec<(&Claim, u64)>, Vec<Finished<'_>>) {
        let mut records = Vec::with_capacity(self.claims.len());
        let mut claims = Vec::with_capacity(self.claims.len());
        let mut skipped = Vec::new();
        let users: Vec<String> = self
            .claims
            .iter()
            .map(|claim| claim.organization_user_id.clone())
            .collect();
        let states = match self.app.store.users(&users).await {
            Ok(states) => states,
            Err(error) => {
                tracing::error!(error = %format!("{error:#}"), integration = %self.integration.id, deliveries = self.claims.len(), "loading user states failed; the leases will expire and the deliveries be retried");
                return (records, claims, skipped);
            }
        };
        let mapped = mapped_properties(&self.integration.config);
        for (claim, user) in self.claims.iter().zip(states) {
            match user {
                Some(user) => {
                    let facts =
                        write_back::record_facts(&self.integration.id, &user.state, &mapped);
                    records.push(record_for(&user.state, facts));
                    claims.push((claim, user.state.version));
                }
                None => skipped.push(Finished {
                    claim,
                    sent_version: None,
                    completion: Completion::Acked,
                    outcome: AuditOutcome::Skipped,
                    detail: "user has no state".to_string(),
                }),
            }
        }
        (records, claims, skipped)
    }

    /// Counts the batch's outcomes on the canary running for the connector
    /// type, if one is.
    fn count_on_canary(&self, outcomes: &[Outcome]) {
        if let Some((run, candidate)) = &self.canary {
            let permanent = outcomes
                .iter()
                .filter(|o| matches!(o, Outcome::Failed(f) if !f.retryable))
                .count();
            run.record(*candidate, outcomes.len() as u64, permanent as u64);
        }
    }

    /// Records the batch's outcomes and their audit rows in one store
    /// transaction, each under its own lease.
    async fn finish(&self, finished: Vec<Finished<'_>>, http_statuses: &[u16], duration_ms: u64) {
        if finished.is_empty() {
            return;
        }
        let info = self.connector.info();
        let at_ms = now_ms();
        let mut completed = Vec::with_capacity(finished.len());
        for done in &finished {
            self.app
                .metrics
                .delivery(&self.integration.id, done.outcome);
            let claim = done.claim;
            let audit = AuditRow {
                id: 0,
                at_ms,
                integration_id: self.integration.id.clone(),
                organization_user_id: claim.organization_user_id.clone(),
                state_version: done.sent_version.unwrap_or(0),
                connector_type: info.type_id.clone(),
                connector_version: info.version.clone(),
                connector_hash: info.content_hash.clone(),
                outcome: done.outcome,
                detail: done.detail.clone(),
                // A user with no state made no call: no statuses, no time.
                http_statuses: match done.sent_version {
                    Some(_) => http_statuses.to_vec(),
                    None => Vec::new(),
                },
                duration_ms: done.sent_version.map_or(0, |_| duration_ms),
                attempt: claim.attempts.saturating_add(1),
                origin: claim.origin.clone(),
            };
            // What was sent is the state loaded after the claim, which may be
            // newer than the version claimed: acknowledging that version keeps
            // the same state from being sent twice.
            let sent = Claim {
                version: claim.version.max(done.sent_version.unwrap_or(0)),
                ..claim.clone()
            };
            completed.push(Completed {
                claim: sent,
                completion: done.completion.clone(),
                audit,
            });
        }
        match self.app.store.complete_all(completed, now_ms()).await {
            Ok(held) => {
                for (done, held) in finished.iter().zip(held) {
                    let user = crate::log_safe::escaped(&done.claim.organization_user_id);
                    if held {
                        tracing::debug!(integration = %self.integration.id, %user, outcome = %done.outcome, "delivery recorded");
                    } else {
                        tracing::warn!(integration = %self.integration.id, %user, "lease lost before the outcome was recorded; another attempt will follow");
                    }
                }
            }
            Err(error) => {
                tracing::error!(error = %format!("{error:#}"), integration = %self.integration.id, deliveries = finished.len(), "recording delivery outcomes failed; the leases will expire and the deliveries be retried")
            }
        }
        // An acknowledgement may leave newer work due at once (a change that
        // arrived while the user was leased): the dispatcher looks again
        // when this batch ends, since it ticked while the batch was in flight.
    }
}

/// How to complete a claim after this outcome, its audit label and detail.
fn completion_for(
    claim: &Claim,
    outcome: Outcome,
    policy: &RetryPolicy,
    on_candidate: bool,
) -> (Completion, AuditOutcome, String) {
    match outcome {
        // The canary's candidate is on trial: what it cannot deliver
        // is retried on the version it is compared with, never
        // dead-lettered for it.
        Outcome::Failed(failure) if on_candidate && !failure.retryable => {
            let delay = policy
                .next_delay(claim.attempts.saturating_add(1), None, jitter_unit())
                .unwrap_or(std::time::Duration::from_secs(1));
            (
                Completion::Retry {
                    next_attempt_at_ms: at_after(now_ms(), delay),
                    error: failure.message.clone(),
                },
                AuditOutcome::FailedCanary,
                failure.message,
            )
        }
        Outcome::Delivered(kind) => (Completion::Acked, delivered_label(kind), String::new()),
        Outcome::Skipped(reason) => (Completion::Acked, AuditOutcome::Skipped, reason),
        Outcome::Failed(failure) if failure.retryable => {
            let unit = jitter_unit();
            match policy.next_attempt_at(
                now_ms(),
                claim.attempts.saturating_add(1),
                failure.retry_after_ms,
                unit,
            ) {
                Some(next_attempt_at_ms) => (
                    Completion::Retry {
                        next_attempt_at_ms,
                        error: failure.message.clone(),
                    },
                    AuditOutcome::FailedRetryable,
                    failure.message,
                ),
                None => (
                    Completion::DeadLetter {
                        error: failure.message.clone(),
                    },
                    AuditOutcome::DeadLetter,
                    failure.message,
                ),
            }
        }
        Outcome::Failed(failure) => (
            Completion::DeadLetter {
                error: failure.message.clone(),
            },
            AuditOutcome::FailedPermanent,
            failure.message,
        ),
    }
}

fn delivered_label(kind: DeliveredKind) -> AuditOutcome {
    match kind {
        DeliveredKind::Created => AuditOutcome::DeliveredCreated,
        DeliveredKind::Updated => AuditOutcome::DeliveredUpdated,
        DeliveredKind::Unchanged => AuditOutcome::DeliveredUnchanged,
    }
}

/// A number in [0, 1) for retry jitter.
fn jitter_unit() -> f64 {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}
