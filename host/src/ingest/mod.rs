//! Ingest, apart from HTTP: an event is merged into its user's state and
//! the integrations whose mapped properties changed get a delivery, in one
//! store transaction. `POST /v1/events` and inbound webhooks both come
//! through [`Ingest::record`]; [`inbound`] turns a connector's webhook
//! updates into events first.

pub mod inbound;

use std::collections::BTreeSet;

use crate::consent::{ConsentEvent, UserState};
use crate::now_ms;
use crate::pipeline::{change_matters, mapped_properties};
use crate::store::{IngestOutcome, IngestPlan, IntegrationRecord, Store, StoredEvent, UserRecord};

/// One request's ingest: the store, and the enabled integrations with the
/// properties each one maps, read once per request.
pub struct Ingest<'a> {
    store: &'a dyn Store,
    integrations: Vec<(IntegrationRecord, BTreeSet<String>)>,
}

impl<'a> Ingest<'a> {
    pub async fn start(store: &'a dyn Store) -> anyhow::Result<Ingest<'a>> {
        let integrations = store
            .integrations()
            .await?
            .into_iter()
            .filter(|i| i.enabled)
            .map(|i| {
                let mapped = mapped_properties(&i.config);
                (i, mapped)
            })
            .collect();
        Ok(Ingest {
            store,
            integrations,
        })
    }

    /// Stores `event` and what it changes, in one transaction. `origin`
    /// names the integration of an inbound webhook, which does not get its
    /// own change back.
    pub async fn record(
        &self,
        event: &ConsentEvent,
        origin: Option<&str>,
    ) -> anyhow::Result<IngestOutcome> {
        // The deliveries this raises link back to the ingest's span.
        let trace_context = crate::telemetry::traceparent(&tracing::Span::current());
        self.store
            .ingest(&stored_event(event, origin), &|current| {
                let mut plan = self.plan(event, current, origin);
                plan.trace_context.clone_from(&trace_context);
                Ok(plan)
            })
            .await
    }

    /// Merges `event` into the current state; the integrations whose mapped
    /// properties changed get a delivery (never the event's own origin).
    pub fn plan(
        &self,
        event: &ConsentEvent,
        current: Option<&UserRecord>,
        origin: Option<&str>,
    ) -> IngestPlan {
        let mut state = current
            .map(|u| u.state.clone())
            .unwrap_or_else(|| UserState::new(event.user.organization_user_id.clone()));
        let result = state.apply(event);
        if !result.state_modified() {
            return IngestPlan::default();
        }
        // A user no destination has seen is news to every integration.
        let new_user = current.is_none() && result.changed;
        let enqueue = self
            .integrations
            .iter()
            .filter(|(i, mapped)| {
                Some(i.id.as_str()) != origin
                    && (new_user || change_matters(mapped, &result.changed_fields))
            })
            .map(|(i, _)| i.id.clone())
            .collect();
        IngestPlan {
            state: Some(state),
            enqueue,
            trace_context: None,
        }
    }
}

/// The event as stored; `origin` names the integration of an inbound webhook.
pub fn stored_event(event: &ConsentEvent, origin: Option<&str>) -> StoredEvent {
    StoredEvent {
        event_id: event.id.clone(),
        organization_user_id: event.user.organization_user_id.clone(),
        origin: origin.map(str::to_string),
        status: event.status,
        created_at_ms: event.created_at_ms,
        received_at_ms: now_ms(),
        payload: event.raw.clone(),
    }
}
