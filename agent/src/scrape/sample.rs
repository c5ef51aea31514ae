//! The unit of data between scraping and forwarding: a [`Sample`] (series labels, timestamp,
//! value) and the [`Appender`] seam through which scrape loops hand samples to receivers
//! such as `prometheus.remote_write`. No I/O here.

use std::fmt;
use std::sync::Arc;

pub use super::exposition::MetricType;

/// Bit pattern of the staleness marker, a NaN that Prometheus reads as "this series ended".
/// A plain NaN sample is not a staleness marker.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker value.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// Whether `v` is the staleness marker (not just any NaN).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// A series' labels, sorted by name, names unique, no empty values. `__name__` is a label.
/// Immutable and shared: cloning is a reference-count increment, so the same labels can sit
/// in the scrape cache and in several remote write queues without copies.
///
/// Stored compactly in one allocation (a series costs about its text plus 8 bytes per label,
/// not a string allocation per name and value): the pair count (u32 LE), then per pair the
/// name and value lengths (u32 LE each), then all names and values back to back. The encoding
/// is canonical, so equal label sets have equal bytes.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Labels(Arc<[u8]>);

const LEN_BYTES: usize = 4;

impl Labels {
    /// Builds labels from pairs: sorts them, drops empty values, and on duplicate names keeps
    /// the last pair.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Labels {
        let mut v: Vec<(String, String)> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        // Stable sort, then keep the last of each name.
        v.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(String, String)> = Vec::with_capacity(v.len());
        for pair in v {
            match out.last_mut() {
                Some(last) if last.0 == pair.0 => *last = pair,
                _ => out.push(pair),
            }
        }
        out.retain(|(_, v)| !v.is_empty());
        if out.is_empty() {
            return Labels::default();
        }
        let text: usize = out.iter().map(|(k, v)| k.len() + v.len()).sum();
        let mut buf: Vec<u8> = Vec::with_capacity(LEN_BYTES * (1 + 2 * out.len()) + text);
        buf.extend_from_slice(&len_u32(out.len()).to_le_bytes());
        for (k, v) in &out {
            buf.extend_from_slice(&len_u32(k.len()).to_le_bytes());
            buf.extend_from_slice(&len_u32(v.len()).to_le_bytes());
        }
        for (k, v) in &out {
            buf.extend_from_slice(k.as_bytes());
            buf.extend_from_slice(v.as_bytes());
        }
        Labels(buf.into())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        let b: &[u8] = &self.0;
        let n = self.len();
        let mut text = LEN_BYTES * (1 + 2 * n);
        (0..n).map(move |i| {
            let at = LEN_BYTES * (1 + 2 * i);
            let k = read_len(b, at);
            let v = read_len(b, at + LEN_BYTES);
            let name = &b[text..text + k];
            let value = &b[text + k..text + k + v];
            text += k + v;
            // SAFETY: `from_pairs` wrote these bytes from `&str`s at exactly these
            // boundaries, and nothing else constructs or mutates the buffer.
            unsafe {
                (
                    std::str::from_utf8_unchecked(name),
                    std::str::from_utf8_unchecked(value),
                )
            }
        })
    }

    pub fn len(&self) -> usize {
        if self.0.is_empty() {
            0
        } else {
            read_len(&self.0, 0)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The metric name (`__name__`), or `""`.
    pub fn name(&self) -> &str {
        self.get("__name__").unwrap_or("")
    }

    /// Whether both are the same allocation (so certainly equal): a cheap identity for
    /// caches that hold a clone, which keeps the allocation, and so the identity, alive.
    pub fn same(&self, other: &Labels) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The allocation's address (see [`Labels::same`]).
    pub fn addr(&self) -> usize {
        self.0.as_ptr() as usize
    }

    /// The canonical encoding described on the type (empty for no labels), as stored in the
    /// write-ahead log.
    pub fn encoded(&self) -> &[u8] {
        &self.0
    }

    /// Labels from [`Labels::encoded`] bytes, checked: well-formed lengths, UTF-8, names sorted
    /// and unique, no empty values. `None` for anything else (a damaged file).
    pub fn from_encoded(b: &[u8]) -> Option<Labels> {
        if b.is_empty() {
            return Some(Labels::default());
        }
        if b.len() < LEN_BYTES {
            return None;
        }
        let n = read_len(b, 0);
        let mut text = LEN_BYTES.checked_mul(n.checked_mul(2)?.checked_add(1)?)?;
        if n == 0 || text > b.len() {
            return None;
        }
        let mut prev: Option<&str> = None;
        for i in 0..n {
            let at = LEN_BYTES * (1 + 2 * i);
            let (k, v) = (read_len(b, at), read_len(b, at + LEN_BYTES));
            let end = text.checked_add(k)?.checked_add(v)?;
            if end > b.len() || v == 0 {
                return None;
            }
            let name = std::str::from_utf8(&b[text..text + k]).ok()?;
            std::str::from_utf8(&b[text + k..end]).ok()?;
            if prev.is_some_and(|p| p >= name) {
                return None;
            }
            prev = Some(name);
            text = end;
        }
        (text == b.len()).then(|| Labels(b.into()))
    }

    /// xxhash64 over `name 0xFF value 0xFF ...`, for grouping and sharding.
    pub fn hash(&self) -> u64 {
        let mut h = xxhash_rust::xxh64::Xxh64::new(0);
        for (k, v) in self.iter() {
            h.update(k.as_bytes());
            h.update(&[0xff]);
            h.update(v.as_bytes());
            h.update(&[0xff]);
        }
        h.digest()
    }
}

fn len_u32(n: usize) -> u32 {
    u32::try_from(n).expect("a label or label set larger than 4 GiB")
}

fn read_len(b: &[u8], at: usize) -> usize {
    let mut x = [0u8; LEN_BYTES];
    x.copy_from_slice(&b[at..at + LEN_BYTES]);
    u32::from_le_bytes(x) as usize
}

/// Pairwise order by (name, value), as a sorted list of string pairs compares.
impl Ord for Labels {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.iter().cmp(other.iter())
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{")?;
        for (i, (k, v)) in self.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{k}={v:?}")?;
        }
        write!(f, "}}")
    }
}

/// One value of one series at one time.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    pub value: f64,
}

/// The metadata of one metric family as a target exposes it (`# TYPE`, `# HELP`, `# UNIT`),
/// as Prometheus' scrape cache keeps it and remote write sends it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Metadata {
    /// The name in the metadata line (for an OpenMetrics counter, without `_total`).
    pub metric_family_name: String,
    pub kind: MetricType,
    pub help: String,
    pub unit: String,
}

/// Where scrape loops deliver samples (Alloy's `receiver` / Prometheus' `Appendable`).
/// Implementations must not block: a full buffer drops and counts instead.
pub trait Appender: Send + Sync {
    fn append(&self, samples: &[Sample]);

    /// The metadata the scrape target `source` (a number unique to one scrape loop) has now,
    /// replacing what it had before; an empty list means the loop ended. Called after every
    /// scrape. Receivers that do not forward metadata ignore it.
    fn update_metadata(&self, _source: u64, _metadata: &Arc<[Metadata]>) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_sort_dedup_and_drop_empty_values() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("c", ""), ("a", "3")]);
        assert_eq!(format!("{l:?}"), r#"{a="3", b="2"}"#);
        assert_eq!(l.get("b"), Some("2"));
        assert_eq!(l.get("c"), None);
        assert_eq!(l.len(), 2);
        assert_eq!(Labels::default().len(), 0);
        assert_eq!(
            Labels::default(),
            Labels::from_pairs(Vec::<(String, String)>::new())
        );
    }

    #[test]
    fn labels_round_trip_utf8_and_order_pairwise() {
        let l = Labels::from_pairs([("__name__", "m"), ("path", "/ä/€"), ("a", "")]);
        let pairs: Vec<(&str, &str)> = l.iter().collect();
        assert_eq!(pairs, vec![("__name__", "m"), ("path", "/ä/€")]);
        assert_eq!(l.name(), "m");
        // Pairwise order, not byte order of the encoding (a longer first value sorts later
        // only by its text).
        let a = Labels::from_pairs([("a", "b"), ("z", "1")]);
        let b = Labels::from_pairs([("a", "bb")]);
        assert!(a < b);
        assert_eq!(
            a.hash(),
            Labels::from_pairs([("z", "1"), ("a", "b")]).hash()
        );
    }

    #[test]
    fn encoded_labels_round_trip_and_damaged_bytes_are_refused() {
        let l = Labels::from_pairs([("__name__", "up"), ("job", "a/ä")]);
        assert_eq!(Labels::from_encoded(l.encoded()), Some(l.clone()));
        assert_eq!(Labels::from_encoded(&[]), Some(Labels::default()));
        let b = l.encoded();
        for cut in 1..b.len() {
            assert_eq!(Labels::from_encoded(&b[..cut]), None, "cut at {cut}");
        }
        let unsorted = Labels(Arc::from(
            &b"\x02\0\0\0\x01\0\0\0\x01\0\0\0\x01\0\0\0\x01\0\0\0bxay"[..],
        ));
        assert_eq!(Labels::from_encoded(unsorted.encoded()), None);
        let mut bad_utf8 = b.to_vec();
        *bad_utf8.last_mut().unwrap() = 0xff;
        assert_eq!(Labels::from_encoded(&bad_utf8), None);
    }

    #[test]
    fn stale_marker_is_a_specific_nan() {
        assert!(is_stale_nan(stale_nan()));
        assert!(!is_stale_nan(f64::NAN));
    }
}
