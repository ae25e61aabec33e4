//! The bindings of the contract's `connection-check` world (just the
//! optional `connection` export, WIT 0.1.3), for connectors that can check
//! an integration's credentials against their destination. Use it through
//! `prefsync_sdk::export!(MyConnector, connection)`.
//!
//! Why a crate of its own: a component declares the union of the worlds
//! whose bindings are linked into it. Kept apart from `prefsync-sdk`, these
//! bindings reach only the connectors that depend on this crate.

#[doc(hidden)]
pub mod __wit {
    use prefsync_sdk::connection::{self, ConnectionCheck};

    pub mod bindings {
        wit_bindgen::generate!({
            world: "connection-check",
            path: "../../../wit",
            pub_export_macro: true,
            export_macro_name: "__export_connection_impl",
            default_bindings_module: "prefsync_sdk_connection::__wit::bindings",
        });
    }

    use bindings::exports::prefsync::connector::connection as wit;

    pub fn check<C: ConnectionCheck>(config: String) -> Result<Vec<wit::ConfigProblem>, String> {
        connection::check::<C>(prefsync_sdk::__wit::host(), &config).map(|problems| {
            problems
                .into_iter()
                .map(|p| wit::ConfigProblem {
                    path: p.path,
                    message: p.message,
                })
                .collect()
        })
    }
}

/// Exports `$connector`'s [`prefsync_sdk::ConnectionCheck`] implementation
/// as the component's `connection` interface; called by `prefsync_sdk::export!`.
#[macro_export]
macro_rules! export_connection {
    ($connector:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct PrefsyncConnectionExport;
            impl $crate::__wit::bindings::exports::prefsync::connector::connection::Guest
                for PrefsyncConnectionExport
            {
                fn check(
                    config: ::std::string::String,
                ) -> ::std::result::Result<
                    ::std::vec::Vec<
                        $crate::__wit::bindings::exports::prefsync::connector::connection::ConfigProblem,
                    >,
                    ::std::string::String,
                > {
                    $crate::__wit::check::<$connector>(config)
                }
            }
            $crate::__wit::bindings::__export_connection_impl!(PrefsyncConnectionExport with_types_in $crate::__wit::bindings);
        };
    };
}
