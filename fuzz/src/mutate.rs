//! Mutations: byte-level (flips, interesting bytes, insert/delete/duplicate
//! ranges, splices of two corpus entries, dictionary tokens, huge numbers,
//! deep nesting) and, for JSON targets, structure-aware ones (a value, a key
//! or a type changed in the parsed document, which is then re-serialised).

use serde_json::{Map, Value};

/// splitmix64: small, fast, and the same everywhere for a seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`; 0 when `n` is 0.
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Tokens every target gets: JSON punctuation, boundary numbers, times at
/// the edges of what RFC 3339 allows, escapes and odd characters.
const COMMON_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    "\\",
    ":",
    ",",
    "null",
    "true",
    "false",
    "0",
    "-1",
    "-0",
    "1e309",
    "-1e309",
    "1e300",
    "5e-324",
    "0.1",
    "4294967295",
    "4294967296",
    "9007199254740993",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "-9223372036854775809",
    "\"\\u0000\"",
    "\\u0000",
    "\\ud800",
    "\\udfff",
    "\u{feff}",
    "\u{202e}",
    "\r\n",
    "\n",
    "\t",
    "9999-12-31T23:59:59Z",
    "0000-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "2026-02-29T10:00:00Z",
    "2026-11-23T10:00:00.250+02:00",
    "2026-11-23T10:00:00.999999999999-23:59",
    "+14:00",
    "T24:00:00",
    "..",
    "/",
    "%00",
    "%2e%2e/",
];

/// Interesting JSON numbers for structure-aware mutations.
fn interesting_number(rng: &mut Rng) -> Value {
    match rng.below(12) {
        0 => Value::from(0),
        1 => Value::from(-1),
        2 => Value::from(u64::MAX),
        3 => Value::from(i64::MIN),
        4 => Value::from(u64::from(u32::MAX)),
        5 => Value::from(1e300),
        6 => Value::from(-1e300),
        7 => Value::from(0.5),
        8 => Value::from(f64::MIN_POSITIVE),
        9 => Value::from(9_007_199_254_740_993u64),
        10 => Value::from(i64::MAX),
        _ => Value::from(rng.below(100_000) as u64),
    }
}

/// Makes new inputs from corpus entries.
pub struct Mutator {
    tokens: Vec<&'static str>,
    /// Target tokens that are JSON strings (`"created_at"`), unquoted: keys
    /// and string values for structure-aware mutations.
    words: Vec<String>,
    json: bool,
    max_len: usize,
}

impl Mutator {
    pub fn new(dictionary: &'static [&'static str], json: bool, max_len: usize) -> Mutator {
        let words = dictionary
            .iter()
            .filter(|t| t.len() >= 2 && t.starts_with('"') && t.ends_with('"'))
            .map(|t| t[1..t.len() - 1].to_string())
            .collect();
        let mut tokens: Vec<&'static str> = dictionary.to_vec();
        tokens.extend_from_slice(COMMON_TOKENS);
        Mutator {
            tokens,
            words,
            json,
            max_len,
        }
    }

    /// One new input from `base`: a structure-aware change (JSON targets,
    /// one time in three), else a stack of 1 to 8 byte-level ones.
    pub fn mutate(&self, rng: &mut Rng, base: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
        let mut out = None;
        if self.json && rng.one_in(3) {
            out = self.mutate_json(rng, base, corpus);
        }
        let mut out = match out {
            Some(out) if !rng.one_in(4) => out,
            other => {
                let mut bytes = other.unwrap_or_else(|| base.to_vec());
                for _ in 0..(1usize << rng.below(4)) {
                    self.mutate_bytes(rng, &mut bytes, corpus);
                }
                bytes
            }
        };
        out.truncate(self.max_len);
        out
    }

    fn mutate_bytes(&self, rng: &mut Rng, data: &mut Vec<u8>, corpus: &[Vec<u8>]) {
        let len = data.len();
        match rng.below(12) {
            // Flip one bit.
            0 if len > 0 => {
                let at = rng.below(len);
                data[at] ^= 1 << rng.below(8);
            }
            // An interesting byte.
            1 if len > 0 => {
                let at = rng.below(len);
                data[at] = *rng.pick(b"\0\x7f\x80\xff\"\\{}[],:\n\r 0-.eE");
            }
            // Delete a range.
            2 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(64));
                data.drain(at..at + n);
            }
            // Insert random bytes.
            3 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                data.splice(at..at, bytes);
            }
            // Duplicate a range somewhere (repeated fields, long strings).
            4 if len > 0 => {
                let from = rng.below(len);
                let n = 1 + rng.below((len - from).min(256));
                let chunk = data[from..from + n].to_vec();
                let most = if rng.one_in(8) { 200 } else { 3 };
                let times = 1 + rng.below(most);
                let at = rng.below(len + 1);
                let repeated: Vec<u8> = chunk.iter().copied().cycle().take(n * times).collect();
                data.splice(at..at, repeated);
            }
            // Splice: this input's head, another's tail.
            5 if !corpus.is_empty() => {
                let other = rng.pick(corpus);
                let head = rng.below(len + 1);
                let tail = rng.below(other.len() + 1);
                data.truncate(head);
                data.extend_from_slice(&other[tail..]);
            }
            // Insert a chunk of another input.
            6 if !corpus.is_empty() => {
                let other = rng.pick(corpus);
                if !other.is_empty() {
                    let from = rng.below(other.len());
                    let n = 1 + rng.below((other.len() - from).min(128));
                    let at = rng.below(len + 1);
                    data.splice(at..at, other[from..from + n].iter().copied());
                }
            }
            // Replace a run of digits by a boundary number.
            7 if len > 0 => {
                let start = rng.below(len);
                if let Some(offset) = data[start..].iter().position(u8::is_ascii_digit) {
                    let from = start + offset;
                    let to = from
                        + data[from..]
                            .iter()
                            .take_while(|b| b.is_ascii_digit() || **b == b'.')
                            .count();
                    let number = *rng.pick(&[
                        "18446744073709551615",
                        "18446744073709551616",
                        "9223372036854775807",
                        "4294967295",
                        "0",
                        "1e300",
                        "99999999999999999999999999",
                        "0.0000001",
                    ]);
                    data.splice(from..to, number.bytes());
                }
            }
            // Deep nesting at some place.
            8 => {
                let most = if rng.one_in(4) { 300 } else { 20 };
                let depth = 1 + rng.below(most);
                let (open, close) = if rng.one_in(2) {
                    ("[", "]")
                } else {
                    ("{\"a\":", "}")
                };
                let at = rng.below(len + 1);
                let mut nested = open.repeat(depth).into_bytes();
                nested.extend_from_slice(b"1");
                nested.extend(close.repeat(depth).into_bytes());
                data.splice(at..at, nested);
            }
            // Replace a range by a token.
            9 if len > 0 => {
                let at = rng.below(len);
                let n = rng.below((len - at).min(16));
                let token = *rng.pick(&self.tokens);
                data.splice(at..at + n, token.bytes());
            }
            // Insert a token (the most frequent: it is how fields and
            // edge values get in).
            _ => {
                let at = rng.below(len + 1);
                let token = *rng.pick(&self.tokens);
                data.splice(at..at, token.bytes());
            }
        }
    }

    /// Parses the input (after its `#meta` lines) as one JSON document, or
    /// one of its lines as one (NDJSON), changes one node and re-serialises.
    /// `None` when nothing parses.
    fn mutate_json(&self, rng: &mut Rng, base: &[u8], corpus: &[Vec<u8>]) -> Option<Vec<u8>> {
        let (meta, body) = split_meta(base);
        let mut out = meta.to_vec();
        if let Ok(mut value) = serde_json::from_slice::<Value>(body) {
            self.mutate_value(rng, &mut value, corpus);
            out.extend(serialise(rng, &value));
            return Some(out);
        }
        let lines: Vec<&[u8]> = body.split(|b| *b == b'\n').collect();
        let parsed: Vec<usize> = (0..lines.len())
            .filter(|&i| serde_json::from_slice::<Value>(lines[i]).is_ok())
            .collect();
        if parsed.is_empty() {
            return None;
        }
        let chosen = *rng.pick(&parsed);
        for (i, line) in lines.iter().enumerate() {
            if i > 0 {
                out.push(b'\n');
            }
            if i == chosen {
                let mut value: Value = serde_json::from_slice(line).ok()?;
                self.mutate_value(rng, &mut value, corpus);
                out.extend(serde_json::to_vec(&value).ok()?);
            } else {
                out.extend_from_slice(line);
            }
        }
        Some(out)
    }

    fn mutate_value(&self, rng: &mut Rng, root: &mut Value, corpus: &[Vec<u8>]) {
        let count = count_nodes(root);
        let target = rng.below(count);
        let node = nth_node(root, target).expect("index below the node count");
        match rng.below(9) {
            0 => *node = self.scalar(rng),
            1 => {
                let old = node.take();
                *node = match rng.below(3) {
                    0 => Value::Array(vec![old]),
                    1 => Value::Array(Vec::new()),
                    _ => Value::Object(Map::new()),
                };
            }
            2 => match node {
                Value::Object(map) if !map.is_empty() => {
                    let key = map.keys().nth(rng.below(map.len())).cloned();
                    if let Some(key) = key {
                        map.remove(&key);
                    }
                }
                Value::Array(items) if !items.is_empty() => {
                    items.remove(rng.below(items.len()));
                }
                _ => *node = Value::Null,
            },
            3 => {
                if let Value::Object(map) = node
                    && !map.is_empty()
                {
                    let key = map.keys().nth(rng.below(map.len())).cloned();
                    if let Some(key) = key
                        && let Some(value) = map.remove(&key)
                    {
                        map.insert(self.word(rng), value);
                    }
                }
            }
            4 => {
                if let Value::Object(map) = node {
                    let value = if rng.one_in(2) {
                        self.scalar(rng)
                    } else {
                        donor(rng, corpus).unwrap_or(Value::Null)
                    };
                    map.insert(self.word(rng), value);
                }
            }
            5 => {
                if let Value::Array(items) = node
                    && !items.is_empty()
                {
                    let item = items[rng.below(items.len())].clone();
                    let most = if rng.one_in(8) { 100 } else { 2 };
                    let times = 1 + rng.below(most);
                    items.extend(std::iter::repeat_n(item, times));
                }
            }
            6 => {
                if let Some(value) = donor(rng, corpus) {
                    *node = value;
                }
            }
            7 => match node {
                Value::String(text) => match rng.below(5) {
                    0 => text.clear(),
                    1 => text.push_str(&self.word(rng)),
                    2 => *text = text.repeat(2 + rng.below(50)),
                    3 => text.insert(0, *rng.pick(&['\0', '\n', '\u{202e}', '"', '\u{fffd}'])),
                    _ => *text = self.word(rng),
                },
                Value::Number(_) => *node = interesting_number(rng),
                Value::Bool(b) => *b = !*b,
                _ => *node = interesting_number(rng),
            },
            _ => *node = Value::String(self.word(rng)),
        }
    }

    fn scalar(&self, rng: &mut Rng) -> Value {
        match rng.below(6) {
            0 => Value::Null,
            1 => Value::Bool(rng.one_in(2)),
            2 | 3 => interesting_number(rng),
            _ => Value::String(self.word(rng)),
        }
    }

    fn word(&self, rng: &mut Rng) -> String {
        if self.words.is_empty() || rng.one_in(4) {
            rng.pick(&[
                "",
                "a",
                "id",
                "..",
                ".",
                "\u{0}",
                "x\ny",
                "javascript:alert(1)",
                "http://127.0.0.1:1/",
                "https://user:pw@example.com/",
                "9999-12-31T23:59:59Z",
            ])
            .to_string()
        } else {
            rng.pick(&self.words).clone()
        }
    }
}

/// A random subtree of a random corpus entry that parses as JSON.
fn donor(rng: &mut Rng, corpus: &[Vec<u8>]) -> Option<Value> {
    let entry = rng.pick(corpus);
    let (_, body) = split_meta(entry);
    let mut value: Value = serde_json::from_slice(body).ok()?;
    let n = count_nodes(&value);
    let index = rng.below(n);
    nth_node(&mut value, index).map(|v| v.take())
}

fn serialise(rng: &mut Rng, value: &Value) -> Vec<u8> {
    let out = if rng.one_in(2) {
        serde_json::to_vec_pretty(value)
    } else {
        serde_json::to_vec(value)
    };
    out.unwrap_or_default()
}

fn count_nodes(value: &Value) -> usize {
    1 + match value {
        Value::Array(items) => items.iter().map(count_nodes).sum(),
        Value::Object(map) => map.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// The `index`-th node in pre-order.
fn nth_node(value: &mut Value, index: usize) -> Option<&mut Value> {
    fn walk<'v>(value: &'v mut Value, index: &mut usize) -> Option<&'v mut Value> {
        if *index == 0 {
            return Some(value);
        }
        *index -= 1;
        match value {
            Value::Array(items) => items.iter_mut().find_map(|v| walk_counted(v, index)),
            Value::Object(map) => map.values_mut().find_map(|v| walk_counted(v, index)),
            _ => None,
        }
    }
    // Skips whole subtrees that end before the index.
    fn walk_counted<'v>(value: &'v mut Value, index: &mut usize) -> Option<&'v mut Value> {
        let n = count_nodes(value);
        if *index >= n {
            *index -= n;
            None
        } else {
            walk(value, index)
        }
    }
    let mut index = index;
    walk(value, &mut index)
}

/// Splits the harness's leading `#name: value` lines from the body.
pub fn split_meta(input: &[u8]) -> (&[u8], &[u8]) {
    let mut at = 0;
    while input[at..].starts_with(b"#") {
        match input[at..].iter().position(|b| *b == b'\n') {
            Some(end) => at += end + 1,
            None => break,
        }
    }
    input.split_at(at)
}

/// The value of a `#name: value` meta line, if the input has one.
pub fn meta<'a>(input: &'a [u8], name: &str) -> Option<&'a str> {
    let (meta, _) = split_meta(input);
    meta.split(|b| *b == b'\n').find_map(|line| {
        let line = std::str::from_utf8(line).ok()?;
        let rest = line.strip_prefix('#')?;
        let (key, value) = rest.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_makes_the_same_inputs() {
        let corpus = vec![br#"{"a": [1, "b", {"c": null}]}"#.to_vec()];
        let mutator = Mutator::new(&["\"created_at\""], true, 1024);
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..50)
                .map(|_| mutator.mutate(&mut rng, &corpus[0], &corpus))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn nodes_are_reached_in_pre_order() {
        let mut value: Value = serde_json::from_str(r#"{"a": [1, 2], "b": 3}"#).unwrap();
        assert_eq!(count_nodes(&value), 5);
        assert_eq!(nth_node(&mut value, 3).cloned(), Some(Value::from(2)));
        assert_eq!(nth_node(&mut value, 4).cloned(), Some(Value::from(3)));
        assert_eq!(nth_node(&mut value, 5), None);
    }

    #[test]
    fn meta_lines_are_split_from_the_body() {
        let input = b"#content-type: application/x-ndjson\n{\"a\":1}\n";
        assert_eq!(meta(input, "content-type"), Some("application/x-ndjson"));
        assert_eq!(split_meta(input).1, b"{\"a\":1}\n");
        assert_eq!(meta(b"{}", "status"), None);
    }
}
