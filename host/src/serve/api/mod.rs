//! The HTTP API: one module per resource, each with a `routes()`.

pub mod activations;
pub mod connectors;
pub mod deliveries;
pub mod error;
pub mod events;
pub mod integrations;
pub mod json_body;
pub mod openapi;
pub mod overview;
pub mod webhooks;
