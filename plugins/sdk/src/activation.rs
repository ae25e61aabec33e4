//! Activations (reverse ETL): keeping a user model's attributes in sync with
//! the destination, the optional half of the contract added in WIT 0.1.2
//! (`activation`). A connector that can write model rows implements
//! [`Activation`] besides [`Connector`] and is exported with
//! `export!(MyConnector, activation)` (or `export!(MyConnector, inbound, activation)`).
//!
//! The host reads the model, keeps the snapshot of what the destination
//! accepted and computes the diff; the connector only writes the rows it is
//! given. Attribute names are already the destination's own: a connector
//! never applies the integration's `mappings` to them.

use crate::connector::{Connector, parse_config};
use crate::context::{Context, Host};
use crate::http::{HttpError, Response, StatusClass};
use crate::types::{Property, Value};

/// Which rows the destination may create or change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// Insert the rows it lacks, update the rows it has.
    Upsert,
    /// Only insert the rows it lacks; leave existing ones alone.
    Insert,
    /// Only update the rows it has; never create one.
    Update,
}

/// One row of the model to write.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncRow {
    /// The matching key's value.
    pub key: String,
    /// Attributes to write, named exactly as the destination names them. For
    /// a known row, only the attributes whose values changed.
    pub attributes: Vec<Property>,
    /// True when the destination accepted this key in an earlier run.
    pub known: bool,
}

impl SyncRow {
    /// A row with the given attributes, as tests build them.
    pub fn new(key: &str, attributes: &[(&str, Value)], known: bool) -> Self {
        SyncRow {
            key: key.to_string(),
            attributes: attributes
                .iter()
                .map(|(name, value)| Property {
                    name: name.to_string(),
                    value: value.clone(),
                })
                .collect(),
            known,
        }
    }

    /// The value of attribute `name`, if the row carries it.
    pub fn attribute(&self, name: &str) -> Option<&Value> {
        self.attributes
            .iter()
            .find(|p| p.name == name)
            .map(|p| &p.value)
    }

    /// The attribute names, in the row's order.
    pub fn attribute_names(&self) -> impl Iterator<Item = &str> {
        self.attributes.iter().map(|p| p.name.as_str())
    }
}

/// Rows written in one call.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncBatch {
    /// The destination field rows are matched on, e.g. `MAIL`.
    pub key_field: String,
    /// Whether rows may be inserted, updated, or both.
    pub mode: SyncMode,
    /// The rows to write; never more than [`Activation::max_rows`] allows.
    pub rows: Vec<SyncRow>,
}

/// Why a row, or a whole batch, was not written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowFailure {
    /// True when trying again later may succeed (timeouts, 429, 5xx).
    pub retryable: bool,
    /// The destination field at fault, when the destination says.
    pub field: Option<String>,
    /// What went wrong, for logs and the operator.
    pub message: String,
}

impl RowFailure {
    /// A failure that will fail the same way again.
    pub fn permanent(message: impl Into<String>) -> Self {
        RowFailure {
            retryable: false,
            field: None,
            message: message.into(),
        }
    }

    /// A failure that may succeed later.
    pub fn retryable(message: impl Into<String>) -> Self {
        RowFailure {
            retryable: true,
            field: None,
            message: message.into(),
        }
    }

    /// The same failure, blamed on destination field `field`.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// A request that got no answer: timeouts and connection errors are
    /// retryable; a policy denial or a malformed request is not.
    pub fn from_http(error: &HttpError, context: &str) -> Self {
        let retryable = matches!(error, HttpError::Timeout | HttpError::Connection(_));
        RowFailure {
            retryable,
            field: None,
            message: format!("{context}: {error}"),
        }
    }

    /// A non-2xx answer, classified by status as deliveries are (408, 425,
    /// 429, 5xx retryable; the rest permanent), with `detail` in the message.
    pub fn from_response(response: &Response, detail: &str) -> Self {
        let message = if detail.is_empty() {
            format!("HTTP {}", response.status)
        } else {
            format!("HTTP {}: {detail}", response.status)
        };
        RowFailure {
            retryable: matches!(response.class(), StatusClass::Retryable { .. }),
            field: None,
            message,
        }
    }
}

/// What became of one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowOutcome {
    /// The destination lacked the row; it was created.
    Inserted,
    /// An existing row was changed.
    Updated,
    /// Deliberately not written, with the reason (e.g. `update` mode and the
    /// destination does not have the row).
    Skipped(String),
    /// Not written; see [`RowFailure`] for whether to retry.
    Failed(RowFailure),
}

/// A connector that writes user-model rows to its destination.
pub trait Activation: Connector {
    /// Most rows per [`Activation::sync`] call for an integration with this
    /// config (the host never sends more; 0 is read as 1).
    fn max_rows(config: &Self::Config) -> u32;

    /// Writes `batch`: one outcome per row, in the batch's order. `Err` when
    /// the destination refused the batch as a whole (credentials, outage) and
    /// no row was written; once some rows are written, a later failure is
    /// reported on the rows it concerns instead.
    fn sync(
        ctx: &Context<'_>,
        config: &Self::Config,
        batch: &SyncBatch,
    ) -> Result<Vec<RowOutcome>, RowFailure>;
}

/// `max_rows` with a raw config; an invalid config gets 1 (its `sync` will
/// refuse the batch, naming the problems).
pub fn max_rows<C: Activation>(raw: &str) -> u32 {
    match parse_config::<C>(raw) {
        Ok(config) => C::max_rows(&config).max(1),
        Err(_) => 1,
    }
}

/// Writes a batch with a raw config; an invalid config refuses the whole
/// batch permanently, naming the problems. An empty batch writes nothing.
pub fn sync<C: Activation>(
    host: &dyn Host,
    raw: &str,
    batch: &SyncBatch,
) -> Result<Vec<RowOutcome>, RowFailure> {
    let config = parse_config::<C>(raw).map_err(|problems| {
        let summary: Vec<String> = problems
            .iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect();
        RowFailure::permanent(format!(
            "invalid integration config: {}",
            summary.join("; ")
        ))
    })?;
    if batch.rows.is_empty() {
        return Ok(Vec::new());
    }
    C::sync(&Context::new(host), &config, batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MockHost;
    use crate::{Capabilities, ConsentRecord, Description, Outcome, Problems};

    /// Writes each row with one `PUT`, reading the status.
    struct Rows;

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    struct RowsConfig {
        #[schemars(url)]
        url: String,
        #[serde(default)]
        batch_size: Option<u32>,
    }

    impl Connector for Rows {
        type Config = RowsConfig;
        fn describe() -> Description {
            Description {
                type_id: "rows".into(),
                version: "0.0.0".into(),
                display_name: "Rows".into(),
                default_hosts: Vec::new(),
                max_concurrency: 1,
                max_batch_size: 1,
                capabilities: Capabilities::default(),
            }
        }
        fn check(config: &RowsConfig, p: &mut Problems) {
            p.url("url", &config.url, false);
        }
        fn deliver(_: &Context<'_>, _: &RowsConfig, _: &ConsentRecord) -> Outcome {
            Outcome::permanent("not used")
        }
    }

    impl Activation for Rows {
        fn max_rows(config: &RowsConfig) -> u32 {
            config.batch_size.unwrap_or(10)
        }
        fn sync(
            ctx: &Context<'_>,
            config: &RowsConfig,
            batch: &SyncBatch,
        ) -> Result<Vec<RowOutcome>, RowFailure> {
            let mut outcomes = Vec::new();
            for row in &batch.rows {
                let request = crate::Request::new(
                    crate::Method::Put,
                    format!("{}/{}/{}", config.url, batch.key_field, row.key),
                );
                match ctx.send(request) {
                    Err(e) if outcomes.is_empty() => return Err(RowFailure::from_http(&e, "put")),
                    Err(e) => outcomes.push(RowOutcome::Failed(RowFailure::from_http(&e, "put"))),
                    Ok(r) if r.status == 201 => outcomes.push(RowOutcome::Inserted),
                    Ok(r) if r.status == 200 => outcomes.push(RowOutcome::Updated),
                    Ok(r) if r.status == 401 => {
                        return Err(RowFailure::from_response(&r, "credentials refused"));
                    }
                    Ok(r) => outcomes.push(RowOutcome::Failed(
                        RowFailure::from_response(&r, "refused").with_field("AGE"),
                    )),
                }
            }
            Ok(outcomes)
        }
    }

    fn batch(rows: Vec<SyncRow>) -> SyncBatch {
        SyncBatch {
            key_field: "MAIL".into(),
            mode: SyncMode::Upsert,
            rows,
        }
    }

    #[test]
    fn the_driver_parses_the_config_and_hands_rows_over() {
        let host = MockHost::new();
        host.respond(201, &[], "")
            .respond(200, &[], "")
            .respond(400, &[], "")
            .respond(503, &[], "");
        let rows = vec![
            SyncRow::new("a", &[("AGE", Value::Number(3.0))], false),
            SyncRow::new("b", &[], true),
            SyncRow::new("c", &[("AGE", Value::Text("x".into()))], true),
            SyncRow::new("d", &[], true),
        ];
        let outcomes = sync::<Rows>(&host, r#"{"url": "https://x.test"}"#, &batch(rows)).unwrap();
        assert_eq!(
            outcomes,
            [
                RowOutcome::Inserted,
                RowOutcome::Updated,
                RowOutcome::Failed(RowFailure {
                    retryable: false,
                    field: Some("AGE".into()),
                    message: "HTTP 400: refused".into()
                }),
                RowOutcome::Failed(RowFailure {
                    retryable: true,
                    field: Some("AGE".into()),
                    message: "HTTP 503: refused".into()
                }),
            ]
        );
        assert_eq!(host.requests.borrow()[0].url, "https://x.test/MAIL/a");
    }

    #[test]
    fn whole_batch_refusals_and_invalid_configs_are_errors() {
        let host = MockHost::new();
        host.respond(401, &[], "");
        let err = sync::<Rows>(
            &host,
            r#"{"url": "https://x.test"}"#,
            &batch(vec![SyncRow::new("a", &[], false)]),
        )
        .unwrap_err();
        assert!(!err.retryable);
        assert_eq!(err.message, "HTTP 401: credentials refused");

        host.fail(HttpError::Timeout);
        let err = sync::<Rows>(
            &host,
            r#"{"url": "https://x.test"}"#,
            &batch(vec![SyncRow::new("a", &[], false)]),
        )
        .unwrap_err();
        assert!(err.retryable, "{err:?}");

        let err = sync::<Rows>(
            &host,
            r#"{"url": 3}"#,
            &batch(vec![SyncRow::new("a", &[], false)]),
        )
        .unwrap_err();
        assert!(!err.retryable);
        assert!(
            err.message
                .starts_with("invalid integration config: url: must be a string"),
            "{}",
            err.message
        );
        // An empty batch sends nothing.
        assert_eq!(
            sync::<Rows>(&host, r#"{"url": "https://x.test"}"#, &batch(vec![])),
            Ok(vec![])
        );
        assert_eq!(host.requests.borrow().len(), 2);
    }

    #[test]
    fn max_rows_reads_the_config_and_is_never_zero() {
        assert_eq!(max_rows::<Rows>(r#"{"url": "https://x.test"}"#), 10);
        assert_eq!(
            max_rows::<Rows>(r#"{"url": "https://x.test", "batch_size": 0}"#),
            1
        );
        assert_eq!(
            max_rows::<Rows>(r#"{"url": "https://x.test", "batch_size": 250}"#),
            250
        );
        assert_eq!(max_rows::<Rows>("{"), 1);
    }

    #[test]
    fn failures_are_classified_like_deliveries() {
        let response = |status: u16| Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        };
        for (status, retryable) in [(408, true), (429, true), (500, true), (404, false)] {
            assert_eq!(
                RowFailure::from_response(&response(status), "").retryable,
                retryable,
                "{status}"
            );
        }
        assert!(!RowFailure::from_http(&HttpError::Denied("no".into()), "x").retryable);
        assert!(RowFailure::from_http(&HttpError::Connection("reset".into()), "x").retryable);
        let row = SyncRow::new(
            "k",
            &[("A", Value::Null), ("B", Value::Boolean(true))],
            true,
        );
        assert_eq!(row.attribute("B"), Some(&Value::Boolean(true)));
        assert_eq!(row.attribute_names().collect::<Vec<_>>(), ["A", "B"]);
    }
}
