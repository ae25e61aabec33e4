//! Actito's webhooks, read back into consent updates.
//!
//! A webhook subscription (`POST /v4/entity/{e}/table/{t}/webhookSubscription`,
//! events `CREATE | UPDATE | DELETE | UPDATED_SUBSCRIPTION`) posts
//! `{"id", "tableType", "tableId", "fields", "eventType", "data": {…}}` where
//! the values of `data` are strings, and only the triggering operation's
//! attributes plus the row's identifiers are pushed. The profile is found by
//! the integration's `user_unique_key` in `data`.
//!
//! Subscriptions are read in either shape (Actito's documentation does not
//! pin the one of `UPDATED_SUBSCRIPTION` down): a `subscriptions` list of
//! `{name, subscribe}` as the profile API has it, or a subscription name as a
//! key of `data` with `"true"`/`"false"`. A subscription maps back to the
//! property it is mapped from; unmapped ones and other attributes are left
//! alone and said so.

use prefsync_sdk::{ConsentUpdate, InboundRequest, Receipt, Value};
use serde::Deserialize;
use serde_json::{Map, Value as Json};

use crate::config::ActitoConfig;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    #[serde(default)]
    id: Option<Json>,
    event_type: String,
    data: Map<String, Json>,
}

pub fn receive(config: &ActitoConfig, request: &InboundRequest) -> Result<Receipt, String> {
    let envelope: Envelope = request.json()?;
    let mut receipt = Receipt::default();
    match envelope.event_type.as_str() {
        "CREATE" | "UPDATE" | "UPDATED_SUBSCRIPTION" => {}
        "DELETE" => {
            receipt
                .ignored
                .push("a deleted Actito profile is not a consent change".into());
            return Ok(receipt);
        }
        other => return Err(format!("unknown eventType `{other}`")),
    }
    let key_name = &config.properties.user_unique_key;
    let user = match envelope.data.get(key_name) {
        Some(Json::String(user)) if !user.is_empty() => user.clone(),
        Some(Json::Number(n)) => n.to_string(),
        _ => {
            return Err(format!(
                "`data` has no `{key_name}` (the integration's user_unique_key)"
            ));
        }
    };

    let mut choices: Vec<(String, Json)> = Vec::new();
    match envelope.data.get("subscriptions") {
        None | Some(Json::Null) => {}
        Some(Json::Array(list)) => {
            for (i, entry) in list.iter().enumerate() {
                let name = entry["name"]
                    .as_str()
                    .ok_or_else(|| format!("`data.subscriptions[{i}]` has no `name`"))?;
                choices.push((name.to_string(), entry["subscribe"].clone()));
            }
        }
        Some(_) => return Err("`data.subscriptions` must be a list".into()),
    }
    for (name, value) in &envelope.data {
        if name != key_name && name != "subscriptions" && name != "profileId" {
            choices.push((name.clone(), value.clone()));
        }
    }

    let mut update = ConsentUpdate::new(user);
    update.notification_id = envelope.id.map(|id| match id {
        Json::String(s) => s,
        other => other.to_string(),
    });
    for (name, value) in choices {
        let Some(mapping) = config.mappings.iter().find(|m| m.id == name) else {
            receipt
                .ignored
                .push(format!("`{name}` is not a mapped subscription"));
            continue;
        };
        let subscribe = match value {
            Json::Bool(b) => b,
            Json::String(s) if s.eq_ignore_ascii_case("true") => true,
            Json::String(s) if s.eq_ignore_ascii_case("false") => false,
            other => {
                return Err(format!(
                    "subscription `{name}`: `{other}` is not true or false"
                ));
            }
        };
        update = update.set(mapping.value.clone(), Value::Boolean(subscribe));
    }
    if !update.properties.is_empty() {
        receipt.updates.push(update);
    }
    Ok(receipt)
}

#[cfg(test)]
mod tests {
    use prefsync_sdk::inbound;
    use serde_json::json;

    use super::*;
    use crate::Actito;

    fn config() -> String {
        json!({
            "authentication": {"private_api_key": "KEY", "webhook_secret": "0123456789abcdef"},
            "properties": {"entity_id": "ACME", "table_name": "Profiles", "user_unique_key": "email"},
            "mappings": [{"id": "Newsletter", "value": "consents_purposes_newsletter_enabled"}],
            "enable_webhooks": true
        })
        .to_string()
    }

    fn read(body: Json) -> Result<Receipt, String> {
        let request = InboundRequest {
            headers: vec![],
            body: body.to_string().into_bytes(),
        };
        inbound::receive::<Actito>(&config(), &request)
    }

    #[test]
    fn a_subscription_change_maps_back_to_its_property() {
        let receipt = read(json!({
            "id": "wh-1", "tableType": "PROFILE_TABLE", "tableId": "Profiles",
            "eventType": "UPDATED_SUBSCRIPTION",
            "data": {"profileId": "7", "email": "ann@example.com",
                     "subscriptions": [{"name": "Newsletter", "subscribe": "false"}, {"name": "Promo", "subscribe": "true"}]}
        }))
        .unwrap();
        assert_eq!(receipt.updates.len(), 1);
        let update = &receipt.updates[0];
        assert_eq!(update.organization_user_id, "ann@example.com");
        assert_eq!(update.notification_id.as_deref(), Some("wh-1"));
        assert_eq!(
            update.properties[0].name,
            "consents_purposes_newsletter_enabled"
        );
        assert_eq!(update.properties[0].value, Value::Boolean(false));
        assert_eq!(receipt.ignored, ["`Promo` is not a mapped subscription"]);
        // The flat shape reads the same.
        let flat = read(json!({"eventType": "UPDATE", "data": {"email": "ann@example.com", "Newsletter": "true"}})).unwrap();
        assert_eq!(flat.updates[0].properties[0].value, Value::Boolean(true));
    }

    #[test]
    fn what_cannot_be_read_is_refused_or_left_alone() {
        assert!(read(json!({"data": {}})).unwrap_err().contains("eventType"));
        assert_eq!(
            read(json!({"eventType": "UPDATE", "data": {"profileId": "7"}})).unwrap_err(),
            "`data` has no `email` (the integration's user_unique_key)"
        );
        assert_eq!(
            read(json!({"eventType": "UPDATE", "data": {"email": "a", "Newsletter": "maybe"}}))
                .unwrap_err(),
            "subscription `Newsletter`: `\"maybe\"` is not true or false"
        );
        assert!(
            read(json!({"eventType": "MERGE", "data": {}}))
                .unwrap_err()
                .contains("unknown eventType")
        );
        let deleted = read(json!({"eventType": "DELETE", "data": {"email": "a"}})).unwrap();
        assert!(deleted.updates.is_empty() && deleted.ignored.len() == 1);
        // Only unmapped attributes: nothing to apply.
        let other =
            read(json!({"eventType": "UPDATE", "data": {"email": "a", "city": "Lyon"}})).unwrap();
        assert!(other.updates.is_empty());
        assert_eq!(other.ignored, ["`city` is not a mapped subscription"]);
    }
}
