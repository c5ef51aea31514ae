//! The write-ahead log's record format: framing with a CRC, and the two record kinds.
//!
//! A record on disk is `kind: u8 | len: u32 LE | crc: u32 LE | payload[len]`. The CRC-32
//! (IEEE) covers the kind byte and the payload, so a torn write or a flipped bit is found
//! before anything is decoded. Kind bit 0x80 means the payload is snappy-compressed (raw
//! block format); the low bits say what the payload holds:
//!
//! - `SERIES` (1): `count` then per series `ref` and the labels' canonical encoding
//!   (`len` + bytes), every integer a LEB128 varint.
//! - `SAMPLES` (2): `count`, the first `ref` and the first timestamp, then per sample the
//!   `ref` delta to the previous sample and the timestamp delta to the first (both zigzag
//!   varints; a scrape's samples share one timestamp and have consecutive refs, so each is one
//!   byte), then the value XORed with the previous sample's value, as a header byte (leading
//!   and trailing zero bytes of the XOR, 4 bits each) and the bytes in between. Equal values
//!   take one byte, values of one family a few.
//!
//! Decoding never trusts the input: lengths are bounded, varints are checked, and a short or
//! malformed payload is an error, not a panic.

use crate::scrape::Labels;

pub const KIND_SERIES: u8 = 1;
pub const KIND_SAMPLES: u8 = 2;
const COMPRESSED: u8 = 0x80;
/// Bytes of the frame before the payload.
pub const HEADER_BYTES: usize = 9;
/// Largest payload accepted when reading (a corrupt length cannot make us allocate more).
pub const MAX_PAYLOAD_BYTES: usize = 64 << 20;
/// Payloads shorter than this are stored uncompressed.
const COMPRESS_MIN_BYTES: usize = 128;

/// One sample by series reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefSample {
    pub series: u64,
    pub timestamp_ms: i64,
    pub value: f64,
}

/// A decoded record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Series(Vec<(u64, Labels)>),
    Samples(Vec<RefSample>),
}

/// Why a record could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// Fewer bytes than the frame says: the end of what was written (a torn last write), or a
    /// truncated file.
    Incomplete,
    /// The frame or payload is damaged.
    Corrupt(String),
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// Reads payloads, with every read checked.
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn uvarint(&mut self) -> Result<u64, RecordError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = *self
                .b
                .get(self.at)
                .ok_or_else(|| corrupt("payload ends inside a number"))?;
            self.at += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(v);
            }
        }
        Err(corrupt("number longer than 10 bytes"))
    }

    fn varint(&mut self) -> Result<i64, RecordError> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or_else(|| corrupt("payload shorter than its contents"))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn count(&mut self, min_bytes_each: usize) -> Result<usize, RecordError> {
        let n = self.uvarint()?;
        let left = self.b.len() - self.at;
        usize::try_from(n)
            .ok()
            .filter(|n| n.saturating_mul(min_bytes_each) <= left)
            .ok_or_else(|| corrupt("count larger than the payload"))
    }
}

fn corrupt(why: &str) -> RecordError {
    RecordError::Corrupt(why.to_string())
}

/// Appends a framed series record.
pub fn encode_series(out: &mut Vec<u8>, series: &[(u64, Labels)], scratch: &mut Vec<u8>) {
    scratch.clear();
    put_uvarint(scratch, series.len() as u64);
    for (r, labels) in series {
        put_uvarint(scratch, *r);
        let b = labels.encoded();
        put_uvarint(scratch, b.len() as u64);
        scratch.extend_from_slice(b);
    }
    frame(out, KIND_SERIES, scratch);
}

/// Appends a framed samples record. `samples` must not be empty.
pub fn encode_samples(out: &mut Vec<u8>, samples: &[RefSample], scratch: &mut Vec<u8>) {
    scratch.clear();
    put_uvarint(scratch, samples.len() as u64);
    let (first_ref, first_ts) = samples
        .first()
        .map(|s| (s.series, s.timestamp_ms))
        .unwrap_or((0, 0));
    put_uvarint(scratch, first_ref);
    put_varint(scratch, first_ts);
    let (mut prev_ref, mut prev_bits) = (first_ref, 0u64);
    for s in samples {
        put_varint(scratch, s.series.wrapping_sub(prev_ref) as i64);
        put_varint(scratch, s.timestamp_ms.wrapping_sub(first_ts));
        let bits = s.value.to_bits();
        let x = bits ^ prev_bits;
        let lead = (x.leading_zeros() / 8).min(8) as usize;
        let trail = if x == 0 {
            0
        } else {
            (x.trailing_zeros() / 8) as usize
        };
        scratch.push(((lead as u8) << 4) | trail as u8);
        let be = x.to_be_bytes();
        if lead < 8 {
            scratch.extend_from_slice(&be[lead..8 - trail]);
        }
        prev_ref = s.series;
        prev_bits = bits;
    }
    frame(out, KIND_SAMPLES, scratch);
}

fn frame(out: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    let compressed;
    let (kind, payload) = if payload.len() >= COMPRESS_MIN_BYTES {
        compressed = snap::raw::Encoder::new()
            .compress_vec(payload)
            .unwrap_or_default();
        if !compressed.is_empty() && compressed.len() < payload.len() {
            (kind | COMPRESSED, &compressed[..])
        } else {
            (kind, payload)
        }
    } else {
        (kind, payload)
    };
    let mut crc = crc32fast::Hasher::new();
    crc.update(&[kind]);
    crc.update(payload);
    out.push(kind);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(payload);
}

/// The frame at the start of `b`: its kind, its (decompressed) payload and its length on
/// disk.
pub fn read_frame(b: &[u8]) -> Result<(u8, std::borrow::Cow<'_, [u8]>, usize), RecordError> {
    if b.len() < HEADER_BYTES {
        return Err(RecordError::Incomplete);
    }
    let kind = b[0];
    let len = u32::from_le_bytes(b[1..5].try_into().unwrap()) as usize;
    let want = u32::from_le_bytes(b[5..9].try_into().unwrap());
    if !matches!(kind & !COMPRESSED, KIND_SERIES | KIND_SAMPLES) {
        return Err(corrupt(&format!("unknown record kind {kind}")));
    }
    if len > MAX_PAYLOAD_BYTES {
        return Err(corrupt(&format!("record length {len} over the limit")));
    }
    if b.len() < HEADER_BYTES + len {
        return Err(RecordError::Incomplete);
    }
    let payload = &b[HEADER_BYTES..HEADER_BYTES + len];
    let mut crc = crc32fast::Hasher::new();
    crc.update(&[kind]);
    crc.update(payload);
    if crc.finalize() != want {
        return Err(corrupt("checksum mismatch"));
    }
    let payload = if kind & COMPRESSED != 0 {
        let n = snap::raw::decompress_len(payload).map_err(|e| corrupt(&format!("snappy: {e}")))?;
        if n > MAX_PAYLOAD_BYTES {
            return Err(corrupt("decompressed record over the limit"));
        }
        std::borrow::Cow::Owned(
            snap::raw::Decoder::new()
                .decompress_vec(payload)
                .map_err(|e| corrupt(&format!("snappy: {e}")))?,
        )
    } else {
        std::borrow::Cow::Borrowed(payload)
    };
    Ok((kind & !COMPRESSED, payload, HEADER_BYTES + len))
}

/// Decodes a payload of the given kind.
pub fn decode(kind: u8, payload: &[u8]) -> Result<Record, RecordError> {
    let mut c = Cursor { b: payload, at: 0 };
    match kind {
        KIND_SERIES => {
            let n = c.count(2)?;
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let r = c.uvarint()?;
                let len = c.count(1)?;
                let labels = Labels::from_encoded(c.bytes(len)?)
                    .ok_or_else(|| corrupt("malformed labels"))?;
                out.push((r, labels));
            }
            Ok(Record::Series(out))
        }
        KIND_SAMPLES => {
            let n = c.count(3)?;
            let first_ref = c.uvarint()?;
            let first_ts = c.varint()?;
            let (mut prev_ref, mut prev_bits) = (first_ref, 0u64);
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let series = prev_ref.wrapping_add(c.varint()? as u64);
                let ts = first_ts.wrapping_add(c.varint()?);
                let head = c.bytes(1)?[0];
                let (lead, trail) = ((head >> 4) as usize, (head & 0x0f) as usize);
                let x = if lead >= 8 {
                    0
                } else {
                    if lead + trail > 8 {
                        return Err(corrupt("bad value header"));
                    }
                    let mid = c.bytes(8 - lead - trail)?;
                    let mut be = [0u8; 8];
                    be[lead..8 - trail].copy_from_slice(mid);
                    u64::from_be_bytes(be)
                };
                let bits = prev_bits ^ x;
                out.push(RefSample {
                    series,
                    timestamp_ms: ts,
                    value: f64::from_bits(bits),
                });
                prev_ref = series;
                prev_bits = bits;
            }
            Ok(Record::Samples(out))
        }
        other => Err(corrupt(&format!("unknown record kind {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(out: &[u8]) -> Vec<Record> {
        let mut at = 0;
        let mut recs = Vec::new();
        while at < out.len() {
            let (kind, payload, len) = read_frame(&out[at..]).unwrap();
            recs.push(decode(kind, &payload).unwrap());
            at += len;
        }
        recs
    }

    #[test]
    fn records_round_trip_with_every_kind_of_value() {
        let labels = Labels::from_pairs([("__name__", "up"), ("job", "j")]);
        let values = [
            0.0,
            -0.0,
            1.0,
            1.0,
            12345.5,
            f64::NAN,
            crate::scrape::stale_nan(),
            f64::INFINITY,
            -1e300,
            f64::MIN_POSITIVE,
        ];
        let samples: Vec<RefSample> = values
            .iter()
            .enumerate()
            .map(|(i, v)| RefSample {
                series: [7u64, 3, u64::MAX, 0][i % 4],
                timestamp_ms: [1_700_000_000_000i64, -5, i64::MAX, 0][i % 4],
                value: *v,
            })
            .collect();
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        encode_series(
            &mut out,
            &[(1, labels.clone()), (2, Labels::default())],
            &mut scratch,
        );
        encode_samples(&mut out, &samples, &mut scratch);
        let recs = round_trip(&out);
        assert_eq!(
            recs[0],
            Record::Series(vec![(1, labels), (2, Labels::default())])
        );
        let Record::Samples(got) = &recs[1] else {
            panic!()
        };
        assert_eq!(got.len(), samples.len());
        for (g, w) in got.iter().zip(&samples) {
            assert_eq!((g.series, g.timestamp_ms), (w.series, w.timestamp_ms));
            assert_eq!(g.value.to_bits(), w.value.to_bits());
        }
    }

    #[test]
    fn a_scrape_costs_a_few_bytes_per_sample() {
        let samples: Vec<RefSample> = (0..500u64)
            .map(|i| RefSample {
                series: 1000 + i,
                timestamp_ms: 1_700_000_000_000,
                value: (i * 37 + 1_000_000) as f64,
            })
            .collect();
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        encode_samples(&mut out, &samples, &mut scratch);
        assert!(out.len() < 500 * 6, "{} bytes for 500 samples", out.len());
    }

    #[test]
    fn damage_is_found_and_never_panics() {
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        let samples: Vec<RefSample> = (0..50)
            .map(|i| RefSample {
                series: i,
                timestamp_ms: i as i64,
                value: i as f64 * 1.5,
            })
            .collect();
        encode_samples(&mut out, &samples, &mut scratch);
        for cut in 0..out.len() {
            assert_eq!(
                read_frame(&out[..cut]).unwrap_err(),
                RecordError::Incomplete
            );
        }
        for i in 0..out.len() {
            let mut bad = out.clone();
            bad[i] ^= 0x10;
            assert!(read_frame(&bad).is_err(), "flipped byte {i} went unnoticed");
        }
        // Garbage payloads behind a valid frame decode to errors, not panics.
        for seed in 0..200u64 {
            let junk: Vec<u8> = (0..(seed % 40))
                .map(|i| (seed.wrapping_mul(31).wrapping_add(i * 17) % 251) as u8)
                .collect();
            let _ = decode(KIND_SAMPLES, &junk);
            let _ = decode(KIND_SERIES, &junk);
        }
    }
}
