//! Bearer-token checks. Without a configured admin token, one is generated
//! on first start and kept in `<data_dir>/admin-token` (mode 0600), so the
//! API is never open and the token is never printed or logged.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::api::error::ApiError;
use super::{App, admin_token_file};
use crate::config::HostConfig;
use crate::random_hex;

/// The admin token: configured, or read from / generated into the data dir.
pub fn admin_token(config: &HostConfig, data_dir: &Path) -> Result<String> {
    if let Some(token) = &config.server.admin_token {
        return Ok(token.clone());
    }
    let path = admin_token_file(data_dir);
    if let Ok(token) = std::fs::read_to_string(&path)
        && !token.trim().is_empty()
    {
        return Ok(token.trim().to_string());
    }
    let token = random_hex(24);
    write_private(&path, &token).with_context(|| format!("writing {}", path.display()))?;
    tracing::warn!(path = %path.display(), "no admin token configured: generated one; read it from this file");
    Ok(token)
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(contents.as_bytes())
}

/// Lets a request through only with `Authorization: Bearer <admin token>`.
pub async fn require_admin(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    if bearer_matches(&request, &app.admin_token) {
        next.run(request).await
    } else {
        ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer <admin token>)",
        )
        .into_response()
    }
}

/// Lets a request through with the ingest token, or the admin token.
pub async fn require_ingest(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let ingest_ok = app
        .ingest_token
        .as_deref()
        .is_some_and(|token| bearer_matches(&request, token));
    if ingest_ok || bearer_matches(&request, &app.admin_token) {
        next.run(request).await
    } else {
        ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer <ingest or admin token>)",
        )
        .into_response()
    }
}

fn bearer_matches(request: &Request, expected: &str) -> bool {
    let Some(given) = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    same_secret(given, expected)
}

/// Compares a presented secret in time independent of where the first
/// difference is (`subtle`; only the length may show).
pub(super) fn same_secret(given: &str, expected: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_is_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let config = HostConfig::default();
        let first = admin_token(&config, dir.path()).unwrap();
        assert_eq!(first.len(), 48);
        assert_eq!(admin_token(&config, dir.path()).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(admin_token_file(dir.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let configured = HostConfig {
            server: crate::config::ServerConfig {
                admin_token: Some("configured-token-0123456789".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(
            admin_token(&configured, dir.path()).unwrap(),
            "configured-token-0123456789"
        );
    }

    #[test]
    fn secrets_match_only_when_every_byte_and_the_length_do() {
        assert!(same_secret("token-123", "token-123"));
        assert!(!same_secret("token-124", "token-123"));
        assert!(!same_secret("token-12", "token-123"));
        assert!(!same_secret("token-1234", "token-123"));
        assert!(!same_secret("", "token-123"));
        assert!(same_secret("", ""));
    }
}
