//! In-process mock destinations that answer as the vendors document. Each
//! listens on `127.0.0.1:0` and records every request it gets.

pub mod dotdigital;

use std::net::SocketAddr;

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

/// A mock listening on loopback; stopped when dropped.
pub struct MockServer<S> {
    pub addr: SocketAddr,
    pub state: S,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl<S> MockServer<S> {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
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
    })
}
