//! What a row must send, given what the destination last accepted for its
//! key. The snapshot keeps, per key, a hash of each mapped attribute's
//! value (16 bytes an attribute: the attribute name's hash, the value's),
//! never the values themselves.

use sha2::{Digest, Sha256};

use crate::runtime::Value;

/// The hashes of one row's attribute values, sorted by the name's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowHashes(Vec<(u64, u64)>);

fn hash64(parts: &[&[u8]]) -> u64 {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    let digest = hasher.finalize();
    u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// The hash of an attribute's name.
pub fn name_hash(name: &str) -> u64 {
    hash64(&[b"name", name.as_bytes()])
}

/// The hash of a value, its type included (`1` and `"1"` differ).
pub fn value_hash(value: &Value) -> u64 {
    match value {
        Value::Null => hash64(&[b"null"]),
        Value::Boolean(b) => hash64(&[b"bool", &[u8::from(*b)]]),
        Value::Number(n) => hash64(&[b"number", &n.to_bits().to_le_bytes()]),
        Value::Text(t) => hash64(&[b"text", t.as_bytes()]),
    }
}

impl RowHashes {
    /// From `(name hash, value)` pairs.
    pub fn new(mut pairs: Vec<(u64, u64)>) -> Self {
        pairs.sort_unstable();
        RowHashes(pairs)
    }

    /// The snapshot's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.0.len() * 16);
        for (name, value) in &self.0 {
            bytes.extend_from_slice(&name.to_le_bytes());
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        bytes
    }

    /// Reads the snapshot's bytes; a damaged entry reads as empty, so every
    /// attribute is sent again (never silently kept).
    pub fn decode(bytes: &[u8]) -> Self {
        if !bytes.len().is_multiple_of(16) {
            return RowHashes(Vec::new());
        }
        RowHashes::new(
            bytes
                .chunks_exact(16)
                .map(|c| {
                    (
                        u64::from_le_bytes(c[..8].try_into().expect("8 bytes")),
                        u64::from_le_bytes(c[8..].try_into().expect("8 bytes")),
                    )
                })
                .collect(),
        )
    }

    /// The value hash recorded for an attribute, if any.
    pub fn get(&self, name: u64) -> Option<u64> {
        self.0
            .binary_search_by_key(&name, |(n, _)| *n)
            .ok()
            .map(|i| self.0[i].1)
    }
}

/// Indexes (into `current`'s order) of the attributes whose value differs
/// from what `accepted` recorded; all of them when nothing was accepted.
pub fn changed(current: &[(u64, u64)], accepted: Option<&RowHashes>) -> Vec<usize> {
    (0..current.len())
        .filter(|&i| {
            let (name, value) = current[i];
            accepted.and_then(|a| a.get(name)) != Some(value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(values: &[(&str, Value)]) -> Vec<(u64, u64)> {
        values
            .iter()
            .map(|(n, v)| (name_hash(n), value_hash(v)))
            .collect()
    }

    #[test]
    fn only_changed_and_new_attributes_are_picked() {
        let before = row(&[
            ("FIRSTNAME", Value::Text("Ann".into())),
            ("AGE", Value::Number(41.0)),
        ]);
        let accepted = RowHashes::decode(&RowHashes::new(before).encode());
        let now = row(&[
            ("FIRSTNAME", Value::Text("Ann".into())),
            ("AGE", Value::Number(42.0)),
            ("CITY", Value::Text("Lyon".into())),
        ]);
        assert_eq!(changed(&now, Some(&accepted)), [1, 2]);
        assert_eq!(changed(&now, None), [0, 1, 2]);
        assert_eq!(changed(&now[..1], Some(&accepted)), Vec::<usize>::new());
    }

    #[test]
    fn types_matter_and_damage_means_resend() {
        assert_ne!(
            value_hash(&Value::Number(1.0)),
            value_hash(&Value::Text("1".into()))
        );
        assert_ne!(
            value_hash(&Value::Null),
            value_hash(&Value::Text(String::new()))
        );
        let damaged = RowHashes::decode(&[1, 2, 3]);
        assert_eq!(changed(&row(&[("A", Value::Null)]), Some(&damaged)), [0]);
    }
}
