//! One scrape GET of a target's metrics through the component's [`HttpClient`] (TLS,
//! authentication, proxy and redirects are its business), as Prometheus 2.42's
//! `targetScraper.scrape` does it: its `Accept` header (OpenMetrics first, then the text
//! format), `Accept-Encoding: gzip`, a timeout over the whole exchange, and the body size
//! limit applied to the decoded body (a body of exactly the limit is too large). A response
//! with `Content-Encoding: gzip` is decoded (all gzip members); any other encoding is read as
//! it is. The exposition format follows the response's `Content-Type`.

use std::io::Read;
use std::time::Duration;

use bytes::Bytes;

use super::exposition::Format;
use crate::http_client::HttpClient;

/// Prometheus 2.42's `scrapeAcceptHeader` (without native histograms, which ask for protobuf).
pub const ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// GETs `url`; the decoded body and its format. Fails on a non-200 status, a timeout, a
/// decoded body of `body_size_limit_bytes` or more, or a corrupt gzip body.
pub async fn fetch(
    client: &HttpClient,
    url: &str,
    timeout: Duration,
    body_size_limit_bytes: u64,
) -> Result<(Vec<u8>, Format), String> {
    let request = hyper::Request::get(url)
        .header(hyper::header::ACCEPT, ACCEPT)
        .header(hyper::header::ACCEPT_ENCODING, "gzip")
        .header(
            "X-Prometheus-Scrape-Timeout-Seconds",
            format!("{}", timeout.as_secs_f64()),
        )
        .body(Bytes::new())
        .map_err(|e| format!("invalid request: {e}"))?;
    let limit = body_size_limit_bytes.max(1);
    // The limit is on the decoded body; a gzip body may be slightly larger than what it
    // decodes to (stored blocks), so the raw read allows for that.
    let raw_limit = limit.saturating_add(limit / 64).saturating_add(4096);
    // One message for a body over the limit, whichever check found it, naming the user's
    // limit (not the raw read's allowance).
    let too_large =
        || format!("body size limit exceeded: the body is {limit} bytes or more (body_size_limit)");
    let response = client
        .send(request, timeout, raw_limit)
        .await
        .map_err(|e| match e.kind() {
            crate::http_client::ErrorKind::BodyTooLarge => too_large(),
            _ => e.to_string(),
        })?;
    if response.status != hyper::StatusCode::OK {
        return Err(format!("server returned HTTP status {}", response.status));
    }
    let format = Format::from_content_type(
        response
            .headers
            .get(hyper::header::CONTENT_TYPE)
            .map(|v| v.as_bytes()),
    );
    // Exactly `gzip`, as Go's `resp.Header.Get("Content-Encoding") != "gzip"`.
    let gzip = response
        .headers
        .get(hyper::header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes() == b"gzip");
    let body = if gzip {
        gunzip(&response.body, limit)?
    } else {
        // Bytes -> Vec takes the buffer over instead of copying when it can.
        Vec::from(response.body)
    };
    if body.len() as u64 >= limit {
        return Err(too_large());
    }
    Ok((body, format))
}

/// Decodes a gzip body (every member, as Go's reader does), reading at most `limit_bytes`.
fn gunzip(body: &[u8], limit_bytes: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(1 << 24));
    flate2::read::MultiGzDecoder::new(body)
        .take(limit_bytes)
        .read_to_end(&mut out)
        .map_err(|e| format!("invalid gzip body: {e}"))?;
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
        assert_eq!(gunzip(&gzip(&text), 5001).unwrap(), text);
        let mut two = gzip(b"a 1\n");
        two.extend(gzip(b"b 2\n"));
        assert_eq!(gunzip(&two, 100).unwrap(), b"a 1\nb 2\n", "every member");
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit() {
        let big = vec![b'a'; 10_000_000];
        let packed = gzip(&big);
        assert!(packed.len() < 100_000);
        assert_eq!(
            gunzip(&packed, 1_000_000).unwrap().len(),
            1_000_000,
            "stops reading"
        );
    }

    #[test]
    fn corrupt_gzip_is_an_error() {
        assert!(gunzip(b"\x1f\x8bnot really", 100)
            .unwrap_err()
            .starts_with("invalid gzip body"));
    }
}
