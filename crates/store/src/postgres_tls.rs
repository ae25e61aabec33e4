//! PostgreSQL over TLS, for every connection the host makes to PostgreSQL
//! (the store and activation sources): libpq's `sslmode` and `sslrootcert`
//! read from the connection string, and the rustls connector they call for.
//!
//! | `sslmode`          | TLS                              | the certificate checked        |
//! |--------------------|----------------------------------|--------------------------------|
//! | `disable`          | never                            | —                              |
//! | `prefer` (default) | if the server offers it          | no; the chain with sslrootcert |
//! | `require`          | always                           | no; the chain with sslrootcert |
//! | `verify-ca`        | always                           | the chain up to the roots      |
//! | `verify-full`      | always                           | the chain and the host name    |
//!
//! `sslrootcert` names a PEM file of root certificates; `sslrootcert=system`
//! (verify-full only, as libpq), or none with `verify-*`, checks against the
//! system's roots. tokio-postgres parses only `disable`/`prefer`/`require`
//! itself, so both parameters are taken out of the string here (URL form
//! `postgres://…?sslmode=…` and `key=value` form) before tokio-postgres
//! parses the rest. Unlike libpq, `prefer` does not fall back to plain text
//! when a TLS handshake fails, only when the server offers no TLS.
//!
//! One rustls crypto provider: aws-lc-rs, the one reqwest already brings.
//! No channel binding is offered (SCRAM still authenticates the password).
//! Nothing here shows a password: errors name parameters and paths only.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

/// libpq's `sslmode`, all five values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub const NAMES: [&str; 5] = ["disable", "prefer", "require", "verify-ca", "verify-full"];

    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn parse(value: &str) -> Result<SslMode, TlsSetupError> {
        match value {
            "disable" => Ok(SslMode::Disable),
            "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            other => {
                // The value is shown only when it looks like a mode someone
                // mistyped, never arbitrary text from the string.
                let shown = if other.len() <= 24
                    && other
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    format!(" `{other}`")
                } else {
                    String::new()
                };
                Err(TlsSetupError(format!(
                    "sslmode{shown} is not one of {}",
                    SslMode::NAMES.join(", ")
                )))
            }
        }
    }

    /// What tokio-postgres does before the handshake: `verify-*` are
    /// `require` to it (the checks are the connector's).
    fn wire(self) -> tokio_postgres::config::SslMode {
        match self {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        }
    }
}

/// Where root certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// `sslrootcert=/path/ca.pem`.
    File(PathBuf),
    /// `sslrootcert=system`, or `verify-*` without `sslrootcert`.
    System,
}

/// A connection string with its TLS parameters taken out.
#[derive(Debug, Clone)]
pub struct PgConnectionString {
    /// The rest, parsed by tokio-postgres, its `ssl_mode` set from [`Self::ssl_mode`].
    pub config: tokio_postgres::Config,
    pub ssl_mode: SslMode,
    /// `sslrootcert` as given (`None`: not given).
    pub root_cert: Option<RootCert>,
}

/// A connection string or TLS setting that cannot be used. Its text names
/// the parameter at fault, never the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSetupError(pub String);

impl fmt::Display for TlsSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsSetupError {}

impl PgConnectionString {
    /// Reads `url` (`postgres://…` or `key=value …`), taking out `sslmode`
    /// and `sslrootcert`.
    pub fn parse(url: &str) -> Result<PgConnectionString, TlsSetupError> {
        let (rest, params) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            strip_url_params(url)
        } else {
            strip_key_value_params(url)?
        };
        let mut ssl_mode = None;
        let mut root_cert = None;
        for (key, value) in params {
            if key == "sslmode" {
                ssl_mode = Some(SslMode::parse(&value)?);
            } else if value.is_empty() {
                root_cert = None;
            } else if value == "system" {
                root_cert = Some(RootCert::System);
            } else {
                root_cert = Some(RootCert::File(PathBuf::from(value)));
            }
        }
        // libpq: `sslrootcert=system` means verify-full, and nothing weaker.
        let ssl_mode = match (ssl_mode, &root_cert) {
            (None, Some(RootCert::System)) => SslMode::VerifyFull,
            (Some(mode), Some(RootCert::System)) if mode != SslMode::VerifyFull => {
                return Err(TlsSetupError(format!(
                    "sslrootcert=system needs sslmode=verify-full, not {}",
                    mode.name()
                )));
            }
            (mode, _) => mode.unwrap_or_default(),
        };
        let mut config: tokio_postgres::Config =
            rest.parse().map_err(|e: tokio_postgres::Error| {
                TlsSetupError(format!(
                    "it is not a PostgreSQL connection string this host reads ({})",
                    error_chain(&e)
                ))
            })?;
        config.ssl_mode(ssl_mode.wire());
        Ok(PgConnectionString {
            config,
            ssl_mode,
            root_cert,
        })
    }

    /// The connector for this string, reading `sslrootcert` from its path.
    pub fn connector(&self) -> Result<MakeRustlsConnect, TlsSetupError> {
        let pem = match &self.root_cert {
            Some(RootCert::File(path)) if self.ssl_mode != SslMode::Disable => {
                Some(read_root_cert(path)?)
            }
            _ => None,
        };
        self.connector_with(pem.as_ref().map(|(path, pem)| (path.as_path(), &pem[..])))
    }

    /// The connector, with the root certificate file's content given by the
    /// caller (who opened it under its own rules) as `(path shown, PEM)`.
    pub fn connector_with(
        &self,
        root_pem: Option<(&Path, &[u8])>,
    ) -> Result<MakeRustlsConnect, TlsSetupError> {
        let check = match (self.ssl_mode, &self.root_cert, root_pem) {
            (SslMode::Disable, _, _) => return Ok(MakeRustlsConnect::disabled()),
            (mode, Some(RootCert::File(_)), Some((path, pem))) => {
                let roots = parse_roots(path, pem)?;
                let names = mode == SslMode::VerifyFull;
                Check::Roots {
                    roots: Arc::new(roots),
                    shown: path.display().to_string(),
                    names,
                }
            }
            (_, Some(RootCert::File(path)), None) => {
                return Err(TlsSetupError(format!(
                    "sslrootcert {}: the file was not read",
                    path.display()
                )));
            }
            (SslMode::Prefer | SslMode::Require, None, _) => Check::Nothing,
            (mode, _, _) => Check::System {
                names: mode == SslMode::VerifyFull,
            },
        };
        MakeRustlsConnect::new(check, self.ssl_mode)
    }
}

/// Reads a root certificate file: `(path, content)`.
fn read_root_cert(path: &Path) -> Result<(PathBuf, Vec<u8>), TlsSetupError> {
    std::fs::read(path)
        .map(|pem| (path.to_path_buf(), pem))
        .map_err(|e| {
            TlsSetupError(format!(
                "sslrootcert {}: cannot read it: {e}",
                path.display()
            ))
        })
}

fn parse_roots(path: &Path, pem: &[u8]) -> Result<RootCertStore, TlsSetupError> {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| {
            TlsSetupError(format!(
                "sslrootcert {}: not a PEM certificate file ({e})",
                path.display()
            ))
        })?;
        roots.add(cert).map_err(|e| {
            TlsSetupError(format!(
                "sslrootcert {}: a certificate cannot be used as a root ({e})",
                path.display()
            ))
        })?;
    }
    if roots.is_empty() {
        return Err(TlsSetupError(format!(
            "sslrootcert {}: the file holds no PEM certificate",
            path.display()
        )));
    }
    Ok(roots)
}

/// `url` without its `sslmode`/`sslrootcert` query parameters, and those
/// (decoded) in order. The rest of the text is kept as it was: a multi-host
/// URL is no `url::Url`.
fn strip_url_params(url: &str) -> (String, Vec<(String, String)>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), Vec::new());
    };
    let mut kept = Vec::new();
    let mut taken = Vec::new();
    for pair in query.split('&') {
        // Percent-decoding only, as tokio-postgres: `+` is no space here.
        let plus_kept = pair.replace('+', "%2B");
        let decoded = url::form_urlencoded::parse(plus_kept.as_bytes()).next();
        match decoded {
            Some((key, value)) if key == "sslmode" || key == "sslrootcert" => {
                taken.push((key.into_owned(), value.into_owned()))
            }
            _ if pair.is_empty() => {}
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (rest, taken)
}

/// The same for libpq's `key=value` form (values may be single-quoted,
/// with `\` escapes).
fn strip_key_value_params(text: &str) -> Result<(String, Vec<(String, String)>), TlsSetupError> {
    let mut kept = String::new();
    let mut taken = Vec::new();
    let mut chars = text.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = chars.peek() else {
            break;
        };
        let mut key = String::new();
        while let Some((_, c)) = chars.next_if(|(_, c)| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        if chars.next_if(|(_, c)| *c == '=').is_none() {
            // Not key=value: tokio-postgres will say what is wrong.
            return Ok((text.to_string(), taken));
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if(|(_, c)| *c == '\'').is_some() {
            loop {
                match chars.next() {
                    Some((_, '\'')) => break,
                    Some((_, '\\')) => {
                        if let Some((_, c)) = chars.next() {
                            value.push(c);
                        }
                    }
                    Some((_, c)) => value.push(c),
                    None => {
                        return Err(TlsSetupError(
                            "the connection string has an unterminated quoted value".into(),
                        ));
                    }
                }
            }
        } else {
            while let Some((_, c)) = chars.next_if(|(_, c)| !c.is_whitespace()) {
                if c == '\\' {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        let end = chars.peek().map_or(text.len(), |&(i, _)| i);
        if key == "sslmode" || key == "sslrootcert" {
            taken.push((key, value));
        } else {
            kept.push_str(&text[start..end]);
            kept.push(' ');
        }
    }
    Ok((kept.trim_end().to_string(), taken))
}

/// Every message of a tokio-postgres error's chain, `: `-joined: what
/// tokio-postgres' own `Display` leaves out (the TLS or I/O cause).
/// Carries no password: tokio-postgres' messages never quote one.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = cause.source();
    }
    text
}

/// What the server's certificate is checked against.
#[derive(Debug, Clone)]
enum Check {
    /// `prefer`/`require` without `sslrootcert`: encrypted, not authenticated.
    Nothing,
    /// The roots of `sslrootcert`; the host name too when `names`.
    Roots {
        roots: Arc<RootCertStore>,
        shown: String,
        names: bool,
    },
    /// The system's roots; the host name too when `names`.
    System { names: bool },
}

/// tokio-postgres' TLS connector over rustls, for one [`SslMode`].
#[derive(Clone)]
pub struct MakeRustlsConnect {
    /// `None`: `sslmode=disable`.
    config: Option<Arc<ClientConfig>>,
    mode: SslMode,
    /// How a failed check is explained.
    roots_shown: Option<String>,
}

impl fmt::Debug for MakeRustlsConnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MakeRustlsConnect")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

impl MakeRustlsConnect {
    fn disabled() -> Self {
        MakeRustlsConnect {
            config: None,
            mode: SslMode::Disable,
            roots_shown: None,
        }
    }

    fn new(check: Check, mode: SslMode) -> Result<Self, TlsSetupError> {
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsSetupError(format!("TLS cannot be set up: {e}")))?;
        let system = |names: bool| -> Result<Arc<dyn ServerCertVerifier>, TlsSetupError> {
            let verifier = rustls_platform_verifier::Verifier::new(provider.clone()).map_err(|e| {
                TlsSetupError(format!(
                    "sslmode={} checks the server's certificate, and the system's root certificates cannot be used ({e}); name a root certificate file with sslrootcert=/path/ca.pem",
                    mode.name()
                ))
            })?;
            Ok(Arc::new(ChainCheck {
                inner: Arc::new(verifier),
                names,
            }))
        };
        let (verifier, roots_shown): (Arc<dyn ServerCertVerifier>, _) = match check {
            Check::Nothing => (Arc::new(NoCheck(provider.clone())), None),
            Check::Roots {
                roots,
                shown,
                names,
            } => {
                let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
                    roots,
                    provider.clone(),
                )
                .build()
                .map_err(|e| TlsSetupError(format!("sslrootcert {shown}: {e}")))?;
                (Arc::new(ChainCheck { inner, names }), Some(shown))
            }
            Check::System { names } => (system(names)?, Some("the system's roots".to_string())),
        };
        let config = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(MakeRustlsConnect {
            config: Some(Arc::new(config)),
            mode,
            roots_shown,
        })
    }
}

impl<S> MakeTlsConnect<S> for MakeRustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = TlsSetupError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, TlsSetupError> {
        let Some(config) = &self.config else {
            return Ok(RustlsConnect { inner: None });
        };
        let bare = domain.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(bare.to_string())
            .map_err(|_| TlsSetupError(format!("`{bare}` is not a host name TLS can check")))?;
        Ok(RustlsConnect {
            inner: Some((
                tokio_rustls::TlsConnector::from(config.clone()),
                name,
                self.mode,
                self.roots_shown.clone(),
            )),
        })
    }
}

/// One connection's TLS handshake.
pub struct RustlsConnect {
    inner: Option<(
        tokio_rustls::TlsConnector,
        ServerName<'static>,
        SslMode,
        Option<String>,
    )>,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let Some((connector, name, mode, roots)) = self.inner else {
                return Err(io::Error::other("sslmode=disable: no TLS"));
            };
            let host = name.to_str().into_owned();
            connector
                .connect(name, stream)
                .await
                .map(RustlsStream)
                .map_err(|e| explain(e, mode, &host, roots.as_deref()))
        })
    }
}

/// A handshake failure in words an operator can act on.
fn explain(error: io::Error, mode: SslMode, host: &str, roots: Option<&str>) -> io::Error {
    let rustls_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .cloned();
    let roots = roots.unwrap_or("the root certificates");
    let text = match rustls_error {
        Some(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        )) => format!(
            "TLS: the server's certificate is not valid for host name `{host}` (sslmode={} checks the name; connect by a name the certificate holds, or use verify-ca)",
            mode.name()
        ),
        // BadSignature: an issuer of the same name, another key.
        Some(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        )) => format!(
            "TLS: the server's certificate is not signed by a trusted root ({roots}; sslmode={}): check sslrootcert",
            mode.name()
        ),
        Some(rustls::Error::InvalidCertificate(other)) => format!(
            "TLS: the server's certificate is refused ({other:?}; roots: {roots}; sslmode={})",
            mode.name()
        ),
        Some(other) => format!("TLS handshake failed: {other}"),
        None => format!("TLS handshake failed: {error}"),
    };
    io::Error::new(error.kind(), text)
}

/// The TLS stream tokio-postgres reads and writes.
pub struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

/// `prefer`/`require` without a root certificate: any certificate, but the
/// handshake's signatures are still checked.
#[derive(Debug)]
struct NoCheck(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCheck {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The chain checked by `inner`; a certificate for another name accepted
/// unless `names` (`verify-ca`: the chain is checked before the name, so
/// only a good chain reaches the name check).
#[derive(Debug)]
struct ChainCheck {
    inner: Arc<dyn ServerCertVerifier>,
    names: bool,
}

impl ServerCertVerifier for ChainCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.names => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parameters_are_taken_out_and_the_rest_kept() {
        let parsed = PgConnectionString::parse(
            "postgres://u:pw@db.internal:5433/app?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fc+a.pem",
        )
        .unwrap();
        assert_eq!(parsed.ssl_mode, SslMode::VerifyFull);
        assert_eq!(
            parsed.root_cert,
            Some(RootCert::File(PathBuf::from("/etc/c+a.pem")))
        );
        assert_eq!(
            parsed.config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
        assert_eq!(parsed.config.get_application_name(), Some("x"));
        assert_eq!(parsed.config.get_ports(), [5433]);

        let plain = PgConnectionString::parse("postgresql://db/app").unwrap();
        assert_eq!(plain.ssl_mode, SslMode::Prefer);
        assert_eq!(plain.root_cert, None);
        let system = PgConnectionString::parse("postgres://db/app?sslrootcert=system").unwrap();
        assert_eq!(system.root_cert, Some(RootCert::System));
        assert_eq!(system.ssl_mode, SslMode::VerifyFull);
        let error =
            PgConnectionString::parse("postgres://db/app?sslrootcert=system&sslmode=verify-ca")
                .unwrap_err();
        assert_eq!(
            error.to_string(),
            "sslrootcert=system needs sslmode=verify-full, not verify-ca"
        );
    }

    #[test]
    fn key_value_parameters_are_taken_out_and_the_rest_kept() {
        let parsed = PgConnectionString::parse(
            "host=db.internal port=5433 password='s3cret \\' x' sslmode = verify-ca sslrootcert='/etc/my ca.pem' dbname=app",
        )
        .unwrap();
        assert_eq!(parsed.ssl_mode, SslMode::VerifyCa);
        assert_eq!(
            parsed.root_cert,
            Some(RootCert::File(PathBuf::from("/etc/my ca.pem")))
        );
        assert_eq!(parsed.config.get_dbname(), Some("app"));
        assert_eq!(parsed.config.get_password(), Some(&b"s3cret ' x"[..]));
        assert_eq!(parsed.config.get_ports(), [5433]);
    }

    #[test]
    fn a_bad_sslmode_names_the_parameter_and_the_values() {
        for url in [
            "postgres://u:s3cret-pw@db/app?sslmode=verify_full",
            "host=db password=s3cret-pw sslmode=verify_full",
        ] {
            let error = PgConnectionString::parse(url).unwrap_err().to_string();
            assert_eq!(
                error,
                "sslmode `verify_full` is not one of disable, prefer, require, verify-ca, verify-full"
            );
        }
        let error =
            PgConnectionString::parse("postgres://u:s3cret-pw@db/app?sslmode=s3cret-pw%20x")
                .unwrap_err()
                .to_string();
        assert!(!error.contains("s3cret"), "{error}");
        assert!(error.starts_with("sslmode is not one of"), "{error}");
    }

    #[test]
    fn a_missing_or_empty_root_certificate_is_named() {
        let parsed = PgConnectionString::parse(
            "postgres://u:s3cret-pw@db/app?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        )
        .unwrap();
        let error = parsed.connector().unwrap_err().to_string();
        assert!(
            error.starts_with("sslrootcert /nonexistent/ca.pem: cannot read it"),
            "{error}"
        );
        let error = parsed
            .connector_with(Some((Path::new("/x/ca.pem"), b"not pem")))
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "sslrootcert /x/ca.pem: the file holds no PEM certificate"
        );
        assert!(!error.contains("s3cret"));
    }

    #[test]
    fn every_mode_builds_a_connector() {
        for mode in SslMode::NAMES {
            let parsed =
                PgConnectionString::parse(&format!("postgres://db/app?sslmode={mode}")).unwrap();
            let connector = parsed.connector().expect(mode);
            assert_eq!(connector.config.is_none(), mode == "disable");
        }
    }
}
