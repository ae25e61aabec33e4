//! The OpenAPI document `GET /v1/openapi.json` serves: OpenAPI 3.1; every
//! route of the router in it and every operation in it served; the
//! security it names is the one the server applies; every example in it and
//! every `examples/*/integration.json` valid against its schema; and live
//! answers (successes and errors) valid against the schemas their operation
//! documents for their status, so a response struct cannot drift from it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use jsonschema::{Registry, Validator};
use prefsync_tests::guests;
use prefsync_tests::mocks::engage::{Engage, FieldType};
use reqwest::Method;
use serde_json::{Value, json};

use super::serve::{Server, TOKEN, dotdigital, event, mock_dotdigital};

/// The base URI the document is registered under for `$ref` resolution.
const DOC_URI: &str = "urn:prefsync:openapi";

const METHODS: [&str; 7] = ["get", "put", "post", "delete", "patch", "head", "options"];

async fn document(server: &Server) -> Value {
    // Unauthenticated, like /healthz.
    let response = reqwest::get(format!("{}/v1/openapi.json", server.url))
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    response.json().await.unwrap()
}

/// A JSON pointer's segment, escaped, and made safe in a URI fragment.
fn segment(key: &str) -> String {
    key.replace('~', "~0")
        .replace('/', "~1")
        .replace('{', "%7B")
        .replace('}', "%7D")
}

/// Validates instances against the schemas of one document, `$ref`s
/// resolved against the whole document (JSON Schema 2020-12).
struct Schemas {
    registry: Registry<'static>,
}

impl Schemas {
    /// The document's schemas, closed (see [`close`]).
    fn new(document: &Value) -> Schemas {
        let mut closed = document.clone();
        let open = allof_members(document);
        close(&mut closed, &open);
        let registry = Registry::new()
            .draft(jsonschema::Draft::Draft202012)
            .add(DOC_URI, closed)
            .unwrap()
            .prepare()
            .unwrap();
        Schemas { registry }
    }

    /// The validator of the schema at `pointer` (URI-fragment form).
    fn at(&self, pointer: &str) -> Validator {
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .with_registry(&self.registry)
            .build(&json!({"$ref": format!("{DOC_URI}#{pointer}")}))
            .unwrap_or_else(|e| panic!("the schema at {pointer}: {e}"))
    }

    fn check(&self, pointer: &str, instance: &Value, what: &str) {
        let validator = self.at(pointer);
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{what} does not validate against {pointer}:\n{}\n{instance:#}",
            errors.join("\n")
        );
    }
}

/// The names of the component schemas an `allOf` composes: they must stay
/// open, the composing schema is closed instead.
fn allof_members(document: &Value) -> BTreeSet<String> {
    let mut members = BTreeSet::new();
    walk(document, "", &mut |_, node| {
        for member in node["allOf"].as_array().into_iter().flatten() {
            if let Some(name) = member["$ref"]
                .as_str()
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
            {
                members.insert(name.to_string());
            }
        }
    });
    members
}

/// Closes every object schema that says nothing of other properties
/// (`unevaluatedProperties: false`), so an answer with a key its schema
/// does not document fails: a response type cannot grow a field the
/// document does not show. Members of an `allOf` stay open and the `allOf`
/// is closed, as `unevaluatedProperties` sees through it.
fn close(document: &mut Value, open: &BTreeSet<String>) {
    fn schema(node: &mut Value, closable: bool) {
        let Some(map) = node.as_object_mut() else {
            return;
        };
        let says_nothing =
            !map.contains_key("additionalProperties") && !map.contains_key("unevaluatedProperties");
        if closable && says_nothing && (map.contains_key("properties") || map.contains_key("allOf"))
        {
            map.insert("unevaluatedProperties".into(), Value::Bool(false));
        }
        for property in map
            .get_mut("properties")
            .and_then(Value::as_object_mut)
            .into_iter()
            .flat_map(|p| p.values_mut())
        {
            schema(property, true);
        }
        for key in ["items", "additionalProperties"] {
            if let Some(child) = map.get_mut(key) {
                schema(child, true);
            }
        }
        for key in ["oneOf", "anyOf", "allOf"] {
            for member in map
                .get_mut(key)
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                // The members of an allOf are closed by it.
                schema(member, key != "allOf");
            }
        }
    }
    /// The schemas of the paths: under every `schema` key.
    fn operations(node: &mut Value) {
        if let Some(map) = node.as_object_mut() {
            for (key, child) in map.iter_mut() {
                match key.as_str() {
                    "schema" => schema(child, true),
                    "example" | "examples" => {}
                    _ => operations(child),
                }
            }
        } else if let Some(items) = node.as_array_mut() {
            items.iter_mut().for_each(operations);
        }
    }
    for (name, node) in document["components"]["schemas"]
        .as_object_mut()
        .unwrap()
        .iter_mut()
    {
        schema(node, !open.contains(name));
    }
    operations(&mut document["paths"]);
}

/// The paths the router serves, read from the host's source: every
/// `.route(` in `host/src/serve`, its path a literal, a `const` of the same
/// file or a `format!` of those. A route added in another form fails here
/// until this reader (and the document) know it.
fn router_paths() -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../host/src/serve");
    let mut files = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut paths = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let consts: BTreeMap<String, String> = text
            .lines()
            .filter_map(|line| {
                let rest = line.trim().strip_prefix("const ")?;
                let (name, value) = rest.split_once(": &str = \"")?;
                Some((name.to_string(), value.strip_suffix("\";")?.to_string()))
            })
            .collect();
        for (at, _) in text.match_indices(".route(") {
            let arg = text[at + ".route(".len()..].trim_start();
            let path = if let Some(literal) = arg.strip_prefix('"') {
                literal[..literal.find('"').unwrap()].to_string()
            } else if let Some(format) = arg.strip_prefix("&format!(\"") {
                let mut path = format[..format.find('"').unwrap()].to_string();
                for (name, value) in &consts {
                    path = path.replace(&format!("{{{name}}}"), value);
                }
                path.replace("{{", "{").replace("}}", "}")
            } else {
                let name: String = arg
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                consts.get(&name).cloned().unwrap_or_else(|| {
                    panic!(
                        "{}: a route whose path this test cannot read: `.route({}`",
                        file.display(),
                        &arg[..arg.len().min(40)]
                    )
                })
            };
            // axum's catch-all `{*rest}` is the template parameter `{rest}`.
            paths.insert(path.replace("{*", "{"));
        }
    }
    paths
}

/// Every (path, method, operation) of the document.
fn operations(document: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if METHODS.contains(&method.as_str()) {
                out.push((path.clone(), method.clone(), operation.clone()));
            }
        }
    }
    out
}

/// A path of the template with every parameter filled in.
fn concrete(template: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').unwrap() + open;
        out.push_str("openapi-probe");
        rest = &rest[close + 1..];
    }
    out + rest
}

#[tokio::test]
async fn the_document_covers_every_route_and_every_operation_is_served() {
    let server = Server::start();
    let document = document(&server).await;
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "{}",
        document["openapi"]
    );

    // Every route is documented, and nothing else is.
    let routed = router_paths();
    let documented: BTreeSet<String> = document["paths"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert!(routed.len() > 15, "{routed:?}");
    assert_eq!(
        routed, documented,
        "routes of the router (left) and paths of the document (right) differ"
    );

    // Every documented operation is served (with the token it names, no
    // redirect followed): not the fallback's 404, not a 405.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let schemes = &document["components"]["securitySchemes"];
    for name in ["admin", "ingest"] {
        assert_eq!(schemes[name]["type"], "http", "{name}");
        assert_eq!(schemes[name]["scheme"], "bearer", "{name}");
    }
    assert_eq!(schemes["webhook_secret"]["type"], "apiKey");
    assert_eq!(schemes["webhook_secret"]["in"], "header");
    for (path, method, operation) in operations(&document) {
        let url = format!("{}{}", server.url, concrete(&path));
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let response = client
            .request(method.clone(), &url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        assert_ne!(status, 405, "{method} {path}: {body}");
        assert!(
            !body.contains("no route for"),
            "{method} {path} is documented but not routed: {status} {body}"
        );
        // The document's security is the server's: without a token, a
        // bearer-protected operation answers 401, an open one does not.
        let security: Vec<String> = operation["security"]
            .as_array()
            .map(|all| {
                all.iter()
                    .flat_map(|r| r.as_object().unwrap().keys().cloned())
                    .collect()
            })
            .unwrap_or_default();
        let anonymous = client.request(method.clone(), &url).send().await.unwrap();
        let anonymous_status = anonymous.status().as_u16();
        if security.iter().any(|s| s == "admin" || s == "ingest") {
            assert_eq!(anonymous_status, 401, "{method} {path} without a token");
            assert!(
                operation["responses"]["401"].is_object(),
                "{method} {path}: 401 not documented"
            );
        } else {
            assert_ne!(anonymous_status, 401, "{method} {path} without a token");
        }
    }

    // And every method the router serves on a path is documented: one the
    // document leaves out answers 405 (the redirects take any method; HEAD
    // comes with GET).
    for (path, item) in document["paths"].as_object().unwrap() {
        if path.starts_with("/v1/plugins") {
            continue;
        }
        for method in METHODS
            .iter()
            .filter(|m| **m != "head" && !item[**m].is_object())
        {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = client
                .request(method.clone(), format!("{}{}", server.url, concrete(path)))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status().as_u16(),
                405,
                "{method} {path} is served but not documented"
            );
        }
    }

    // Operation ids are unique, and every operation has a summary.
    let mut ids = BTreeSet::new();
    for (path, method, operation) in operations(&document) {
        let id = operation["operationId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(!id.is_empty(), "{method} {path} has no operationId");
        assert!(ids.insert(id.clone()), "operationId {id} is not unique");
        assert!(
            operation["summary"].is_string(),
            "{method} {path}: no summary"
        );
    }

    // The renamed paths are deprecated, and only they are.
    for (path, method, operation) in operations(&document) {
        let deprecated = operation["deprecated"] == json!(true);
        assert_eq!(
            deprecated,
            path.starts_with("/v1/plugins"),
            "{method} {path}: deprecated is {deprecated}"
        );
        if deprecated {
            assert!(operation["responses"]["308"].is_object(), "{method} {path}");
        }
    }
    for path in ["/v1/plugins", "/v1/plugins/{rest}"] {
        for method in ["get", "post", "put", "delete"] {
            assert!(
                document["paths"][path][method].is_object(),
                "{method} {path}"
            );
        }
    }
}

/// Calls `visit(pointer, node)` on every object and array item of `value`.
fn walk(value: &Value, pointer: &str, visit: &mut dyn FnMut(&str, &Value)) {
    visit(pointer, value);
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                walk(child, &format!("{pointer}/{}", segment(key)), visit);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                walk(child, &format!("{pointer}/{i}"), visit);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn every_example_validates_against_its_schema() {
    let server = Server::start();
    let document = document(&server).await;
    let schemas = Schemas::new(&document);
    // Validation bites: a missing required field, a wrong type, an
    // undocumented key, through `$ref`s and templated paths.
    let integration = schemas.at(
        "/paths/~1v1~1integrations~1%7Bid%7D/get/responses/200/content/application~1json/schema",
    );
    assert!(!integration.is_valid(&json!({"created_at_ms": 1, "updated_at_ms": 1})));
    assert!(
        integration.is_valid(
            &json!({"type_id": "x", "anything": 1, "created_at_ms": 1, "updated_at_ms": 1})
        )
    );
    let error = schemas.at("/components/schemas/ErrorBody");
    assert!(!error.is_valid(&json!({"error": 5})));
    let replayed = schemas.at("/components/schemas/Replayed");
    assert!(replayed.is_valid(&json!({"replayed": 1})));
    assert!(!replayed.is_valid(&json!({"replayed": 1, "undocumented": true})));
    let delivery = schemas.at("/components/schemas/DeliveryView");
    let row = json!({
        "integration_id": "i", "organization_user_id": "u", "wanted_version": 2,
        "acked_version": 1, "attempts": 0, "next_attempt_at_ms": 0, "lease_owner": null,
        "lease_until_ms": null, "last_error": null, "updated_at_ms": 0, "status": "pending"
    });
    assert!(delivery.is_valid(&row), "{row}");
    let mut drifted = row.clone();
    drifted["undocumented"] = json!(1);
    assert!(!delivery.is_valid(&drifted));
    drifted = row.clone();
    drifted["status"] = json!("Pending");
    assert!(
        !delivery.is_valid(&drifted),
        "the enum's values are the serde names"
    );

    // Every schema resolves (no dangling `$ref`).
    for name in document["components"]["schemas"]
        .as_object()
        .unwrap()
        .keys()
    {
        schemas.at(&format!("/components/schemas/{}", segment(name)));
    }
    let mut checked = 0;
    walk(&document, "", &mut |pointer, node| {
        let Some(node) = node.as_object() else {
            return;
        };
        if node.contains_key("schema") {
            // A media type or a parameter: its examples against its schema.
            let schema = format!("{pointer}/schema");
            if let Some(example) = node.get("example") {
                schemas.check(&schema, example, &format!("the example at {pointer}"));
                checked += 1;
            }
            if let Some(examples) = node.get("examples").and_then(Value::as_object) {
                for (name, example) in examples {
                    schemas.check(&schema, &example["value"], &format!("{pointer} {name}"));
                    checked += 1;
                }
            }
        } else if pointer.contains("/components/schemas/") || pointer.contains("/schema") {
            // A schema: its own examples.
            if let Some(example) = node.get("example") {
                schemas.check(pointer, example, &format!("the example at {pointer}"));
                checked += 1;
            }
            if let Some(examples) = node.get("examples").and_then(Value::as_array) {
                for example in examples {
                    schemas.check(pointer, example, &format!("an example at {pointer}"));
                    checked += 1;
                }
            }
        }
    });
    // Events, integrations (schema and bodies), activations, errors, healthz.
    assert!(checked >= 8, "only {checked} examples found");
    for pointer in [
        "/paths/~1v1~1events/post/requestBody/content/application~1json/example",
        "/paths/~1v1~1events/post/requestBody/content/application~1x-ndjson/example",
        "/paths/~1v1~1integrations/post/requestBody/content/application~1json/example",
        "/paths/~1v1~1activations/post/requestBody/content/application~1json/example",
        "/components/schemas/IntegrationDocument/example",
    ] {
        assert!(
            document.pointer(pointer).is_some(),
            "no example at {pointer}"
        );
    }

    // The integrations the repository ships as examples are documents of
    // the format the API documents.
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files = 0;
    for entry in std::fs::read_dir(examples).unwrap() {
        let file = entry.unwrap().path().join("integration.json");
        if file.exists() {
            let integration: Value =
                serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
            schemas.check(
                "/components/schemas/IntegrationDocument",
                &integration,
                &file.display().to_string(),
            );
            files += 1;
        }
    }
    assert!(files >= 4, "{files} examples/*/integration.json");
}

/// Checks that `status` is documented for the operation and that `body`
/// validates against the JSON schema documented for it.
fn check_answer(
    schemas: &Schemas,
    document: &Value,
    (method, path): (&str, &str),
    status: u16,
    body: &Value,
) {
    let pointer = format!(
        "/paths/{}/{method}/responses/{status}/content/application~1json/schema",
        segment(path)
    );
    let plain = pointer.replace("%7B", "{").replace("%7D", "}");
    assert!(
        document.pointer(&plain).is_some(),
        "{method} {path} answered {status}, which the document does not give: {body}"
    );
    schemas.check(&pointer, body, &format!("{method} {path} {status}"));
}

#[tokio::test]
async fn live_answers_match_their_documented_schemas() {
    let mock = mock_dotdigital().await;
    let engage = Engage::start(
        "engage-key",
        "Engage-S3cret-value",
        "ACME",
        "USERS",
        "MAIL",
        &[("MAIL", FieldType::Email), ("CITY", FieldType::Text)],
    )
    .await
    .unwrap();
    let server = Server::try_start("", |dir| {
        std::fs::copy(
            guests::SELLIGENT,
            dir.join("connectors").join("selligent.wasm"),
        )
        .unwrap();
        let models = dir.join("models");
        std::fs::create_dir_all(&models).unwrap();
        std::fs::write(
            models.join("users.csv"),
            "email,city\nann@example.com,Lyon\nbob@example.com,Paris\n",
        )
        .unwrap();
        format!("[activations]\npoll_ms = 100\nsource_dir = {models:?}\n")
    })
    .expect("prefsync serve started");
    let document = document(&server).await;
    let schemas = Schemas::new(&document);
    let check = |route: (&str, &str), status: u16, body: &Value| {
        check_answer(&schemas, &document, route, status, body)
    };

    let (status, ready) = server.send(Method::GET, "/readyz", None).await;
    check(("get", "/readyz"), status, &ready);

    // Integrations: create, show, list, replace; errors.
    let mut integration = dotdigital(Some("dd"));
    integration["authentication"]["url"] = json!(mock.url());
    let (status, created) = server
        .send(
            Method::POST,
            "/v1/integrations",
            Some(&integration.to_string()),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    check(("post", "/v1/integrations"), status, &created);
    let (status, shown) = server.send(Method::GET, "/v1/integrations/dd", None).await;
    assert_eq!(status, 200);
    check(("get", "/v1/integrations/{id}"), status, &shown);
    let (status, list) = server.send(Method::GET, "/v1/integrations", None).await;
    check(("get", "/v1/integrations"), status, &list);
    let (status, replaced) = server
        .send(
            Method::PUT,
            "/v1/integrations/dd",
            Some(&integration.to_string()),
        )
        .await;
    assert_eq!(status, 200, "{replaced}");
    check(("put", "/v1/integrations/{id}"), status, &replaced);
    let (status, missing) = server
        .send(Method::GET, "/v1/integrations/nope", None)
        .await;
    assert_eq!(status, 404);
    check(("get", "/v1/integrations/{id}"), status, &missing);
    let (status, refused) = server
        .send(
            Method::POST,
            "/v1/integrations",
            Some(r#"{"type_id": "dotdigital", "authentication": {}, "mappings": "x"}"#),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    check(("post", "/v1/integrations"), status, &refused);
    let (status, syntax) = server
        .send(Method::POST, "/v1/integrations", Some("{\"type_id\": "))
        .await;
    assert_eq!(status, 400, "{syntax}");
    assert!(syntax["line"].is_number(), "{syntax}");
    check(("post", "/v1/integrations"), status, &syntax);

    // Events: recorded, duplicate, invalid, wrong media type.
    let body = format!(
        "[{}, {}]",
        event(
            "e1",
            "2026-01-01T00:00:00Z",
            "ann",
            json!({"purposes": [{"id": "newsletter", "enabled": true}]}),
            json!({})
        ),
        event(
            "e1",
            "2026-01-01T00:00:00Z",
            "ann",
            json!({"purposes": [{"id": "newsletter", "enabled": true}]}),
            json!({})
        )
    );
    let (status, ingested) = server.send(Method::POST, "/v1/events", Some(&body)).await;
    assert_eq!(status, 202, "{ingested}");
    assert_eq!(ingested["events"][1]["status"], "duplicate", "{ingested}");
    check(("post", "/v1/events"), status, &ingested);
    let (status, invalid) = server
        .send(
            Method::POST,
            "/v1/events",
            Some(r#"{"id": "e2", "user": {}}"#),
        )
        .await;
    assert_eq!(status, 400, "{invalid}");
    check(("post", "/v1/events"), status, &invalid);
    let response = server
        .client()
        .post(format!("{}/v1/events", server.url))
        .bearer_auth(TOKEN)
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let unsupported: Value = response.json().await.unwrap();
    assert_eq!(status, 415);
    check(("post", "/v1/events"), status, &unsupported);

    let (status, user) = server.send(Method::GET, "/v1/users/ann", None).await;
    assert_eq!(status, 200, "{user}");
    check(("get", "/v1/users/{id}"), status, &user);
    // Wait for the delivery's audit row, so the history holds both kinds.
    let mut history = Value::Null;
    for _ in 0..200 {
        let (status, answer) = server
            .send(Method::GET, "/v1/users/ann/history", None)
            .await;
        assert_eq!(status, 200, "{answer}");
        history = answer;
        if history["attempts"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        !history["attempts"].as_array().unwrap().is_empty(),
        "{history}"
    );
    check(("get", "/v1/users/{id}/history"), 200, &history);
    let (status, deliveries) = server.send(Method::GET, "/v1/deliveries", None).await;
    assert!(!deliveries.as_array().unwrap().is_empty(), "{deliveries}");
    check(("get", "/v1/deliveries"), status, &deliveries);
    let (status, bad_query) = server
        .send(Method::GET, "/v1/deliveries?status=later", None)
        .await;
    assert_eq!(status, 400);
    check(("get", "/v1/deliveries"), status, &bad_query);
    let (status, dead) = server.send(Method::GET, "/v1/dead-letters", None).await;
    check(("get", "/v1/dead-letters"), status, &dead);
    let (status, replayed) = server
        .send(
            Method::POST,
            "/v1/integrations/dd/dead-letters/replay",
            None,
        )
        .await;
    assert_eq!(status, 202);
    check(
        ("post", "/v1/integrations/{id}/dead-letters/replay"),
        status,
        &replayed,
    );

    // Connectors: the registry, one type, an upload refused, a rollback refused.
    let (status, connectors) = server.send(Method::GET, "/v1/connectors", None).await;
    assert_eq!(status, 200);
    check(("get", "/v1/connectors"), status, &connectors);
    let (status, one) = server
        .send(Method::GET, "/v1/connectors/dotdigital", None)
        .await;
    assert_eq!(status, 200);
    assert!(one["switches"].is_array(), "{one}");
    check(("get", "/v1/connectors/{type_id}"), status, &one);
    let (status, refused) = server
        .post_bytes("/v1/connectors", std::fs::read(guests::DOTDIGITAL).unwrap())
        .await;
    assert_eq!(status, 409, "{refused}");
    check(("post", "/v1/connectors"), status, &refused);
    let (status, no_previous) = server
        .send(Method::POST, "/v1/connectors/dotdigital/rollback", None)
        .await;
    assert_eq!(status, 409, "{no_previous}");
    check(
        ("post", "/v1/connectors/{type_id}/rollback"),
        status,
        &no_previous,
    );

    // Activations: create, show (with its last run), list, runs.
    let engage_integration = json!({
        "id": "engage",
        "type_id": "selligent",
        "authentication": {"api_key": "engage-key", "api_secret": "Engage-S3cret-value"},
        "properties": {"api": "engage", "url": engage.url(), "organization": "ACME", "list": "USERS"},
        "mappings": []
    });
    server.create_integration(&engage_integration).await;
    let activation = json!({
        "id": "users",
        "integration": "engage",
        "source": {"type": "csv", "path": "users.csv"},
        "key": {"column": "email", "field": "MAIL"},
        "mappings": [{"id": "CITY", "value": "city"}]
    });
    let (status, created) = server
        .send(
            Method::POST,
            "/v1/activations",
            Some(&activation.to_string()),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    check(("post", "/v1/activations"), status, &created);
    let (status, started) = server
        .send(Method::POST, "/v1/activations/users/run", None)
        .await;
    assert_eq!(status, 202, "{started}");
    check(("post", "/v1/activations/{id}/run"), status, &started);
    let mut runs = Value::Null;
    for _ in 0..200 {
        let (status, answer) = server
            .send(Method::GET, "/v1/activations/users/runs", None)
            .await;
        assert_eq!(status, 200, "{answer}");
        runs = answer;
        if runs[0]["finished_at_ms"].is_number() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(runs[0]["finished_at_ms"].is_number(), "{runs}");
    check(("get", "/v1/activations/{id}/runs"), 200, &runs);
    let (status, shown) = server
        .send(Method::GET, "/v1/activations/users", None)
        .await;
    assert_eq!(status, 200);
    assert!(shown["last_run"].is_object(), "{shown}");
    check(("get", "/v1/activations/{id}"), status, &shown);
    let (status, list) = server.send(Method::GET, "/v1/activations", None).await;
    check(("get", "/v1/activations"), status, &list);
    let (status, replaced) = server
        .send(
            Method::PUT,
            "/v1/activations/users",
            Some(&activation.to_string()),
        )
        .await;
    assert_eq!(status, 200, "{replaced}");
    check(("put", "/v1/activations/{id}"), status, &replaced);
    let (status, invalid) = server
        .send(
            Method::POST,
            "/v1/activations",
            Some(r#"{"id": "x", "integration": "engage", "source": {"type": "csv", "path": "users.csv"}, "key": {"column": "", "field": ""}, "mappings": []}"#),
        )
        .await;
    assert_eq!(status, 422, "{invalid}");
    check(("post", "/v1/activations"), status, &invalid);

    // The redirect's body.
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/v1/plugins/dotdigital", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 308);
    let moved: Value = response.json().await.unwrap();
    check(("get", "/v1/plugins/{rest}"), 308, &moved);
}
