//! The HTTP lent to connectors: the one hook where every request is checked
//! against the integration's allowlist and the egress options, then handed
//! to a [`Transport`] — the network ([`Network`]: one pooled client,
//! redirects off, a resolver that enforces the egress options after DNS, a
//! cap on response size) or, in `prefsync plugin test`, a cassette.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use crate::egress::{self, Allowlist, Denied, EgressOptions, PolicyResolver};
use crate::runtime::bindings::{HttpError, Request, Response};

/// Where an allowed request goes.
#[async_trait::async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Sends `request` to `url` (already checked) and waits at most `timeout`.
    async fn send(
        &self,
        request: Request,
        url: url::Url,
        timeout: Duration,
    ) -> Result<Response, HttpError>;
}

/// The shared outbound HTTP: policy check, then the transport.
#[derive(Clone)]
pub struct OutboundHttp {
    options: EgressOptions,
    max_timeout: Duration,
    transport: Arc<dyn Transport>,
}

impl std::fmt::Debug for OutboundHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundHttp")
            .field("options", &self.options)
            .field("max_timeout", &self.max_timeout)
            .finish_non_exhaustive()
    }
}

impl OutboundHttp {
    /// Requests go to the network.
    pub fn new(
        options: EgressOptions,
        max_response_bytes: u64,
        max_timeout: Duration,
    ) -> Result<Self> {
        let network = Network::new(options.clone(), max_response_bytes)?;
        Ok(Self::with_transport(
            options,
            max_timeout,
            Arc::new(network),
        ))
    }

    /// Requests the policy allows go to `transport`.
    pub fn with_transport(
        options: EgressOptions,
        max_timeout: Duration,
        transport: Arc<dyn Transport>,
    ) -> Self {
        OutboundHttp {
            options,
            max_timeout,
            transport,
        }
    }

    /// Checks `request` against the policy and sends it. A denial comes back
    /// as [`HttpError::Denied`] with the host and the reason.
    pub async fn send(
        &self,
        request: Request,
        allowlist: &Allowlist,
    ) -> Result<Response, HttpError> {
        let url = egress::check_url(&request.url, allowlist, &self.options)
            .map_err(|d| HttpError::Denied(d.to_string()))?;
        let timeout = request
            .timeout_ms
            .map(|ms| Duration::from_millis(ms.into()).min(self.max_timeout))
            .unwrap_or(self.max_timeout);
        self.transport.send(request, url, timeout).await
    }
}

/// The network: one pooled reqwest client whose resolver enforces the
/// egress options on every resolved address.
#[derive(Debug, Clone)]
pub struct Network {
    client: reqwest::Client,
    max_response_bytes: u64,
}

impl Network {
    pub fn new(options: EgressOptions, max_response_bytes: u64) -> Result<Self> {
        let client = reqwest::Client::builder()
            // A redirect would bypass the allowlist check of its target.
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(std::sync::Arc::new(PolicyResolver::new(options.clone())))
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("prefsync/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Network {
            client,
            max_response_bytes,
        })
    }
}

#[async_trait::async_trait]
impl Transport for Network {
    async fn send(
        &self,
        request: Request,
        url: url::Url,
        timeout: Duration,
    ) -> Result<Response, HttpError> {
        let method = reqwest::Method::from_bytes(request.method.as_str().as_bytes())
            .expect("the contract's methods are valid HTTP methods");
        let mut builder = self.client.request(method, url).timeout(timeout);
        for (name, value) in &request.headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| HttpError::InvalidRequest(format!("bad header name `{name}`")))?;
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| HttpError::InvalidRequest(format!("bad value for header `{name}`")))?;
            builder = builder.header(name, value);
        }
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let mut response = builder.send().await.map_err(transport_error)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        if response
            .content_length()
            .is_some_and(|len| len > self.max_response_bytes)
        {
            return Err(HttpError::TooLarge(self.max_response_bytes));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            if (body.len() + chunk.len()) as u64 > self.max_response_bytes {
                return Err(HttpError::TooLarge(self.max_response_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

/// Maps a reqwest failure to the contract's error; a resolver denial keeps its text.
fn transport_error(error: reqwest::Error) -> HttpError {
    if error.is_timeout() {
        return HttpError::Timeout;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(e) = source {
        if let Some(denied) = e.downcast_ref::<Denied>() {
            return HttpError::Denied(denied.to_string());
        }
        source = e.source();
    }
    // reqwest's top-level text is terse; the innermost cause says what failed.
    let mut detail = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(e) = source {
        detail = e.to_string();
        source = e.source();
    }
    HttpError::Connection(detail)
}
