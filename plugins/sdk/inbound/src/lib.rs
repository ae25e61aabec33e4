//! The bindings of the contract's `webhook-receiver` world (just the optional
//! `inbound` export), for connectors that read their destination's webhooks.
//! Use it through `prefsync_sdk::export!(MyConnector, inbound)`: with the
//! SDK's `destination` bindings, the component is `bidirectional`.
//!
//! Why a crate of its own: a component declares the union of the worlds
//! whose bindings are linked into it. Kept apart from `prefsync-sdk`, these
//! bindings reach only the connectors that depend on this crate, so every
//! other connector keeps exporting exactly the `destination` world.

#[doc(hidden)]
pub mod __wit {
    use prefsync_sdk::inbound::{self, Inbound, InboundRequest};
    use prefsync_sdk::types;

    pub mod bindings {
        wit_bindgen::generate!({
            world: "webhook-receiver",
            path: "../../../wit",
            // The shared types are the SDK's, generated once there.
            with: {
                "prefsync:connector/types@0.1.3": prefsync_sdk::__wit::bindings::prefsync::connector::types,
            },
            pub_export_macro: true,
            export_macro_name: "__export_inbound_impl",
            default_bindings_module: "prefsync_sdk_inbound::__wit::bindings",
        });
    }

    use bindings::exports::prefsync::connector::inbound as wit;
    use prefsync_sdk::__wit::bindings::prefsync::connector::types as wit_types;

    pub fn receive<C: Inbound>(
        config: String,
        request: wit::InboundRequest,
    ) -> Result<wit::Receipt, String> {
        let request = InboundRequest {
            headers: request.headers,
            body: request.body,
        };
        let receipt = inbound::receive::<C>(&config, &request)?;
        Ok(wit::Receipt {
            updates: receipt
                .updates
                .into_iter()
                .map(|u| wit::ConsentUpdate {
                    organization_user_id: u.organization_user_id,
                    properties: u.properties.into_iter().map(property_to_wit).collect(),
                    occurred_at: u.occurred_at,
                    notification_id: u.notification_id,
                })
                .collect(),
            ignored: receipt.ignored,
        })
    }

    fn property_to_wit(p: types::Property) -> wit_types::Property {
        wit_types::Property {
            name: p.name,
            value: match p.value {
                types::Value::Null => wit_types::Value::Null,
                types::Value::Boolean(b) => wit_types::Value::Boolean(b),
                types::Value::Number(n) => wit_types::Value::Number(n),
                types::Value::Text(t) => wit_types::Value::Text(t),
            },
        }
    }
}

/// Exports `$connector`'s [`prefsync_sdk::Inbound`] implementation as the
/// component's `inbound` interface; called by `prefsync_sdk::export!`.
#[macro_export]
macro_rules! export_inbound {
    ($connector:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct PrefsyncInboundExport;
            impl $crate::__wit::bindings::exports::prefsync::connector::inbound::Guest
                for PrefsyncInboundExport
            {
                fn receive(
                    config: ::std::string::String,
                    request: $crate::__wit::bindings::exports::prefsync::connector::inbound::InboundRequest,
                ) -> ::std::result::Result<
                    $crate::__wit::bindings::exports::prefsync::connector::inbound::Receipt,
                    ::std::string::String,
                > {
                    $crate::__wit::receive::<$connector>(config, request)
                }
            }
            $crate::__wit::bindings::__export_inbound_impl!(PrefsyncInboundExport with_types_in $crate::__wit::bindings);
        };
    };
}
