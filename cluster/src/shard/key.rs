//! Shard keys: how a scrape target (or any string) becomes the `u64` every algorithm hashes.
//!
//! This module owns the key derivation and the small integer mixers the algorithms share. It
//! must stay bit-compatible with Alloy (>= 1.2) for target keys and with ckit's `StringKey` for
//! strings, so that our numbers are comparable with theirs; changing either function moves every
//! target in a running cluster.

use xxhash_rust::xxh64::{xxh64, Xxh64};

/// The byte written after every label name and every label value (Prometheus `labels.seps`).
const LABEL_SEPARATOR: u8 = 0xFF;

/// Labels whose names start with this prefix are discovery metadata, not target identity.
const META_PREFIX: &str = "__meta_";

/// The shard key of a scrape target, as Alloy >= 1.2 computes it.
///
/// xxhash64 (seed 0) over the labels sorted by name, skipping every label whose name starts with
/// `__meta_`, each written as `name 0xFF value 0xFF`. The input order of `labels` does not
/// matter. Labels with equal names are written in their input order after the stable sort;
/// Prometheus label sets never contain duplicates, so this is only a defined fallback.
pub fn target_key<N: AsRef<str>, V: AsRef<str>>(labels: &[(N, V)]) -> u64 {
    let mut kept: Vec<(&str, &str)> = labels
        .iter()
        .map(|(n, v)| (n.as_ref(), v.as_ref()))
        .filter(|(n, _)| !n.starts_with(META_PREFIX))
        .collect();
    kept.sort_by(|a, b| a.0.cmp(b.0));
    let mut hasher = Xxh64::new(0);
    for (name, value) in kept {
        hasher.update(name.as_bytes());
        hasher.update(&[LABEL_SEPARATOR]);
        hasher.update(value.as_bytes());
        hasher.update(&[LABEL_SEPARATOR]);
    }
    hasher.digest()
}

/// The shard key of a plain string: xxhash64 (seed 0) of its bytes, like ckit's `StringKey`.
///
/// The quality harness and the simulator name their targets `target-<i>` and key them with this.
pub fn key_of_str(s: &str) -> u64 {
    xxh64(s.as_bytes(), 0)
}

/// A bijective 64-bit finalizer with full avalanche (the SplitMix64 / Stafford "mix13" output
/// function). Rendezvous scores are `mix64(key ^ node_hash)`.
#[inline]
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_key_is_xxhash_of_sorted_labels_with_ff_separators() {
        let expected = xxh64(b"instance\xFFhost:9100\xFFjob\xFFnode\xFF", 0);
        assert_eq!(
            target_key(&[("job", "node"), ("instance", "host:9100")]),
            expected
        );
    }

    #[test]
    fn target_key_ignores_meta_labels_and_input_order() {
        let a = target_key(&[
            ("__meta_kubernetes_pod_name", "p-1"),
            ("job", "node"),
            ("__address__", "10.0.0.1:9100"),
        ]);
        let b = target_key(&[("__address__", "10.0.0.1:9100"), ("job", "node")]);
        assert_eq!(a, b);
        // Only the `__meta_` prefix is metadata; other double-underscore labels count.
        assert_ne!(a, target_key(&[("job", "node")]));
    }

    #[test]
    fn target_key_of_no_labels_is_hash_of_empty_input() {
        let none: [(&str, &str); 0] = [];
        assert_eq!(target_key(&none), xxh64(b"", 0));
    }

    #[test]
    fn key_of_str_matches_xxhash64_seed_zero() {
        // Reference value of XXH64("", 0) from the xxHash specification.
        assert_eq!(key_of_str(""), 0xEF46_DB37_51D8_E999);
        assert_eq!(key_of_str("target-0"), xxh64(b"target-0", 0));
    }

    #[test]
    fn mix64_is_splitmix64_output() {
        // First output of SplitMix64 seeded with 0: mix64(0 + golden gamma).
        assert_eq!(mix64(0x9E37_79B9_7F4A_7C15), 0xE220_A839_7B1D_CDAF);
    }
}
