//! An activation's JSON document: which model to read, which integration
//! to write to, how rows match, what maps to what, when to run and whom to
//! warn. Mappings keep the seeds' `{id, value}` shape: `id` is the
//! destination attribute, exactly as the destination names it, `value` the
//! model column it takes its value from.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::schedule::{Cron, parse_interval};

/// One activation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivationConfig {
    /// 1 to 64 letters, digits, `-`, `_` or `.`; from the file name when a
    /// file leaves it out.
    #[serde(default)]
    pub id: String,
    /// A name for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The destination: the id of an integration whose connector can sync models.
    pub integration: String,
    /// Where the model's rows come from.
    pub source: SourceConfig,
    /// How a model row finds its destination record.
    pub key: KeyConfig,
    /// Destination attribute (`id`) ← model column (`value`).
    pub mappings: Vec<AttributeMapping>,
    /// Which rows the destination may create or change.
    #[serde(default)]
    pub mode: SyncMode,
    /// When the scheduler runs it; neither field: manual runs only.
    #[serde(default)]
    pub schedule: ScheduleConfig,
    /// When a run raises a warning, and where it goes.
    #[serde(default)]
    pub warnings: WarningsConfig,
}

/// The model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceConfig {
    /// A CSV file whose first row names the columns; empty cells are null.
    Csv {
        /// The file, under the host's `[activations] source_dir` (a relative
        /// path is resolved against it; file sources are refused without it).
        #[schema(value_type = String)]
        path: PathBuf,
        /// One ASCII character; `,` unless said.
        #[serde(default = "default_delimiter")]
        #[schema(value_type = String, min_length = 1, max_length = 1)]
        delimiter: char,
    },
    /// A query's result set.
    Sql {
        /// `sqlite:///absolute/path.db` or `sqlite:relative.db` (a file under
        /// `[activations] source_dir`, like a CSV's), or
        /// `postgres://user:password@host/db` (the password is never shown;
        /// the host must be one `[egress]` allows).
        url: String,
        /// A `SELECT` whose column names are the model's columns.
        query: String,
    },
}

fn default_delimiter() -> char {
    ','
}

/// The matching key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// The model column holding each row's key.
    pub column: String,
    /// The destination field it matches, e.g. `MAIL`.
    pub field: String,
}

/// One attribute kept up to date.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttributeMapping {
    /// The destination attribute, exactly as the destination names it.
    pub id: String,
    /// The model column its value comes from.
    pub value: String,
}

/// Which rows the destination may create or change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// Insert new rows, update changed ones.
    #[default]
    Upsert,
    /// Only insert rows the destination has not accepted before.
    Insert,
    /// Only update rows the destination has; never create one.
    Update,
}

impl SyncMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncMode::Upsert => "upsert",
            SyncMode::Insert => "insert",
            SyncMode::Update => "update",
        }
    }
}

/// `every` or `cron`, not both; `timezone` only beside `cron`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// An interval: a number and a unit, `30s`, `15m`, `6h`, `1d` (at least 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
    /// Five cron fields, minute hour day-of-month month day-of-week (months
    /// and weekdays also by name: `JAN`, `MON-FRI`), or an alias: `@hourly`,
    /// `@daily`, `@weekly`, `@monthly`, `@yearly`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// The IANA time zone whose wall clock `cron` reads, e.g. `Europe/Paris`;
    /// UTC when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

/// When a run warns, and where the warning goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WarningsConfig {
    /// Share of the rows read that may be rejected (by the source checks or
    /// the destination) before the run warns, between 0 and 1.
    #[serde(default = "default_rejected_share")]
    pub rejected_share: f64,
    /// Where warnings and recoveries are POSTed as JSON: an absolute http(s)
    /// URL without user name or password, reached under the host's
    /// `[egress]` options, redirects not followed; none: not posted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// Whether warnings are also written to the host's log (at `warn`).
    #[serde(default = "yes")]
    pub log: bool,
}

impl Default for WarningsConfig {
    fn default() -> Self {
        WarningsConfig {
            rejected_share: default_rejected_share(),
            webhook_url: None,
            log: true,
        }
    }
}

fn default_rejected_share() -> f64 {
    0.05
}

fn yes() -> bool {
    true
}

/// When to run, once parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    Manual,
    Every(Duration),
    Cron(Cron),
}

impl Schedule {
    /// When the next run starts, for a schedule looked at `now_ms` (after a
    /// run that started at `last_start_ms`, if any).
    pub fn next_after(&self, now_ms: i64, last_start_ms: Option<i64>) -> Option<i64> {
        match self {
            Schedule::Manual => None,
            Schedule::Every(every) => {
                let every = i64::try_from(every.as_millis()).unwrap_or(i64::MAX);
                Some(match last_start_ms {
                    Some(start) => start.saturating_add(every).max(now_ms),
                    None => now_ms.saturating_add(every),
                })
            }
            Schedule::Cron(cron) => cron.next_after(now_ms),
        }
    }
}

/// One thing wrong with a config, at a JSON path.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a document is not a usable activation.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not JSON, or not the shape (serde names the field).
    #[error("line {line} column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}", list(.0))]
    Invalid(Vec<Problem>),
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl ActivationConfig {
    /// Reads and checks a document; `default_id` fills a missing `id`.
    pub fn parse(bytes: &[u8], default_id: Option<&str>) -> Result<Self, ConfigError> {
        let mut config: ActivationConfig =
            serde_json::from_slice(bytes).map_err(|error| ConfigError::Syntax {
                line: error.line(),
                column: error.column(),
                message: crate::consent::event::json_error_message(&error),
            })?;
        if config.id.is_empty()
            && let Some(id) = default_id
        {
            config.id = id.to_string();
        }
        let problems = config.problems();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// Every problem the types cannot rule out, at once.
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut push = |path: &str, message: String| {
            problems.push(Problem {
                path: path.to_string(),
                message,
            })
        };
        if let Err(error) = crate::ids::check_id(&self.id) {
            push("id", error.to_string());
        }
        if self.integration.trim().is_empty() {
            push(
                "integration",
                "name the destination integration's id".into(),
            );
        }
        match &self.source {
            SourceConfig::Csv { path, delimiter } => {
                if path.as_os_str().is_empty() {
                    push("source.path", "name the CSV file".into());
                }
                if !delimiter.is_ascii() || *delimiter == '"' || *delimiter == '\n' {
                    push(
                        "source.delimiter",
                        format!(
                            "`{delimiter}` cannot separate fields; use one ASCII character such as `,` or `;`"
                        ),
                    );
                }
            }
            SourceConfig::Sql { url, query } => {
                if let Err(why) = SqlUrl::parse(url) {
                    push("source.url", why);
                }
                if query.trim().is_empty() {
                    push(
                        "source.query",
                        "give the SELECT that reads the model".into(),
                    );
                }
            }
        }
        if self.key.column.trim().is_empty() {
            push("key.column", "name the model column holding the key".into());
        }
        if self.key.field.trim().is_empty() {
            push(
                "key.field",
                "name the destination field the key matches, e.g. `MAIL`".into(),
            );
        }
        if self.mappings.is_empty() {
            push("mappings", "map at least one attribute".into());
        }
        let mut seen = std::collections::HashSet::new();
        for (index, mapping) in self.mappings.iter().enumerate() {
            if mapping.id.trim().is_empty() {
                push(
                    &format!("mappings[{index}].id"),
                    "name the destination attribute".into(),
                );
            } else if mapping.id == self.key.field {
                push(
                    &format!("mappings[{index}].id"),
                    format!(
                        "`{}` is the key field; rows match on it, it is not an attribute to update",
                        mapping.id
                    ),
                );
            } else if !seen.insert(mapping.id.as_str()) {
                push(
                    &format!("mappings[{index}].id"),
                    format!("`{}` is mapped twice", mapping.id),
                );
            }
            if mapping.value.trim().is_empty() {
                push(
                    &format!("mappings[{index}].value"),
                    "name the model column".into(),
                );
            }
        }
        if let Err((path, why)) = self.schedule() {
            push(path, why);
        }
        let share = self.warnings.rejected_share;
        if !(0.0..=1.0).contains(&share) || share.is_nan() {
            push(
                "warnings.rejected_share",
                format!("{share} is not a share; give a number between 0 and 1 (0.05 = 5%)"),
            );
        }
        if let Some(url) = &self.warnings.webhook_url
            && let Err(why) = webhook_url_problem(url)
        {
            push("warnings.webhook_url", why.into());
        }
        problems
    }

    /// The parsed schedule, or the path and reason it is wrong.
    pub fn schedule(&self) -> Result<Schedule, (&'static str, String)> {
        let ScheduleConfig {
            every,
            cron,
            timezone,
        } = &self.schedule;
        match (every, cron) {
            (Some(_), Some(_)) => Err(("schedule", "give `every` or `cron`, not both".to_string())),
            // A zone places cron's wall-clock times; an interval has none.
            (_, None) if timezone.is_some() => Err((
                "schedule.timezone",
                "applies to `cron` only; give `cron` beside it or leave it out".to_string(),
            )),
            (None, None) => Ok(Schedule::Manual),
            (Some(every), None) => parse_interval(every)
                .map(Schedule::Every)
                .map_err(|why| ("schedule.every", why)),
            (None, Some(cron)) => {
                let cron = Cron::parse(cron).map_err(|why| ("schedule.cron", why))?;
                match timezone {
                    Some(zone) => cron.in_zone(zone).map_err(|why| ("schedule.timezone", why)),
                    None => Ok(cron),
                }
                .map(Schedule::Cron)
            }
        }
    }

    /// The model columns the activation reads: the key's, then each mapping's.
    pub fn columns(&self) -> impl Iterator<Item = (&str, &str)> {
        std::iter::once(("key.column", self.key.column.as_str()))
            .chain(self.mappings.iter().map(|m| ("mappings", m.value.as_str())))
    }
}

/// What is wrong with a warnings webhook URL, without quoting it (it may
/// carry a credential). The egress options are applied when it is posted to.
fn webhook_url_problem(url: &str) -> Result<(), &'static str> {
    let parsed =
        url::Url::parse(url).map_err(|_| "not an absolute URL; give `https://host/path`")?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("not an http(s) URL; give `https://host/path`");
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("the URL names no host");
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(
            "the URL carries a user name or password; the host never sends credentials in a URL",
        );
    }
    Ok(())
}

/// A SQL source's connection string, checked.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl SqlUrl {
    pub fn parse(url: &str) -> Result<SqlUrl, String> {
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(
                    "`sqlite:` needs a file: `sqlite:///absolute/path.db` or `sqlite:relative.db` (relative to `[activations] source_dir`)"
                        .into(),
                );
            }
            return Ok(SqlUrl::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(SqlUrl::Postgres(url.to_string()));
        }
        Err(format!(
            "`{}` is not a connection string this host reads; use `sqlite:///path.db` or `postgres://user:password@host/db`",
            crate::store::postgres::redacted_url(url)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ActivationConfig, ConfigError> {
        ActivationConfig::parse(text.as_bytes(), None)
    }

    const GOOD: &str = r#"{
        "id": "users", "integration": "engage",
        "source": {"type": "csv", "path": "users.csv"},
        "key": {"column": "email", "field": "MAIL"},
        "mappings": [{"id": "FIRSTNAME", "value": "first_name"}],
        "schedule": {"every": "15m"}
    }"#;

    #[test]
    fn a_good_document_parses_with_defaults() {
        let config = parse(GOOD).unwrap();
        assert_eq!(config.mode, SyncMode::Upsert);
        assert_eq!(config.warnings, WarningsConfig::default());
        assert_eq!(
            config.schedule().unwrap(),
            Schedule::Every(Duration::from_secs(900))
        );
    }

    #[test]
    fn an_unknown_field_is_named_with_its_position() {
        let text = GOOD.replace("\"schedule\"", "\"shedule\"");
        let ConfigError::Syntax { line, message, .. } = parse(&text).unwrap_err() else {
            panic!("expected a syntax error");
        };
        assert!(message.contains("unknown field `shedule`"), "{message}");
        assert_eq!(line, 6);
    }

    #[test]
    fn every_problem_is_listed_at_its_path() {
        let text = r#"{
            "id": "bad id", "integration": "",
            "source": {"type": "sql", "url": "mysql://x", "query": " "},
            "key": {"column": "email", "field": "MAIL"},
            "mappings": [{"id": "MAIL", "value": "email"}, {"id": "A", "value": ""}, {"id": "A", "value": "a"}],
            "schedule": {"every": "5 minutes", "cron": "* * * * *"},
            "warnings": {"rejected_share": 1.5, "webhook_url": "ftp://x"}
        }"#;
        let ConfigError::Invalid(problems) = parse(text).unwrap_err() else {
            panic!("expected problems");
        };
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "id",
                "integration",
                "source.url",
                "source.query",
                "mappings[0].id",
                "mappings[1].value",
                "mappings[2].id",
                "schedule",
                "warnings.rejected_share",
                "warnings.webhook_url"
            ]
        );
    }

    #[test]
    fn webhook_urls_are_absolute_http_without_credentials_and_never_echoed() {
        for (url, ok) in [
            ("https://hooks.example.com/prefsync", true),
            ("http://127.0.0.1:9/hook", true),
            ("hooks.example.com/prefsync", false),
            ("javascript:alert(1)", false),
            ("file:///etc/passwd", false),
            ("https://user:Hunter2-pw@hooks.example.com/x", false),
            ("https://Hunter2-pw@hooks.example.com/x", false),
        ] {
            let text = GOOD.replace(
                "\"schedule\"",
                &format!("\"warnings\": {{\"webhook_url\": {url:?}}}, \"schedule\""),
            );
            match parse(&text) {
                Ok(_) => assert!(ok, "{url} accepted"),
                Err(ConfigError::Invalid(problems)) => {
                    assert!(!ok, "{url}: {problems:?}");
                    assert_eq!(problems[0].path, "warnings.webhook_url");
                    assert!(!problems[0].message.contains("Hunter2"), "{problems:?}");
                }
                Err(other) => panic!("{url}: {other}"),
            }
        }
    }

    #[test]
    fn interval_schedules_keep_their_pace() {
        let every = Schedule::Every(Duration::from_secs(60));
        assert_eq!(every.next_after(1_000, None), Some(61_000));
        assert_eq!(every.next_after(5_000, Some(1_000)), Some(61_000));
        // A run longer than the interval: the next starts at once.
        assert_eq!(every.next_after(90_000, Some(1_000)), Some(90_000));
        assert_eq!(Schedule::Manual.next_after(1, None), None);
    }

    #[test]
    fn a_cron_schedule_reads_its_time_zone_and_a_bad_one_is_named() {
        let with = |schedule: &str| GOOD.replace(r#"{"every": "15m"}"#, schedule);
        let config = parse(&with(
            r#"{"cron": "30 9 * * MON-FRI", "timezone": "Europe/Paris"}"#,
        ))
        .unwrap();
        assert_eq!(
            config.schedule().unwrap(),
            Schedule::Cron(
                Cron::parse("30 9 * * MON-FRI")
                    .unwrap()
                    .in_zone("Europe/Paris")
                    .unwrap()
            )
        );
        for (schedule, path) in [
            (
                r#"{"cron": "@daily", "timezone": "Europe/Hunter2"}"#,
                "schedule.timezone",
            ),
            (r#"{"every": "1h", "timezone": "UTC"}"#, "schedule.timezone"),
            (
                r#"{"cron": "0 0 30 2 *", "timezone": "UTC"}"#,
                "schedule.cron",
            ),
        ] {
            let ConfigError::Invalid(problems) = parse(&with(schedule)).unwrap_err() else {
                panic!("{schedule}: expected problems");
            };
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert_eq!(problems[0].path, path, "{schedule}");
            assert!(!problems[0].message.contains("Hunter2"), "{problems:?}");
        }
    }
}
