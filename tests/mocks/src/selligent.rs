//! Mock Selligent Individual API (`/automation/individual.asmx`), answering
//! as the SOAP service does: HTTP 200 with a `TriggerCampaignResult` code and
//! `ErrorStr` — 0 ok, 10001 login failed, 10009 XML unparsable, 10012 gate
//! disabled, 10013 invalid argument, 10016 invalid column — and switchable
//! faults (5xx, a non-SOAP answer, slowness). It checks `SOAPAction`, the
//! content type and the `AutomationAuthHeader`, knows its gates and the
//! columns of the list behind them, and records the InputData of every
//! trigger; a trigger creates or updates the profile keyed by `MAIL`.
//!
//! It also answers `GetUserByFilter` (the connector's connection check): the
//! login first (10001), then the profile whose `MAIL` the filter names (0
//! with its columns, or 10005 no result), writing nothing.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value as Json;

use super::{MockServer, RecordedRequest, serve};

pub const SOAP_ACTION: &str = "\"http://tempuri.org/TriggerCampaign\"";
/// The read a connection check makes.
pub const GET_USER_BY_FILTER: &str = "\"http://tempuri.org/GetUserByFilter\"";

/// One `TriggerCampaign` the mock accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    pub gate: String,
    /// InputData, in order: (Key, Value), unescaped.
    pub input: Vec<(String, String)>,
}

/// What the next triggers get instead of a normal answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// This HTTP status with a SOAP fault body.
    Status(u16),
    /// HTTP 200 with a body that is not SOAP (a proxy's error page).
    NotSoap,
    /// Answer normally after this delay.
    Slow(Duration),
}

#[derive(Debug, Default)]
struct Inner {
    login: String,
    password: String,
    /// Gate → enabled.
    gates: BTreeMap<String, bool>,
    columns: Vec<String>,
    triggers: Vec<Trigger>,
    /// Profiles by MAIL: column → value.
    profiles: BTreeMap<String, BTreeMap<String, String>>,
    faults: VecDeque<Fault>,
    requests: Vec<RecordedRequest>,
}

/// Handle on a running mock.
#[derive(Clone, Debug)]
pub struct Selligent {
    inner: Arc<Mutex<Inner>>,
}

impl Selligent {
    /// Starts an installation whose API user is `login`/`password`, with
    /// these gates (name, enabled) in front of a list with these columns.
    pub async fn start(
        login: &str,
        password: &str,
        gates: &[(&str, bool)],
        columns: &[&str],
    ) -> std::io::Result<MockServer<Selligent>> {
        let handle = Selligent {
            inner: Arc::new(Mutex::new(Inner {
                login: login.into(),
                password: password.into(),
                gates: gates.iter().map(|(g, on)| (g.to_string(), *on)).collect(),
                columns: columns.iter().map(|c| c.to_string()).collect(),
                ..Default::default()
            })),
        };
        let router = Router::new()
            .fallback(handle_request)
            .with_state(handle.clone());
        serve(0, router, handle).await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn push_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        self.lock().faults.extend(faults);
    }

    pub fn set_gate(&self, gate: &str, enabled: bool) {
        self.lock().gates.insert(gate.into(), enabled);
    }

    /// Accepted triggers, in order.
    pub fn triggers(&self) -> Vec<Trigger> {
        self.lock().triggers.clone()
    }

    /// The profile with this MAIL: column → value.
    pub fn profile(&self, mail: &str) -> Option<BTreeMap<String, String>> {
        self.lock().profiles.get(mail).cloned()
    }

    /// Every request, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }
}

fn soap_result(code: i64, error: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
         <soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\">\
         <soap:Body><TriggerCampaignResponse xmlns=\"http://tempuri.org/\">\
         <TriggerCampaignResult>{code}</TriggerCampaignResult><ErrorStr>{}</ErrorStr>\
         </TriggerCampaignResponse></soap:Body></soap:Envelope>",
        xml_escape(error)
    );
    (
        StatusCode::OK,
        [("content-type", "text/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

fn soap_fault(status: StatusCode, text: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\">\
         <soap:Body><soap:Fault><faultcode>soap:Server</faultcode><faultstring>{text}</faultstring></soap:Fault></soap:Body></soap:Envelope>"
    );
    (status, [("content-type", "text/xml; charset=utf-8")], body).into_response()
}

async fn handle_request(
    State(mock): State<Selligent>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let text = String::from_utf8_lossy(&body).into_owned();
    let fault = {
        let mut inner = mock.lock();
        inner.requests.push(RecordedRequest::new(
            &method,
            &uri,
            &headers,
            Json::String(text.clone()),
        ));
        inner.faults.pop_front()
    };
    match fault {
        Some(Fault::Status(status)) => {
            return soap_fault(
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "Server was unable to process request.",
            );
        }
        Some(Fault::NotSoap) => {
            return (StatusCode::OK, "<html><body>Maintenance</body></html>").into_response();
        }
        Some(Fault::Slow(delay)) => tokio::time::sleep(delay).await,
        None => {}
    }
    if method != Method::POST || uri.path() != "/automation/individual.asmx" {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    if header("soapaction") == GET_USER_BY_FILTER && header("content-type").starts_with("text/xml")
    {
        return get_user_by_filter(&mock, &text);
    }
    if header("soapaction") != SOAP_ACTION || !header("content-type").starts_with("text/xml") {
        // What ASMX answers to a request it cannot dispatch.
        return soap_fault(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Server did not recognize the value of HTTP Header SOAPAction.",
        );
    }
    let Some(request) = parse(&text) else {
        return soap_result(10009, "XML unparsable");
    };
    let mut inner = mock.lock();
    if request.login != inner.login || request.password != inner.password {
        return soap_result(10001, "Login failed or IP address not allowed");
    }
    match inner.gates.get(&request.gate) {
        Some(true) => {}
        Some(false) => return soap_result(10012, &format!("Gate {} is disabled", request.gate)),
        None => {
            return soap_result(
                10013,
                &format!("Invalid argument: unknown gate {}", request.gate),
            );
        }
    }
    if let Some((unknown, _)) = request
        .input
        .iter()
        .find(|(key, _)| !inner.columns.contains(key))
    {
        return soap_result(10016, &format!("Invalid column name {unknown}"));
    }
    let Some(mail) = request
        .input
        .iter()
        .find(|(key, _)| key == "MAIL")
        .map(|(_, v)| v.clone())
    else {
        return soap_result(10013, "Invalid argument: MAIL is required");
    };
    let profile = inner.profiles.entry(mail).or_default();
    profile.extend(request.input.iter().cloned());
    inner.triggers.push(Trigger {
        gate: request.gate,
        input: request.input,
    });
    soap_result(0, "")
}

/// `GetUserByFilter{List, Filter}`: the login first (10001), then the
/// profile whose `MAIL` is the filter's (the mock has one list, whatever
/// its id): 0 with its columns in `ResultSet`, or 10005 no result. Writes
/// nothing.
fn get_user_by_filter(mock: &Selligent, xml: &str) -> Response {
    let answer = |code: i64, result: &str, error: &str| {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
             <soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\" \
             xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\">\
             <soap:Body><GetUserByFilterResponse xmlns=\"http://tempuri.org/\">\
             <GetUserByFilterResult>{code}</GetUserByFilterResult><ResultSet>{result}</ResultSet>\
             <ErrorStr>{}</ErrorStr></GetUserByFilterResponse></soap:Body></soap:Envelope>",
            xml_escape(error)
        );
        (
            StatusCode::OK,
            [("content-type", "text/xml; charset=utf-8")],
            body,
        )
            .into_response()
    };
    let (Some(login), Some(password)) = (text_of(xml, "Login"), text_of(xml, "Password")) else {
        return answer(10009, "", "XML unparsable");
    };
    let inner = mock.lock();
    if login != inner.login || password != inner.password {
        return answer(10001, "", "Login failed or IP address not allowed");
    }
    let mail = between(xml, "<Filter>", "</Filter>")
        .and_then(|filter| between(filter, "<Property>", "</Property>"))
        .filter(|property| text_of(property, "Key").as_deref() == Some("MAIL"))
        .and_then(|property| text_of(property, "Value"));
    match mail.and_then(|mail| inner.profiles.get(&mail)) {
        Some(profile) => {
            let result: String = profile
                .iter()
                .map(|(key, value)| {
                    format!(
                        "<Property><Key>{}</Key><Value>{}</Value></Property>",
                        xml_escape(key),
                        xml_escape(value)
                    )
                })
                .collect();
            answer(0, &result, "")
        }
        None => answer(10005, "", "No result"),
    }
}

struct Parsed {
    login: String,
    password: String,
    gate: String,
    input: Vec<(String, String)>,
}

/// Reads the envelope as the service does: it must be an XML SOAP envelope
/// with the auth header and a `TriggerCampaign` body.
fn parse(xml: &str) -> Option<Parsed> {
    if !xml.trim_start().starts_with('<') || !xml.contains("Envelope") {
        return None;
    }
    let login = text_of(xml, "Login")?;
    let password = text_of(xml, "Password")?;
    let gate = text_of(xml, "GateName")?;
    let data = between(xml, "<InputData>", "</InputData>").unwrap_or("");
    let mut input = Vec::new();
    let mut rest = data;
    while let Some(property) = between(rest, "<Property>", "</Property>") {
        input.push((
            text_of(property, "Key")?,
            text_of(property, "Value").unwrap_or_default(),
        ));
        let consumed = rest.find("</Property>")? + "</Property>".len();
        rest = &rest[consumed..];
    }
    Some(Parsed {
        login,
        password,
        gate,
        input,
    })
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(close)? + start;
    Some(&text[start..end])
}

fn text_of(xml: &str, tag: &str) -> Option<String> {
    if xml.contains(&format!("<{tag}/>")) {
        return Some(String::new());
    }
    between(xml, &format!("<{tag}>"), &format!("</{tag}>")).map(xml_unescape)
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn xml_unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}
