//! The Gate API (Selligent's SOAP "Individual API"): `TriggerCampaign`
//! through a gate, at `{url}/automation/individual.asmx`. Selligent answers
//! HTTP 200 even when it refuses: the verdict is the `TriggerCampaignResult`
//! code in the SOAP body, with `ErrorStr`. The envelope is written here (a
//! fixed shape, escaped values); answers are read with `quick-xml`.

use prefsync_sdk::connection::{unreachable, verdict};
use prefsync_sdk::http::failure_from_response;
use prefsync_sdk::mapping::map_record;
use prefsync_sdk::{
    ConsentRecord, Context, DeliveredKind, Failure, Method, Outcome, Request, ValidationProblem,
    Value,
};
use quick_xml::escape::resolve_xml_entity;
use quick_xml::events::Event;
use quick_xml::reader::Reader;

use crate::config::GateConfig;

const SOAP_ACTION: &str = "\"http://tempuri.org/TriggerCampaign\"";
const REQUEST_TIMEOUT_MS: u32 = 60_000;

pub fn deliver(ctx: &Context<'_>, config: &GateConfig, record: &ConsentRecord) -> Outcome {
    let input: Vec<(String, String)> = map_record(&config.mappings, record)
        .into_iter()
        .map(|field| (field.field.to_string(), selligent_value(field.value)))
        .collect();
    let request = Request::new(Method::Post, config.endpoint())
        .body(
            "text/xml; charset=utf-8",
            envelope(config, &input).into_bytes(),
        )
        .header("SOAPAction", SOAP_ACTION)
        .timeout_ms(REQUEST_TIMEOUT_MS);
    let response = match ctx.send(request) {
        Ok(response) => response,
        Err(e) => return e.into_outcome("Selligent TriggerCampaign"),
    };
    if response.status != 200 {
        // A SOAP fault comes as a 500; it is the server's trouble: retried.
        let detail = element(&String::from_utf8_lossy(&response.body), "faultstring")
            .unwrap_or_else(|| response.text_snippet(200));
        return failure_from_response(&response, &detail);
    }
    let body = String::from_utf8_lossy(&response.body);
    match element(&body, "TriggerCampaignResult").map(|code| code.trim().parse::<i64>()) {
        Some(Ok(code)) => classify(code, element(&body, "ErrorStr").unwrap_or_default()),
        _ => Outcome::Failed(Failure {
            retryable: true,
            retry_after_ms: None,
            message: format!(
                "Selligent answered without a TriggerCampaignResult: {}",
                response.text_snippet(120)
            ),
        }),
    }
}

/// `SOAPAction` of the connection check's read.
const GET_USER_BY_FILTER: &str = "\"http://tempuri.org/GetUserByFilter\"";
/// The check's filter: no profile has this address (`.invalid` is
/// reserved), so nothing is found and nothing is written.
pub const CHECK_MAIL: &str = "connection-check@prefsync.invalid";
/// Where a refused login is reported: the API user's encryption key.
const LOGIN_PATH: &str = "authentication.password";
const CHECK_TIMEOUT_MS: u32 = 30_000;

/// The connection check: `GetUserByFilter`, the Individual API's documented
/// read, with the same `AutomationAuthHeader` a trigger carries, looking up
/// an address no profile has (list `0`: the config names no list). Selligent
/// answers HTTP 200 with a result code: `10001` (login failed or IP not
/// allowed) refuses the login, at `authentication.password`; any other code
/// (`10005` no result, or one refusing the list) means the login passed.
/// Another status is read as every check reads one ([`verdict`]: a SOAP
/// fault's 500 or a 429 means the check could not be made); an answer
/// without a result code could not be read. The gate is not checked: the
/// API names no read of a gate, and triggering it would run its campaign.
pub fn check_connection(
    ctx: &Context<'_>,
    config: &GateConfig,
) -> Result<Vec<ValidationProblem>, String> {
    let request = Request::new(Method::Post, config.endpoint())
        .body(
            "text/xml; charset=utf-8",
            check_envelope(config).into_bytes(),
        )
        .header("SOAPAction", GET_USER_BY_FILTER)
        .timeout_ms(CHECK_TIMEOUT_MS);
    let response = match ctx.send(request) {
        Ok(response) => response,
        Err(error) => return unreachable(&error),
    };
    if response.status != 200 {
        return verdict(&response, LOGIN_PATH);
    }
    let body = String::from_utf8_lossy(&response.body);
    match element(&body, "GetUserByFilterResult").map(|code| code.trim().parse::<i64>()) {
        Some(Ok(10001)) => Ok(vec![ValidationProblem {
            path: LOGIN_PATH.into(),
            message: "Selligent refused the login (result 10001: login failed or IP not allowed): check authentication.username and this key".into(),
        }]),
        Some(Ok(_)) => Ok(Vec::new()),
        _ => Err("Selligent answered the check without a result code; try again later".into()),
    }
}

/// The check's SOAP request: `GetUserByFilter{List, Filter}`.
fn check_envelope(config: &GateConfig) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Header>{}</soap:Header><soap:Body><GetUserByFilter xmlns="http://tempuri.org/"><List>0</List><Filter><Property><Key>MAIL</Key><Value>{}</Value></Property></Filter></GetUserByFilter></soap:Body></soap:Envelope>"#,
        auth_header(config),
        escape(CHECK_MAIL),
    )
}

/// The `AutomationAuthHeader` every request carries.
fn auth_header(config: &GateConfig) -> String {
    format!(
        r#"<AutomationAuthHeader xmlns="http://tempuri.org/"><Login>{}</Login><Password>{}</Password></AutomationAuthHeader>"#,
        escape(&config.authentication.username),
        escape(&config.authentication.password),
    )
}

/// A result code as an outcome: 0 delivered; the documented refusals are
/// permanent; a code we do not know is retried (it ends as a dead letter
/// with its text if it persists).
pub fn classify(code: i64, error: String) -> Outcome {
    let failed = |retryable: bool, what: &str| {
        let error = if error.is_empty() {
            String::new()
        } else {
            format!(": {error}")
        };
        Outcome::Failed(Failure {
            retryable,
            retry_after_ms: None,
            message: format!("Selligent result {code} ({what}){error}"),
        })
    };
    match code {
        // The campaign behind the gate created or updated the profile.
        0 => Outcome::Delivered(DeliveredKind::Updated),
        10001 => failed(false, "login failed or IP not allowed"),
        10005 => failed(false, "no result"),
        10009 => failed(false, "XML unparsable"),
        10012 => failed(false, "gate disabled"),
        10013 => failed(false, "invalid argument"),
        10016 => failed(false, "invalid column name"),
        _ => failed(true, "unknown result code"),
    }
}

/// How Selligent takes a value: booleans as 1/0 (its opt-in fields are
/// numeric), dates as `yyyyMMdd`, integers without a decimal point, null as
/// an empty value (which clears the field).
pub fn selligent_value(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Boolean(true) => "1".into(),
        Value::Boolean(false) => "0".into(),
        Value::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => format!("{}", *n as i64),
        Value::Number(n) => n.to_string(),
        Value::Text(text) => as_selligent_date(text).unwrap_or_else(|| text.clone()),
    }
}

/// `2026-11-23` or `2026-11-23T10:00:00Z` → `20261123`; anything else is no date.
fn as_selligent_date(text: &str) -> Option<String> {
    let date = text.get(..10)?;
    let rest = &text[10..];
    let bytes = date.as_bytes();
    let shaped = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    (shaped && (rest.is_empty() || rest.starts_with('T'))).then(|| date.replace('-', ""))
}

/// The SOAP 1.1 request.
pub fn envelope(config: &GateConfig, input: &[(String, String)]) -> String {
    let properties: String = input
        .iter()
        .map(|(key, value)| {
            format!(
                "<Property><Key>{}</Key><Value>{}</Value></Property>",
                escape(key),
                escape(value)
            )
        })
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Header>{}</soap:Header><soap:Body><TriggerCampaign xmlns="http://tempuri.org/"><GateName>{}</GateName><InputData>{properties}</InputData></TriggerCampaign></soap:Body></soap:Envelope>"#,
        auth_header(config),
        escape(&config.properties.gate),
    )
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The text of the first element named `name`, whatever its namespace
/// prefix: its text and CDATA sections (those of nested elements too) with
/// the predefined entities and character references resolved. `None` when
/// there is no such element, or when the XML is not well-formed up to its end
/// (a mismatched tag, an unknown entity, a bad character reference): such an
/// answer says nothing. The parser's error is dropped here on purpose: its
/// text can quote the answer, and no failure message may carry it.
fn element(xml: &str, name: &str) -> Option<String> {
    let mut reader = Reader::from_str(xml);
    loop {
        match reader.read_event().ok()? {
            Event::Start(start) if start.local_name().as_ref() == name => break,
            Event::Empty(empty) if empty.local_name().as_ref() == name => {
                return Some(String::new());
            }
            Event::Eof => return None,
            _ => {}
        }
    }
    let mut text = String::new();
    // Elements opened inside the one read: its own end is at depth 0.
    let mut depth = 0usize;
    loop {
        match reader.read_event().ok()? {
            Event::Text(chunk) => text.push_str(&chunk.xml10_content()),
            Event::CData(chunk) => text.push_str(&chunk.xml10_content()),
            Event::GeneralRef(reference) => match reference.resolve_char_ref().ok()? {
                Some(c) => text.push(c),
                // No DTD is read, so only XML's five entities are defined.
                None => text.push_str(resolve_xml_entity(&reference)?),
            },
            Event::Start(_) => depth += 1,
            Event::End(_) if depth == 0 => return Some(text),
            Event::End(_) => depth -= 1,
            // Never closed.
            Event::Eof => return None,
            // Comments, processing instructions, empty elements: no text.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use prefsync_sdk::testing::MockHost;
    use prefsync_sdk::{HttpError, connector};

    use super::super::test_fixtures::{gate_config as config, record};
    use super::*;
    use crate::Selligent;

    fn answer(code: i64, error: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><TriggerCampaignResponse xmlns="http://tempuri.org/"><TriggerCampaignResult>{code}</TriggerCampaignResult><ErrorStr>{error}</ErrorStr></TriggerCampaignResponse></soap:Body></soap:Envelope>"#
        )
    }

    fn run(host: &MockHost) -> Outcome {
        connector::deliver::<Selligent>(host, &config(), &[record()]).remove(0)
    }

    #[test]
    fn the_envelope_carries_login_gate_and_escaped_values() {
        let host = MockHost::new();
        host.respond(200, &[], &answer(0, ""));
        assert_eq!(run(&host), Outcome::Delivered(DeliveredKind::Updated));
        let request = host.requests.borrow()[0].clone();
        assert_eq!(
            request.url,
            "https://acme.slgnt.eu/automation/individual.asmx"
        );
        assert!(
            request
                .headers
                .contains(&("SOAPAction".into(), SOAP_ACTION.into()))
        );
        assert!(
            request
                .headers
                .contains(&("Content-Type".into(), "text/xml; charset=utf-8".into()))
        );
        let body = String::from_utf8(request.body.unwrap()).unwrap();
        assert!(body.contains("<Login>api-user</Login><Password>enc&lt;&amp;&gt;key</Password>"));
        assert!(body.contains("<GateName>DIDOMI</GateName>"));
        assert!(body.contains(
            "<InputData><Property><Key>MAIL</Key><Value>ann@example.com</Value></Property>\
             <Property><Key>OPTIN_NEWS</Key><Value>1</Value></Property>\
             <Property><Key>OPTIN_SMS</Key><Value></Value></Property>\
             <Property><Key>BIRTH</Key><Value>19900517</Value></Property>\
             <Property><Key>NAME</Key><Value>O&apos;Brien &amp; &lt;Sons&gt; &quot;Ltd&quot;</Value></Property></InputData>"
        ), "{body}");
        // What is escaped reads back the same.
        assert_eq!(element(&body, "Password").as_deref(), Some("enc<&>key"));
    }

    #[test]
    fn values_are_written_as_selligent_takes_them() {
        assert_eq!(selligent_value(&Value::Boolean(false)), "0");
        assert_eq!(selligent_value(&Value::Number(42.0)), "42");
        assert_eq!(selligent_value(&Value::Number(2.5)), "2.5");
        assert_eq!(
            selligent_value(&Value::Text("2026-11-23T10:00:00Z".into())),
            "20261123"
        );
        assert_eq!(
            selligent_value(&Value::Text("2026-11-23 notes".into())),
            "2026-11-23 notes"
        );
        assert_eq!(
            selligent_value(&Value::Text("20-11-2026".into())),
            "20-11-2026"
        );
    }

    #[test]
    fn result_codes_and_transport_failures_are_classified() {
        let permanent = |code: i64, error: &str| {
            let host = MockHost::new();
            host.respond(200, &[], &answer(code, error));
            match run(&host) {
                Outcome::Failed(f) => {
                    assert!(!f.retryable, "{code}");
                    assert!(
                        f.message.contains(&code.to_string()) && f.message.contains(error),
                        "{}",
                        f.message
                    );
                    assert!(!f.message.contains("enc<&>key"));
                }
                other => panic!("{code}: {other:?}"),
            }
        };
        permanent(10001, "Login failed");
        permanent(10012, "Gate DIDOMI is disabled");
        permanent(10013, "Invalid argument");
        permanent(10016, "Invalid column name OPTIN_X");
        let retryable = |host: MockHost| {
            assert!(matches!(
                run(&host),
                Outcome::Failed(Failure {
                    retryable: true,
                    ..
                })
            ));
        };
        let host = MockHost::new();
        host.respond(200, &[], "<html>maintenance</html>");
        retryable(host);
        let host = MockHost::new();
        host.respond(503, &[], "");
        retryable(host);
        let host = MockHost::new();
        host.respond(500, &[], "<soap:Envelope><soap:Body><soap:Fault><faultstring>Server busy</faultstring></soap:Fault></soap:Body></soap:Envelope>");
        match run(&host) {
            Outcome::Failed(f) => {
                assert!(f.retryable && f.message.contains("Server busy"), "{f:?}")
            }
            other => panic!("{other:?}"),
        }
        let host = MockHost::new();
        host.fail(HttpError::Timeout);
        retryable(host);
        let host = MockHost::new();
        host.respond(200, &[], &answer(99999, "odd"));
        retryable(host);
    }

    fn failure(host: &MockHost) -> Failure {
        match run(host) {
            Outcome::Failed(failure) => failure,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn references_and_cdata_in_answers_are_decoded() {
        // Numeric references (decimal and hex) and predefined entities, each
        // decoded once; the hand reader left `&#39;` and `&#x41;` as written.
        let host = MockHost::new();
        host.respond(
            200,
            &[],
            &answer(
                10016,
                "Invalid column name &#39;OPT&#x41;&#39; &amp; &lt;more&gt; &quot;&amp;lt;&quot;",
            ),
        );
        assert_eq!(
            failure(&host),
            Failure {
                retryable: false,
                retry_after_ms: None,
                message: "Selligent result 10016 (invalid column name): Invalid column name 'OPTA' & <more> \"&lt;\""
                    .into()
            }
        );

        // A fault whose text is a CDATA section: taken as written, markup and
        // `&amp;` included.
        host.respond(
            500,
            &[],
            "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><soap:Fault><faultcode>soap:Server</faultcode>\
             <faultstring>Server <![CDATA[<busy> & 'tired' &amp; </sick>]]> again</faultstring></soap:Fault></soap:Body></soap:Envelope>",
        );
        assert_eq!(
            failure(&host),
            Failure {
                retryable: true,
                retry_after_ms: None,
                message: "HTTP 500: Server <busy> & 'tired' &amp; </sick> again".into()
            }
        );

        // The result code itself, in CDATA or as character references.
        host.respond(
            200,
            &[],
            &answer(0, "").replace(">0<", "><![CDATA[10012]]><"),
        );
        let refused = failure(&host);
        assert!(
            !refused.retryable && refused.message == "Selligent result 10012 (gate disabled)",
            "{refused:?}"
        );
        host.respond(
            200,
            &[],
            &answer(0, "").replace(">0<", ">&#49;&#x30;&#48;&#48;&#x31;<"),
        );
        assert!(
            failure(&host)
                .message
                .starts_with("Selligent result 10001 ")
        );
        host.respond(
            200,
            &[],
            &answer(0, "").replace(">0<", "> <![CDATA[0]]>\n<"),
        );
        assert_eq!(run(&host), Outcome::Delivered(DeliveredKind::Updated));
    }

    #[test]
    fn the_reader_takes_elements_by_local_name_from_well_formed_xml() {
        // Any prefix, the first occurrence, self-closing, nested text; a
        // comment is no text; a longer name is another element.
        assert_eq!(element("<a:R>1</a:R><R>2</R>", "R").as_deref(), Some("1"));
        assert_eq!(element("<x><R/></x>", "R").as_deref(), Some(""));
        assert_eq!(
            element("<R>a<b>c</b><!-- no -->d</R>", "R").as_deref(),
            Some("acd")
        );
        assert_eq!(element("<RR>1</RR>", "R"), None);
        // Broken before the element ends: no answer. An unknown entity (no
        // DTD is read, so none is ever expanded), a bad character reference,
        // a mismatched or missing end tag.
        assert_eq!(element("<R>&nbsp;</R>", "R"), None);
        assert_eq!(
            element("<!DOCTYPE R [<!ENTITY e \"x\">]><R>&e;</R>", "R"),
            None
        );
        assert_eq!(element("<R>&#x0;</R>", "R"), None);
        assert_eq!(element("<R>1</S>", "R"), None);
        assert_eq!(element("<R>1", "R"), None);
        assert_eq!(element("<x></y><R>1</R>", "R"), None);
        // Broken after it: the element read stands.
        assert_eq!(element("<R>1</R></y>", "R").as_deref(), Some("1"));

        // A 200 whose XML breaks before the result is not an answer: retried.
        let host = MockHost::new();
        host.respond(
            200,
            &[],
            &answer(0, "").replace("<soap:Body>", "<soap:Body></soap:Bogus>"),
        );
        assert!(failure(&host).retryable);
    }

    // -- connection check --

    fn check_answer(code: i64, error: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><GetUserByFilterResponse xmlns="http://tempuri.org/"><GetUserByFilterResult>{code}</GetUserByFilterResult><ResultSet /><ErrorStr>{error}</ErrorStr></GetUserByFilterResponse></soap:Body></soap:Envelope>"#
        )
    }

    fn check(host: &MockHost) -> Result<Vec<ValidationProblem>, String> {
        prefsync_sdk::connection::check::<Selligent>(host, &config())
    }

    #[test]
    fn connection_check_is_a_get_user_by_filter_with_the_auth_header() {
        let host = MockHost::new();
        host.respond(200, &[], &check_answer(10005, "No result"));
        assert_eq!(check(&host), Ok(Vec::new()));
        let requests = host.requests.borrow().clone();
        assert_eq!(requests.len(), 1);
        let request = &requests[0];
        // SOAP reads are POSTs; this one is the API's documented read.
        assert_eq!(request.method, Method::Post);
        assert_eq!(
            request.url,
            "https://acme.slgnt.eu/automation/individual.asmx"
        );
        assert!(request.headers.contains(&(
            "SOAPAction".into(),
            "\"http://tempuri.org/GetUserByFilter\"".into()
        )));
        let body = String::from_utf8(request.body.clone().unwrap()).unwrap();
        assert!(
            body.contains("<AutomationAuthHeader xmlns=\"http://tempuri.org/\"><Login>api-user</Login><Password>enc&lt;&amp;&gt;key</Password></AutomationAuthHeader>"),
            "{body}"
        );
        assert!(body.contains("<GetUserByFilter xmlns=\"http://tempuri.org/\"><List>0</List><Filter><Property><Key>MAIL</Key><Value>connection-check@prefsync.invalid</Value></Property></Filter></GetUserByFilter>"), "{body}");
        // Nothing is triggered: no gate, no InputData.
        assert!(!body.contains("TriggerCampaign") && !body.contains("DIDOMI"));
        // A profile that happens to match, or a list refused: the login passed.
        for code in [0, 10013] {
            host.respond(200, &[], &check_answer(code, ""));
            assert_eq!(check(&host), Ok(Vec::new()), "{code}");
        }
    }

    #[test]
    fn connection_check_refused_login_is_at_the_key_without_it() {
        let host = MockHost::new();
        host.respond(
            200,
            &[],
            &check_answer(10001, "Login failed for api-user / enc&lt;&amp;&gt;key"),
        );
        let problems = check(&host).unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].path, "authentication.password");
        assert!(problems[0].message.contains("10001"), "{problems:?}");
        assert!(!problems[0].message.contains("enc<&>key"));
        // A wrong URL's 404 is the whole config's.
        host.respond(404, &[], "not found");
        assert_eq!(check(&host).unwrap()[0].path, "");
    }

    #[test]
    fn connection_check_cannot_be_made_on_a_fault_429_timeout_or_a_non_soap_answer() {
        let host = MockHost::new();
        host.respond(
            500,
            &[],
            "<soap:Envelope><soap:Body><soap:Fault><faultstring>Server was unable to process request.</faultstring></soap:Fault></soap:Body></soap:Envelope>",
        );
        assert!(check(&host).is_err());
        host.respond(429, &[], "");
        assert!(check(&host).is_err());
        host.respond(200, &[], "<html><body>Maintenance</body></html>");
        assert!(check(&host).is_err());
        host.fail(HttpError::Timeout);
        assert!(check(&host).is_err());
        host.fail(HttpError::Denied("acme.slgnt.eu is not allowed".into()));
        assert_eq!(check(&host).unwrap()[0].path, "");
    }
}
