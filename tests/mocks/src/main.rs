//! Runs a mock destination on loopback, for demos and manual testing:
//!
//! ```text
//! prefsync-mocks dotdigital|engage [--port N] [--seconds N] [--no-record]
//! ```
//!
//! The Dotdigital mock's API user is `demo-apiuser@apiconnector.com` /
//! `demo-password`, with the data fields NEWSLETTER, EMAIL_OPTIN (Boolean)
//! and FIRSTNAME (String). It prints every contact when it stops.
//!
//! The Engage mock (Selligent's REST API) takes the API key `demo-key` /
//! `demo-secret`, organization `DEMO`, list `USERS` keyed by MAIL (Email),
//! with FIRSTNAME, CITY, PLAN (Text), AGE (Numeric) and BIRTHDATE (Date). It
//! prints the list when it stops.
//!
//! `--no-record` (engage): requests are answered but not kept in memory (a mock
//! taking millions of rows, as `tests/benches/activation.rs` sends).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use prefsync_mocks::dotdigital::{Dotdigital, FieldType};
use prefsync_mocks::engage::{Engage, FieldType as EngageField};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // A usage error is one line, never a backtrace.
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let kind = args.next().unwrap_or_default();
    let mut port: u16 = 0;
    let mut seconds: u64 = 600;
    let mut record = true;
    while let Some(flag) = args.next() {
        if flag == "--no-record" {
            record = false;
            continue;
        }
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--port" => port = value.parse().context("--port takes a number")?,
            "--seconds" => seconds = value.parse().context("--seconds takes a number")?,
            other => bail!("unknown option {other}; expected --port, --seconds or --no-record"),
        }
    }
    let wait = async {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(seconds)) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    match kind.as_str() {
        "dotdigital" => {
            let mock = Dotdigital::start_on(
                port,
                "demo-apiuser@apiconnector.com",
                "demo-password",
                &[
                    ("NEWSLETTER", FieldType::Boolean),
                    ("EMAIL_OPTIN", FieldType::Boolean),
                    ("FIRSTNAME", FieldType::String),
                ],
            )
            .await?;
            println!("mock dotdigital listening on {}", mock.url());
            wait.await;
            for contact in mock.state.contacts() {
                println!(
                    "{} {}",
                    contact.value,
                    serde_json::Value::Object(contact.data_fields)
                );
            }
        }
        "engage" => {
            let mock = Engage::start_on(
                port,
                "demo-key",
                "demo-secret",
                "DEMO",
                "USERS",
                "MAIL",
                &[
                    ("MAIL", EngageField::Email),
                    ("FIRSTNAME", EngageField::Text),
                    ("CITY", EngageField::Text),
                    ("PLAN", EngageField::Text),
                    ("AGE", EngageField::Numeric),
                    ("BIRTHDATE", EngageField::Date),
                ],
            )
            .await?;
            mock.state.record_requests(record);
            println!("mock engage listening on {}", mock.state.url());
            wait.await;
            for (key, record) in mock.state.rows() {
                println!("{key} {record}");
            }
        }
        _ => {
            bail!("usage: prefsync-mocks dotdigital|engage [--port N] [--seconds N] [--no-record]")
        }
    }
    Ok(())
}
