//! Prometheus `hashmod` relabelling, the baseline every other algorithm is compared against.
//!
//! This module owns the Prometheus digest (md5 of the source value, last 8 bytes read big-endian
//! as a u64) and the bucket rule (digest mod N over the sorted eligible names). Prometheus joins
//! the source label values with the relabel separator (default `;`) before hashing; for our u64
//! shard keys the source value is the key's decimal form (`12345`, no padding, no sign).
//!
//! Plain modulo is not consistent: going from N to N+1 buckets keeps a key only if
//! `d mod N == d mod (N+1)`, so N/(N+1) of all keys move (99% at N = 100), against the 1/(N+1)
//! a consistent hash moves. It is here to be measured against, not to be used.

use md5::{Digest, Md5};

/// Prometheus' `sum64(md5.Sum(value))`: the last 8 bytes of the md5 digest, big-endian.
pub fn prometheus_digest(value: &str) -> u64 {
    let sum = Md5::digest(value.as_bytes());
    let mut tail = [0u8; 8];
    tail.copy_from_slice(&sum[8..16]);
    u64::from_be_bytes(tail)
}

/// The Prometheus `hashmod` bucket of a source value: `prometheus_digest(value) % modulus`.
/// `modulus` must not be zero (Prometheus rejects a zero modulus in config validation).
pub fn hashmod(value: &str, modulus: u64) -> u64 {
    assert!(modulus > 0, "hashmod modulus must not be zero");
    prometheus_digest(value) % modulus
}

/// The digest of a shard key: md5 of the key's decimal form.
pub(crate) fn key_digest(key: u64) -> u64 {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    let mut rest = key;
    loop {
        at -= 1;
        buf[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    let text = std::str::from_utf8(&buf[at..]).expect("ascii digits");
    prometheus_digest(text)
}

/// Up to `replicas` nodes of `n` for a key with `digest`: bucket `digest % n` first, then the
/// following buckets in index order (Prometheus has no replicas; this is our extension).
pub(crate) fn lookup(digest: u64, n: usize, replicas: usize) -> Vec<u32> {
    let want = replicas.min(n);
    if want == 0 {
        return Vec::new();
    }
    let first = (digest % n as u64) as usize;
    (0..want).map(|i| ((first + i) % n) as u32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_last_eight_md5_bytes_big_endian() {
        // md5("") = d41d8cd98f00b204 e9800998ecf8427e (RFC 1321 test suite).
        assert_eq!(prometheus_digest(""), 0xE980_0998_ECF8_427E);
        // md5("abc") = 900150983cd24fb0 d6963f7d28e17f72.
        assert_eq!(prometheus_digest("abc"), 0xD696_3F7D_28E1_7F72);
        assert_eq!(hashmod("abc", 10), 0xD696_3F7D_28E1_7F72 % 10);
    }

    #[test]
    fn key_digest_hashes_the_decimal_form() {
        for key in [0u64, 7, 12345, u64::MAX] {
            assert_eq!(key_digest(key), prometheus_digest(&key.to_string()));
        }
        // md5("0") = cfcd208495d565ef 66e7dff9f98764da.
        assert_eq!(key_digest(0), 0x66E7_DFF9_F987_64DA);
    }

    #[test]
    fn replicas_follow_the_bucket_in_index_order() {
        assert_eq!(lookup(7, 5, 3), vec![2, 3, 4]);
        assert_eq!(lookup(9, 5, 3), vec![4, 0, 1]);
        assert_eq!(lookup(9, 2, 3), vec![1, 0]);
        assert!(lookup(9, 0, 3).is_empty());
    }
}
