//! The DNS resolver of the outbound HTTP client: it drops every answer the
//! egress options do not allow, so a public name that resolves to a private
//! address (DNS rebinding) cannot reach inside.

use std::net::SocketAddr;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::{Denied, EgressOptions, check_address};

/// Resolves names with the system resolver and filters the answers.
#[derive(Debug, Clone)]
pub struct PolicyResolver {
    options: EgressOptions,
}

impl PolicyResolver {
    pub fn new(options: EgressOptions) -> Self {
        PolicyResolver { options }
    }
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let options = self.options.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let answers: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut allowed = Vec::with_capacity(answers.len());
            let mut denied: Option<Denied> = None;
            for answer in answers {
                match check_address(&host, answer.ip(), &options) {
                    Ok(()) => allowed.push(answer),
                    Err(why) => {
                        denied.get_or_insert(why);
                    }
                }
            }
            match (allowed.is_empty(), denied) {
                (true, Some(why)) => Err(Box::new(why) as Box<dyn std::error::Error + Send + Sync>),
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}
