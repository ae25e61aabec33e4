//! Runs a mock destination on loopback, for demos and manual testing:
//!
//! ```text
//! prefsync-mocks dotdigital [--port N] [--seconds N]
//! ```
//!
//! The Dotdigital mock's API user is `demo-apiuser@apiconnector.com` /
//! `demo-password`, with the data fields NEWSLETTER, EMAIL_OPTIN (Boolean)
//! and FIRSTNAME (String). It prints every contact when it stops.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use prefsync_tests::mocks::dotdigital::{Dotdigital, FieldType};

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let kind = args.next().unwrap_or_default();
    let mut port: u16 = 0;
    let mut seconds: u64 = 600;
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--port" => port = value.parse().context("--port takes a number")?,
            "--seconds" => seconds = value.parse().context("--seconds takes a number")?,
            other => bail!("unknown option {other}; expected --port or --seconds"),
        }
    }
    if kind != "dotdigital" {
        bail!("usage: prefsync-mocks dotdigital [--port N] [--seconds N]");
    }
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
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs(seconds)) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    for contact in mock.state.contacts() {
        println!(
            "{} {}",
            contact.value,
            serde_json::Value::Object(contact.data_fields)
        );
    }
    Ok(())
}
