//! prefsync's integration tests: real components, built from source by
//! `build.rs`, in the real runtime, against mock destinations on loopback.

mod actito;
mod activations;
mod author_kit;
mod author_kit_ts;
mod braze;
mod brevo;
mod cli;
mod cluster;
mod connection_check;
mod console;
mod console_assets;
mod contract;
mod crash;
mod deploy;
mod didomi;
mod dotdigital;
mod dotdigital_activation;
mod dotdigital_failing;
mod dotdigital_strict;
mod dotdigital_v2;
mod hubspot;
mod klaviyo;
mod logs;
mod mailchimp;
mod openapi;
mod other_world;
mod overview;
mod peer_guard;
mod pipeline;
mod postgres;
mod probe;
mod selligent;
mod selligent_engage;
mod serve;
mod sfmc;
mod traces;
mod trust_bounds;
mod trust_input;
mod trust_secrets;
mod trust_sources;
mod webhook;
mod webhook_js;
mod webhooks;
mod wit_frozen;
mod wit_next_major;

// Every guest that build.rs builds must have a test module of its name.
macro_rules! assert_guest_tested {
    ($name:ident) => {
        #[allow(unused_imports)]
        use self::$name as _;
    };
}
prefsync_tests::for_each_guest!(assert_guest_tested);
