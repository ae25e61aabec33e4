//! In-process mock destinations that answer as the vendors document. Each
//! listens on `127.0.0.1:0` and records every request it gets.

pub mod actito;
pub mod braze;
pub mod brevo;
pub mod didomi;
pub mod dotdigital;
pub mod engage;
pub mod hubspot;
pub mod klaviyo;
pub mod mailchimp;
pub mod receiver;
pub mod selligent;
pub mod sfmc;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::{HeaderMap, Method, Uri};

/// One request as the mock saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    /// Path without the query.
    pub path: String,
    pub query: Option<String>,
    /// Headers, lower-case names; `authorization` is kept so tests can check it.
    pub headers: Vec<(String, String)>,
    pub body: serde_json::Value,
}

impl RecordedRequest {
    pub fn new(method: &Method, uri: &Uri, headers: &HeaderMap, body: serde_json::Value) -> Self {
        RecordedRequest {
            method: method.to_string(),
            path: uri.path().to_string(),
            query: uri.query().map(str::to_string),
            headers: headers
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                .collect(),
            body,
        }
    }
}

/// Requests being answered now, and the most at once.
#[derive(Debug, Default)]
pub struct ConcurrencyGauge {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl ConcurrencyGauge {
    /// The most requests answered at once so far.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

/// One request being answered; counted until dropped.
pub struct InFlight<'a>(&'a ConcurrencyGauge);

impl<'a> InFlight<'a> {
    /// Counts a request in; `.now()` tells how many are in flight with it.
    pub fn enter(gauge: &'a ConcurrencyGauge) -> Self {
        let now = gauge.now.fetch_add(1, Ordering::SeqCst) + 1;
        gauge.peak.fetch_max(now, Ordering::SeqCst);
        InFlight(gauge)
    }

    pub fn now(&self) -> usize {
        self.0.now.load(Ordering::SeqCst)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Decodes `%XX` escapes of a URL path segment.
pub fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some([b'%', hi, lo]) => hex(*hi).zip(hex(*lo)).map(|(h, l)| h * 16 + l),
            _ => None,
        };
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A mock listening on loopback; stopped when dropped.
pub struct MockServer<S> {
    pub addr: SocketAddr,
    pub state: S,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    /// Set when it serves HTTPS ([`tls::serve_tls`]).
    tls: Option<Arc<tls::TlsStats>>,
}

impl<S> MockServer<S> {
    /// `http://127.0.0.1:PORT`, or `https://localhost:PORT` over TLS (the
    /// name its certificate carries).
    pub fn url(&self) -> String {
        match self.tls {
            Some(_) => format!("https://localhost:{}", self.addr.port()),
            None => format!("http://{}", self.addr),
        }
    }

    /// Its TLS connections, when it serves HTTPS.
    pub fn tls_stats(&self) -> Option<&tls::TlsStats> {
        self.tls.as_deref()
    }
}

/// The mock's handle, so `mock.requests()` reads as well as `mock.state.requests()`.
impl<S> std::ops::Deref for MockServer<S> {
    type Target = S;

    fn deref(&self) -> &S {
        &self.state
    }
}

impl<S> Drop for MockServer<S> {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Serves `router` on loopback, on `port` (0: a free one).
pub async fn serve<S>(port: u16, router: axum::Router, state: S) -> std::io::Result<MockServer<S>> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
    });
    Ok(MockServer {
        addr,
        state,
        shutdown: Some(tx),
        tls: None,
    })
}
