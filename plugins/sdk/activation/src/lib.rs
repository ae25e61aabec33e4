//! The bindings of the contract's `model-sync` world (just the optional
//! `activation` export, WIT 0.1.2), for connectors that keep a user model's
//! attributes in sync with their destination. Use it through
//! `prefsync_sdk::export!(MyConnector, activation)`.
//!
//! Why a crate of its own: a component declares the union of the worlds
//! whose bindings are linked into it. Kept apart from `prefsync-sdk`, these
//! bindings reach only the connectors that depend on this crate, so every
//! other connector keeps exporting exactly the `destination` world.

#[doc(hidden)]
pub mod __wit {
    use prefsync_sdk::activation::{
        self, Activation, RowFailure, RowOutcome, SyncBatch, SyncMode, SyncRow,
    };
    use prefsync_sdk::types;

    pub mod bindings {
        wit_bindgen::generate!({
            world: "model-sync",
            path: "../../../wit",
            // The shared types are the SDK's, generated once there.
            with: {
                "prefsync:connector/types@0.1.3": prefsync_sdk::__wit::bindings::prefsync::connector::types,
            },
            pub_export_macro: true,
            export_macro_name: "__export_activation_impl",
            default_bindings_module: "prefsync_sdk_activation::__wit::bindings",
        });
    }

    use bindings::exports::prefsync::connector::activation as wit;
    use prefsync_sdk::__wit::bindings::prefsync::connector::types as wit_types;

    /// The component's imports, through the SDK's host.
    fn host() -> &'static dyn prefsync_sdk::Host {
        prefsync_sdk::__wit::host()
    }

    pub fn max_rows<C: Activation>(config: String) -> u32 {
        activation::max_rows::<C>(&config)
    }

    pub fn sync<C: Activation>(
        config: String,
        batch: wit::SyncBatch,
    ) -> Result<Vec<wit::RowOutcome>, wit::RowFailure> {
        let batch = SyncBatch {
            key_field: batch.key_field,
            mode: match batch.mode {
                wit::SyncMode::Upsert => SyncMode::Upsert,
                wit::SyncMode::Insert => SyncMode::Insert,
                wit::SyncMode::Update => SyncMode::Update,
            },
            rows: batch
                .rows
                .into_iter()
                .map(|r| SyncRow {
                    key: r.key,
                    attributes: r.attributes.into_iter().map(property_from_wit).collect(),
                    known: r.known,
                })
                .collect(),
        };
        activation::sync::<C>(host(), &config, &batch)
            .map(|outcomes| outcomes.into_iter().map(outcome_to_wit).collect())
            .map_err(failure_to_wit)
    }

    fn property_from_wit(p: wit_types::Property) -> types::Property {
        types::Property {
            name: p.name,
            value: match p.value {
                wit_types::Value::Null => types::Value::Null,
                wit_types::Value::Boolean(b) => types::Value::Boolean(b),
                wit_types::Value::Number(n) => types::Value::Number(n),
                wit_types::Value::Text(t) => types::Value::Text(t),
            },
        }
    }

    fn failure_to_wit(f: RowFailure) -> wit::RowFailure {
        wit::RowFailure {
            retryable: f.retryable,
            field: f.field,
            message: f.message,
        }
    }

    fn outcome_to_wit(o: RowOutcome) -> wit::RowOutcome {
        match o {
            RowOutcome::Inserted => wit::RowOutcome::Inserted,
            RowOutcome::Updated => wit::RowOutcome::Updated,
            RowOutcome::Skipped(why) => wit::RowOutcome::Skipped(why),
            RowOutcome::Failed(f) => wit::RowOutcome::Failed(failure_to_wit(f)),
        }
    }
}

/// Exports `$connector`'s [`prefsync_sdk::Activation`] implementation as the
/// component's `activation` interface; called by `prefsync_sdk::export!`.
#[macro_export]
macro_rules! export_activation {
    ($connector:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct PrefsyncActivationExport;
            impl $crate::__wit::bindings::exports::prefsync::connector::activation::Guest
                for PrefsyncActivationExport
            {
                fn max_rows(config: ::std::string::String) -> u32 {
                    $crate::__wit::max_rows::<$connector>(config)
                }
                fn sync(
                    config: ::std::string::String,
                    batch: $crate::__wit::bindings::exports::prefsync::connector::activation::SyncBatch,
                ) -> ::std::result::Result<
                    ::std::vec::Vec<
                        $crate::__wit::bindings::exports::prefsync::connector::activation::RowOutcome,
                    >,
                    $crate::__wit::bindings::exports::prefsync::connector::activation::RowFailure,
                > {
                    $crate::__wit::sync::<$connector>(config, batch)
                }
            }
            $crate::__wit::bindings::__export_activation_impl!(PrefsyncActivationExport with_types_in $crate::__wit::bindings);
        };
    };
}
