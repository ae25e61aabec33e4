//! Ingest, apart from HTTP: an event is merged into its user's state and
//! the integrations whose mapped properties changed get a delivery, in one
//! store transaction. `POST /v1/events` and inbound webhooks both come
//! through [`Ingest::record`]; [`inbound`] turns a connector's webhook
//! updates into events first.

pub mod inbound;

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::consent::{ConsentEvent, UserState};
use crate::now_ms;
use crate::pipeline::{change_matters, mapped_properties, write_back};
use crate::store::{IngestOutcome, IngestPlan, IntegrationRecord, Store, StoredEvent, UserRecord};

/// The enabled integrations, each with the properties it maps.
type Targets = Vec<(IntegrationRecord, BTreeSet<String>)>;

/// One request's ingest: the store, and the enabled integrations with the
/// properties each one maps, read once per request.
pub struct Ingest<'a> {
    store: &'a dyn Store,
    integrations: Arc<Targets>,
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
            integrations: Arc::new(integrations),
        })
    }

    /// Which of `events` (of the events API) are prefsync's own write-backs
    /// coming back: they are to be neither stored nor applied.
    pub fn echoes(&self, events: &[ConsentEvent]) -> Vec<bool> {
        events
            .iter()
            .map(|event| {
                write_back::is_echo(event, self.integrations.iter().map(|(i, _)| i.id.as_str()))
            })
            .collect()
    }

    /// Stores `events` and what they change, in order and in one
    /// transaction (which the store may share with other requests'): every
    /// outcome, or an error and nothing stored. `origin` names the
    /// integration of an inbound webhook, which does not get its own change
    /// back.
    pub async fn record(
        &self,
        events: Arc<[ConsentEvent]>,
        origin: Option<&str>,
    ) -> anyhow::Result<Vec<IngestOutcome>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        // The deliveries this raises link back to the ingest's span.
        let trace_context = crate::telemetry::traceparent(&tracing::Span::current());
        let stored = events.iter().map(|e| stored_event(e, origin)).collect();
        let integrations = self.integrations.clone();
        let planned_origin = origin.map(str::to_string);
        let planner = move |index: usize, _: &StoredEvent, current: Option<&UserRecord>| {
            let mut plan = plan(
                &integrations,
                &events[index],
                current,
                planned_origin.as_deref(),
            );
            plan.trace_context.clone_from(&trace_context);
            Ok(plan)
        };
        self.store.ingest(stored, Arc::new(planner)).await
    }
}

/// Merges `event` into the current state; the integrations whose mapped
/// properties changed get a delivery (never the event's own origin: the
/// webhook's integration, or for events-API events a Didomi integration).
fn plan(
    integrations: &Targets,
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
    let enqueue = integrations
        .iter()
        .filter(|(i, mapped)| {
            let own_change = match origin {
                Some(origin) => i.id == origin,
                None => write_back::skips_events_api_changes(&i.type_id),
            };
            !own_change && (new_user || change_matters(mapped, &result.changed_fields))
        })
        .map(|(i, _)| i.id.clone())
        .collect();
    IngestPlan {
        state: Some(state),
        enqueue,
        trace_context: None,
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
