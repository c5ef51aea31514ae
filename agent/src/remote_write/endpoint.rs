//! One remote write endpoint: a bounded in-memory queue, a sender task that cuts batches
//! (`max_samples_per_send`, or whatever is queued once the oldest sample has waited
//! `batch_send_deadline`), and delivery with retries.
//!
//! Retry rule (remote write 1.0): 5xx, 429 (unless `retry_on_http_429 = false`), timeouts and
//! network errors are retried with exponential backoff from `min_backoff` to `max_backoff`
//! until they succeed or the endpoint shuts down; any other status is final and the batch is
//! counted as failed. While a batch is retried the queue keeps filling; when it is full new
//! samples are dropped and counted, so memory stays bounded. One sender per endpoint keeps
//! each series in order (no sharding yet).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Notify;

use super::metrics::EndpointMetrics;
use super::proto::{encode_samples, snappy_compress};
use crate::config::EndpointConfig;
use crate::http_client::{ErrorKind, HttpClient, USER_AGENT};
use crate::scrape::Sample;

/// Bytes of an error response body kept for the log message.
const ERROR_BODY_MAX_BYTES: usize = 1024;
/// Largest response body read from a receiver (they answer with a short text at most).
const RESPONSE_BODY_MAX_BYTES: u64 = 64 * 1024;
/// While a batch keeps failing, every this-many-th retry is logged as a warning (the first
/// one always is), so an outage is visible without a line per retry.
const RETRY_WARN_EVERY: u32 = 20;

/// What one request attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Sent,
    Retry(String),
    Fail(String),
}

/// Remote write 1.0 status handling.
pub(crate) fn classify(status: u16, retry_on_http_429: bool) -> Outcome {
    match status {
        200..=299 => Outcome::Sent,
        429 if retry_on_http_429 => Outcome::Retry("HTTP 429 Too Many Requests".into()),
        500..=599 => Outcome::Retry(format!("HTTP {status}")),
        _ => Outcome::Fail(format!("HTTP {status}")),
    }
}

/// Delay before retry number `attempt` (0-based): `min * 2^attempt`, capped at `max`.
pub(crate) fn backoff(attempt: u32, min: Duration, max: Duration) -> Duration {
    min.saturating_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
        .min(max)
}

struct QueueState {
    samples: VecDeque<Sample>,
    /// When the oldest queued sample arrived (for `batch_send_deadline`).
    oldest: Option<Instant>,
    /// Set by shutdown: drain, then stop; retries give up at the deadline.
    closing_deadline: Option<Instant>,
}

struct Shared {
    config: EndpointConfig,
    /// Added at encoding to every series that lacks them, sorted by name.
    external_labels: Vec<(String, String)>,
    queue: Mutex<QueueState>,
    wake: Notify,
    metrics: Arc<EndpointMetrics>,
}

/// A running endpoint.
pub struct Endpoint {
    shared: Arc<Shared>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Endpoint {
    /// Starts the sender task on the current tokio runtime. Fails if the client settings
    /// name a file that cannot be read or used.
    pub fn start(config: EndpointConfig) -> Result<Endpoint, String> {
        Endpoint::with_external_labels(config, Vec::new())
    }

    /// Like [`Endpoint::start`]; `external_labels` are added to every series that lacks them
    /// when a batch is encoded (so queued samples share their labels with the scraper).
    pub fn with_external_labels(
        config: EndpointConfig,
        mut external_labels: Vec<(String, String)>,
    ) -> Result<Endpoint, String> {
        let client = HttpClient::new(&config.client, USER_AGENT).map_err(|e| e.to_string())?;
        external_labels.sort();
        external_labels.dedup_by(|a, b| a.0 == b.0);
        let shared = Arc::new(Shared {
            external_labels,
            queue: Mutex::new(QueueState {
                samples: VecDeque::with_capacity(config.queue.capacity.min(1 << 16)),
                oldest: None,
                closing_deadline: None,
            }),
            config,
            wake: Notify::new(),
            metrics: Arc::new(EndpointMetrics::default()),
        });
        let task = tokio::spawn(send_loop(shared.clone(), client));
        Ok(Endpoint {
            shared,
            task: Mutex::new(Some(task)),
        })
    }

    pub fn config(&self) -> &EndpointConfig {
        &self.shared.config
    }

    pub fn metrics(&self) -> Arc<EndpointMetrics> {
        self.shared.metrics.clone()
    }

    /// Queues what fits; the rest is dropped and counted. Never blocks on the network.
    pub fn enqueue(&self, samples: impl ExactSizeIterator<Item = Sample>) {
        let n = samples.len() as u64;
        let m = &self.shared.metrics;
        m.samples_in_total.fetch_add(n, Ordering::Relaxed);
        let (accepted, wake) = {
            let mut q = self.shared.queue.lock().unwrap();
            if q.closing_deadline.is_some() {
                drop(q);
                m.samples_dropped_total.fetch_add(n, Ordering::Relaxed);
                return;
            }
            let room = self
                .shared
                .config
                .queue
                .capacity
                .saturating_sub(q.samples.len());
            let before = q.samples.len();
            q.samples.extend(samples.take(room));
            let accepted = (q.samples.len() - before) as u64;
            if before == 0 && accepted > 0 {
                q.oldest = Some(Instant::now());
            }
            let wake =
                before == 0 || q.samples.len() >= self.shared.config.queue.max_samples_per_send;
            (accepted, wake)
        };
        m.samples_pending
            .fetch_add(accepted as i64, Ordering::Relaxed);
        if accepted < n {
            m.samples_dropped_total
                .fetch_add(n - accepted, Ordering::Relaxed);
        }
        if wake {
            self.shared.wake.notify_one();
        }
    }

    /// Stops accepting samples, sends what is queued, and gives up on anything still unsent
    /// after `flush_timeout` (counted as failed).
    pub async fn shutdown(&self, flush_timeout: Duration) {
        let deadline = Instant::now() + flush_timeout;
        self.shared.queue.lock().unwrap().closing_deadline = Some(deadline);
        self.shared.wake.notify_one();
        let task = self.task.lock().unwrap().take();
        if let Some(mut task) = task {
            let grace = flush_timeout + Duration::from_millis(100);
            if tokio::time::timeout(grace, &mut task).await.is_err() {
                task.abort();
            }
        }
        let left = {
            let mut q = self.shared.queue.lock().unwrap();
            let n = q.samples.len();
            q.samples.clear();
            n as u64
        };
        let m = &self.shared.metrics;
        m.samples_failed_total.fetch_add(left, Ordering::Relaxed);
        m.samples_pending.fetch_sub(left as i64, Ordering::Relaxed);
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
        }
    }
}

async fn send_loop(shared: Arc<Shared>, client: HttpClient) {
    let q = &shared.config.queue;
    loop {
        let batch: Option<Vec<Sample>> = {
            let mut st = shared.queue.lock().unwrap();
            let len = st.samples.len();
            let due = st
                .oldest
                .is_some_and(|t| t.elapsed() >= q.batch_send_deadline);
            let closing = st.closing_deadline.is_some();
            if len >= q.max_samples_per_send || (len > 0 && (due || closing)) {
                let n = len.min(q.max_samples_per_send);
                let batch: Vec<Sample> = st.samples.drain(..n).collect();
                st.oldest = if st.samples.is_empty() {
                    None
                } else {
                    Some(Instant::now())
                };
                Some(batch)
            } else if closing {
                return;
            } else {
                None
            }
        };
        match batch {
            Some(batch) => send_with_retries(&shared, &client, batch).await,
            None => {
                let wait = {
                    let st = shared.queue.lock().unwrap();
                    match st.oldest {
                        Some(t) => q.batch_send_deadline.saturating_sub(t.elapsed()),
                        None => q.batch_send_deadline,
                    }
                };
                tokio::select! {
                    _ = shared.wake.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

async fn send_with_retries(shared: &Shared, client: &HttpClient, batch: Vec<Sample>) {
    let m = &shared.metrics;
    let n = batch.len() as u64;
    let highest_ts = batch.iter().map(|s| s.timestamp_ms).max().unwrap_or(0);
    let body = Bytes::from(snappy_compress(&encode_samples(
        &batch,
        &shared.external_labels,
    )));
    drop(batch);
    let q = &shared.config.queue;
    let mut attempt: u32 = 0;
    loop {
        m.requests_total.fetch_add(1, Ordering::Relaxed);
        let outcome = send_once(shared, client, body.clone()).await;
        match outcome {
            Outcome::Sent => {
                m.samples_sent_total.fetch_add(n, Ordering::Relaxed);
                m.bytes_sent_total
                    .fetch_add(body.len() as u64, Ordering::Relaxed);
                m.highest_sent_timestamp_ms
                    .fetch_max(highest_ts, Ordering::Relaxed);
                break;
            }
            Outcome::Fail(why) => {
                tracing::warn!(endpoint = %shared.config.name, url = %crate::http_client::redact_url(&shared.config.url), %why, samples = n, "remote write batch rejected; not retrying");
                m.samples_failed_total.fetch_add(n, Ordering::Relaxed);
                break;
            }
            Outcome::Retry(why) => {
                let delay = backoff(attempt, q.min_backoff, q.max_backoff);
                let deadline = shared.queue.lock().unwrap().closing_deadline;
                if deadline.is_some_and(|d| Instant::now() + delay > d) {
                    tracing::warn!(endpoint = %shared.config.name, %why, samples = n, "remote write: giving up at shutdown");
                    m.samples_failed_total.fetch_add(n, Ordering::Relaxed);
                    break;
                }
                if attempt.is_multiple_of(RETRY_WARN_EVERY) {
                    tracing::warn!(endpoint = %shared.config.name, %why, attempt, ?delay, "remote write failed; retrying with backoff");
                } else {
                    tracing::debug!(endpoint = %shared.config.name, %why, ?delay, "remote write: retrying");
                }
                m.samples_retried_total.fetch_add(n, Ordering::Relaxed);
                tokio::time::sleep(delay).await;
                attempt = attempt.saturating_add(1);
            }
        }
    }
    m.samples_pending.fetch_sub(n as i64, Ordering::Relaxed);
}

async fn send_once(shared: &Shared, client: &HttpClient, body: Bytes) -> Outcome {
    let cfg = &shared.config;
    let req = hyper::Request::post(&cfg.url)
        .header(hyper::header::CONTENT_ENCODING, "snappy")
        .header(hyper::header::CONTENT_TYPE, "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body);
    let req = match req {
        Ok(r) => r,
        Err(e) => return Outcome::Fail(format!("invalid request: {e}")),
    };
    match client
        .send(req, cfg.remote_timeout, RESPONSE_BODY_MAX_BYTES)
        .await
    {
        Ok(resp) => {
            let text = &resp.body[..resp.body.len().min(ERROR_BODY_MAX_BYTES)];
            let text = String::from_utf8_lossy(text);
            match classify(resp.status.as_u16(), cfg.queue.retry_on_http_429) {
                Outcome::Sent => Outcome::Sent,
                Outcome::Retry(w) => Outcome::Retry(format!("{w}: {}", text.trim())),
                Outcome::Fail(w) => Outcome::Fail(format!("{w}: {}", text.trim())),
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
        assert!(matches!(classify(429, false), Outcome::Fail(_)));
        assert!(matches!(classify(400, true), Outcome::Fail(_)));
        assert!(matches!(classify(404, true), Outcome::Fail(_)));
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
