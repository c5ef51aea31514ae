//! One scrape GET of a target's metrics through the component's [`HttpClient`] (TLS,
//! authentication, proxy are its business): Prometheus' request headers, a timeout over the
//! whole exchange, a bound on the body size, and gzip-compressed responses decoded within
//! the same bound. Knows nothing about the exposition format.

use std::io::Read;
use std::time::Duration;

use bytes::Bytes;

use crate::http_client::HttpClient;

/// What we ask targets for: the text format only (we do not decode protobuf).
const ACCEPT: &str = "text/plain;version=0.0.4;q=1,*/*;q=0.1";

/// GETs `url`; fails on a non-200 status, a timeout, a body (compressed or not) over
/// `body_size_limit_bytes`, or an encoding other than gzip.
pub async fn fetch(
    client: &HttpClient,
    url: &str,
    timeout: Duration,
    body_size_limit_bytes: u64,
) -> Result<Vec<u8>, String> {
    let request = hyper::Request::get(url)
        .header(hyper::header::ACCEPT, ACCEPT)
        .header(hyper::header::ACCEPT_ENCODING, "gzip")
        .header(
            "X-Prometheus-Scrape-Timeout-Seconds",
            format!("{}", timeout.as_secs_f64()),
        )
        .body(Bytes::new())
        .map_err(|e| format!("invalid request: {e}"))?;
    let response = client
        .send(request, timeout, body_size_limit_bytes)
        .await
        .map_err(|e| e.to_string())?;
    if response.status != hyper::StatusCode::OK {
        return Err(format!("server returned HTTP status {}", response.status));
    }
    match response.headers.get(hyper::header::CONTENT_ENCODING) {
        // Bytes -> Vec takes the buffer over instead of copying when it can.
        None => Ok(Vec::from(response.body)),
        Some(enc) if enc.as_bytes() == b"identity" => Ok(Vec::from(response.body)),
        Some(enc) if enc.as_bytes().eq_ignore_ascii_case(b"gzip") => {
            gunzip(&response.body, body_size_limit_bytes)
        }
        Some(enc) => Err(format!(
            "unsupported Content-Encoding {:?}; expected gzip or none",
            String::from_utf8_lossy(enc.as_bytes())
        )),
    }
}

/// Decodes a gzip body, refusing one that inflates past `limit_bytes`.
fn gunzip(body: &[u8], limit_bytes: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(1 << 24));
    flate2::read::GzDecoder::new(body)
        .take(limit_bytes.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| format!("invalid gzip body: {e}"))?;
    if out.len() as u64 > limit_bytes {
        return Err(format!(
            "body size limit of {limit_bytes} bytes exceeded after gzip decoding"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gzip_bodies_decode_within_the_limit() {
        let text = b"up 1\n".repeat(1000);
        assert_eq!(gunzip(&gzip(&text), 5000).unwrap(), text);
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit() {
        let big = vec![b'a'; 10_000_000];
        let packed = gzip(&big);
        assert!(packed.len() < 100_000);
        let e = gunzip(&packed, 1_000_000).unwrap_err();
        assert!(e.contains("exceeded after gzip decoding"), "{e}");
    }

    #[test]
    fn corrupt_gzip_is_an_error() {
        assert!(gunzip(b"\x1f\x8bnot really", 100)
            .unwrap_err()
            .starts_with("invalid gzip body"));
    }
}
