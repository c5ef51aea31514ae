//! Delivering one batch to a remote write endpoint: encoding, the request, the retry rule,
//! and isolating rejected samples.
//!
//! Retry rule (remote write 1.0): 5xx, 429 (unless `retry_on_http_429 = false`), timeouts and
//! network errors are retried with exponential backoff from `min_backoff` to `max_backoff`
//! until they succeed or the endpoint shuts down; any other status is final.
//!
//! A Prometheus receiver rejects a whole request with 400 when any one sample in it is out of
//! order (for example a series handed over between two agents, one of them behind). A batch
//! refused for that reason (the answer names it) is split in halves and each half sent
//! again, down to the samples that are refused on their own, so one bad sample costs only
//! itself. The splitting is bounded ([`MAX_SPLITS`] per batch); what is left after that, and
//! any other 400, is counted as failed.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::metrics::EndpointMetrics;
use super::proto::{encode_samples, snappy_compress};
use crate::config::EndpointConfig;
use crate::http_client::{ErrorKind, HttpClient};
use crate::scrape::Sample;

/// Bytes of an error response body kept for the log message.
const ERROR_BODY_MAX_BYTES: usize = 1024;
/// Largest response body read from a receiver (they answer with a short text at most).
const RESPONSE_BODY_MAX_BYTES: u64 = 64 * 1024;
/// While a batch keeps failing, every this-many-th retry is logged as a warning (the first
/// one always is), so an outage is visible without a line per retry.
const RETRY_WARN_EVERY: u32 = 20;
/// Splits of one rejected batch (each costs a request) before the rest is given up on.
pub const MAX_SPLITS: usize = 64;

/// What one request attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Sent,
    Retry(String),
    /// Final; the status, if there was one.
    Fail(String, Option<u16>),
}

/// Remote write 1.0 status handling.
pub(crate) fn classify(status: u16, retry_on_http_429: bool) -> Outcome {
    match status {
        200..=299 => Outcome::Sent,
        429 if retry_on_http_429 => Outcome::Retry("HTTP 429 Too Many Requests".into()),
        500..=599 => Outcome::Retry(format!("HTTP {status}")),
        _ => Outcome::Fail(format!("HTTP {status}"), Some(status)),
    }
}

/// Delay before retry number `attempt` (0-based): `min * 2^attempt`, capped at `max`.
pub(crate) fn backoff(attempt: u32, min: Duration, max: Duration) -> Duration {
    min.saturating_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
        .min(max)
}

/// Whether a 400 answer is about particular samples (Prometheus: out of order, duplicate,
/// out of bounds; Mimir and Cortex: out-of-order, too old), rather than the whole request.
fn names_one_sample(why: &str) -> bool {
    let w = why.to_ascii_lowercase();
    [
        "out of order",
        "out-of-order",
        "duplicate sample",
        "out of bounds",
        "too old",
    ]
    .iter()
    .any(|k| w.contains(k))
}

/// What became of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Every sample was either accepted or finally refused (counted in the metrics).
    Done,
    /// Shutdown came while retrying: nothing was decided; the samples stay in the WAL.
    Interrupted,
}

/// The endpoint's fixed sending context.
pub struct Sender {
    pub config: EndpointConfig,
    /// Added at encoding to every series that lacks them, sorted by name.
    pub external_labels: Vec<(String, String)>,
    pub client: HttpClient,
    pub metrics: std::sync::Arc<EndpointMetrics>,
}

impl Sender {
    /// Sends `batch`, retrying and splitting as the module doc says. `stop_by` (shutdown)
    /// bounds retrying.
    pub async fn deliver(
        &self,
        batch: &[Sample],
        stop_by: impl Fn() -> Option<Instant>,
    ) -> Delivery {
        let mut parts: Vec<&[Sample]> = vec![batch];
        let mut splits = 0;
        // Parts are sent front to back, so each series stays in order.
        while let Some(part) = parts.pop() {
            match self.send_with_retries(part, &stop_by).await {
                None => return Delivery::Interrupted,
                Some(Outcome::Sent) => {}
                Some(Outcome::Fail(why, status)) => {
                    if status == Some(400)
                        && part.len() > 1
                        && splits < MAX_SPLITS
                        && names_one_sample(&why)
                    {
                        splits += 1;
                        let (a, b) = part.split_at(part.len() / 2);
                        parts.push(b);
                        parts.push(a);
                        continue;
                    }
                    tracing::warn!(endpoint = %self.config.name, url = %crate::http_client::redact_url(&self.config.url), %why, samples = part.len(), "remote write samples rejected; not retrying");
                    self.metrics
                        .samples_failed_total
                        .fetch_add(part.len() as u64, Relaxed);
                }
                Some(Outcome::Retry(_)) => unreachable!("retried until decided"),
            }
        }
        Delivery::Done
    }

    /// One part until it is accepted or refused; `None` if shutdown interrupted it.
    async fn send_with_retries(
        &self,
        part: &[Sample],
        stop_by: &impl Fn() -> Option<Instant>,
    ) -> Option<Outcome> {
        let m = &self.metrics;
        let n = part.len() as u64;
        let highest_ts = part.iter().map(|s| s.timestamp_ms).max().unwrap_or(0);
        let body = Bytes::from(snappy_compress(&encode_samples(
            part,
            &self.external_labels,
        )));
        let len = body.len() as u64;
        let outcome = self
            .request_with_retries(body, "samples", n, stop_by, || {
                m.samples_retried_total.fetch_add(n, Relaxed);
            })
            .await?;
        if outcome == Outcome::Sent {
            m.samples_sent_total.fetch_add(n, Relaxed);
            m.bytes_sent_total.fetch_add(len, Relaxed);
            m.highest_sent_timestamp_ms.fetch_max(highest_ts, Relaxed);
        }
        Some(outcome)
    }

    /// Sends a request holding only metric metadata (`metadata`), retrying as samples are
    /// retried; counts what became of it. `None` if shutdown interrupted it.
    pub async fn deliver_metadata(
        &self,
        metadata: &[crate::scrape::Metadata],
        stop_by: impl Fn() -> Option<Instant>,
    ) -> Option<Outcome> {
        let n = metadata.len() as u64;
        let body = Bytes::from(snappy_compress(&super::proto::encode_metadata(metadata)));
        let bytes = body.len() as u64;
        let outcome = self
            .request_with_retries(body, "metadata", n, &stop_by, || {})
            .await?;
        let m = &self.metrics;
        match &outcome {
            Outcome::Sent => {
                m.metadata_sent_total.fetch_add(n, Relaxed);
                m.metadata_bytes_total.fetch_add(bytes, Relaxed);
            }
            Outcome::Fail(why, _) => {
                tracing::warn!(endpoint = %self.config.name, %why, entries = n, "remote write metadata rejected; not retrying");
                m.metadata_failed_total.fetch_add(n, Relaxed);
            }
            Outcome::Retry(_) => unreachable!("retried until decided"),
        }
        Some(outcome)
    }

    /// One request body until it is accepted or refused (`what` and `n` name its contents in
    /// logs; `on_retry` runs before each retry); `None` if shutdown interrupted it.
    async fn request_with_retries(
        &self,
        body: Bytes,
        what: &str,
        n: u64,
        stop_by: &impl Fn() -> Option<Instant>,
        on_retry: impl Fn(),
    ) -> Option<Outcome> {
        let m = &self.metrics;
        let q = &self.config.queue;
        let mut attempt: u32 = 0;
        loop {
            m.requests_total.fetch_add(1, Relaxed);
            let started = Instant::now();
            let outcome = self.send_once(body.clone()).await;
            let took = started.elapsed();
            m.send_nanos_total
                .fetch_add(took.as_nanos() as u64, Relaxed);
            m.sent_batch_duration.0.observe(took.as_secs_f64());
            match outcome {
                Outcome::Sent => {
                    m.failing.store(false, Relaxed);
                    return Some(Outcome::Sent);
                }
                Outcome::Fail(..) => return Some(outcome),
                Outcome::Retry(why) => {
                    m.failing.store(true, Relaxed);
                    let delay = backoff(attempt, q.min_backoff, q.max_backoff);
                    if stop_by().is_some_and(|d| Instant::now() + delay > d) {
                        tracing::warn!(endpoint = %self.config.name, %why, what, n, "remote write: stopping while the endpoint fails; the samples stay in the WAL");
                        return None;
                    }
                    if attempt.is_multiple_of(RETRY_WARN_EVERY) {
                        tracing::warn!(endpoint = %self.config.name, %why, what, attempt, ?delay, "remote write failed; retrying with backoff");
                    } else {
                        tracing::debug!(endpoint = %self.config.name, %why, what, ?delay, "remote write: retrying");
                    }
                    on_retry();
                    tokio::time::sleep(delay).await;
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }

    async fn send_once(&self, body: Bytes) -> Outcome {
        let cfg = &self.config;
        let req = hyper::Request::post(&cfg.url)
            .header(hyper::header::CONTENT_ENCODING, "snappy")
            .header(hyper::header::CONTENT_TYPE, "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body);
        let req = match req {
            Ok(r) => r,
            Err(e) => return Outcome::Fail(format!("invalid request: {e}"), None),
        };
        match self
            .client
            .send(req, cfg.remote_timeout, RESPONSE_BODY_MAX_BYTES)
            .await
        {
            Ok(resp) => {
                let text = &resp.body[..resp.body.len().min(ERROR_BODY_MAX_BYTES)];
                let text = String::from_utf8_lossy(text);
                match classify(resp.status.as_u16(), cfg.queue.retry_on_http_429) {
                    Outcome::Sent => Outcome::Sent,
                    Outcome::Retry(w) => Outcome::Retry(format!("{w}: {}", text.trim())),
                    Outcome::Fail(w, s) => Outcome::Fail(format!("{w}: {}", text.trim()), s),
                }
            }
            // A response too large to read still had a status; the rest (timeouts, refused
            // connections, TLS failures) may heal: retried with backoff, as Prometheus does.
            Err(e) if e.kind() == ErrorKind::BodyTooLarge => {
                Outcome::Retry(format!("unreadable response: {e}"))
            }
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_are_classified_per_remote_write_1_0() {
        assert_eq!(classify(200, true), Outcome::Sent);
        assert_eq!(classify(204, true), Outcome::Sent);
        assert!(matches!(classify(500, true), Outcome::Retry(_)));
        assert!(matches!(classify(503, false), Outcome::Retry(_)));
        assert!(matches!(classify(429, true), Outcome::Retry(_)));
        assert!(matches!(classify(429, false), Outcome::Fail(_, Some(429))));
        assert!(matches!(classify(400, true), Outcome::Fail(_, Some(400))));
        assert!(matches!(classify(404, true), Outcome::Fail(_, Some(404))));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let (min, max) = (Duration::from_millis(30), Duration::from_secs(5));
        assert_eq!(backoff(0, min, max), Duration::from_millis(30));
        assert_eq!(backoff(1, min, max), Duration::from_millis(60));
        assert_eq!(backoff(3, min, max), Duration::from_millis(240));
        assert_eq!(backoff(20, min, max), max);
        assert_eq!(backoff(u32::MAX, min, max), max);
    }
}
