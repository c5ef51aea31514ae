//! A Pyroscope ingestion endpoint of ours for the tests (no Pyroscope server runs here). It
//! speaks the push API as Pyroscope serves it (Connect unary, binary protobuf):
//! `POST /push.v1.PusherService/Push` answered `200` with `Content-Type: application/proto`
//! and an empty `PushResponse`, or with a Connect error (`400`, JSON `{"code","message"}`).
//!
//! What it checks on every request (a failed check is answered 400 and recorded in
//! `errors`): the method and path; `Content-Type: application/proto` and
//! `Connect-Protocol-Version: 1`; that the body is a `PushRequest` (decoded field by field
//! with its own reader); per series: label names valid (`[a-zA-Z_][a-zA-Z0-9_.]*`), none
//! repeated, none starting with `__` but `__name__` and `__delta__`; `__name__`,
//! `service_name`, `job` and `instance` present; `__delta__="false"` on the cumulative types
//! (memory, block, mutex: the agent sends differences) and only there; at least one
//! sample; and that each sample is a
//! gzip-compressed pprof `Profile` whose string table holds the sample types of its
//! `__name__` (`cpu`/`nanoseconds` for process_cpu, `alloc_space` for memory, `goroutine` for
//! goroutine, `contentions`/`delay` for block and mutex). Each accepted profile is recorded
//! with its labels, the `X-Agent` header of the request and the time it arrived.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

#[derive(Debug, Clone)]
pub struct Received {
    pub agent: String,
    pub labels: BTreeMap<String, String>,
    pub at: Instant,
}

#[derive(Default)]
pub struct Log {
    pub profiles: Vec<Received>,
    pub errors: Vec<String>,
}

pub struct Receiver {
    pub port: u16,
    pub log: Arc<Mutex<Log>>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Receiver {
    pub fn start() -> Receiver {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let log: Arc<Mutex<Log>> = Arc::default();
        let shared = log.clone();
        rt.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let log = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let log = log.clone();
                        async move { Ok::<_, std::convert::Infallible>(handle(req, &log).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
                });
            }
        });
        Receiver {
            port,
            log,
            rt: Some(rt),
        }
    }
}

async fn handle(req: Request<hyper::body::Incoming>, log: &Mutex<Log>) -> Response<Full<Bytes>> {
    let at = Instant::now();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let agent = header("x-agent");
    let checks = (|| {
        if req.method() != hyper::Method::POST || req.uri().path() != "/push.v1.PusherService/Push"
        {
            return Err(format!("unexpected {} {}", req.method(), req.uri().path()));
        }
        if header("content-type") != "application/proto" {
            return Err(format!("Content-Type {:?}", header("content-type")));
        }
        if header("connect-protocol-version") != "1" {
            return Err("no Connect-Protocol-Version: 1".into());
        }
        Ok(())
    })();
    let body = Limited::new(req.into_body(), 64 << 20).collect().await;
    let result = checks.and_then(|()| {
        let body = body.map_err(|e| format!("body: {e}"))?.to_bytes();
        check_request(&body)
    });
    let mut log = log.lock().unwrap();
    match result {
        Ok(series) => {
            for labels in series {
                log.profiles.push(Received {
                    agent: agent.clone(),
                    labels,
                    at,
                });
            }
            Response::builder()
                .header("content-type", "application/proto")
                .body(Full::new(Bytes::new()))
                .unwrap()
        }
        Err(e) => {
            log.errors.push(e.clone());
            let body = serde_json::json!({"code": "invalid_argument", "message": e}).to_string();
            Response::builder()
                .status(400)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body)))
                .unwrap()
        }
    }
}

/// Protobuf fields of a message: (number, wire type, varint value or bytes).
fn fields(mut buf: &[u8]) -> Result<Vec<(u64, u64, u64, &[u8])>, String> {
    fn varint(buf: &mut &[u8]) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = buf.split_first().ok_or("truncated varint")?;
            *buf = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("long varint".into())
    }
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        match key & 7 {
            0 => out.push((key >> 3, 0, varint(&mut buf)?, &[][..])),
            2 => {
                let n = varint(&mut buf)? as usize;
                if buf.len() < n {
                    return Err("truncated field".into());
                }
                let (head, tail) = buf.split_at(n);
                buf = tail;
                out.push((key >> 3, 2, 0, head));
            }
            1 => buf = buf.get(8..).ok_or("truncated fixed64")?,
            5 => buf = buf.get(4..).ok_or("truncated fixed32")?,
            w => return Err(format!("wire type {w}")),
        }
    }
    Ok(out)
}

fn check_request(body: &[u8]) -> Result<Vec<BTreeMap<String, String>>, String> {
    let mut out = Vec::new();
    for (n, _, _, series) in fields(body)? {
        if n != 1 {
            continue;
        }
        let mut labels = BTreeMap::new();
        let mut samples = Vec::new();
        for (n, _, _, b) in fields(series)? {
            match n {
                1 => {
                    let (mut name, mut value) = (String::new(), String::new());
                    for (n, _, _, b) in fields(b)? {
                        let s = String::from_utf8(b.to_vec()).map_err(|_| "label not UTF-8")?;
                        match n {
                            1 => name = s,
                            2 => value = s,
                            _ => {}
                        }
                    }
                    let valid = name
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
                    if !valid {
                        return Err(format!("invalid label name {name:?}"));
                    }
                    if name.starts_with("__") && name != "__name__" && name != "__delta__" {
                        return Err(format!("reserved label {name:?} sent"));
                    }
                    if labels.insert(name.clone(), value).is_some() {
                        return Err(format!("label {name:?} repeated"));
                    }
                }
                2 => {
                    for (n, _, _, raw) in fields(b)? {
                        if n == 1 {
                            samples.push(raw.to_vec());
                        }
                    }
                }
                _ => {}
            }
        }
        for required in ["__name__", "service_name", "job", "instance"] {
            if labels.get(required).is_none_or(|v| v.is_empty()) {
                return Err(format!("series without {required}: {labels:?}"));
            }
        }
        let cumulative = matches!(labels["__name__"].as_str(), "memory" | "block" | "mutex");
        if cumulative != (labels.get("__delta__").map(String::as_str) == Some("false")) {
            return Err(format!("__delta__ label wrong for {labels:?}"));
        }
        if samples.is_empty() {
            return Err("series without a sample".into());
        }
        for raw in &samples {
            check_pprof(raw, &labels["__name__"])?;
        }
        out.push(labels);
    }
    if out.is_empty() {
        return Err("no series".into());
    }
    Ok(out)
}

/// The profile is gzip + a pprof `Profile` (string table: field 6) naming the sample types
/// of its profile type.
fn check_pprof(raw: &[u8], name: &str) -> Result<(), String> {
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(raw)
        .read_to_end(&mut plain)
        .map_err(|e| format!("{name}: not gzip: {e}"))?;
    let strings: Vec<String> = fields(&plain)?
        .into_iter()
        .filter(|f| f.0 == 6)
        .map(|f| String::from_utf8_lossy(f.3).to_string())
        .collect();
    let has_sample_type = fields(&plain)?.iter().any(|f| f.0 == 1);
    let want: &[&str] = match name {
        "process_cpu" => &["cpu", "nanoseconds"],
        "memory" => &["alloc_space", "inuse_space"],
        "goroutine" => &["goroutine"],
        "block" | "mutex" => &["contentions", "delay"],
        other => return Err(format!("unexpected profile type {other}")),
    };
    for w in want {
        if !strings.iter().any(|s| s == w) {
            return Err(format!("{name} profile without sample type {w:?}"));
        }
    }
    if !has_sample_type {
        return Err(format!("{name} profile without sample_type"));
    }
    Ok(())
}
