//! How each field of a user's state is named as a flat property: shared by
//! the flattening (`flatten.rs`) and the merge (`state.rs`), which reports
//! changed fields by these names.

use crate::event::Vendors;

pub(crate) const ORGANIZATION_USER_ID: &str = "organization_user_id";
pub(crate) const USER_ID: &str = "user_id";
pub(crate) const COUNTRY: &str = "country";
pub(crate) const TCFCS: &str = "consents_tcfcs";
pub(crate) const VENDORS: &str = "consents_vendors_";
pub(crate) const METADATA: &str = "metadata_";
pub(crate) const PURPOSES: &str = "consents_purposes_";
pub(crate) const CHANNELS: &str = "consents_channels_";

pub(crate) fn user_metadata(key: &str) -> String {
    format!("{METADATA}{key}")
}

pub(crate) fn purpose_enabled(id: &str) -> String {
    format!("{PURPOSES}{id}_enabled")
}

pub(crate) fn purpose_enabled_li(id: &str) -> String {
    format!("{PURPOSES}{id}_enabled_li")
}

pub(crate) fn purpose_value(id: &str, preference: &str) -> String {
    format!("{PURPOSES}{id}_values_{preference}_value")
}

pub(crate) fn purpose_metadata(id: &str, key: &str) -> String {
    format!("{PURPOSES}{id}_metadata_{key}")
}

pub(crate) fn channel_enabled(id: &str) -> String {
    format!("{CHANNELS}{id}_enabled")
}

pub(crate) fn channel_metadata(id: &str, key: &str) -> String {
    format!("{CHANNELS}{id}_metadata_{key}")
}

/// The four vendor lists with their property names, in a fixed order.
pub(crate) fn vendor_lists(vendors: &Vendors) -> [(&'static str, &[String]); 4] {
    [
        ("consents_vendors_enabled", &vendors.enabled),
        ("consents_vendors_disabled", &vendors.disabled),
        ("consents_vendors_enabled_li", &vendors.enabled_li),
        ("consents_vendors_disabled_li", &vendors.disabled_li),
    ]
}
