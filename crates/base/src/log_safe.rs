//! Text from outside (user and event ids, header values, connector and
//! destination messages) made safe for a log line: control characters
//! (newline, CR, NUL, ESC…) and the Unicode line separators are written as
//! escapes, so such text can neither start a forged line nor send a
//! terminal sequence. Everything else is left as it is.

use std::borrow::Cow;

/// `text` with its control characters escaped (`\n`, `\r`, `\0`, `\u{1b}`);
/// borrowed when there is nothing to escape.
pub fn escaped(text: &str) -> Cow<'_, str> {
    let needs_escape = |c: char| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}');
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert!(matches!(escaped("ada@example.com"), Cow::Borrowed(_)));
        assert_eq!(escaped("évé ü 中"), "évé ü 中");
        assert_eq!(
            escaped("evil\nINFO forged line\0"),
            "evil\\nINFO forged line\\0"
        );
        assert_eq!(escaped("a\r\nb\tc"), "a\\r\\nb\\tc");
        assert_eq!(escaped("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(escaped("x\u{2028}y\u{85}"), "x\\u{2028}y\\u{85}");
        assert!(!escaped("a\nb\rc\0d\u{7f}").chars().any(char::is_control));
    }
}
