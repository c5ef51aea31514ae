//! The parts of the scrape differential test: the case targets (one listener each, serving
//! each scraper its own scrape sequence), a remote-write receiver of ours that decodes every
//! request (snappy + protobuf) and keeps samples and metadata as sent, the two scrapers'
//! configurations, and the comparison of what each sent, case by case.
//!
//! The receiver checks what a remote-write 1.0 receiver must: `POST`, `Content-Encoding:
//! snappy`, a body that decompresses and decodes; it answers 204 and keeps everything (it
//! does not judge the samples: that is the comparison's job).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use agent::remote_write::proto::{
    decode_metadata, decode_write_request, snappy_decompress, DecodedMetadata,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use super::cases::{Case, Job, Reply, Request as CaseRequest};

/// Good scrapes each target serves per scraper; the next scrapes get 503.
pub const SCRAPES: u64 = 3;

/// Which scraper sent a request, from its `User-Agent`.
pub fn scraper_of(user_agent: &str) -> usize {
    usize::from(!user_agent.starts_with("Prometheus/"))
}

/// The case targets on a private tokio runtime; dropping stops them.
pub struct Targets {
    pub addresses: Vec<String>,
    _rt: tokio::runtime::Runtime,
}

impl Targets {
    pub fn start(cases: &'static [Case], base_ms: i64) -> Targets {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime for the targets");
        let mut addresses = Vec::new();
        for case in cases {
            let listener = rt
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .expect("bind a target");
            addresses.push(listener.local_addr().unwrap().to_string());
            let counts: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
            rt.spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let counts = counts.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req: Request<_>| {
                            let reply = answer(case, &counts, &req, base_ms);
                            async move { Ok::<_, std::convert::Infallible>(reply) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        }
        Targets { addresses, _rt: rt }
    }
}

fn answer<B>(
    case: &Case,
    counts: &[AtomicU64; 2],
    req: &Request<B>,
    base_ms: i64,
) -> Response<Full<Bytes>> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let count = &counts[scraper_of(&header("user-agent"))];
    let accept = header("accept");
    let n = count.load(Ordering::SeqCst);
    let mut reply: Reply = (case.serve)(&CaseRequest {
        n,
        path: req.uri().path(),
        accept: &accept,
        base_ms,
    });
    if !(300..400).contains(&reply.status) {
        count.fetch_add(1, Ordering::SeqCst);
        if n >= SCRAPES {
            reply = super::cases::reply(503, "text/plain", "done");
        }
    }
    let mut b = Response::builder().status(reply.status);
    for (k, v) in &reply.headers {
        b = b.header(*k, v);
    }
    b.body(Full::new(Bytes::from(reply.body))).unwrap()
}

/// One sample as a scraper sent it: labels (sorted), timestamp, value bits.
pub type Sent = (Vec<(String, String)>, i64, u64);

/// What one receiver got.
#[derive(Default)]
pub struct Received {
    pub samples: Vec<Sent>,
    pub metadata: BTreeSet<DecodedMetadata>,
    /// When each metadata request arrived.
    pub metadata_requests: Vec<Instant>,
    pub bad_requests: Vec<String>,
}

/// A remote-write receiver of ours (see the module doc) on a private runtime.
pub struct Receiver {
    pub port: u16,
    pub got: Arc<Mutex<Received>>,
    _rt: tokio::runtime::Runtime,
}

impl Receiver {
    pub fn start() -> Receiver {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime for the receiver");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind the receiver");
        let port = listener.local_addr().unwrap().port();
        let got: Arc<Mutex<Received>> = Arc::default();
        let g = got.clone();
        rt.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let g = g.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<_>| {
                        let g = g.clone();
                        async move {
                            let status = receive(req, &g).await;
                            Ok::<_, std::convert::Infallible>(
                                Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::new()))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver { port, got, _rt: rt }
    }
}

async fn receive(req: Request<hyper::body::Incoming>, got: &Mutex<Received>) -> u16 {
    let snappy = req
        .headers()
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes() == b"snappy");
    let post = req.method() == hyper::Method::POST;
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return 400,
    };
    let decoded = snappy_decompress(&body)
        .and_then(|raw| Ok((decode_write_request(&raw)?, decode_metadata(&raw)?)));
    let mut g = got.lock().unwrap();
    match decoded {
        Ok((series, metadata)) if post && snappy => {
            if !metadata.is_empty() {
                g.metadata_requests.push(Instant::now());
            }
            g.metadata.extend(metadata);
            for s in series {
                let mut labels = s.labels;
                labels.sort();
                for (ts, v) in s.samples {
                    g.samples.push((labels.clone(), ts, v.to_bits()));
                }
            }
            204
        }
        Ok(_) => {
            g.bad_requests
                .push("not a POST with Content-Encoding: snappy".into());
            400
        }
        Err(e) => {
            g.bad_requests.push(e);
            400
        }
    }
}

/// Prometheus' configuration: a job per [`Job`] listing its cases' targets (with a `case`
/// label), remote write to `receiver_port` (partial batches after `deadline`, e.g. `1s`).
pub fn prometheus_config(
    cases: &[Case],
    addresses: &[String],
    receiver_port: u16,
    deadline: &str,
) -> String {
    let mut s =
        String::from("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n");
    for job in Job::ALL {
        s.push_str(&format!(
            "  - job_name: {}\n{}    static_configs:\n",
            job.name(),
            job.options().0
        ));
        for (c, addr) in cases.iter().zip(addresses).filter(|(c, _)| c.job == job) {
            s.push_str(&format!(
                "      - targets: ['{addr}']\n        labels: {{case: {}}}\n",
                c.name
            ));
        }
    }
    s.push_str(&format!(
        "remote_write:\n  - url: http://127.0.0.1:{receiver_port}/api/v1/write\n    \
         queue_config: {{batch_send_deadline: {deadline}, max_backoff: 1s}}\n    \
         metadata_config: {{send_interval: 2s}}\n"
    ));
    s
}

/// The agent's configuration (Alloy syntax), the same jobs as [`prometheus_config`].
pub fn agent_config(
    cases: &[Case],
    addresses: &[String],
    receiver_port: u16,
    deadline: &str,
) -> String {
    let mut s = String::new();
    for job in Job::ALL {
        let targets: Vec<String> = cases
            .iter()
            .zip(addresses)
            .filter(|(c, _)| c.job == job)
            .map(|(c, addr)| {
                format!(
                    "{{\"__address__\" = \"{addr}\", \"case\" = \"{}\"}}",
                    c.name
                )
            })
            .collect();
        s.push_str(&format!(
            "prometheus.scrape \"{name}\" {{\n  targets = [\n    {}\n  ]\n  forward_to = [prometheus.remote_write.out.receiver]\n  \
             job_name = \"{name}\"\n  scrape_interval = \"1s\"\n  scrape_timeout = \"1s\"\n{}}}\n",
            targets.join(",\n    "),
            job.options().1,
            name = job.name(),
        ));
    }
    s.push_str(&format!(
        "prometheus.remote_write \"out\" {{\n  endpoint {{\n    url = \"http://127.0.0.1:{receiver_port}/api/v1/write\"\n    \
         queue_config {{\n      batch_send_deadline = \"{deadline}\"\n      max_backoff = \"1s\"\n    }}\n    \
         metadata_config {{ send_interval = \"2s\" }}\n  }}\n}}\n"
    ));
    s
}

/// A sample of one case in the comparison: its labels, which scrape it came from (by the
/// `up` sample at the same timestamp) or its own timestamp, and its value (as bits; 0 for
/// `scrape_duration_seconds`, which differs by nature).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Compared {
    pub labels: String,
    pub at: At,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum At {
    Scrape(usize),
    Timestamp(i64),
}

/// The samples of `case` among `sent`, from its first `SCRAPES + 1` scrapes; `None` until
/// that many scrapes arrived.
pub fn case_samples(sent: &[Sent], case: &str) -> Option<Vec<Compared>> {
    let of_case: Vec<&Sent> = sent
        .iter()
        .filter(|(l, _, _)| l.iter().any(|(k, v)| k == "case" && v == case))
        .collect();
    let name = |l: &[(String, String)]| {
        l.iter()
            .find(|(k, _)| k == "__name__")
            .map_or(String::new(), |(_, v)| v.clone())
    };
    let scrapes: BTreeSet<i64> = of_case
        .iter()
        .filter(|(l, _, _)| name(l) == "up")
        .map(|(_, ts, _)| *ts)
        .collect();
    if (scrapes.len() as u64) < SCRAPES + 1 {
        return None;
    }
    let index: BTreeMap<i64, usize> = scrapes.into_iter().zip(0..).collect();
    let mut out: Vec<Compared> = of_case
        .into_iter()
        .filter_map(|(l, ts, bits)| {
            let at = match index.get(ts) {
                Some(&i) if i as u64 > SCRAPES => return None,
                Some(&i) => At::Scrape(i),
                None => At::Timestamp(*ts),
            };
            let labels = l
                .iter()
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect::<Vec<_>>()
                .join(",");
            let value = if name(l) == "scrape_duration_seconds" {
                "(duration)".to_string()
            } else {
                format!("{} ({:#018x})", f64::from_bits(*bits), bits)
            };
            Some(Compared { labels, at, value })
        })
        .collect();
    out.sort();
    Some(out)
}

/// Lines describing how `theirs` (Prometheus) and `ours` differ.
pub fn diff(theirs: &[Compared], ours: &[Compared]) -> Vec<String> {
    fn count(v: &[Compared]) -> BTreeMap<&Compared, i32> {
        let mut m: BTreeMap<&Compared, i32> = BTreeMap::new();
        for c in v {
            *m.entry(c).or_default() += 1;
        }
        m
    }
    let (t, o) = (count(theirs), count(ours));
    let keys: BTreeSet<&&Compared> = t.keys().chain(o.keys()).collect();
    let mut lines = Vec::new();
    for k in keys {
        let (a, b) = (
            t.get(*k).copied().unwrap_or(0),
            o.get(*k).copied().unwrap_or(0),
        );
        if a != b {
            lines.push(format!(
                "    prometheus x{a} / agent x{b}: {{{}}} {:?} {}",
                k.labels, k.at, k.value
            ));
        }
    }
    lines
}

/// The value of `up` at each compared scrape, for the summary.
pub fn ups(samples: &[Compared]) -> String {
    samples
        .iter()
        .filter(|c| c.labels.starts_with("__name__=\"up\""))
        .map(|c| if c.value.starts_with('1') { '1' } else { '0' })
        .collect()
}
