//! `pyroscope.write`: the receiver of profiles and their delivery to each endpoint with
//! Pyroscope's push call ([`super::push`]).
//!
//! Per endpoint a bounded queue (profiles beyond it are dropped and counted, never held
//! without limit) and one sender that pushes what is queued, up to
//! [`PUSH_PROFILES_MAX`] profiles per request, retrying with exponential backoff
//! (`min_backoff_period` doubling to `max_backoff_period`, at most `max_backoff_retries`
//! retries, 0 = no limit) on a timeout, a connection error, a 5xx, a 408, or a 429 with
//! `retry_on_http_429`; other answers drop the request. `external_labels` are set on every
//! series. Counters carry Alloy's names (`pyroscope_write_*`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::push::{encode_push_request, error_message, CONTENT_TYPE, PUSH_PATH};
use super::{Profile, ProfileSink};
use crate::config::{ProfileEndpointConfig, ProfileWriteConfig};
use crate::http_client::HttpClient;

/// Profiles queued per endpoint.
pub const QUEUE_PROFILES_MAX: usize = 1024;
/// Profiles per push request.
pub const PUSH_PROFILES_MAX: usize = 64;
/// Largest answer body read.
const ANSWER_SIZE_MAX_BYTES: u64 = 64 * 1024;

/// Counters of one endpoint (Alloy's `pyroscope_write_*{endpoint}`).
#[derive(Debug, Default)]
pub struct EndpointCounters {
    pub sent_bytes: AtomicU64,
    pub sent_profiles: AtomicU64,
    pub dropped_bytes: AtomicU64,
    pub dropped_profiles: AtomicU64,
    pub retries: AtomicU64,
}

struct Endpoint {
    config: ProfileEndpointConfig,
    queue: mpsc::Sender<Profile>,
    counters: Arc<EndpointCounters>,
    task: tokio::task::JoinHandle<()>,
}

/// A running `pyroscope.write` component.
pub struct ProfileWriter {
    config: ProfileWriteConfig,
    endpoints: Vec<Endpoint>,
}

impl Drop for ProfileWriter {
    fn drop(&mut self) {
        for e in &self.endpoints {
            e.task.abort();
        }
    }
}

impl ProfileWriter {
    /// Starts one sender per endpoint on the current tokio runtime.
    pub fn start(config: ProfileWriteConfig) -> Result<ProfileWriter, String> {
        let mut endpoints = Vec::new();
        for e in &config.endpoints {
            let client = HttpClient::new(&e.client, crate::http_client::USER_AGENT)
                .map_err(|err| format!("endpoint {:?}: {err}", e.name))?;
            let (tx, rx) = mpsc::channel(QUEUE_PROFILES_MAX);
            let counters = Arc::new(EndpointCounters::default());
            let task = tokio::spawn(send_loop(e.clone(), client, rx, counters.clone()));
            endpoints.push(Endpoint {
                config: e.clone(),
                queue: tx,
                counters,
                task,
            });
        }
        Ok(ProfileWriter { config, endpoints })
    }

    pub fn config(&self) -> &ProfileWriteConfig {
        &self.config
    }

    /// Each endpoint's name and counters.
    pub fn counters(&self) -> Vec<(String, Arc<EndpointCounters>)> {
        self.endpoints
            .iter()
            .map(|e| (e.config.name.clone(), e.counters.clone()))
            .collect()
    }
}

impl ProfileSink for ProfileWriter {
    fn append(&self, mut profile: Profile) {
        for (k, v) in &self.config.external_labels {
            profile.labels.insert(k.clone(), v.clone());
        }
        for e in &self.endpoints {
            let size = profile.raw.len() as u64;
            if e.queue.try_send(profile.clone()).is_err() {
                e.counters.dropped_profiles.fetch_add(1, Ordering::Relaxed);
                e.counters.dropped_bytes.fetch_add(size, Ordering::Relaxed);
                tracing::warn!(endpoint = %e.config.name, "pyroscope.write queue full; profile dropped");
            }
        }
    }
}

/// How a push ended.
enum Outcome {
    Sent,
    Retry(String),
    Fail(String),
}

async fn send_loop(
    config: ProfileEndpointConfig,
    client: HttpClient,
    mut rx: mpsc::Receiver<Profile>,
    counters: Arc<EndpointCounters>,
) {
    let url = format!("{}{PUSH_PATH}", config.url.trim_end_matches('/'));
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < PUSH_PROFILES_MAX {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let bytes: u64 = batch.iter().map(|p| p.raw.len() as u64).sum();
        let body = Bytes::from(encode_push_request(&batch));
        let mut delay = config.min_backoff;
        let mut retries = 0usize;
        loop {
            match push(&client, &url, &config, body.clone()).await {
                Outcome::Sent => {
                    counters
                        .sent_profiles
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    counters.sent_bytes.fetch_add(bytes, Ordering::Relaxed);
                    break;
                }
                Outcome::Retry(why)
                    if config.max_backoff_retries == 0 || retries < config.max_backoff_retries =>
                {
                    tracing::debug!(endpoint = %config.name, error = %why, ?delay, "profile push failed; retrying");
                    counters.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(config.max_backoff);
                    retries += 1;
                }
                Outcome::Retry(why) | Outcome::Fail(why) => {
                    tracing::warn!(endpoint = %config.name, error = %why, profiles = batch.len(), retries, "profile push failed; profiles dropped");
                    counters
                        .dropped_profiles
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    counters.dropped_bytes.fetch_add(bytes, Ordering::Relaxed);
                    break;
                }
            }
        }
    }
}

async fn push(
    client: &HttpClient,
    url: &str,
    config: &ProfileEndpointConfig,
    body: Bytes,
) -> Outcome {
    let req = hyper::Request::post(url)
        .header(hyper::header::CONTENT_TYPE, CONTENT_TYPE)
        .header("Connect-Protocol-Version", "1")
        .header(
            "Connect-Timeout-Ms",
            config.remote_timeout.as_millis().to_string(),
        )
        .body(body);
    let req = match req {
        Ok(r) => r,
        Err(e) => return Outcome::Fail(format!("invalid request: {e}")),
    };
    match client
        .send(req, config.remote_timeout, ANSWER_SIZE_MAX_BYTES)
        .await
    {
        Ok(resp) if resp.status.is_success() => Outcome::Sent,
        Ok(resp) => {
            let why = format!(
                "{} answered {}: {}",
                resp.url,
                resp.status,
                error_message(&resp.body)
            );
            let s = resp.status.as_u16();
            if s >= 500 || s == 408 || (s == 429 && config.retry_on_http_429) {
                Outcome::Retry(why)
            } else {
                Outcome::Fail(why)
            }
        }
        Err(e) => Outcome::Retry(e.to_string()),
    }
}
