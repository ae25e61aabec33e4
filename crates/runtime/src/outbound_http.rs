//! The HTTP lent to connectors: the one hook where every request is checked
//! against the integration's allowlist and the egress options, then handed
//! to a [`Transport`] — the network ([`Network`]: one pooled client,
//! redirects off, a resolver that enforces the egress options after DNS, a
//! cap on response size) or, in `prefsync connector test`, a cassette.
//! [`HostHttp`] is the same policy for requests the host sends by itself.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use crate::bindings::{HttpError, Request, Response};
use crate::egress::{self, Allowlist, Denied, EgressOptions, PolicyResolver};

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

/// What every client the egress policy builds has in common: redirects off
/// (a redirect would reach a target the policy never checked), the
/// [`PolicyResolver`] (every resolved address checked), no proxy from the
/// environment, the operator's extra root certificates beside the system's,
/// and HTTP/2 when the server offers it in the TLS handshake (ALPN), which
/// multiplexes a destination's requests over one connection; plain `http://`
/// stays HTTP/1.1.
fn policy_client(options: &EgressOptions) -> Result<reqwest::ClientBuilder> {
    let roots = egress::roots::load(&options.extra_root_certificates)?;
    let mut certificates = Vec::with_capacity(roots.len());
    for root in roots {
        certificates.push(reqwest::Certificate::from_der(&root)?);
    }
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(PolicyResolver::new(options.clone())))
        .no_proxy()
        .tls_certs_merge(certificates))
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
        let client = policy_client(&options)?
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

/// HTTP the host sends by itself (an activation's warnings webhook): no
/// integration allowlist, but the same egress options as connectors' —
/// [`egress::check_host_url`] before DNS, the [`PolicyResolver`] after it —
/// redirects off and no proxy.
#[derive(Debug, Clone)]
pub struct HostHttp {
    options: EgressOptions,
    client: reqwest::Client,
}

/// Why a host-originated request got no answer. The text names the host
/// and the reason, never the URL's path, query or credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostHttpError {
    #[error("refused by the egress policy: {0}")]
    Denied(#[from] Denied),
    #[error("{host} did not answer in time")]
    Timeout { host: String },
    #[error("{host} could not be reached: {reason}")]
    Connection { host: String, reason: String },
}

impl HostHttp {
    /// A client whose requests give up after `timeout`.
    pub fn new(options: EgressOptions, timeout: Duration) -> Result<Self> {
        let client = policy_client(&options)?
            .connect_timeout(timeout)
            .timeout(timeout)
            .user_agent(concat!("prefsync/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(HostHttp { options, client })
    }

    /// POSTs a JSON body to `url` once the policy allows it; the answer's
    /// status (a 3xx is returned as it is, never followed).
    pub async fn post_json(
        &self,
        url: &str,
        body: String,
    ) -> Result<reqwest::StatusCode, HostHttpError> {
        let url = egress::check_host_url(url, &self.options)?;
        let host = url.host_str().unwrap_or_default().to_string();
        let response = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|error| host_error(&host, error))?;
        Ok(response.status())
    }
}

/// Largest answer [`HostHttp::send`] reads, in bytes.
pub const HOST_MAX_RESPONSE_BYTES: usize = 1024 * 1024;

impl HostHttp {
    /// Sends `request` once the policy allows its URL, and reads the answer
    /// (at most [`HOST_MAX_RESPONSE_BYTES`]); a 3xx is returned as it is.
    /// For clients that bring their own request (the OTLP trace exporter).
    pub async fn send(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, HostHttpError> {
        let (parts, body) = request.into_parts();
        let url = egress::check_host_url(&parts.uri.to_string(), &self.options)?;
        let host = url.host_str().unwrap_or_default().to_string();
        let mut response = self
            .client
            .request(parts.method, url)
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .map_err(|error| host_error(&host, error))?;
        let mut answer = http::Response::builder()
            .status(response.status())
            .version(response.version());
        if let Some(headers) = answer.headers_mut() {
            *headers = std::mem::take(response.headers_mut());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| host_error(&host, error))?
        {
            if body.len() + chunk.len() > HOST_MAX_RESPONSE_BYTES {
                return Err(HostHttpError::Connection {
                    host,
                    reason: format!("answer over {HOST_MAX_RESPONSE_BYTES} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        answer
            .body(bytes::Bytes::from(body))
            .map_err(|error| HostHttpError::Connection {
                host,
                reason: error.to_string(),
            })
    }
}

/// A host-originated request's failure: the resolver's refusal as it is,
/// otherwise the innermost cause (reqwest's own text would show the URL).
fn host_error(host: &str, error: reqwest::Error) -> HostHttpError {
    let error = error.without_url();
    if error.is_timeout() {
        return HostHttpError::Timeout {
            host: host.to_string(),
        };
    }
    let mut reason = error.to_string();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(e) = source {
        if let Some(denied) = e.downcast_ref::<Denied>() {
            return HostHttpError::Denied(denied.clone());
        }
        reason = e.to_string();
        source = e.source();
    }
    HostHttpError::Connection {
        host: host.to_string(),
        reason,
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
