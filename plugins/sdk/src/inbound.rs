//! Webhooks coming back from a destination: the optional half of the
//! contract (`inbound` in WIT 0.1.1). A connector that can read its
//! destination's webhooks implements [`Inbound`] besides [`Connector`] and is
//! exported with `export!(MyConnector, inbound)`.

use serde::de::DeserializeOwned;

use crate::connector::{Connector, parse_config};
use crate::types::{Property, Value};

/// A webhook as the host received it, after it checked the integration's
/// shared secret.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundRequest {
    /// Header names in lower case; the shared-secret header is left out.
    pub headers: Vec<(String, String)>,
    /// The raw request body.
    pub body: Vec<u8>,
}

impl InboundRequest {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON of type `T`; the error says where it does not fit.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_slice(&self.body)
            .map_err(|e| format!("the body is not the JSON expected: {e}"))
    }
}

/// A change the destination reports for one user, in the property names
/// mappings use.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsentUpdate {
    /// The user's id in the organization, as records carry it.
    pub organization_user_id: String,
    /// Only purpose and channel choices (`consents_purposes_<id>_enabled`,
    /// `consents_channels_<id>_enabled`) and user metadata (`metadata_<key>`)
    /// can be set this way.
    pub properties: Vec<Property>,
    /// When the change happened (RFC 3339), if the destination says.
    pub occurred_at: Option<String>,
    /// The destination's id for this notification, so a repeat is recognised.
    pub notification_id: Option<String>,
}

impl ConsentUpdate {
    /// An update for this user with no properties and no timestamp or id yet.
    pub fn new(organization_user_id: impl Into<String>) -> Self {
        ConsentUpdate {
            organization_user_id: organization_user_id.into(),
            properties: Vec::new(),
            occurred_at: None,
            notification_id: None,
        }
    }

    /// Adds `name = value`.
    pub fn set(mut self, name: impl Into<String>, value: Value) -> Self {
        self.properties.push(Property {
            name: name.into(),
            value,
        });
        self
    }
}

/// What a connector makes of one webhook.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Receipt {
    /// The changes to apply, one per user reported.
    pub updates: Vec<ConsentUpdate>,
    /// Parts deliberately left alone, each with the reason; the host logs them.
    pub ignored: Vec<String>,
}

/// A connector that reads its destination's webhooks.
pub trait Inbound: Connector {
    /// Turns a webhook into consent updates. `Err` means the request itself
    /// is wrong (the host answers 400 with the text); nothing is applied.
    fn receive(config: &Self::Config, request: &InboundRequest) -> Result<Receipt, String>;
}

/// Reads a webhook with a raw config; an invalid config refuses it, naming
/// the problems.
pub fn receive<C: Inbound>(raw: &str, request: &InboundRequest) -> Result<Receipt, String> {
    match parse_config::<C>(raw) {
        Ok(config) => C::receive(&config, request),
        Err(problems) => {
            let summary: Vec<String> = problems
                .iter()
                .map(|p| format!("{}: {}", p.path, p.message))
                .collect();
            Err(format!(
                "invalid integration config: {}",
                summary.join("; ")
            ))
        }
    }
}
