//! prefsync: consent events in, destinations updated through sandboxed
//! WebAssembly connectors. See `ARCHITECTURE.md` for the map.

pub mod cli;
pub mod consent;
pub mod egress;
pub mod outbound_http;
pub mod runtime;
pub mod secrets;
