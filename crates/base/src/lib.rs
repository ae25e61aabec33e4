//! The rules every layer of prefsync shares, all pure functions of text:
//!
//! - [`ids`]: what an integration, connector or activation id may be;
//! - [`log_safe`]: text from outside escaped before it reaches a log line;
//! - [`names`]: closed sets of names as enums, one list for the stored text,
//!   the JSON and the parser ([`named_enum!`]);
//! - [`secrets`]: which config values are secrets (by the connector's
//!   schema, by place, by name) and scrubbing them from any text.
//!
//! It is the leaf of the crate graph: the store, the runtime and the binary
//! all use it, and it uses none of them.

pub mod ids;
pub mod log_safe;
pub mod names;
pub mod secrets;
