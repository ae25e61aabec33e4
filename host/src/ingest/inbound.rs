//! A connector's reading of an inbound webhook, applied as events whose
//! origin is the integration: every other integration gets the change, the
//! origin does not get it back, and a value equal to the current state
//! changes and sends nothing (which is what ends the echo of our own write).

use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};

use super::Ingest;
use crate::consent::{ConsentEvent, event_for_update, millis_to_rfc3339, parse_rfc3339};
use crate::log_safe::escaped;
use crate::runtime::{ConsentUpdate, Value};
use crate::secrets::Redactor;
use crate::store::IngestOutcome;

/// One update the connector returned that is not a valid event; the whole
/// webhook is refused, nothing half-written.
#[derive(Debug, thiserror::Error)]
#[error("update {index} from the connector: {why}")]
pub struct UpdateRefused {
    pub index: usize,
    /// Redacted: the update is the connector's text and may quote the config.
    pub why: String,
}

/// What one webhook did.
#[derive(Debug, Default)]
pub struct InboundSummary {
    /// Updates recorded as events.
    pub applied: u64,
    /// Of those, the ones that changed nothing any integration maps.
    pub without_deliveries: u64,
    /// Updates already recorded (a webhook sent twice).
    pub duplicates: u64,
    /// What was left out, and why (the connector's reasons, unknown users).
    pub ignored: Vec<String>,
}

/// Where one webhook came from and when.
pub struct Webhook<'a> {
    /// The integration that received it.
    pub integration_id: &'a str,
    /// The request body, whose hash names updates without a notification id.
    pub body: &'a [u8],
    pub received_ms: i64,
    /// The latest creation time accepted (now plus the allowed clock skew).
    pub latest_ms: i64,
    /// The integration's secrets, kept out of every message.
    pub redactor: &'a Redactor,
}

impl Webhook<'_> {
    /// Every update as an event, checked before any is applied.
    pub fn events(&self, updates: &[ConsentUpdate]) -> Result<Vec<ConsentEvent>, UpdateRefused> {
        let body_hash = hex::encode(Sha256::digest(self.body));
        let received_at = millis_to_rfc3339(self.received_ms);
        let id = self.integration_id;
        updates
            .iter()
            .enumerate()
            .map(|(index, update)| {
                let event_id = match &update.notification_id {
                    Some(notification) => format!("webhook:{id}:{notification}:{index}"),
                    None => format!("webhook:{id}:{body_hash}:{index}"),
                };
                let created_at = self.created_at(update, index, &received_at);
                event_for_update(
                    &event_id,
                    created_at,
                    &update.organization_user_id,
                    &properties(update),
                )
                .map_err(|e| UpdateRefused {
                    index,
                    why: self.redactor.redact(&e.to_string()).into_owned(),
                })
            })
            .collect()
    }

    /// A vendor's clock ahead of ours (beyond the allowed skew) would pin
    /// the change against every later one: such a stamp becomes the time
    /// the webhook was received.
    fn created_at<'u>(
        &self,
        update: &'u ConsentUpdate,
        index: usize,
        received_at: &'u str,
    ) -> &'u str {
        match update.occurred_at.as_deref() {
            Some(at) if parse_rfc3339(at).is_ok_and(|ms| ms > self.latest_ms) => {
                tracing::warn!(integration = %self.integration_id, update = index, "webhook update dated in the future; stamped with the time received");
                received_at
            }
            Some(at) => at,
            None => received_at,
        }
    }
}

impl Ingest<'_> {
    /// Records the events of one webhook. Users come from Didomi: an update
    /// for a user not known here is ignored, with the reason kept.
    pub async fn record_webhook(
        &self,
        webhook: &Webhook<'_>,
        events: &[ConsentEvent],
        ignored: Vec<String>,
    ) -> anyhow::Result<InboundSummary> {
        let mut summary = InboundSummary {
            ignored,
            ..InboundSummary::default()
        };
        let users: Vec<String> = events
            .iter()
            .map(|event| event.user.organization_user_id.clone())
            .collect();
        let known = self.store.users(&users).await?;
        let mut recorded = Vec::with_capacity(events.len());
        for (event, state) in events.iter().zip(known) {
            if state.is_none() {
                let user = &event.user.organization_user_id;
                let reason = webhook
                    .redactor
                    .redact(&format!("user `{user}` is not known"))
                    .into_owned();
                tracing::info!(integration = %webhook.integration_id, reason = %escaped(&reason), "part of a webhook ignored");
                summary.ignored.push(reason);
                continue;
            }
            recorded.push(event.clone());
        }
        for outcome in self
            .record(recorded.into(), Some(webhook.integration_id))
            .await?
        {
            match outcome {
                IngestOutcome::Duplicate => summary.duplicates += 1,
                IngestOutcome::Recorded { enqueued, .. } => {
                    summary.applied += 1;
                    if enqueued.is_empty() {
                        summary.without_deliveries += 1;
                    }
                }
            }
        }
        Ok(summary)
    }
}

fn properties(update: &ConsentUpdate) -> Vec<(String, Json)> {
    update
        .properties
        .iter()
        .map(|p| {
            let value = match &p.value {
                Value::Null => Json::Null,
                Value::Boolean(b) => json!(b),
                Value::Number(n) => json!(n),
                Value::Text(t) => json!(t),
            };
            (p.name.clone(), value)
        })
        .collect()
}
