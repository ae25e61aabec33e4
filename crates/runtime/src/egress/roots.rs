//! Extra certificate authorities for HTTPS (`egress.extra_root_certificates`):
//! PEM files the operator names, trusted beside the system's roots by every
//! client the egress policy builds. A file that cannot be used is refused at
//! start, by its path and what is wrong with it, never by its content (a
//! PEM parser's own message quotes the offending line).

use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::{self, PemObject};

/// Why a root certificate file cannot be used. The text names the option and
/// the file, never a byte of the file.
#[derive(Debug, thiserror::Error)]
pub enum RootsError {
    #[error("egress.extra_root_certificates: {path} could not be read: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error(
        "egress.extra_root_certificates: {path} is not PEM: {problem} \
         (expected `-----BEGIN CERTIFICATE-----` sections)"
    )]
    NotPem {
        path: PathBuf,
        problem: &'static str,
    },
    #[error(
        "egress.extra_root_certificates: {path} holds no certificate (no `-----BEGIN CERTIFICATE-----` section)"
    )]
    NoCertificate { path: PathBuf },
    #[error(
        "egress.extra_root_certificates: certificate {index} of {path} is not a valid CA certificate"
    )]
    Invalid { path: PathBuf, index: usize },
}

/// Every certificate of every file, in the order given. Each one is checked
/// as a trust anchor now, so that a bad file fails the start instead of
/// every later handshake.
pub fn load(paths: &[PathBuf]) -> Result<Vec<CertificateDer<'static>>, RootsError> {
    let mut roots = Vec::new();
    for path in paths {
        roots.extend(load_file(path)?);
    }
    Ok(roots)
}

fn load_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, RootsError> {
    let bytes = std::fs::read(path).map_err(|e| RootsError::Unreadable {
        path: path.to_path_buf(),
        reason: io_reason(&e),
    })?;
    let mut certificates = Vec::new();
    for item in CertificateDer::pem_slice_iter(&bytes) {
        let certificate = item.map_err(|e| RootsError::NotPem {
            path: path.to_path_buf(),
            problem: pem_problem(&e),
        })?;
        let mut store = rustls::RootCertStore::empty();
        if store.add(certificate.clone()).is_err() {
            return Err(RootsError::Invalid {
                path: path.to_path_buf(),
                index: certificates.len() + 1,
            });
        }
        certificates.push(certificate);
    }
    if certificates.is_empty() {
        return Err(RootsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certificates)
}

/// The kind of an I/O failure without the OS's extra text.
fn io_reason(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        std::io::ErrorKind::IsADirectory => "it is a directory".to_string(),
        kind => kind.to_string(),
    }
}

/// What is wrong, in words of our own: the parser's `Display` quotes lines.
fn pem_problem(error: &pem::Error) -> &'static str {
    match error {
        pem::Error::MissingSectionEnd { .. } => "a section has no `-----END` line",
        pem::Error::IllegalSectionStart { .. } => "a `-----BEGIN` line is malformed",
        pem::Error::Base64Decode(_) => "a section's base64 does not decode",
        pem::Error::SectionTooLarge => "a section is too large",
        _ => "the file could not be parsed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn every_certificate_of_every_file_is_loaded_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (ca_pem(), ca_pem(), ca_pem());
        let one = write(dir.path(), "one.pem", a.as_bytes());
        let two = write(dir.path(), "two.pem", format!("{b}\n{c}").as_bytes());
        let roots = load(&[one, two]).unwrap();
        let expected: Vec<_> = [a, b, c]
            .iter()
            .map(|p| CertificateDer::from_pem_slice(p.as_bytes()).unwrap())
            .collect();
        assert_eq!(roots, expected);
    }

    #[test]
    fn a_file_that_cannot_be_used_is_named_without_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let secret = "hunter2-do-not-echo";
        let cases = [
            (
                write(dir.path(), "missing-end.pem", format!("-----BEGIN CERTIFICATE-----\n{secret}\n").as_bytes()),
                "has no `-----END` line",
            ),
            (
                write(dir.path(), "bad-base64.pem", format!("-----BEGIN CERTIFICATE-----\n{secret}!!\n-----END CERTIFICATE-----\n").as_bytes()),
                "base64 does not decode",
            ),
            (
                write(dir.path(), "key-only.pem", format!("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n{secret}\n").as_bytes()),
                "holds no certificate",
            ),
            (
                // Decodes, but is no certificate.
                write(dir.path(), "not-x509.pem", b"-----BEGIN CERTIFICATE-----\naHVudGVyMi1kby1ub3QtZWNobw==\n-----END CERTIFICATE-----\n"),
                "certificate 1 of",
            ),
            (dir.path().join("absent.pem"), "could not be read: no such file"),
            (dir.path().to_path_buf(), "could not be read"),
        ];
        for (path, expected) in cases {
            let error = load(std::slice::from_ref(&path)).unwrap_err().to_string();
            assert!(
                error.starts_with("egress.extra_root_certificates: "),
                "{error}"
            );
            assert!(error.contains(&path.display().to_string()), "{error}");
            assert!(error.contains(expected), "{path:?}: {error}");
            assert!(!error.contains("hunter2"), "{error}");
        }
    }

    #[test]
    fn no_file_means_no_extra_root() {
        assert!(load(&[]).unwrap().is_empty());
    }
}
