//! The scraping side of `pyroscope.scrape`: one loop per (target, enabled profile type),
//! each fetching `scheme://address{path_prefix}{path}?params` every `scrape_interval` with
//! the component's HTTP client and handing the profile to the sinks.
//!
//! As Alloy does: a delta profile type (`process_cpu` by default) is fetched with
//! `?seconds=N` (`delta_profiling_duration`, by default the interval less a second; the
//! target collects for N seconds, so the timeout grows by N); the pushed series is labeled
//! with `__name__` (the profile type), `service_name` (the target's, else inferred from
//! Kubernetes or Docker meta labels, else `unspecified`), `job`, `instance` (the address) and
//! the target's labels without `__`-prefixed ones. A scrape counts only when the answer is
//! 200, non-empty, `application/octet-stream` and not text (an HTML or JSON error page). Each
//! loop starts at an offset within the interval derived from its target, so the targets of
//! one node are spread over the interval.
//!
//! Cumulative profiles (memory allocations, block, mutex) are turned into differences
//! between two scrapes before they are sent, with `__delta__="false"` (as Alloy does; see
//! [`super::delta`]); the first scrape of such a loop only primes it. The godeltaprof types
//! are deltas already and are sent as `memory`, `block`, `mutex`. It owns no sharding: the
//! pipeline hands it the targets this node owns.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{Profile, ProfileSink};
use crate::config::ProfileScrapeConfig;
use crate::discovery::Target;
use crate::http_client::HttpClient;

/// Largest profile body read (Go heap profiles of big programs are a few MiB).
pub const PROFILE_SIZE_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Scrape counters of one component.
#[derive(Debug, Default)]
pub struct ScrapeCounters {
    pub profiles: AtomicU64,
    pub failures: AtomicU64,
}

/// The running loops of one `pyroscope.scrape` component.
pub struct ProfileScraper {
    config: Arc<ProfileScrapeConfig>,
    client: HttpClient,
    sinks: Arc<Vec<Arc<dyn ProfileSink>>>,
    /// By (target shard key, profile type).
    loops: BTreeMap<(u64, String), tokio::task::JoinHandle<()>>,
    pub counters: Arc<ScrapeCounters>,
}

impl Drop for ProfileScraper {
    fn drop(&mut self) {
        self.stop_all();
    }
}

impl ProfileScraper {
    pub fn new(
        config: ProfileScrapeConfig,
        sinks: Vec<Arc<dyn ProfileSink>>,
    ) -> Result<ProfileScraper, String> {
        let client = HttpClient::new(&config.client, crate::http_client::USER_AGENT)
            .map_err(|e| e.to_string())?;
        Ok(ProfileScraper {
            config: Arc::new(config),
            client,
            sinks: Arc::new(sinks),
            loops: BTreeMap::new(),
            counters: Arc::default(),
        })
    }

    pub fn config(&self) -> &ProfileScrapeConfig {
        &self.config
    }

    /// Scrapes exactly `targets` from now on: loops of targets no longer listed stop, new
    /// ones start. Returns how many loops run.
    pub fn set_targets(&mut self, targets: &[Target]) -> usize {
        let mut wanted = BTreeMap::new();
        for t in targets {
            for p in self.config.profiles.iter().filter(|p| p.enabled) {
                wanted.insert((t.shard_key(), p.name.clone()), t);
            }
        }
        self.loops.retain(|key, task| {
            let keep = wanted.contains_key(key);
            if !keep {
                task.abort();
            }
            keep
        });
        for (key, target) in wanted {
            if self.loops.contains_key(&key) {
                continue;
            }
            let job = Job::new(&self.config, target, &key.1);
            let task = tokio::spawn(run_loop(
                job,
                self.config.clone(),
                self.client.clone(),
                self.sinks.clone(),
                self.counters.clone(),
            ));
            self.loops.insert(key, task);
        }
        self.loops.len()
    }

    pub fn stop_all(&mut self) {
        for (_, task) in std::mem::take(&mut self.loops) {
            task.abort();
        }
    }
}

/// What one loop fetches and how it labels the result.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub url: String,
    pub labels: BTreeMap<String, String>,
    pub timeout: Duration,
    /// Where in the interval the loop scrapes.
    pub offset: Duration,
    /// The cumulative sample types to turn into deltas, if any.
    pub cumulative: Option<&'static [&'static str]>,
}

impl Job {
    pub fn new(config: &ProfileScrapeConfig, target: &Target, profile: &str) -> Job {
        let p = config
            .profiles
            .iter()
            .find(|p| p.name == profile)
            .expect("an enabled profile type");
        let scheme = target.get("__scheme__").unwrap_or(&config.scheme);
        let prefix = target
            .get("__profile_path_prefix__")
            .unwrap_or(&config.path_prefix);
        let path = target.get("__profile_path__").unwrap_or(&p.path);
        let mut params: Vec<(String, String)> = config
            .params
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.first()?.clone())))
            .collect();
        for (k, v) in target.labels() {
            if let Some(name) = k.strip_prefix("__param_") {
                params.retain(|(n, _)| n != name);
                params.push((name.to_string(), v.clone()));
            }
        }
        let mut timeout = config.scrape_timeout;
        if p.delta {
            let secs = config.delta_profiling_duration.as_secs().max(1);
            params.push(("seconds".into(), secs.to_string()));
            timeout += Duration::from_secs(secs);
        }
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        let mut url = format!(
            "{scheme}://{}{}{path}",
            target.address(),
            prefix.trim_end_matches('/')
        );
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query.join("&"));
        }
        let mut labels: BTreeMap<String, String> = target
            .labels()
            .iter()
            .filter(|(k, _)| !k.starts_with("__"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // godeltaprof endpoints serve deltas of the standard types, under their names.
        let name = profile.strip_prefix("godeltaprof_").unwrap_or(profile);
        labels.insert("__name__".into(), name.to_string());
        let cumulative = super::delta::cumulative_types(profile);
        if cumulative.is_some() {
            labels.insert("__delta__".into(), "false".into());
        }
        labels
            .entry("job".into())
            .or_insert_with(|| config.job_name.clone());
        labels
            .entry("instance".into())
            .or_insert_with(|| target.address().to_string());
        if labels.get("service_name").is_none_or(|s| s.is_empty()) {
            labels.insert("service_name".into(), infer_service_name(target));
        }
        labels
            .entry("otel.scope.name".into())
            .or_insert_with(|| "com.grafana.alloy/pyroscope.scrape".into());
        let interval = config.scrape_interval.as_nanos().max(1) as u64;
        let offset = Duration::from_nanos(
            xxhash_rust::xxh64::xxh64(url.as_bytes(), target.shard_key()) % interval,
        );
        Job {
            url,
            labels,
            timeout,
            offset,
            cumulative,
        }
    }
}

/// Alloy's order: the `pyroscope.io/service_name` pod annotation, namespace/container,
/// Docker container, Swarm service; else `unspecified`.
fn infer_service_name(t: &Target) -> String {
    let get = |k: &str| t.get(k).filter(|v| !v.is_empty());
    if let Some(s) = get("__meta_kubernetes_pod_annotation_pyroscope_io_service_name") {
        return s.to_string();
    }
    if let (Some(ns), Some(c)) = (
        get("__meta_kubernetes_namespace"),
        get("__meta_kubernetes_pod_container_name"),
    ) {
        return format!("{ns}/{c}");
    }
    for k in [
        "__meta_docker_container_name",
        "__meta_dockerswarm_container_label_service_name",
        "__meta_dockerswarm_service_name",
    ] {
        if let Some(s) = get(k) {
            return s.to_string();
        }
    }
    "unspecified".into()
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn run_loop(
    job: Job,
    config: Arc<ProfileScrapeConfig>,
    client: HttpClient,
    sinks: Arc<Vec<Arc<dyn ProfileSink>>>,
    counters: Arc<ScrapeCounters>,
) {
    let interval = config.scrape_interval;
    // Align to the interval: every node places a target at the same point in it, so a
    // target handed to another node keeps its rhythm.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    let period = interval.as_nanos().max(1) as u64;
    let wait = (job.offset.as_nanos() as u64 + period - now % period) % period;
    tokio::time::sleep(Duration::from_nanos(wait)).await;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut delta = job.cumulative.map(super::delta::DeltaComputer::new);
    loop {
        ticker.tick().await;
        let result = fetch(&client, &job)
            .await
            .and_then(|raw| match delta.as_mut() {
                None => Ok(Some(raw)),
                Some(d) => d.delta(&raw).map(|o| o.map(Bytes::from)),
            });
        match result {
            // The first scrape of a cumulative profile primes the delta.
            Ok(None) => {}
            Ok(Some(raw)) => {
                counters.profiles.fetch_add(1, Ordering::Relaxed);
                let profile = Profile {
                    labels: job.labels.clone(),
                    raw,
                };
                for s in sinks.iter() {
                    s.append(profile.clone());
                }
            }
            Err(e) => {
                counters.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(url = %crate::http_client::redact_url(&job.url), error = %e, "profile scrape failed");
            }
        }
    }
}

/// One profile, checked to be pprof data.
async fn fetch(client: &HttpClient, job: &Job) -> Result<Bytes, String> {
    let req = hyper::Request::get(&job.url)
        .body(Bytes::new())
        .map_err(|e| format!("invalid request: {e}"))?;
    let resp = client
        .send(req, job.timeout, PROFILE_SIZE_MAX_BYTES)
        .await
        .map_err(|e| e.to_string())?;
    if !resp.status.is_success() {
        let text = String::from_utf8_lossy(&resp.body[..resp.body.len().min(200)]).to_string();
        return Err(format!("server answered {}: {}", resp.status, text.trim()));
    }
    let content_type = resp
        .headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    check_profile(&resp.body, content_type)?;
    Ok(resp.body)
}

/// Alloy's checks: a body, `application/octet-stream`, not an HTML or JSON page, gzip or a
/// protobuf message (the first byte's wire type below 6).
pub fn check_profile(body: &[u8], content_type: &str) -> Result<(), String> {
    if body.is_empty() {
        return Err("empty profile".into());
    }
    if !content_type.starts_with("application/octet-stream") {
        return Err(format!(
            "unexpected Content-Type {content_type:?}; expected application/octet-stream (pprof)"
        ));
    }
    let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    if body.len() >= 10 && matches!(first, Some(b'<') | Some(b'{') | Some(b'[')) {
        return Err("text answer instead of a pprof profile".into());
    }
    if body.starts_with(&[0x1f, 0x8b]) || (body.len() > 2 && body[0] & 7 < 6) {
        return Ok(());
    }
    Err("not a pprof profile (neither gzip nor protobuf)".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn config() -> ProfileScrapeConfig {
        let src = r#"
pyroscope.scrape "go" {
  targets    = []
  forward_to = []
  scrape_interval = "10s"
  params = {"debug" = ["0"]}
  profiling_config { path_prefix = "/prom/" }
}
"#;
        Config::from_str(src, "t")
            .unwrap()
            .profile_scrapes
            .remove(0)
    }

    #[test]
    fn jobs_have_alloys_urls_and_labels() {
        let c = config();
        let t = Target::from_labels([
            ("__address__", "127.0.0.1:9090"),
            ("__meta_kubernetes_namespace", "ns"),
            ("__meta_kubernetes_pod_container_name", "app"),
            ("team", "a"),
        ]);
        let cpu = Job::new(&c, &t, "process_cpu");
        assert_eq!(
            cpu.url,
            "http://127.0.0.1:9090/prom/debug/pprof/profile?debug=0&seconds=9"
        );
        assert_eq!(cpu.timeout, Duration::from_secs(19));
        assert_eq!(cpu.labels["__name__"], "process_cpu");
        assert_eq!(cpu.labels["service_name"], "ns/app");
        assert_eq!(cpu.labels["job"], "pyroscope.scrape.go");
        assert_eq!(cpu.labels["instance"], "127.0.0.1:9090");
        assert_eq!(cpu.labels["team"], "a");
        assert!(!cpu.labels.keys().any(|k| k.starts_with("__meta")));
        let mem = Job::new(&c, &t, "memory");
        assert_eq!(
            mem.url,
            "http://127.0.0.1:9090/prom/debug/pprof/allocs?debug=0"
        );
        assert_eq!(mem.timeout, Duration::from_secs(10));
        assert_eq!(mem.labels["__delta__"], "false");
        assert!(mem.cumulative.is_some() && cpu.cumulative.is_none());
        assert!(!cpu.labels.contains_key("__delta__"));
        assert!(mem.offset < Duration::from_secs(10));
    }

    #[test]
    fn only_pprof_answers_count() {
        let ok = "application/octet-stream";
        assert!(check_profile(b"\x1f\x8b\x08rest", ok).is_ok());
        assert!(check_profile(b"\x0a\x04\x08\x01", ok).is_ok());
        assert!(check_profile(b"", ok).is_err());
        assert!(check_profile(b"\x1f\x8b", "text/plain").is_err());
        assert!(check_profile(b"<!DOCTYPE html><html>", ok).is_err());
        assert!(check_profile(b"\x0f\xff\xff", ok).is_err());
    }
}
