//! What the Gate and Engage unit tests share: a Gate config (the Engage
//! tests check that it cannot run activations) and one user's record.

use prefsync_sdk::{ConsentRecord, Value};
use serde_json::json;

/// The Didomi seed's Gate shape; the password holds characters XML escapes.
pub fn gate_config() -> String {
    json!({
        "type_id": "selligent",
        "authentication": {"username": "api-user", "password": "enc<&>key"},
        "properties": {"url": "acme.slgnt.eu/", "gate": "DIDOMI"},
        "mappings": [
            {"id": "MAIL", "value": "organization_user_id"},
            {"id": "OPTIN_NEWS", "value": "consents_purposes_newsletter_enabled"},
            {"id": "OPTIN_SMS", "value": "consents_channels_sms_enabled"},
            {"id": "BIRTH", "value": "metadata_birthdate"},
            {"id": "NAME", "value": "metadata_name"}
        ]
    })
    .to_string()
}

pub fn record() -> ConsentRecord {
    ConsentRecord::new(
        "organization_user_id",
        "ann@example.com",
        &[
            (
                "organization_user_id",
                Value::Text("ann@example.com".into()),
            ),
            ("consents_purposes_newsletter_enabled", Value::Boolean(true)),
            ("consents_channels_sms_enabled", Value::Null),
            ("metadata_birthdate", Value::Text("1990-05-17".into())),
            (
                "metadata_name",
                Value::Text("O'Brien & <Sons> \"Ltd\"".into()),
            ),
        ],
    )
}
