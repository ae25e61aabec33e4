//! The current contract under a major version this host does not know
//! (`prefsync:connector@1.0.0`, in this crate's `wit/`): a well-formed
//! connector that every 0.1 host must refuse, naming what it supports.

wit_bindgen::generate!({
    world: "destination",
    path: "wit",
});

use exports::prefsync::connector::connector::{
    Capabilities, Description, Guest, Outcome, ValidationProblem,
};
use prefsync::connector::types::ConsentRecord;

struct NextMajor;

impl Guest for NextMajor {
    fn describe() -> Description {
        Description {
            type_id: "dotdigital".into(),
            version: "9.0.0".into(),
            display_name: "From a future contract".into(),
            config_schema: "{}".into(),
            default_hosts: Vec::new(),
            max_concurrency: 1,
            max_batch_size: 1,
            capabilities: Capabilities::empty(),
        }
    }

    fn validate(_config: String) -> Vec<ValidationProblem> {
        Vec::new()
    }

    fn deliver(_config: String, batch: Vec<ConsentRecord>) -> Vec<Outcome> {
        batch
            .iter()
            .map(|_| Outcome::Skipped("never loaded".into()))
            .collect()
    }
}

export!(NextMajor);
