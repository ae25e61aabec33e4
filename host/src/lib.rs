//! prefsync: consent events in, destinations updated through sandboxed
//! WebAssembly connectors. See `ARCHITECTURE.md` for the map.

pub mod activation;
pub mod cli;
pub mod config;
pub mod consent;
pub mod egress;
pub mod outbound_http;
pub mod pipeline;
pub mod runtime;
pub mod secrets;
pub mod serve;
pub mod store;
