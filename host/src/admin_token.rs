//! The admin token: configured, or generated on first start and kept in
//! `<data_dir>/admin-token` (owner-only), so the API is never open and the
//! token is never printed or logged.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::config::HostConfig;
use crate::random_hex;
use crate::store::private_files::create_private_file;

/// Where a generated admin token is written when none is configured.
pub fn admin_token_file(data_dir: &Path) -> PathBuf {
    data_dir.join("admin-token")
}

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
    // Owner-only before the token is in it.
    create_private_file(&path)
        .and_then(|()| std::fs::write(&path, &token))
        .with_context(|| format!("writing {}", path.display()))?;
    tracing::warn!(path = %path.display(), "no admin token configured: generated one; read it from this file");
    Ok(token)
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
}
