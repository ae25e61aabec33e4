//! HTTPS for the mocks, as a vendor's API serves it: a certificate authority
//! made at run time (an operator names its PEM in
//! `egress.extra_root_certificates`), and a server on loopback that speaks
//! HTTP/2 or HTTP/1.1 as the client's TLS handshake (ALPN) asks, counting
//! its connections and the protocol each one chose.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

use super::MockServer;

/// A certificate authority for tests; each instance is a new one.
pub struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

impl TestCa {
    pub fn new() -> Self {
        let key = rcgen::KeyPair::generate().expect("a key pair");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "prefsync test CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let pem = params.self_signed(&key).expect("a CA certificate").pem();
        TestCa {
            issuer: rcgen::Issuer::new(params, key),
            pem,
        }
    }

    /// The CA's certificate, PEM: what an operator would trust.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A server certificate for `localhost` and 127.0.0.1, signed by this CA.
    fn server_identity(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let key = rcgen::KeyPair::generate().expect("a key pair");
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let params = rcgen::CertificateParams::new(names).expect("params");
        let certificate = params
            .signed_by(&key, &self.issuer)
            .expect("a server certificate");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (vec![certificate.der().clone()], key)
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

/// What a TLS mock saw of its connections.
#[derive(Debug, Default)]
pub struct TlsStats {
    connections: AtomicUsize,
    http2: AtomicUsize,
}

impl TlsStats {
    /// Connections whose TLS handshake completed.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Of those, the ones that chose HTTP/2 (ALPN `h2`).
    pub fn http2_connections(&self) -> usize {
        self.http2.load(Ordering::SeqCst)
    }
}

/// Serves `router` over TLS on a free loopback port, with a certificate for
/// `localhost` signed by `ca`: HTTP/2 to a client that offers `h2`, HTTP/1.1
/// otherwise. The mock's `url()` is `https://localhost:PORT`.
pub async fn serve_tls<S>(
    router: axum::Router,
    state: S,
    ca: &TestCa,
) -> std::io::Result<MockServer<S>> {
    let (chain, key) = ca.server_identity();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(std::io::Error::other)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let stats = Arc::new(TlsStats::default());
    let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
    let counted = stats.clone();
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = &mut rx => return,
            };
            let Ok((tcp, _)) = accepted else {
                // Out of descriptors, say: wait rather than spin.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            };
            let (acceptor, router, stats) = (acceptor.clone(), router.clone(), counted.clone());
            tokio::spawn(async move {
                // A client that refuses our certificate ends here.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let http2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                stats.connections.fetch_add(1, Ordering::SeqCst);
                let service = TowerToHyperService::new(router);
                let io = TokioIo::new(tls);
                if http2 {
                    stats.http2.fetch_add(1, Ordering::SeqCst);
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, service)
                        .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                }
            });
        }
    });
    Ok(MockServer {
        addr,
        state,
        shutdown: Some(tx),
        tls: Some(stats),
    })
}
