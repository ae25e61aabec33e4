//! The `cache` import: a small TTL cache scoped to one integration, for
//! things like access tokens. In memory: losing it only costs a refresh.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most entries one integration may keep; a guest cannot grow the host's memory without bound.
pub const MAX_ENTRIES_PER_INTEGRATION: usize = 256;
/// Largest value kept, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

#[derive(Debug, Default)]
pub struct KvCache {
    entries: Mutex<HashMap<(String, String), (String, Instant)>>,
}

impl KvCache {
    pub fn get(&self, integration: &str, key: &str) -> Option<String> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let k = (integration.to_string(), key.to_string());
        match entries.get(&k) {
            Some((value, expires)) if *expires > Instant::now() => Some(value.clone()),
            Some(_) => {
                entries.remove(&k);
                None
            }
            None => None,
        }
    }

    /// Stores `value` for `ttl`; returns false when refused for size or count.
    pub fn set(&self, integration: &str, key: &str, value: &str, ttl: Duration) -> bool {
        if value.len() > MAX_VALUE_BYTES {
            return false;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        entries.retain(|_, (_, expires)| *expires > now);
        let k = (integration.to_string(), key.to_string());
        let count = entries.keys().filter(|(i, _)| i == integration).count();
        if !entries.contains_key(&k) && count >= MAX_ENTRIES_PER_INTEGRATION {
            return false;
        }
        entries.insert(k, (value.to_string(), now + ttl));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoped_and_expiring() {
        let cache = KvCache::default();
        assert!(cache.set("a", "token", "t1", Duration::from_secs(60)));
        assert_eq!(cache.get("a", "token").as_deref(), Some("t1"));
        assert_eq!(cache.get("b", "token"), None);
        assert!(cache.set("a", "old", "x", Duration::ZERO));
        assert_eq!(cache.get("a", "old"), None);
        assert!(!cache.set(
            "a",
            "big",
            &"x".repeat(MAX_VALUE_BYTES + 1),
            Duration::from_secs(1)
        ));
    }
}
