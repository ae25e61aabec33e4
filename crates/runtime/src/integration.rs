//! What a call needs to know about the integration it serves: its config,
//! the hosts it may reach, and the secrets to keep out of the log (its
//! connector's schema says which fields are secrets).

use serde_json::Value as Json;

use crate::egress::Allowlist;
use prefsync_base::secrets::Redactor;

use super::ConnectorInfo;

/// One integration as the runtime sees it; build it once per config change.
#[derive(Debug, Clone)]
pub struct IntegrationContext {
    id: String,
    config_text: String,
    allowlist: Allowlist,
    redactor: Redactor,
}

impl IntegrationContext {
    /// `config` is the integration's JSON in Didomi's integration format; `info` is the
    /// connector's description (its default hosts and config schema).
    pub fn new(id: impl Into<String>, config: &Json, info: &ConnectorInfo) -> Self {
        IntegrationContext {
            id: id.into(),
            config_text: config.to_string(),
            allowlist: Allowlist::for_integration(config, &info.config_schema, &info.default_hosts),
            redactor: Redactor::from_config(config, &info.config_schema),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn config_text(&self) -> &str {
        &self.config_text
    }

    pub fn allowlist(&self) -> &Allowlist {
        &self.allowlist
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }
}
