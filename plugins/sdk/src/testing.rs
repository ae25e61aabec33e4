//! A scripted host for native unit tests of connector logic.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};

use crate::context::{Host, LogLevel};
use crate::http::{HttpError, Request, Response};

/// One log line a connector emitted: level, message, fields.
pub type LogLine = (LogLevel, String, Vec<(String, String)>);

/// Answers requests from a queue of scripted responses and records what was asked.
#[derive(Default)]
pub struct MockHost {
    responses: RefCell<VecDeque<Result<Response, HttpError>>>,
    /// Every request sent, in order.
    pub requests: RefCell<Vec<Request>>,
    /// Every log line: level, message, fields.
    pub logs: RefCell<Vec<LogLine>>,
    cache: RefCell<HashMap<String, String>>,
}

impl MockHost {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues a response with a JSON (or empty) body.
    pub fn respond(&self, status: u16, headers: &[(&str, &str)], body: &str) -> &Self {
        self.responses.borrow_mut().push_back(Ok(Response {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }));
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
        let url = request.url.clone();
        self.requests.borrow_mut().push(request);
        self.responses
            .borrow_mut()
            .pop_front()
            .unwrap_or_else(|| panic!("MockHost: no scripted response left for {url}"))
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
