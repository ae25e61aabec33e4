//! Fuzzing prefsync's readers of untrusted input on stable Rust.
//!
//! No coverage instrumentation (cargo-fuzz needs nightly): a seeded,
//! corpus-driven mutation engine ([`engine`], [`mutate`]) runs each
//! [`targets::Target`] under `catch_unwind`, keeps inputs that reach a new
//! outcome class, and checks oracles ([`secrets`]: planted secrets must not
//! come back out). See `fuzz/README.md`.

pub mod engine;
pub mod mutate;
pub mod secrets;
pub mod targets;
