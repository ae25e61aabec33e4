//! Closed sets of names (a delivery's status, a switch's action, a run's
//! trigger …) as enums that are stored, shown and parsed by one list of
//! names: [`named_enum!`] writes the enum, its serde names, `as_str`,
//! `parse`, `Display` and `FromStr` from it, so the database text, the API's
//! JSON and the code cannot drift apart.

/// A name outside an enum's set. It names the set and what it holds, never
/// the value read: that may be any text from a row or a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a known {kind} (expected one of: {expected})")]
pub struct UnknownName {
    /// What the set is, in words (`connector status`).
    pub kind: &'static str,
    /// The names of the set, comma-separated.
    pub expected: String,
}

/// Defines an enum whose values are a closed set of names.
///
/// ```
/// prefsync_base::named_enum! {
///     /// How a thing started.
///     pub enum Trigger("run trigger") {
///         /// By the scheduler.
///         Schedule = "schedule",
///         Api = "api",
///     }
/// }
/// assert_eq!(Trigger::Api.as_str(), "api");
/// assert_eq!("schedule".parse::<Trigger>(), Ok(Trigger::Schedule));
/// assert_eq!(
///     "x".parse::<Trigger>().unwrap_err().to_string(),
///     "not a known run trigger (expected one of: schedule, api)"
/// );
/// ```
///
/// The crate that uses it depends on `serde` (with `derive`). Extra derives
/// go before `enum` (`#[derive(utoipa::ToSchema)]`: the schema's values are
/// the names).
#[macro_export]
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident($kind:literal) {
            // `tt`, not `literal`: a `literal` fragment reaches derives
            // passed in `$meta` (`utoipa::ToSchema`) wrapped in an invisible
            // group, which they do not read as the `serde(rename)` value.
            $($(#[$variant_meta:meta])* $variant:ident = $text:tt,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ::serde::Serialize, ::serde::Deserialize)]
        $vis enum $name {
            $($(#[$variant_meta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The value's name, as stored and shown.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The value named `text`, if any.
            pub fn parse(text: &str) -> ::std::option::Option<$name> {
                match text {
                    $($text => ::std::option::Option::Some($name::$variant),)+
                    _ => ::std::option::Option::None,
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::names::UnknownName;

            fn from_str(text: &str) -> ::std::result::Result<$name, Self::Err> {
                $name::parse(text).ok_or_else(|| $crate::names::UnknownName {
                    kind: $kind,
                    expected: [$($text),+].join(", "),
                })
            }
        }
    };
}

#[cfg(test)]
mod tests {
    named_enum! {
        /// A test set.
        pub enum Colour("colour") {
            Red = "red",
            /// Two words.
            DarkBlue = "dark_blue",
        }
    }

    #[test]
    fn names_round_trip_through_text_and_serde() {
        for colour in Colour::ALL {
            assert_eq!(colour.as_str().parse::<Colour>(), Ok(*colour));
            assert_eq!(
                serde_json::to_value(colour).unwrap(),
                serde_json::json!(colour.as_str())
            );
            assert_eq!(
                serde_json::from_value::<Colour>(serde_json::json!(colour.to_string())).unwrap(),
                *colour
            );
        }
        let unknown = "Secret-Looking Text".parse::<Colour>().unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "not a known colour (expected one of: red, dark_blue)"
        );
    }
}
