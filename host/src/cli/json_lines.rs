//! Where each value of a JSON document is, by line: what lets `config
//! check` name the line of a problem the checks name by path
//! (`authentication.password`, `mappings[1].id`).

use std::collections::BTreeMap;

/// The line (1-based) of every value of `text`, by its path in the form the
/// checks use: `a.b`, `a[0].c`; the root is `""`. Reads valid JSON only (the
/// document parsed before it is located); anything else ends the reading
/// where it stands, with what was found until then.
pub fn value_lines(text: &str) -> BTreeMap<String, usize> {
    let mut reader = Reader {
        bytes: text.as_bytes(),
        at: 0,
        line: 1,
        lines: BTreeMap::new(),
    };
    reader.value(String::new());
    reader.lines
}

/// The line of `path`, or of its nearest ancestor that is in the document
/// (a missing field is reported where its object is).
pub fn line_of(lines: &BTreeMap<String, usize>, path: &str) -> usize {
    let mut path = path;
    loop {
        if let Some(line) = lines.get(path) {
            return *line;
        }
        match path.rfind(['.', '[']) {
            Some(cut) => path = &path[..cut],
            None => return lines.get("").copied().unwrap_or(1),
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    line: usize,
    lines: BTreeMap<String, usize>,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while let Some(byte) = self.peek() {
            match byte {
                b'\n' => self.line += 1,
                b' ' | b'\t' | b'\r' => {}
                _ => return,
            }
            self.at += 1;
        }
    }

    fn value(&mut self, path: String) {
        self.skip_space();
        self.lines.entry(path.clone()).or_insert(self.line);
        match self.peek() {
            Some(b'{') => self.object(&path),
            Some(b'[') => self.array(&path),
            Some(b'"') => {
                self.string();
            }
            Some(_) => {
                while self.peek().is_some_and(|b| {
                    !matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n')
                }) {
                    self.at += 1;
                }
            }
            None => {}
        }
    }

    fn object(&mut self, path: &str) {
        self.at += 1;
        loop {
            self.skip_space();
            match self.peek() {
                Some(b'"') => {}
                Some(b'}') | None => {
                    self.at += 1;
                    return;
                }
                Some(_) => return,
            }
            let key_line = self.line;
            let key = self.string();
            let child = if path.is_empty() {
                key
            } else {
                format!("{path}.{key}")
            };
            self.lines.insert(child.clone(), key_line);
            self.skip_space();
            if self.peek() != Some(b':') {
                return;
            }
            self.at += 1;
            self.value(child);
            self.skip_space();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return;
                }
                _ => return,
            }
        }
    }

    fn array(&mut self, path: &str) {
        self.at += 1;
        let mut index = 0;
        loop {
            self.skip_space();
            if matches!(self.peek(), Some(b']') | None) {
                self.at += 1;
                return;
            }
            self.value(format!("{path}[{index}]"));
            index += 1;
            self.skip_space();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return;
                }
                _ => return,
            }
        }
    }

    /// Reads a string (the quote at `at`) and returns its text, escapes as
    /// written but `\"` and `\\` undone: enough for keys.
    fn string(&mut self) -> String {
        self.at += 1;
        let mut text = Vec::new();
        while let Some(byte) = self.peek() {
            self.at += 1;
            match byte {
                b'"' => break,
                b'\\' => {
                    if let Some(escaped) = self.peek() {
                        self.at += 1;
                        match escaped {
                            b'"' | b'\\' | b'/' => text.push(escaped),
                            other => text.extend([b'\\', other]),
                        }
                    }
                }
                other => text.push(other),
            }
        }
        String::from_utf8_lossy(&text).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_has_its_line_and_a_missing_one_its_parent_s() {
        let text = r#"{
  "type_id": "dotdigital",
  "authentication": {
    "url": "https://r1-api.dotdigital.com",
    "password": "x\"y"
  },
  "mappings": [
    {"id": "A", "value": "b"},
    {
      "id": "NEWSLETTER",
      "value": "consents_purposes_newsletter_enabled"
    }
  ],
  "odd key.with dot": [1, [2, 3]]
}"#;
        let lines = value_lines(text);
        assert_eq!(lines[""], 1);
        assert_eq!(lines["type_id"], 2);
        assert_eq!(lines["authentication.password"], 5);
        assert_eq!(lines["mappings[0].value"], 8);
        assert_eq!(lines["mappings[1]"], 9);
        assert_eq!(lines["mappings[1].value"], 11);
        assert_eq!(line_of(&lines, "authentication.username"), 3);
        assert_eq!(line_of(&lines, "mappings[1].id"), 10);
        assert_eq!(line_of(&lines, "properties.list"), 1);
        assert_eq!(lines["odd key.with dot[1][0]"], 14);
    }

    #[test]
    fn a_truncated_document_ends_the_reading_without_a_panic() {
        for text in [
            "{",
            "{\"a\": [1, ",
            "[\"x",
            "{\"a\" 1}",
            "",
            "\"",
            "{\"a\":",
        ] {
            let _ = value_lines(text);
        }
    }
}
