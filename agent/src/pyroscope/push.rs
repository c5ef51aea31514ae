//! Pyroscope's push API, as the `pyroscope.write` component speaks it: a Connect unary call
//! `POST {url}/push.v1.PusherService/Push` with `Content-Type: application/proto` and
//! `Connect-Protocol-Version: 1`, whose body is the protobuf message (encoded by hand, it is
//! four small messages):
//!
//! ```text
//! message PushRequest      { repeated RawProfileSeries series = 1; }
//! message RawProfileSeries { repeated LabelPair labels = 1; repeated RawSample samples = 2; }
//! message LabelPair        { string name = 1; string value = 2; }    // types.v1
//! message RawSample        { bytes raw_profile = 1; string ID = 2; }
//! ```
//!
//! A success is HTTP 200 with an (empty) `PushResponse`; an error is another status with a
//! JSON body `{"code": "...", "message": "..."}`. The decoder is for tests and test
//! receivers. Pure functions, no I/O.

use std::collections::BTreeMap;

use super::Profile;

/// The path of the push call, under the endpoint's URL.
pub const PUSH_PATH: &str = "/push.v1.PusherService/Push";
/// Connect's content type for binary protobuf.
pub const CONTENT_TYPE: &str = "application/proto";

/// Encodes one PushRequest with one series per profile (labels sorted by name).
pub fn encode_push_request(profiles: &[Profile]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in profiles {
        let mut series = Vec::new();
        for (name, value) in &p.labels {
            let mut pair = Vec::new();
            put_bytes(&mut pair, 1, name.as_bytes());
            put_bytes(&mut pair, 2, value.as_bytes());
            put_bytes(&mut series, 1, &pair);
        }
        let mut sample = Vec::new();
        put_bytes(&mut sample, 1, &p.raw);
        put_bytes(&mut series, 2, &sample);
        put_bytes(&mut out, 1, &series);
    }
    out
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn put_bytes(buf: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(buf, (field << 3) | 2);
    put_varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

/// A field of a protobuf message: its number and, for length-delimited fields, its bytes.
struct Fields<'a> {
    buf: &'a [u8],
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, &'a [u8]), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let key = match read_varint(&mut self.buf) {
            Ok(k) => k,
            Err(e) => return Some(Err(e)),
        };
        let (field, wire) = (key >> 3, key & 7);
        let r = match wire {
            0 => read_varint(&mut self.buf).map(|_| (field, &[][..])),
            1 | 5 => {
                let n = if wire == 1 { 8 } else { 4 };
                if self.buf.len() < n {
                    Err("truncated fixed field".to_string())
                } else {
                    self.buf = &self.buf[n..];
                    Ok((field, &[][..]))
                }
            }
            2 => read_varint(&mut self.buf).and_then(|len| {
                let len = len as usize;
                if self.buf.len() < len {
                    return Err("truncated length-delimited field".to_string());
                }
                let (head, tail) = self.buf.split_at(len);
                self.buf = tail;
                Ok((field, head))
            }),
            w => Err(format!("unsupported wire type {w}")),
        };
        if r.is_err() {
            self.buf = &[];
        }
        Some(r)
    }
}

fn read_varint(buf: &mut &[u8]) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let Some((&b, rest)) = buf.split_first() else {
            return Err("truncated varint".into());
        };
        *buf = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint too long".into())
}

fn fields(buf: &[u8]) -> Fields<'_> {
    Fields { buf }
}

fn string(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "label is not UTF-8".to_string())
}

/// Decodes a PushRequest: per series its labels (in the order sent; a repeated name is an
/// error) and its samples' raw profiles.
#[allow(clippy::type_complexity)]
pub fn decode_push_request(
    buf: &[u8],
) -> Result<Vec<(Vec<(String, String)>, Vec<Vec<u8>>)>, String> {
    let mut out = Vec::new();
    for f in fields(buf) {
        let (n, series) = f?;
        if n != 1 {
            continue;
        }
        let mut labels: Vec<(String, String)> = Vec::new();
        let mut samples = Vec::new();
        for f in fields(series) {
            match f? {
                (1, pair) => {
                    let (mut name, mut value) = (String::new(), String::new());
                    for f in fields(pair) {
                        match f? {
                            (1, b) => name = string(b)?,
                            (2, b) => value = string(b)?,
                            _ => {}
                        }
                    }
                    if labels.iter().any(|(n, _)| *n == name) {
                        return Err(format!("label {name:?} repeated in a series"));
                    }
                    labels.push((name, value));
                }
                (2, sample) => {
                    let mut raw = Vec::new();
                    for f in fields(sample) {
                        if let (1, b) = f? {
                            raw = b.to_vec();
                        }
                    }
                    samples.push(raw);
                }
                _ => {}
            }
        }
        out.push((labels, samples));
    }
    Ok(out)
}

/// The message of a Connect error body (`{"code","message"}`), else the body's start.
pub fn error_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(512)]).to_string();
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) => format!(
            "{}: {}",
            v["code"].as_str().unwrap_or("unknown"),
            v["message"].as_str().unwrap_or("")
        ),
        Err(_) => text.trim().to_string(),
    }
}

/// Label names checked by Pyroscope: `[a-zA-Z_][a-zA-Z0-9_.]*` (dots are allowed, as in
/// `otel.scope.name`).
pub fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// Labels as a map, for tests.
pub fn label_map(labels: &[(String, String)]) -> BTreeMap<String, String> {
    labels.iter().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_round_trips() {
        let p = Profile {
            labels: [("__name__", "memory"), ("service_name", "x"), ("job", "j")]
                .into_iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            raw: bytes::Bytes::from_static(b"\x1f\x8bpprof"),
        };
        let buf = encode_push_request(&[p.clone(), p.clone()]);
        let decoded = decode_push_request(&buf).unwrap();
        assert_eq!(decoded.len(), 2);
        assert_eq!(label_map(&decoded[0].0), p.labels);
        assert_eq!(decoded[1].1, vec![b"\x1f\x8bpprof".to_vec()]);
        assert!(decode_push_request(&buf[..buf.len() - 1]).is_err());
    }
}
