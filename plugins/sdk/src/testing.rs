//! A scripted host for native unit tests of connector logic.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};

use crate::context::{Host, LogLevel};
use crate::http::{HttpError, Method, Request, Response};

/// One log line a connector emitted: level, message, fields.
pub type LogLine = (LogLevel, String, Vec<(String, String)>);

/// A scripted host: answers each request with a scripted response and
/// records what was asked.
///
/// Two ways to script answers, usable together:
/// - [`MockHost::respond_to`] answers a request with that method and URL
///   (like a cassette), whatever order the connector asks in; each scripted
///   answer is used once, the first unused one of its method and URL first.
/// - [`MockHost::respond`] and [`MockHost::fail`] queue answers given
///   strictly in order to requests no `respond_to` answer matches.
///
/// A request nothing answers panics, naming it and what is still scripted.
#[derive(Default)]
pub struct MockHost {
    responses: RefCell<VecDeque<Result<Response, HttpError>>>,
    /// `respond_to` answers: method, URL, answer, used.
    routes: RefCell<Vec<Route>>,
    /// Every request sent, in order.
    pub requests: RefCell<Vec<Request>>,
    /// Every log line: level, message, fields.
    pub logs: RefCell<Vec<LogLine>>,
    cache: RefCell<HashMap<String, String>>,
}

/// One `respond_to` answer.
struct Route {
    method: Method,
    url: String,
    answer: Response,
    used: bool,
}

impl MockHost {
    /// A host with no routes, no logs and an empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers the next request with exactly this method and URL (query
    /// included) with this status, headers and body, whatever its place in
    /// the order of requests.
    pub fn respond_to(
        &self,
        method: Method,
        url: &str,
        status: u16,
        headers: &[(&str, &str)],
        body: &str,
    ) -> &Self {
        self.routes.borrow_mut().push(Route {
            method,
            url: url.to_string(),
            answer: response(status, headers, body),
            used: false,
        });
        self
    }

    /// Queues a response with a JSON (or empty) body.
    pub fn respond(&self, status: u16, headers: &[(&str, &str)], body: &str) -> &Self {
        self.responses
            .borrow_mut()
            .push_back(Ok(response(status, headers, body)));
        self
    }

    /// Queues a transport error.
    pub fn fail(&self, error: HttpError) -> &Self {
        self.responses.borrow_mut().push_back(Err(error));
        self
    }
}

impl Host for MockHost {
    fn send(&self, request: Request) -> Result<Response, HttpError> {
        let (method, url) = (request.method, request.url.clone());
        self.requests.borrow_mut().push(request);
        let mut routes = self.routes.borrow_mut();
        if let Some(route) = routes
            .iter_mut()
            .find(|r| !r.used && r.method == method && r.url == url)
        {
            route.used = true;
            return Ok(route.answer.clone());
        }
        if let Some(answer) = self.responses.borrow_mut().pop_front() {
            return answer;
        }
        let unused: Vec<String> = routes
            .iter()
            .filter(|r| !r.used)
            .map(|r| format!("{:?} {}", r.method, r.url))
            .collect();
        panic!(
            "MockHost: nothing scripted answers {method:?} {url}; still scripted: [{}]",
            unused.join(", ")
        )
    }

    fn log(&self, level: LogLevel, message: &str, fields: &[(String, String)]) {
        self.logs
            .borrow_mut()
            .push((level, message.to_string(), fields.to_vec()));
    }

    fn cache_get(&self, key: &str) -> Option<String> {
        self.cache.borrow().get(key).cloned()
    }

    fn cache_set(&self, key: &str, value: &str, _ttl_seconds: u32) {
        self.cache
            .borrow_mut()
            .insert(key.to_string(), value.to_string());
    }
}

fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
    Response {
        status,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: body.as_bytes().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_by_method_and_url_first_then_in_order() {
        let host = MockHost::new();
        host.respond_to(Method::Get, "https://x.test/a", 200, &[], "a")
            .respond_to(Method::Post, "https://x.test/a", 201, &[], "posted")
            .respond(503, &[], "queued");
        let body = |r: Result<Response, HttpError>| String::from_utf8(r.unwrap().body).unwrap();
        assert_eq!(
            body(host.send(Request::new(Method::Post, "https://x.test/a"))),
            "posted"
        );
        assert_eq!(
            body(host.send(Request::get("https://x.test/other"))),
            "queued"
        );
        assert_eq!(body(host.send(Request::get("https://x.test/a"))), "a");
        assert_eq!(host.requests.borrow().len(), 3);
    }

    #[test]
    #[should_panic(
        expected = "nothing scripted answers Get https://x.test/b; still scripted: [Get https://x.test/a]"
    )]
    fn an_unscripted_request_is_named() {
        let host = MockHost::new();
        host.respond_to(Method::Get, "https://x.test/a", 200, &[], "");
        let _ = host.send(Request::get("https://x.test/b"));
    }
}
