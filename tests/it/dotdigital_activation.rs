//! Activations through the Dotdigital connector, as a component, against
//! the mock Dotdigital: model rows become contacts' data fields in every
//! mode, a data field the account lacks fails its row naming the field, and
//! refused credentials refuse the batch.

use prefsync::runtime::{
    Limits, RowFailure, RowOutcome, SyncBatch, SyncError, SyncMode, SyncRow, Value,
};
use prefsync_tests::guests;
use prefsync_tests::mocks::dotdigital::{Dotdigital, Fault, FieldType};
use prefsync_tests::support::model_row as row;
use prefsync_tests::support::{loopback_egress, runtime};
use serde_json::json;

const USER: &str = "apiuser-7@apiconnector.com";
const PASSWORD: &str = "Activation-Secret-Pw";

fn batch(mode: SyncMode, rows: Vec<SyncRow>) -> SyncBatch {
    prefsync_tests::support::model_batch("email", mode, rows)
}

#[tokio::test]
async fn model_rows_become_data_fields_in_every_mode() {
    let mock = Dotdigital::start(
        USER,
        PASSWORD,
        &[
            ("FIRSTNAME", FieldType::String),
            ("AGE", FieldType::Numeric),
        ],
    )
    .await
    .unwrap();
    let rt = runtime(loopback_egress(), Limits::default());
    let connector = rt.load_file(guests::DOTDIGITAL.as_ref()).await.unwrap();
    assert!(connector.info().activations);
    let config = json!({
        "type_id": "dotdigital",
        "authentication": {"url": mock.url(), "username": USER, "password": PASSWORD},
        "mappings": [{"id": "FIRSTNAME", "value": "metadata_firstname"}]
    });
    let integration = connector.integration("dd", &config);
    assert_eq!(connector.max_rows(&integration).await.unwrap(), 100);

    let ann = |age: f64, known| {
        row(
            "ann@example.com",
            &[
                ("FIRSTNAME", Value::Text("Ann".into())),
                ("AGE", Value::Number(age)),
            ],
            known,
        )
    };
    // Upsert: created, then updated with the changed attribute only.
    let outcomes = connector
        .sync(
            &integration,
            batch(SyncMode::Upsert, vec![ann(41.0, false)]),
        )
        .await
        .unwrap();
    assert_eq!(outcomes, [RowOutcome::Inserted]);
    mock.state
        .set_field("ann@example.com", "FIRSTNAME", json!("Annie"));
    let outcomes = connector
        .sync(
            &integration,
            batch(
                SyncMode::Upsert,
                vec![row(
                    "ann@example.com",
                    &[("AGE", Value::Number(42.0))],
                    true,
                )],
            ),
        )
        .await
        .unwrap();
    assert_eq!(outcomes, [RowOutcome::Updated]);
    assert_eq!(
        serde_json::Value::Object(mock.state.contact("ann@example.com").unwrap().data_fields),
        json!({"FIRSTNAME": "Annie", "AGE": 42})
    );

    // Insert: a contact that exists is left alone; a new one is created.
    let outcomes = connector
        .sync(
            &integration,
            batch(
                SyncMode::Insert,
                vec![
                    ann(1.0, true),
                    row("bob@example.com", &[("AGE", Value::Number(35.0))], false),
                ],
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [
            RowOutcome::Skipped("already in Dotdigital".into()),
            RowOutcome::Inserted
        ]
    );
    assert_eq!(
        mock.state.contact("ann@example.com").unwrap().data_fields["AGE"],
        42
    );

    // Update: never creates.
    let outcomes = connector
        .sync(
            &integration,
            batch(
                SyncMode::Update,
                vec![
                    row("bob@example.com", &[("AGE", Value::Number(36.0))], true),
                    row("cat@example.com", &[("AGE", Value::Number(20.0))], false),
                ],
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [
            RowOutcome::Updated,
            RowOutcome::Skipped("not in Dotdigital".into())
        ]
    );
    assert!(mock.state.contact("cat@example.com").is_none());
    assert_eq!(
        mock.state.contact("bob@example.com").unwrap().data_fields["AGE"],
        36
    );

    // A data field the account lacks, or a value of the wrong type: that
    // row fails, naming the field; the others go through.
    let outcomes = connector
        .sync(
            &integration,
            batch(
                SyncMode::Upsert,
                vec![
                    row(
                        "ann@example.com",
                        &[("NICKNAME", Value::Text("A".into()))],
                        true,
                    ),
                    row(
                        "bob@example.com",
                        &[("AGE", Value::Text("old".into()))],
                        true,
                    ),
                    row("dan@example.com", &[("AGE", Value::Number(50.0))], false),
                ],
            ),
        )
        .await
        .unwrap();
    let field = |o: &RowOutcome| match o {
        RowOutcome::Failed(RowFailure {
            retryable: false,
            field,
            ..
        }) => field.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(field(&outcomes[0]).as_deref(), Some("NICKNAME"));
    assert_eq!(field(&outcomes[1]).as_deref(), Some("AGE"));
    assert_eq!(outcomes[2], RowOutcome::Inserted);

    // Refused credentials refuse the batch; an outage is retryable.
    let mut wrong = config.clone();
    wrong["authentication"]["password"] = json!("wrong-password-1");
    let wrong = connector.integration("wrong", &wrong);
    match connector
        .sync(&wrong, batch(SyncMode::Upsert, vec![ann(1.0, true)]))
        .await
    {
        Err(SyncError::Refused(f)) => {
            assert!(!f.retryable);
            assert!(f.message.contains("credentials refused"), "{f:?}");
            assert!(!f.message.contains(PASSWORD));
        }
        other => panic!("{other:?}"),
    }
    mock.state.push_faults([Fault::Status(503)]);
    match connector
        .sync(&integration, batch(SyncMode::Upsert, vec![ann(1.0, true)]))
        .await
    {
        Err(SyncError::Refused(f)) => assert!(f.retryable, "{f:?}"),
        other => panic!("{other:?}"),
    }
}
