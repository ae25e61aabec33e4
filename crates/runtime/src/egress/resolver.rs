//! The DNS resolver of the outbound HTTP client: it drops every answer the
//! egress options do not allow, so a public name that resolves to a private
//! address (DNS rebinding) cannot reach inside.

use std::net::SocketAddr;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::EgressOptions;

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
            match super::host::allowed_answers(&host, answers, &options) {
                Ok(allowed) => Ok(Box::new(allowed.into_iter()) as Addrs),
                Err(why) => Err(Box::new(why) as Box<dyn std::error::Error + Send + Sync>),
            }
        })
    }
}
