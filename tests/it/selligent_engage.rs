//! The Selligent connector's Engage REST API, as a component, against the
//! mock Engage: configs of both APIs validated, activations (`sync`) in
//! every mode through the single-record upsert and `data/load`, rows the
//! list refuses reported with their field, whole-batch refusals classified,
//! consent deliveries through the single upsert, and the API secret never
//! in what comes back.

use std::sync::Arc;

use prefsync::runtime::{
    Connector, DeliveredKind, Limits, Outcome, RowFailure, RowOutcome, SyncBatch, SyncError,
    SyncMode, SyncRow, Value,
};
use prefsync_tests::guests;
use prefsync_tests::mocks::MockServer;
use prefsync_tests::mocks::engage::{Engage, FieldType};
use prefsync_tests::support::model_row as row;
use prefsync_tests::support::{loopback_egress, record, runtime};
use serde_json::{Value as Json, json};

const API_KEY: &str = "didomi-engage-key";
const SECRET: &str = "engage-api-secret-9f8e7d6c5b4a";

async fn setup() -> (MockServer<Engage>, Arc<Connector>) {
    let mock = Engage::start(
        API_KEY,
        SECRET,
        "ACME",
        "USERS",
        "MAIL",
        &[
            ("MAIL", FieldType::Email),
            ("FIRSTNAME", FieldType::Text),
            ("AGE", FieldType::Numeric),
            ("BIRTHDATE", FieldType::Date),
            ("OPTIN_NEWS", FieldType::Numeric),
        ],
    )
    .await
    .unwrap();
    let rt = runtime(loopback_egress(), Limits::default());
    let connector = rt.load_file(guests::SELLIGENT.as_ref()).await.unwrap();
    (mock, connector)
}

fn config(mock: &MockServer<Engage>) -> Json {
    json!({
        "type_id": "selligent",
        "authentication": {"api_key": API_KEY, "api_secret": SECRET},
        "properties": {"api": "engage", "url": mock.state.url(), "organization": "ACME",
                       "list": "USERS", "batch_size": 50},
        "mappings": []
    })
}

fn batch(mode: SyncMode, rows: Vec<SyncRow>) -> SyncBatch {
    prefsync_tests::support::model_batch("MAIL", mode, rows)
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

fn full(key: &str, first: &str, age: f64) -> SyncRow {
    row(
        key,
        &[("FIRSTNAME", text(first)), ("AGE", Value::Number(age))],
        false,
    )
}

fn refused(result: Result<Vec<RowOutcome>, SyncError>) -> RowFailure {
    match result {
        Err(SyncError::Refused(failure)) => failure,
        other => panic!("expected a refused batch, got {other:?}"),
    }
}

#[tokio::test]
async fn engage_configs_are_validated_and_size_the_batches() {
    let (mock, connector) = setup().await;
    assert!(connector.info().activations, "selligent exports activation");
    assert_eq!(connector.info().type_id, "selligent");

    let good = config(&mock);
    assert_eq!(connector.validate(&good).await.unwrap(), []);
    // The seed's Gate shape stays valid unchanged.
    let seed = json!({
        "type_id": "selligent",
        "authentication": {"username": "api_user", "password": "access_key"},
        "properties": {"url": "my-selligent-installation.com", "gate": "didomi"},
        "mappings": [{"id": "MAIL", "value": "organization_user_id"}],
        "upsert_mode": true
    });
    assert_eq!(connector.validate(&seed).await.unwrap(), []);

    // Every wrong field, named.
    let bad = json!({
        "type_id": "selligent",
        "authentication": {"api_key": "", "password": "x"},
        "properties": {"api": "engage", "url": "ftp://acme", "organization": 7,
                       "batch_size": 9000, "gate": "G"},
        "mappings": [{"id": "OPTIN_NEWS", "value": "consents_purposes_newsletter_enabled"}],
        "upsert_mode": false
    });
    let paths: Vec<String> = connector
        .validate(&bad)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.path)
        .collect();
    // The schema's problems first (the host checks the connector's derived
    // JSON Schema), sorted by path …
    assert_eq!(
        paths,
        [
            "authentication.api_key",
            "authentication.api_secret",
            "authentication.password",
            "properties.batch_size",
            "properties.gate",
            "properties.list",
            "properties.organization",
            "upsert_mode"
        ]
    );
    // … and once a config fits it, the rules a schema cannot say.
    let mut fits = good.clone();
    fits["properties"]["url"] = json!("ftp://acme");
    fits["mappings"] =
        json!([{"id": "OPTIN_NEWS", "value": "consents_purposes_newsletter_enabled"}]);
    let paths: Vec<String> = connector
        .validate(&fits)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.path)
        .collect();
    assert_eq!(paths, ["properties.url", "mappings"]);
    let mut unknown_api = good.clone();
    unknown_api["properties"]["api"] = json!("soap");
    let problems = connector.validate(&unknown_api).await.unwrap();
    let api = problems
        .iter()
        .find(|p| p.path == "properties.api")
        .unwrap_or_else(|| panic!("{problems:?}"));
    assert_eq!(api.message, "must be one of: gate, engage");
    assert!(
        !problems.iter().any(|p| p.message.contains("soap")),
        "{problems:?}"
    );

    let integration = connector.integration("engage", &good);
    assert_eq!(connector.max_rows(&integration).await.unwrap(), 50);
    let mut default_size = good.clone();
    default_size["properties"]
        .as_object_mut()
        .unwrap()
        .remove("batch_size");
    let integration = connector.integration("engage", &default_size);
    assert_eq!(connector.max_rows(&integration).await.unwrap(), 500);

    // The Gate API cannot run activations: refused, permanently.
    let integration = connector.integration("gate", &seed);
    let failure = refused(
        connector
            .sync(
                &integration,
                batch(SyncMode::Upsert, vec![full("a@x.test", "A", 1.0)]),
            )
            .await,
    );
    assert!(!failure.retryable);
    assert!(failure.message.contains("Engage"), "{failure:?}");
    assert!(mock.state.requests().is_empty());
}

#[tokio::test]
async fn rows_sync_in_every_mode() {
    let (mock, connector) = setup().await;
    let integration = connector.integration("engage", &config(&mock));

    // Upsert, many rows: one data/load, the header first.
    let outcomes = connector
        .sync(
            &integration,
            batch(
                SyncMode::Upsert,
                vec![
                    full("ann@x.test", "Ann", 41.0),
                    full("bob@x.test", "Bob", 35.0),
                ],
            ),
        )
        .await
        .unwrap();
    assert_eq!(outcomes, [RowOutcome::Inserted, RowOutcome::Inserted]);
    let requests = mock.state.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].path,
        "/Portal/Api/organizations/ACME/lists/USERS/data/load"
    );
    assert_eq!(
        requests[0].query.as_deref(),
        Some("keyFields=MAIL&data_import_option=InsertAndUpdate")
    );
    assert_eq!(
        requests[0].body,
        json!([
            ["MAIL", "FIRSTNAME", "AGE"],
            ["ann@x.test", "Ann", 41],
            ["bob@x.test", "Bob", 35]
        ])
    );
    assert!(
        requests[0]
            .headers
            .contains(&("x-apikey".into(), format!("{API_KEY}:{SECRET}")))
    );
    assert_eq!(
        mock.state.row("ann@x.test").unwrap(),
        json!({"MAIL": "ann@x.test", "FIRSTNAME": "Ann", "AGE": 41})
    );

    // Upsert, one row: the single-record endpoint.
    let outcomes = connector
        .sync(
            &integration,
            batch(
                SyncMode::Upsert,
                vec![row("ann@x.test", &[("AGE", Value::Number(42.0))], true)],
            ),
        )
        .await
        .unwrap();
    assert_eq!(outcomes, [RowOutcome::Updated]);
    let single = mock.state.requests().pop().unwrap();
    assert_eq!(
        single.path,
        "/Portal/Api/organizations/ACME/lists/USERS/data"
    );
    assert_eq!(single.query.as_deref(), Some("keyfields=MAIL"));
    assert_eq!(single.body, json!({"MAIL": "ann@x.test", "AGE": 42}));

    // Changed attributes only, in different sets: one load per set, and a
    // row never overwrites an attribute it does not carry.
    let outcomes = connector
        .sync(
            &integration,
            batch(
                SyncMode::Upsert,
                vec![
                    row("ann@x.test", &[("FIRSTNAME", text("Anne"))], true),
                    row("bob@x.test", &[("AGE", Value::Number(36.0))], true),
                    full("cat@x.test", "Cat", 29.0),
                    row("dan@x.test", &[("AGE", Value::Number(50.0))], false),
                ],
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [
            RowOutcome::Updated,
            RowOutcome::Updated,
            RowOutcome::Inserted,
            RowOutcome::Inserted
        ]
    );
    assert_eq!(
        mock.state.row("ann@x.test").unwrap(),
        json!({"MAIL": "ann@x.test", "FIRSTNAME": "Anne", "AGE": 42})
    );
    assert_eq!(
        mock.state.row("bob@x.test").unwrap(),
        json!({"MAIL": "bob@x.test", "FIRSTNAME": "Bob", "AGE": 36})
    );
    let loads: Vec<Json> = mock.state.requests()[2..]
        .iter()
        .map(|r| r.body.clone())
        .collect();
    assert_eq!(
        loads,
        [
            json!({"MAIL": "ann@x.test", "FIRSTNAME": "Anne"}),
            json!([["MAIL", "AGE"], ["bob@x.test", 36], ["dan@x.test", 50]]),
            json!({"MAIL": "cat@x.test", "FIRSTNAME": "Cat", "AGE": 29}),
        ]
    );

    // Update: never creates; a row the list lacks is skipped.
    let before = mock.state.requests().len();
    let outcomes = connector
        .sync(
            &integration,
            batch(
                SyncMode::Update,
                vec![
                    row("cat@x.test", &[("AGE", Value::Number(30.0))], true),
                    row("eve@x.test", &[("AGE", Value::Number(20.0))], false),
                ],
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [
            RowOutcome::Updated,
            RowOutcome::Skipped("not in the list".into())
        ]
    );
    assert!(mock.state.row("eve@x.test").is_none());
    assert_eq!(mock.state.row("cat@x.test").unwrap()["AGE"], 30);
    // A single row in update mode still goes through data/load (OnlyUpdate).
    let outcomes = connector
        .sync(
            &integration,
            batch(
                SyncMode::Update,
                vec![row("eve@x.test", &[("AGE", Value::Number(20.0))], false)],
            ),
        )
        .await
        .unwrap();
    assert_eq!(outcomes, [RowOutcome::Skipped("not in the list".into())]);
    let requests = mock.state.requests();
    assert_eq!(requests.len(), before + 2);
    for r in &requests[before..] {
        assert_eq!(
            r.query.as_deref(),
            Some("keyFields=MAIL&data_import_option=OnlyUpdate")
        );
    }

    // Insert: never touches a record the list has.
    let outcomes = connector
        .sync(
            &integration,
            batch(
                SyncMode::Insert,
                vec![
                    row(
                        "ann@x.test",
                        &[
                            ("FIRSTNAME", text("Overwritten?")),
                            ("AGE", Value::Number(1.0)),
                        ],
                        true,
                    ),
                    full("fay@x.test", "Fay", 22.0),
                ],
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [
            RowOutcome::Skipped("already in the list".into()),
            RowOutcome::Inserted
        ]
    );
    assert_eq!(mock.state.row("ann@x.test").unwrap()["FIRSTNAME"], "Anne");
    assert_eq!(mock.state.row("fay@x.test").unwrap()["FIRSTNAME"], "Fay");
    let last = mock.state.requests().pop().unwrap();
    assert_eq!(
        last.query.as_deref(),
        Some("keyFields=MAIL&data_import_option=OnlyInsert")
    );
    assert_eq!(mock.state.rows().len(), 5);
}

#[tokio::test]
async fn refused_rows_fail_alone_with_their_field() {
    let (mock, connector) = setup().await;
    let integration = connector.integration("engage", &config(&mock));
    mock.state
        .insert_row("old@x.test", json!({"FIRSTNAME": "Old"}));

    let outcomes = connector
        .sync(
            &integration,
            batch(
                SyncMode::Upsert,
                vec![
                    full("ann@x.test", "Ann", 41.0),
                    row(
                        "bob@x.test",
                        &[("FIRSTNAME", text("Bob")), ("AGE", text("old"))],
                        false,
                    ),
                    full("not-an-email", "Nobody", 1.0),
                    full("old@x.test", "Still", 70.0),
                ],
            ),
        )
        .await
        .unwrap();
    assert_eq!(outcomes[0], RowOutcome::Inserted);
    let RowOutcome::Failed(age) = &outcomes[1] else {
        panic!("{outcomes:?}")
    };
    assert!(!age.retryable);
    assert_eq!(age.field.as_deref(), Some("AGE"));
    assert!(age.message.contains("InvalidNumeric"), "{age:?}");
    let RowOutcome::Failed(mail) = &outcomes[2] else {
        panic!("{outcomes:?}")
    };
    assert_eq!(mail.field.as_deref(), Some("MAIL"));
    // Engage counts one insert and one update among the two accepted rows
    // but cannot say which is which: the `known` flags decide (both new).
    assert_eq!(outcomes[3], RowOutcome::Inserted);
    assert_eq!(mock.state.row("old@x.test").unwrap()["FIRSTNAME"], "Still");
    assert!(mock.state.row("bob@x.test").is_none());
    assert!(mock.state.row("not-an-email").is_none());

    // A field the list lacks, and a field whose values the list refuses.
    mock.state.refuse_field("BIRTHDATE");
    let outcomes = connector
        .sync(
            &integration,
            batch(
                SyncMode::Upsert,
                vec![
                    row("ann@x.test", &[("NICKNAME", text("A"))], true),
                    row("bob@x.test", &[("BIRTHDATE", text("1990-05-17"))], false),
                    row("cat@x.test", &[("BIRTHDATE", text("1990-05-18"))], false),
                ],
            ),
        )
        .await
        .unwrap();
    let fields: Vec<Option<String>> = outcomes
        .iter()
        .map(|o| match o {
            RowOutcome::Failed(f) if !f.retryable => f.field.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        fields,
        [
            Some("NICKNAME".into()),
            Some("BIRTHDATE".into()),
            Some("BIRTHDATE".into())
        ]
    );

    // The single upsert names the field too.
    let outcomes = connector
        .sync(
            &integration,
            batch(
                SyncMode::Upsert,
                vec![row("ann@x.test", &[("AGE", text("forty"))], true)],
            ),
        )
        .await
        .unwrap();
    let RowOutcome::Failed(single) = &outcomes[0] else {
        panic!("{outcomes:?}")
    };
    assert!(!single.retryable);
    assert_eq!(single.field.as_deref(), Some("AGE"));
    assert_eq!(mock.state.row("ann@x.test").unwrap()["AGE"], 41);
}

#[tokio::test]
async fn whole_batch_refusals_are_classified_and_keep_the_secret() {
    let (mock, connector) = setup().await;
    let rows = || {
        vec![
            full("ann@x.test", "Ann", 41.0),
            full("bob@x.test", "Bob", 35.0),
        ]
    };
    let mut texts = Vec::new();

    // A wrong secret: 401, not retryable.
    let mut wrong = config(&mock);
    wrong["authentication"]["api_secret"] = json!("not-the-secret-000");
    let integration = connector.integration("wrong", &wrong);
    let failure = refused(
        connector
            .sync(&integration, batch(SyncMode::Upsert, rows()))
            .await,
    );
    assert!(!failure.retryable);
    assert!(
        failure.message.contains("HTTP 401") && failure.message.contains("credentials refused"),
        "{failure:?}"
    );
    texts.push(format!("{failure:?}"));

    let integration = connector.integration("engage", &config(&mock));
    // An outage: retryable, whether a load or a single upsert.
    for (status, rows) in [
        (503, rows()),
        (429, rows()),
        (500, vec![full("ann@x.test", "Ann", 41.0)]),
    ] {
        mock.state.fail_next(status, 1);
        let failure = refused(
            connector
                .sync(&integration, batch(SyncMode::Upsert, rows))
                .await,
        );
        assert!(failure.retryable, "{status}: {failure:?}");
        texts.push(format!("{failure:?}"));
    }
    // A wrong list: 404, not retryable, saying what to check.
    let mut wrong_list = config(&mock);
    wrong_list["properties"]["list"] = json!("CUSTOMERS");
    let integration = connector.integration("list", &wrong_list);
    let failure = refused(
        connector
            .sync(&integration, batch(SyncMode::Upsert, rows()))
            .await,
    );
    assert!(!failure.retryable);
    assert!(failure.message.contains("properties.list"), "{failure:?}");
    texts.push(format!("{failure:?}"));
    assert!(mock.state.rows().is_empty(), "nothing was written");

    // After a first load is written, a failure lands on the rows left.
    let integration = connector.integration("engage", &config(&mock));
    mock.state.fail_after(1, 503, 1);
    let outcomes = connector
        .sync(
            &integration,
            batch(
                SyncMode::Upsert,
                vec![
                    full("ann@x.test", "Ann", 41.0),
                    full("bob@x.test", "Bob", 35.0),
                    row("cat@x.test", &[("AGE", Value::Number(3.0))], false),
                    row("dan@x.test", &[("AGE", Value::Number(4.0))], false),
                ],
            ),
        )
        .await
        .unwrap();
    texts.push(format!("{outcomes:?}"));
    assert_eq!(outcomes[..2], [RowOutcome::Inserted, RowOutcome::Inserted]);
    for outcome in &outcomes[2..] {
        assert!(
            matches!(outcome, RowOutcome::Failed(f) if f.retryable),
            "{outcome:?}"
        );
    }
    assert!(mock.state.row("cat@x.test").is_none());

    // Consent deliveries on an Engage config: the single upsert, mapped.
    let mut delivering = config(&mock);
    delivering["mappings"] = json!([
        {"id": "MAIL", "value": "organization_user_id"},
        {"id": "OPTIN_NEWS", "value": "consents_purposes_newsletter_enabled"}
    ]);
    let integration = connector.integration("consents", &delivering);
    let delivery = connector
        .deliver(
            &integration,
            vec![record(
                "gus@x.test",
                &[("consents_purposes_newsletter_enabled", Value::Boolean(true))],
            )],
        )
        .await;
    assert_eq!(
        delivery.outcomes,
        [Outcome::Delivered(DeliveredKind::Updated)]
    );
    assert_eq!(
        mock.state.row("gus@x.test").unwrap(),
        json!({"MAIL": "gus@x.test", "OPTIN_NEWS": 1})
    );
    mock.state.fail_next(401, 1);
    let delivery = connector
        .deliver(&integration, vec![record("hal@x.test", &[])])
        .await;
    let Outcome::Failed(f) = &delivery.outcomes[0] else {
        panic!("{:?}", delivery.outcomes)
    };
    assert!(!f.retryable);
    texts.push(format!("{:?}", delivery.outcomes));

    for text in texts {
        assert!(!text.contains(SECRET), "the secret leaked: {text}");
    }
}
