//! The one rule for the ids people choose for what the host stores and
//! routes by (integrations, activations): they become URL path segments,
//! store keys and file names, so they are kept to a small, safe alphabet.
//!
//! An id is 1 to [`MAX_ID_LEN`] characters of `A-Z a-z 0-9 - _ .` and does
//! not start with `.` (so `.`, `..` and hidden-file names are refused).

/// The longest id accepted, in characters (all are ASCII, so also bytes).
pub const MAX_ID_LEN: usize = 64;

/// The rule in words, for error messages and documentation.
pub const ID_RULE: &str = "1 to 64 ASCII letters, digits, `-`, `_` or `.`, not starting with `.`";

/// Why an id is refused. The messages never repeat the id itself: it may
/// be long or hold control characters; the offending character is shown
/// escaped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("is empty; use {ID_RULE}")]
    Empty,
    #[error("is {length} characters long; use {ID_RULE}")]
    TooLong {
        /// The id's length, in characters.
        length: usize,
    },
    #[error("starts with `.`; use {ID_RULE}")]
    LeadingDot,
    #[error("holds {character:?} at character {position}; use {ID_RULE}")]
    Character {
        /// The first character outside the alphabet.
        character: char,
        /// Its 1-based position.
        position: usize,
    },
}

/// Checks `id` against the rule (see the module documentation).
pub fn check_id(id: &str) -> Result<(), IdError> {
    if id.is_empty() {
        return Err(IdError::Empty);
    }
    if let Some((index, character)) = id
        .chars()
        .enumerate()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(IdError::Character {
            character,
            position: index + 1,
        });
    }
    if id.len() > MAX_ID_LEN {
        return Err(IdError::TooLong { length: id.len() });
    }
    if id.starts_with('.') {
        return Err(IdError::LeadingDot);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_in_use_are_accepted() {
        for id in [
            "dd-main",
            "a",
            "users-to-selligent",
            "hook_2",
            "v1.2",
            "a..b",
            "x.",
            "dotdigital-0a1b2c3d",
            &"a".repeat(MAX_ID_LEN),
        ] {
            assert_eq!(check_id(id), Ok(()), "{id}");
        }
    }

    #[test]
    fn path_like_long_and_odd_ids_are_refused_with_the_reason() {
        assert_eq!(check_id(""), Err(IdError::Empty));
        assert_eq!(check_id("."), Err(IdError::LeadingDot));
        assert_eq!(check_id(".."), Err(IdError::LeadingDot));
        assert_eq!(check_id(".hidden"), Err(IdError::LeadingDot));
        assert_eq!(
            check_id("a/b"),
            Err(IdError::Character {
                character: '/',
                position: 2
            })
        );
        assert_eq!(
            check_id(&"a".repeat(MAX_ID_LEN + 1)),
            Err(IdError::TooLong { length: 65 })
        );
        for odd in ["a b", "a\\b", "a\nb", "a\0b", "é", "a%2e", "a?b", "a#b"] {
            assert!(
                matches!(check_id(odd), Err(IdError::Character { .. })),
                "{odd:?}"
            );
        }
        // The message escapes what it shows and does not repeat the id.
        let message = check_id("evil\nINFO forged").unwrap_err().to_string();
        assert_eq!(
            message,
            format!("holds '\\n' at character 5; use {ID_RULE}")
        );
        assert!(!message.contains("forged"));
    }
}
