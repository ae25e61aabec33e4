//! A generic webhook receiver, as a customer's endpoint would be: it records
//! every POST, checks a signature when told how (the caller supplies the
//! verification, so the tests can use an implementation of their own), and
//! answers from a queue of statuses (204 when the queue is empty).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value as Json;

use super::tls::{TestCa, serve_tls};
use super::{MockServer, RecordedRequest, serve};

/// Decides whether a request's signature is right: (headers, body) → ok.
pub type Verifier = Arc<dyn Fn(&HeaderMap, &[u8]) -> bool + Send + Sync>;

#[derive(Default)]
struct Inner {
    statuses: VecDeque<u16>,
    requests: Vec<RecordedRequest>,
    accepted: Vec<Json>,
    bad_signatures: usize,
}

/// Handle on a running receiver.
#[derive(Clone)]
pub struct Receiver {
    inner: Arc<Mutex<Inner>>,
    verify: Option<Verifier>,
}

impl Receiver {
    /// Starts a receiver; with `verify`, a request it refuses gets a 401.
    pub async fn start(verify: Option<Verifier>) -> std::io::Result<MockServer<Receiver>> {
        let (handle, router) = Self::routed(verify);
        serve(0, router, handle).await
    }

    /// Like [`Receiver::start`], over HTTPS with a certificate signed by `ca`.
    pub async fn start_tls(
        verify: Option<Verifier>,
        ca: &TestCa,
    ) -> std::io::Result<MockServer<Receiver>> {
        let (handle, router) = Self::routed(verify);
        serve_tls(router, handle, ca).await
    }

    /// A new receiver and the router that answers for it.
    fn routed(verify: Option<Verifier>) -> (Receiver, Router) {
        let handle = Receiver {
            inner: Arc::default(),
            verify,
        };
        let router = Router::new()
            .fallback(handle_request)
            .with_state(handle.clone());
        (handle, router)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next requests get these statuses, in order.
    pub fn push_statuses(&self, statuses: impl IntoIterator<Item = u16>) {
        self.lock().statuses.extend(statuses);
    }

    /// Bodies answered with a 2xx, in order.
    pub fn accepted(&self) -> Vec<Json> {
        self.lock().accepted.clone()
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// Requests refused for a wrong or missing signature.
    pub fn bad_signatures(&self) -> usize {
        self.lock().bad_signatures
    }
}

async fn handle_request(
    State(receiver): State<Receiver>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json: Json = serde_json::from_slice(&body).unwrap_or(Json::Null);
    let mut inner = receiver.lock();
    inner
        .requests
        .push(RecordedRequest::new(&method, &uri, &headers, json.clone()));
    if let Some(verify) = &receiver.verify
        && !verify(&headers, &body)
    {
        inner.bad_signatures += 1;
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    let status = inner.statuses.pop_front().unwrap_or(204);
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_success() {
        inner.accepted.push(json);
    }
    (status, "").into_response()
}
