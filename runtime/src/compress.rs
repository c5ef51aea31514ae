//! Compression of push/pull bodies (`Content-Encoding: deflate`, RFC 1951 via flate2).
//!
//! A full-state exchange carries every member's name and address, which repeat the same
//! prefixes (`agent-`, `10.0.`, the port): deflate cuts it to about a third, which matters in
//! an idle cluster, where the periodic exchanges are a fifth of all bytes, and in large ones,
//! where a state is tens of KiB (memberlist compresses the same way). Packets stay plain: at
//! 30-60 bytes they do not shrink.
//!
//! Negotiation, so that older peers keep working: a request says `Accept-Encoding: deflate`
//! and the answer is compressed only then; a request body is compressed unless the peer once
//! refused one (an older version answers 400: it cannot decode it), after which that peer gets
//! plain bodies. Inflating is bounded: a body that inflates beyond the exchange's size limit is
//! refused, whatever its compressed size.

use std::io::{Read, Write};

pub const DEFLATE: &str = "deflate";

/// `bytes`, deflated.
pub fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::DeflateEncoder::new(
        Vec::with_capacity(bytes.len() / 2 + 16),
        flate2::Compression::default(),
    );
    enc.write_all(bytes).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

/// `bytes` inflated, refused if the result exceeds `max` bytes or is not valid deflate.
pub fn inflate(bytes: &[u8], max: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(3).min(max));
    flate2::read::DeflateDecoder::new(bytes)
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("bad deflate body: {e}"))?;
    if out.len() > max {
        return Err(format!("deflate body inflates beyond {max} bytes"));
    }
    Ok(out)
}

/// Whether a header value (`Accept-Encoding`) lists deflate.
pub fn accepts_deflate(value: &[u8]) -> bool {
    std::str::from_utf8(value).is_ok_and(|v| {
        v.split(',')
            .any(|c| c.split(';').next().unwrap_or("").trim() == DEFLATE)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bounds() {
        let state: Vec<u8> = (0..200)
            .flat_map(|i| format!("agent-{i:03}10.0.0.{}:12345", i % 250).into_bytes())
            .collect();
        let small = deflate(&state);
        assert!(
            small.len() * 2 < state.len(),
            "{} of {}",
            small.len(),
            state.len()
        );
        assert_eq!(inflate(&small, state.len()).unwrap(), state);
        let err = inflate(&small, state.len() - 1).unwrap_err();
        assert!(err.contains("beyond"), "{err}");
        // A bomb: 8 MiB of zeros deflates to a few KiB, and is refused at a 64 KiB limit
        // without inflating all of it.
        let bomb = deflate(&vec![0u8; 8 << 20]);
        assert!(bomb.len() < 16 << 10);
        assert!(inflate(&bomb, 64 << 10).is_err());
        assert!(inflate(b"not deflate at all", 1 << 20).is_err());
    }

    #[test]
    fn accept_encoding_lists() {
        assert!(accepts_deflate(b"deflate"));
        assert!(accepts_deflate(b"gzip, deflate;q=0.5"));
        assert!(!accepts_deflate(b"gzip"));
        assert!(!accepts_deflate(b"deflatex"));
    }
}
