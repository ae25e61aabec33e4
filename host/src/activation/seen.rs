//! The keys a run has seen, as a bitmap of their snapshot key numbers. A key
//! repeated in the model looks up to the same number, so the repeat is
//! caught exactly, without writing to the snapshot and without holding the
//! keys: one bit per key the activation's snapshot has numbered (about
//! 122 KiB for a million keys).

/// A set of key numbers, one bit each.
#[derive(Debug, Default)]
pub struct SeenKeys {
    words: Vec<u64>,
}

impl SeenKeys {
    /// Marks `key_number` seen; false when it already was.
    pub fn first_sight(&mut self, key_number: u64) -> bool {
        let word = usize::try_from(key_number / 64).expect("a key number fits in memory");
        let bit = 1u64 << (key_number % 64);
        if word >= self.words.len() {
            // `resize` grows the capacity geometrically: numbers arrive
            // mostly in increasing order.
            self.words.resize(word + 1, 0);
        }
        let first = self.words[word] & bit == 0;
        self.words[word] |= bit;
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_is_new_once() {
        let mut seen = SeenKeys::default();
        for n in [1, 64, 63, 65, 1_000_000, 0] {
            assert!(seen.first_sight(n), "{n}");
        }
        for n in [1, 64, 63, 65, 1_000_000, 0] {
            assert!(!seen.first_sight(n), "{n}");
        }
        assert!(seen.first_sight(2));
        assert!(seen.first_sight(999_999));
    }

    #[test]
    fn a_million_keys_take_an_eighth_of_a_megabyte() {
        let mut seen = SeenKeys::default();
        for n in 1..=1_000_000 {
            assert!(seen.first_sight(n));
        }
        let bytes = seen.words.capacity() * std::mem::size_of::<u64>();
        assert!(bytes <= 2 * 1_000_000 / 8, "{bytes}");
    }
}
