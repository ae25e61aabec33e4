//! The HTTP API: one module per resource, each with a `routes()`.

pub mod error;
pub mod integrations;
