//! Deltas of cumulative profiles, as Alloy sends them: a Go program's allocation, block and
//! mutex profiles hold totals since it started; Pyroscope wants what happened between two
//! scrapes. [`DeltaComputer`] keeps the previous profile's cumulative values per stack and
//! rewrites each new profile with the differences (the first profile only primes it and is
//! not sent).
//!
//! A stack is identified by what it means, not by the profile's own ids (which a program
//! may renumber between profiles): the address and the (function name, file, line) of each
//! frame, plus the sample's labels resolved to strings. Only the cumulative sample types
//! change (`alloc_objects`/`alloc_space` of memory, `contentions`/`delay` of block and
//! mutex); `inuse_*` values are kept. A sample whose values are all zero afterwards is
//! dropped. Every other field of the profile is copied byte for byte. The result is gzip
//! compressed. Pure computation, no I/O; input is bounded by the scrape's body limit.

use std::collections::HashMap;
use std::io::{Read, Write};

/// The cumulative sample types of a profile type (Alloy's list); `None`: no delta.
pub fn cumulative_types(profile: &str) -> Option<&'static [&'static str]> {
    match profile {
        "memory" => Some(&["alloc_objects", "alloc_space"]),
        "block" | "mutex" => Some(&["contentions", "delay"]),
        _ => None,
    }
}

/// Turns successive cumulative profiles of one target into deltas.
#[derive(Debug)]
pub struct DeltaComputer {
    types: &'static [&'static str],
    /// Cumulative values of the previous profile, by stack key.
    previous: Option<HashMap<u64, Vec<i64>>>,
}

impl DeltaComputer {
    pub fn new(types: &'static [&'static str]) -> DeltaComputer {
        DeltaComputer {
            types,
            previous: None,
        }
    }

    /// The delta profile (gzip), or `None` for the first one (it only primes the computer).
    pub fn delta(&mut self, raw: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let mut plain = Vec::new();
        let data: &[u8] = if raw.starts_with(&[0x1f, 0x8b]) {
            flate2::read::GzDecoder::new(raw)
                .take(super::scrape::PROFILE_SIZE_MAX_BYTES)
                .read_to_end(&mut plain)
                .map_err(|e| format!("profile is not valid gzip: {e}"))?;
            &plain
        } else {
            raw
        };
        let p = Parsed::new(data)?;
        let cumulative: Vec<bool> = p
            .sample_types
            .iter()
            .map(|t| self.types.contains(&p.string(*t)))
            .collect();
        let mut current: HashMap<u64, Vec<i64>> = HashMap::new();
        let mut out = Vec::with_capacity(data.len());
        for (field, bytes, whole) in fields(data)? {
            if field != 2 {
                out.extend_from_slice(whole);
                continue;
            }
            let s = Sample::new(bytes)?;
            let key = p.key(&s);
            let prev = self.previous.as_ref().and_then(|m| m.get(&key));
            let mut values = s.values.clone();
            for (i, v) in values.iter_mut().enumerate() {
                if cumulative.get(i).copied().unwrap_or(false) {
                    *v -= prev.and_then(|p| p.get(i)).copied().unwrap_or(0);
                    // A program restart resets its totals: what is there is new.
                    if *v < 0 {
                        *v = s.values[i];
                    }
                }
            }
            // Totals of one stack may come in several samples; they add up.
            let entry = current
                .entry(key)
                .or_insert_with(|| vec![0; s.values.len()]);
            for (i, v) in s.values.iter().enumerate() {
                if let Some(e) = entry.get_mut(i) {
                    *e += v;
                }
            }
            if values.iter().all(|v| *v == 0) {
                continue;
            }
            let mut sample = Vec::with_capacity(bytes.len());
            for (f, _, w) in fields(bytes)? {
                if f != 2 {
                    sample.extend_from_slice(w);
                }
            }
            let mut packed = Vec::new();
            for v in &values {
                put_varint(&mut packed, *v as u64);
            }
            put_key(&mut sample, 2, 2);
            put_varint(&mut sample, packed.len() as u64);
            sample.extend_from_slice(&packed);
            put_key(&mut out, 2, 2);
            put_varint(&mut out, sample.len() as u64);
            out.extend_from_slice(&sample);
        }
        let first = self.previous.is_none();
        self.previous = Some(current);
        if first {
            return Ok(None);
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&out).map_err(|e| e.to_string())?;
        gz.finish().map(Some).map_err(|e| e.to_string())
    }
}

/// What the keys need from a profile: strings, sample types, locations, functions.
struct Parsed<'a> {
    strings: Vec<&'a [u8]>,
    sample_types: Vec<u64>,
    /// Location id -> (address, [(function id, line)]).
    locations: HashMap<u64, (u64, Vec<(u64, u64)>)>,
    /// Function id -> (name, file) string indexes.
    functions: HashMap<u64, (u64, u64)>,
}

struct Sample<'a> {
    locations: Vec<u64>,
    values: Vec<i64>,
    labels: Vec<&'a [u8]>,
}

impl<'a> Sample<'a> {
    fn new(buf: &'a [u8]) -> Result<Sample<'a>, String> {
        let mut s = Sample {
            locations: Vec::new(),
            values: Vec::new(),
            labels: Vec::new(),
        };
        for (f, b, _) in fields(buf)? {
            match f {
                1 => s.locations.extend(varints(b)?),
                2 => s.values.extend(varints(b)?.into_iter().map(|v| v as i64)),
                3 => s.labels.push(b),
                _ => {}
            }
        }
        Ok(s)
    }
}

impl<'a> Parsed<'a> {
    fn new(data: &'a [u8]) -> Result<Parsed<'a>, String> {
        let mut p = Parsed {
            strings: Vec::new(),
            sample_types: Vec::new(),
            locations: HashMap::new(),
            functions: HashMap::new(),
        };
        for (field, b, _) in fields(data)? {
            match field {
                1 => {
                    let t = fields(b)?.into_iter().find(|f| f.0 == 1);
                    p.sample_types
                        .push(t.map(|f| scalar(f.1)).transpose()?.unwrap_or(0));
                }
                4 => {
                    let (mut id, mut address, mut lines) = (0, 0, Vec::new());
                    for (f, b, _) in fields(b)? {
                        match f {
                            1 => id = scalar(b)?,
                            3 => address = scalar(b)?,
                            4 => {
                                let (mut func, mut line) = (0, 0);
                                for (f, b, _) in fields(b)? {
                                    match f {
                                        1 => func = scalar(b)?,
                                        2 => line = scalar(b)?,
                                        _ => {}
                                    }
                                }
                                lines.push((func, line));
                            }
                            _ => {}
                        }
                    }
                    p.locations.insert(id, (address, lines));
                }
                5 => {
                    let (mut id, mut name, mut file) = (0, 0, 0);
                    for (f, b, _) in fields(b)? {
                        match f {
                            1 => id = scalar(b)?,
                            2 => name = scalar(b)?,
                            4 => file = scalar(b)?,
                            _ => {}
                        }
                    }
                    p.functions.insert(id, (name, file));
                }
                6 => p.strings.push(b),
                _ => {}
            }
        }
        Ok(p)
    }

    fn string(&self, i: u64) -> &str {
        self.strings
            .get(i as usize)
            .and_then(|s| std::str::from_utf8(s).ok())
            .unwrap_or("")
    }

    /// The meaning of a sample's stack and labels, hashed.
    fn key(&self, s: &Sample) -> u64 {
        let mut h = xxhash_rust::xxh64::Xxh64::new(0);
        for id in &s.locations {
            if let Some((address, lines)) = self.locations.get(id) {
                h.update(&address.to_le_bytes());
                for (func, line) in lines {
                    let (name, file) = self.functions.get(func).copied().unwrap_or((0, 0));
                    h.update(self.string(name).as_bytes());
                    h.update(&[0xff]);
                    h.update(self.string(file).as_bytes());
                    h.update(&line.to_le_bytes());
                }
            }
            h.update(&[0xfe]);
        }
        for l in &s.labels {
            // Label { key, str, num, num_unit }: strings resolved, numbers as they are.
            if let Ok(fs) = fields(l) {
                for (f, b, _) in fs {
                    h.update(&f.to_le_bytes());
                    match (f, scalar(b)) {
                        (1 | 2 | 4, Ok(i)) => h.update(self.string(i).as_bytes()),
                        (_, Ok(v)) => h.update(&v.to_le_bytes()),
                        _ => {}
                    }
                }
            }
            h.update(&[0xfd]);
        }
        h.digest()
    }
}

/// The fields of a message: (number, payload, the whole field). A varint field's payload is
/// its encoded varint; a length-delimited one's its bytes.
fn fields(mut buf: &[u8]) -> Result<Vec<(u64, &[u8], &[u8])>, String> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let start = buf;
        let key = read_varint(&mut buf)?;
        let payload: &[u8] = match key & 7 {
            0 => {
                let before = buf;
                read_varint(&mut buf)?;
                &before[..before.len() - buf.len()]
            }
            1 => take(&mut buf, 8)?,
            5 => take(&mut buf, 4)?,
            2 => {
                let n = read_varint(&mut buf)? as usize;
                take(&mut buf, n)?
            }
            w => return Err(format!("unsupported protobuf wire type {w}")),
        };
        let whole = &start[..start.len() - buf.len()];
        out.push((key >> 3, payload, whole));
    }
    Ok(out)
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if buf.len() < n {
        return Err("truncated protobuf field".into());
    }
    let (head, tail) = buf.split_at(n);
    *buf = tail;
    Ok(head)
}

fn read_varint(buf: &mut &[u8]) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first().ok_or("truncated varint")?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint too long".into())
}

/// A varint field's value (its payload is the encoded varint).
fn scalar(mut payload: &[u8]) -> Result<u64, String> {
    read_varint(&mut payload)
}

/// A packed (or single) run of varints.
fn varints(mut payload: &[u8]) -> Result<Vec<u64>, String> {
    let mut out = Vec::new();
    while !payload.is_empty() {
        out.push(read_varint(&mut payload)?);
    }
    Ok(out)
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn put_key(buf: &mut Vec<u8>, field: u64, wire: u64) {
    put_varint(buf, (field << 3) | wire);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A memory profile: sample types alloc_objects, alloc_space, inuse_space; samples of
    /// (function name, values), each function its own location; `renumber` shifts the ids
    /// as a program may between profiles.
    fn profile(samples: &[(&str, [i64; 3])], renumber: u64) -> Vec<u8> {
        let mut strings: Vec<String> = vec![
            "".into(),
            "alloc_objects".into(),
            "count".into(),
            "alloc_space".into(),
            "bytes".into(),
            "inuse_space".into(),
        ];
        let mut out = Vec::new();
        let bytes_field = |out: &mut Vec<u8>, f: u64, b: &[u8]| {
            put_key(out, f, 2);
            put_varint(out, b.len() as u64);
            out.extend_from_slice(b);
        };
        for (t, u) in [(1u64, 2u64), (3, 4), (5, 4)] {
            let mut vt = Vec::new();
            put_key(&mut vt, 1, 0);
            put_varint(&mut vt, t);
            put_key(&mut vt, 2, 0);
            put_varint(&mut vt, u);
            bytes_field(&mut out, 1, &vt);
        }
        for (i, (name, values)) in samples.iter().enumerate() {
            let id = i as u64 + 1 + renumber;
            strings.push(name.to_string());
            let name_idx = strings.len() as u64 - 1;
            let mut s = Vec::new();
            let mut loc = Vec::new();
            put_varint(&mut loc, id);
            bytes_field(&mut s, 1, &loc);
            let mut vals = Vec::new();
            for v in values {
                put_varint(&mut vals, *v as u64);
            }
            bytes_field(&mut s, 2, &vals);
            bytes_field(&mut out, 2, &s);
            let mut line = Vec::new();
            put_key(&mut line, 1, 0);
            put_varint(&mut line, id);
            let mut l = Vec::new();
            put_key(&mut l, 1, 0);
            put_varint(&mut l, id);
            bytes_field(&mut l, 4, &line);
            bytes_field(&mut out, 4, &l);
            let mut f = Vec::new();
            put_key(&mut f, 1, 0);
            put_varint(&mut f, id);
            put_key(&mut f, 2, 0);
            put_varint(&mut f, name_idx);
            bytes_field(&mut out, 5, &f);
        }
        for s in &strings {
            bytes_field(&mut out, 6, s.as_bytes());
        }
        out
    }

    /// The (function name, values) of each sample of a delta (gzip) profile.
    fn samples_of(gz: &[u8]) -> Vec<(String, Vec<i64>)> {
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut plain)
            .unwrap();
        let p = Parsed::new(&plain).unwrap();
        let mut out = Vec::new();
        for (f, b, _) in fields(&plain).unwrap() {
            if f == 2 {
                let s = Sample::new(b).unwrap();
                let (_, lines) = &p.locations[&s.locations[0]];
                let (name, _) = p.functions[&lines[0].0];
                out.push((p.string(name).to_string(), s.values.clone()));
            }
        }
        out
    }

    #[test]
    fn cumulative_values_become_differences_and_inuse_values_stay() {
        let mut d = DeltaComputer::new(cumulative_types("memory").unwrap());
        let first = profile(&[("a", [10, 1000, 500]), ("b", [5, 50, 0])], 0);
        assert_eq!(d.delta(&first).unwrap(), None, "the first profile primes");
        // b allocated nothing since (and holds nothing): dropped. c is new. Ids renumbered.
        let second = profile(
            &[
                ("a", [14, 1400, 300]),
                ("b", [5, 50, 0]),
                ("c", [2, 64, 64]),
            ],
            7,
        );
        let out = d.delta(&second).unwrap().unwrap();
        assert_eq!(
            samples_of(&out),
            vec![
                ("a".to_string(), vec![4, 400, 300]),
                ("c".to_string(), vec![2, 64, 64])
            ]
        );
        // A restart (totals below the previous ones) counts what is there as new.
        let third = profile(&[("a", [1, 100, 100])], 0);
        let out = d.delta(&third).unwrap().unwrap();
        assert_eq!(samples_of(&out), vec![("a".to_string(), vec![1, 100, 100])]);
        assert!(d.delta(b"\x1f\x8bnot gzip").is_err());
    }
}
