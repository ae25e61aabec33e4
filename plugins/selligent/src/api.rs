//! Requests and the classification of answers, one module per Selligent
//! API (the connector's `properties.api` picks one): `gate` for the SOAP
//! Individual API, `engage` for the Engage REST API.

pub mod engage;
pub mod gate;
#[cfg(test)]
mod test_fixtures;
