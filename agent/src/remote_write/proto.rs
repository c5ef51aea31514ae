//! The remote write 1.0 wire format, encoded by hand (it is four small messages):
//!
//! ```text
//! message WriteRequest { repeated TimeSeries timeseries = 1; }
//! message TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
//! message Label        { string name = 1; string value = 2; }
//! message Sample       { double value = 1; int64 timestamp = 2; }
//! // Metadata goes in requests of its own, as `repeated MetricMetadata metadata = 3;`:
//! message MetricMetadata { MetricType type = 1; string metric_family_name = 2;
//!                          string help = 4; string unit = 5; }
//! ```
//!
//! plus the snappy *block* format around it. A small decoder is included for tests and test
//! receivers. Pure functions, no I/O.

use std::collections::HashMap;

use crate::scrape::{Labels, Metadata, MetricType, Sample};

const WIRE_VARINT: u64 = 0;
const WIRE_FIXED64: u64 = 1;
const WIRE_LEN: u64 = 2;

/// Groups `samples` by series (first-seen order; samples keep their order within a series)
/// and encodes a WriteRequest.
pub fn encode_write_request(samples: &[Sample]) -> Vec<u8> {
    let mut index: HashMap<&Labels, usize> = HashMap::new();
    let mut series: Vec<(&Labels, Vec<&Sample>)> = Vec::new();
    for s in samples {
        match index.get(&s.labels) {
            Some(&i) => series[i].1.push(s),
            None => {
                index.insert(&s.labels, series.len());
                series.push((&s.labels, vec![s]));
            }
        }
    }
    let mut buf = Vec::with_capacity(samples.len() * 64);
    for (labels, samples) in &series {
        let ts_len = timeseries_len(labels, samples);
        put_key(&mut buf, 1, WIRE_LEN);
        put_varint(&mut buf, ts_len as u64);
        let before = buf.len();
        for (name, value) in labels.iter() {
            put_key(&mut buf, 1, WIRE_LEN);
            put_varint(&mut buf, label_len(name, value) as u64);
            put_string(&mut buf, 1, name);
            put_string(&mut buf, 2, value);
        }
        for s in samples {
            put_key(&mut buf, 2, WIRE_LEN);
            put_varint(&mut buf, sample_len(s) as u64);
            put_sample_fields(&mut buf, s);
        }
        debug_assert_eq!(buf.len() - before, ts_len);
    }
    buf
}

/// Encodes a WriteRequest with one TimeSeries per sample, in order (as Prometheus' queue
/// manager sends them), adding each of `external` (sorted by name) that the series lacks.
/// Nothing is allocated per sample: the labels are merged while writing.
pub fn encode_samples(samples: &[Sample], external: &[(String, String)]) -> Vec<u8> {
    debug_assert!(
        external.windows(2).all(|w| w[0].0 < w[1].0),
        "external labels sorted"
    );
    let mut buf = Vec::with_capacity(samples.len() * 96);
    for s in samples {
        let labels_len: usize = merged(&s.labels, external)
            .map(|(n, v)| {
                let l = label_len(n, v);
                1 + varint_len(l as u64) + l
            })
            .sum();
        let one = sample_len(s);
        let ts_len = labels_len + 1 + varint_len(one as u64) + one;
        put_key(&mut buf, 1, WIRE_LEN);
        put_varint(&mut buf, ts_len as u64);
        let before = buf.len();
        for (name, value) in merged(&s.labels, external) {
            put_key(&mut buf, 1, WIRE_LEN);
            put_varint(&mut buf, label_len(name, value) as u64);
            put_string(&mut buf, 1, name);
            put_string(&mut buf, 2, value);
        }
        put_key(&mut buf, 2, WIRE_LEN);
        put_varint(&mut buf, one as u64);
        put_sample_fields(&mut buf, s);
        debug_assert_eq!(buf.len() - before, ts_len);
    }
    buf
}

/// Prometheus' `MetricMetadata.MetricType` number of a metric type.
pub fn metric_type_number(kind: MetricType) -> u64 {
    match kind {
        MetricType::Unknown => 0,
        MetricType::Counter => 1,
        MetricType::Gauge => 2,
        MetricType::Histogram => 3,
        MetricType::GaugeHistogram => 4,
        MetricType::Summary => 5,
        MetricType::Info => 6,
        MetricType::Stateset => 7,
    }
}

/// Encodes a WriteRequest that holds only `metadata` (as Prometheus' metadata sends do),
/// fields with default values left out.
pub fn encode_metadata(metadata: &[Metadata]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(metadata.len() * 64);
    for m in metadata {
        let kind = metric_type_number(m.kind);
        let strings = [
            (2, m.metric_family_name.as_str()),
            (4, m.help.as_str()),
            (5, m.unit.as_str()),
        ];
        let len = if kind != 0 { 1 + varint_len(kind) } else { 0 }
            + strings
                .iter()
                .filter(|(_, s)| !s.is_empty())
                .map(|(_, s)| string_field_len(s))
                .sum::<usize>();
        put_key(&mut buf, 3, WIRE_LEN);
        put_varint(&mut buf, len as u64);
        if kind != 0 {
            put_key(&mut buf, 1, WIRE_VARINT);
            put_varint(&mut buf, kind);
        }
        for (field, s) in strings {
            if !s.is_empty() {
                put_string(&mut buf, field, s);
            }
        }
    }
    buf
}

/// The series' labels with the external ones it lacks, sorted by name (a merge of two
/// sorted lists; on equal names the series wins).
fn merged<'a>(
    labels: &'a Labels,
    external: &'a [(String, String)],
) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
    let mut own = labels.iter().peekable();
    let mut ext = external
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .peekable();
    std::iter::from_fn(move || match (own.peek(), ext.peek()) {
        (Some(a), Some(b)) if b.0 < a.0 => ext.next(),
        (Some(a), Some(b)) if b.0 == a.0 => {
            ext.next();
            own.next()
        }
        (Some(_), _) => own.next(),
        (None, _) => ext.next(),
    })
}

/// Snappy block compression, as remote write requires (not the framed stream format).
pub fn snappy_compress(data: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(data)
        .expect("snappy accepts any input below 4 GiB")
}

pub fn snappy_decompress(data: &[u8]) -> Result<Vec<u8>, String> {
    snap::raw::Decoder::new()
        .decompress_vec(data)
        .map_err(|e| format!("invalid snappy block: {e}"))
}

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn put_key(buf: &mut Vec<u8>, field: u64, wire: u64) {
    put_varint(buf, (field << 3) | wire);
}

fn put_string(buf: &mut Vec<u8>, field: u64, s: &str) {
    put_key(buf, field, WIRE_LEN);
    put_varint(buf, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
}

fn string_field_len(s: &str) -> usize {
    1 + varint_len(s.len() as u64) + s.len()
}

fn label_len(name: &str, value: &str) -> usize {
    string_field_len(name) + string_field_len(value)
}

/// A Sample's fields as protobuf 3 (and so Prometheus) writes them: a field with its default
/// value is left out. A value of 0 or -0 is not written at all, so the receiver reads +0, as
/// from Prometheus.
fn put_sample_fields(buf: &mut Vec<u8>, s: &Sample) {
    if s.value != 0.0 {
        put_key(buf, 1, WIRE_FIXED64);
        buf.extend_from_slice(&s.value.to_bits().to_le_bytes());
    }
    if s.timestamp_ms != 0 {
        put_key(buf, 2, WIRE_VARINT);
        put_varint(buf, s.timestamp_ms as u64);
    }
}

fn sample_len(s: &Sample) -> usize {
    let value = if s.value != 0.0 { 1 + 8 } else { 0 };
    let ts = if s.timestamp_ms != 0 {
        1 + varint_len(s.timestamp_ms as u64)
    } else {
        0
    };
    value + ts
}

fn timeseries_len(labels: &Labels, samples: &[&Sample]) -> usize {
    let labels_len: usize = labels
        .iter()
        .map(|(n, v)| {
            let l = label_len(n, v);
            1 + varint_len(l as u64) + l
        })
        .sum();
    let samples_len: usize = samples
        .iter()
        .map(|s| {
            let l = sample_len(s);
            1 + varint_len(l as u64) + l
        })
        .sum();
    labels_len + samples_len
}

/// A decoded TimeSeries: labels in wire order and `(timestamp_ms, value)` samples.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedSeries {
    pub labels: Vec<(String, String)>,
    pub samples: Vec<(i64, f64)>,
}

/// Decodes a (decompressed) WriteRequest, skipping unknown fields.
pub fn decode_write_request(mut buf: &[u8]) -> Result<Vec<DecodedSeries>, String> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let (field, wire) = read_key(&mut buf)?;
        if field == 1 && wire == WIRE_LEN {
            out.push(decode_series(read_len(&mut buf)?)?);
        } else {
            skip(&mut buf, wire)?;
        }
    }
    Ok(out)
}

/// A decoded MetricMetadata: type number, family name, help, unit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DecodedMetadata {
    pub kind: u64,
    pub metric_family_name: String,
    pub help: String,
    pub unit: String,
}

/// The metadata of a (decompressed) WriteRequest, skipping everything else.
pub fn decode_metadata(mut buf: &[u8]) -> Result<Vec<DecodedMetadata>, String> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let (field, wire) = read_key(&mut buf)?;
        if field != 3 || wire != WIRE_LEN {
            skip(&mut buf, wire)?;
            continue;
        }
        let mut m = read_len(&mut buf)?;
        let mut d = DecodedMetadata {
            kind: 0,
            metric_family_name: String::new(),
            help: String::new(),
            unit: String::new(),
        };
        while !m.is_empty() {
            match read_key(&mut m)? {
                (1, WIRE_VARINT) => d.kind = read_varint(&mut m)?,
                (2, WIRE_LEN) => d.metric_family_name = utf8(read_len(&mut m)?)?,
                (4, WIRE_LEN) => d.help = utf8(read_len(&mut m)?)?,
                (5, WIRE_LEN) => d.unit = utf8(read_len(&mut m)?)?,
                (_, w) => skip(&mut m, w)?,
            }
        }
        out.push(d);
    }
    Ok(out)
}

fn decode_series(mut buf: &[u8]) -> Result<DecodedSeries, String> {
    let mut s = DecodedSeries {
        labels: Vec::new(),
        samples: Vec::new(),
    };
    while !buf.is_empty() {
        let (field, wire) = read_key(&mut buf)?;
        match (field, wire) {
            (1, WIRE_LEN) => {
                let mut l = read_len(&mut buf)?;
                let (mut name, mut value) = (String::new(), String::new());
                while !l.is_empty() {
                    let (f, w) = read_key(&mut l)?;
                    match (f, w) {
                        (1, WIRE_LEN) => name = utf8(read_len(&mut l)?)?,
                        (2, WIRE_LEN) => value = utf8(read_len(&mut l)?)?,
                        _ => skip(&mut l, w)?,
                    }
                }
                s.labels.push((name, value));
            }
            (2, WIRE_LEN) => {
                let mut m = read_len(&mut buf)?;
                let (mut ts, mut v) = (0i64, 0f64);
                while !m.is_empty() {
                    let (f, w) = read_key(&mut m)?;
                    match (f, w) {
                        (1, WIRE_FIXED64) => {
                            let bytes: [u8; 8] = take(&mut m, 8)?.try_into().expect("8 bytes");
                            v = f64::from_bits(u64::from_le_bytes(bytes));
                        }
                        (2, WIRE_VARINT) => ts = read_varint(&mut m)? as i64,
                        _ => skip(&mut m, w)?,
                    }
                }
                s.samples.push((ts, v));
            }
            _ => skip(&mut buf, wire)?,
        }
    }
    Ok(s)
}

fn utf8(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "string field is not UTF-8".to_string())
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if buf.len() < n {
        return Err(format!(
            "truncated message: need {n} bytes, have {}",
            buf.len()
        ));
    }
    let (head, tail) = buf.split_at(n);
    *buf = tail;
    Ok(head)
}

fn read_varint(buf: &mut &[u8]) -> Result<u64, String> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let b = *take(buf, 1)?.first().expect("one byte");
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err("varint longer than 10 bytes".into())
}

fn read_key(buf: &mut &[u8]) -> Result<(u64, u64), String> {
    let k = read_varint(buf)?;
    Ok((k >> 3, k & 7))
}

fn read_len<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], String> {
    let n = read_varint(buf)? as usize;
    take(buf, n)
}

fn skip(buf: &mut &[u8], wire: u64) -> Result<(), String> {
    match wire {
        WIRE_VARINT => read_varint(buf).map(|_| ()),
        WIRE_FIXED64 => take(buf, 8).map(|_| ()),
        WIRE_LEN => read_len(buf).map(|_| ()),
        5 => take(buf, 4).map(|_| ()),
        w => Err(format!("unsupported wire type {w}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sample_matches_hand_computed_bytes() {
        let s = Sample {
            labels: Labels::from_pairs([("__name__", "up")]),
            timestamp_ms: 1,
            value: 1.0,
        };
        let bytes = encode_write_request(&[s]);
        #[rustfmt::skip]
        let expected: Vec<u8> = vec![
            0x0a, 0x1d,                   // timeseries (field 1, len 29)
              0x0a, 0x0e,                 // labels (field 1, len 14)
                0x0a, 0x08, b'_', b'_', b'n', b'a', b'm', b'e', b'_', b'_', // name
                0x12, 0x02, b'u', b'p',   // value
              0x12, 0x0b,                 // samples (field 2, len 11)
                0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, // value 1.0 as fixed64 LE
                0x10, 0x01,               // timestamp 1
        ];
        assert_eq!(bytes, expected);
    }

    #[test]
    fn negative_timestamps_and_long_values_round_trip() {
        let l = Labels::from_pairs([("__name__", "m"), ("v", "x".repeat(300).as_str())]);
        let samples = vec![
            Sample {
                labels: l.clone(),
                timestamp_ms: -5,
                value: f64::NEG_INFINITY,
            },
            Sample {
                labels: l.clone(),
                timestamp_ms: 1_700_000_000_000,
                value: 0.25,
            },
        ];
        let decoded = decode_write_request(&encode_write_request(&samples)).unwrap();
        assert_eq!(decoded.len(), 1, "same series grouped");
        assert_eq!(
            decoded[0].samples,
            vec![(-5, f64::NEG_INFINITY), (1_700_000_000_000, 0.25)]
        );
        assert_eq!(decoded[0].labels[1].1.len(), 300);
    }

    #[test]
    fn one_series_per_sample_with_external_labels_merged_in_order() {
        let l = Labels::from_pairs([("__name__", "m"), ("job", "j"), ("zone", "own")]);
        let samples: Vec<Sample> = (0..2)
            .map(|i| Sample {
                labels: l.clone(),
                timestamp_ms: i,
                value: i as f64,
            })
            .collect();
        let external = vec![
            ("agent".to_string(), "a1".to_string()),
            ("zone".to_string(), "ext".to_string()),
            ("zz".to_string(), "last".to_string()),
        ];
        let decoded = decode_write_request(&encode_samples(&samples, &external)).unwrap();
        assert_eq!(decoded.len(), 2, "one series per sample");
        let pairs = |d: &DecodedSeries| {
            d.labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(
            pairs(&decoded[0]),
            "__name__=m,agent=a1,job=j,zone=own,zz=last",
            "sorted, the series' own value wins"
        );
        assert_eq!(decoded[1].samples, vec![(1, 1.0)]);
        assert_eq!(
            encode_samples(&samples[..1], &[]),
            encode_write_request(&samples[..1]),
            "without external labels one sample encodes as before"
        );
    }

    #[test]
    fn zero_and_negative_zero_are_left_out_and_read_back_as_positive_zero() {
        let l = Labels::from_pairs([("__name__", "z")]);
        let samples: Vec<Sample> = [(0.0, 0), (-0.0, 5), (f64::NAN, 0)]
            .into_iter()
            .map(|(value, timestamp_ms)| Sample {
                labels: l.clone(),
                timestamp_ms,
                value,
            })
            .collect();
        let bytes = encode_samples(&samples, &[]);
        let decoded = decode_write_request(&bytes).unwrap();
        assert_eq!(decoded[0].samples[0].1.to_bits(), 0);
        assert_eq!(decoded[1].samples[0], (5, 0.0));
        assert_eq!(decoded[1].samples[0].1.to_bits(), 0, "-0 arrives as +0");
        assert!(decoded[2].samples[0].1.is_nan());
        // The empty sample message is 2 bytes: its key and a zero length.
        let one = encode_samples(&samples[..1], &[]);
        assert!(one.ends_with(&[0x12, 0x00]), "{one:x?}");
    }

    #[test]
    fn metadata_round_trips_without_default_fields() {
        let md = vec![
            Metadata {
                metric_family_name: "http_requests".into(),
                kind: MetricType::Counter,
                help: "Requests.".into(),
                unit: String::new(),
            },
            Metadata {
                metric_family_name: "x".into(),
                kind: MetricType::Unknown,
                help: String::new(),
                unit: "seconds".into(),
            },
        ];
        let bytes = encode_metadata(&md);
        assert!(
            decode_write_request(&bytes).unwrap().is_empty(),
            "no series"
        );
        let d = decode_metadata(&bytes).unwrap();
        assert_eq!(
            d,
            vec![
                DecodedMetadata {
                    kind: 1,
                    metric_family_name: "http_requests".into(),
                    help: "Requests.".into(),
                    unit: String::new()
                },
                DecodedMetadata {
                    kind: 0,
                    metric_family_name: "x".into(),
                    help: String::new(),
                    unit: "seconds".into()
                },
            ]
        );
        // The second message: key, length 12, then only fields 2 and 5.
        let second = &bytes[bytes.len() - 14..];
        assert_eq!(&second[..4], &[0x1a, 12, 0x12, 1]);
    }

    #[test]
    fn snappy_round_trips() {
        let data = b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_vec();
        let c = snappy_compress(&data);
        assert!(c.len() < data.len());
        assert_eq!(snappy_decompress(&c).unwrap(), data);
    }
}
