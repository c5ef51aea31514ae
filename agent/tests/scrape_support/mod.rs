//! Real components for the scrape end-to-end test and the scrape benchmark: Prometheus from
//! the OS package (receiver or agent mode), `prometheus-node-exporter` if installed, a fleet
//! of metrics endpoints of ours on loopback, and a small HTTP/1.0 client for Prometheus' API.
//! Every process is killed when its guard drops (also on panic, printing its log tail).
#![allow(dead_code)] // the test and the benchmark use different subsets

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

pub const PROMETHEUS: &str = "/usr/bin/prometheus";
pub const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";
/// Bound on installing an OS package.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);
/// Bound on a process answering its readiness URL.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

#[allow(unused_imports)] // not every binary that has these helpers starts a server of its own
pub use crate::ports::free_port;

/// `path` if it exists, else after `apt-get install -y <package>` (bounded); `None` if that
/// did not work.
pub fn installed(path: &str, package: &str) -> Option<PathBuf> {
    if Path::new(path).exists() {
        return Some(path.into());
    }
    eprintln!("{path} missing; trying `apt-get install -y {package}`");
    let script = format!(
        "DEBIAN_FRONTEND=noninteractive apt-get install -y {package} >/dev/null 2>&1 \
         || (apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y {package} >/dev/null 2>&1)"
    );
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .spawn()
        .ok()?;
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().ok()? {
            return (status.success() && Path::new(path).exists()).then(|| path.into());
        }
        if start.elapsed() > INSTALL_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A child process killed and reaped on drop; on panic the end of its log is printed.
pub struct Process {
    pub name: String,
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Process {
    pub fn spawn(name: &str, bin: &Path, args: &[String], log: PathBuf) -> Process {
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({}): {e}", bin.display()));
        Process {
            name: name.to_string(),
            child: Some(child),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics (with the log) if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            panic!("{} exited ({status}); log:\n{}", self.name, self.log_text());
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            let text = self.log_text();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            eprintln!("----- last log lines of {} -----", self.name);
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// Prometheus with the remote-write receiver on `127.0.0.1:port`, storage in `dir`.
pub fn start_receiver(bin: &Path, dir: &Path, port: u16) -> Process {
    start_receiver_with(bin, dir, port, &[])
}

/// [`start_receiver`] with extra flags (e.g. `--web.config.file` for TLS and basic auth).
pub fn start_receiver_with(bin: &Path, dir: &Path, port: u16, extra: &[String]) -> Process {
    let config = dir.join("receiver.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1m\n").unwrap();
    Process::spawn(
        "prometheus (receiver)",
        bin,
        &[
            format!("--config.file={}", config.display()),
            format!(
                "--storage.tsdb.path={}",
                dir.join("receiver-data").display()
            ),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--web.enable-remote-write-receiver".into(),
            "--log.level=info".into(),
        ]
        .into_iter()
        .chain(extra.iter().cloned())
        .collect::<Vec<String>>(),
        dir.join("receiver.log"),
    )
}

/// Waits until `GET path` answers 200 (bounded by [`READY_TIMEOUT`]).
pub fn wait_http_ok(process: &mut Process, port: u16, path: &str) {
    let start = Instant::now();
    loop {
        process.assert_running();
        if http_get(port, path).is_some_and(|(s, _)| s == 200) {
            return;
        }
        assert!(
            start.elapsed() < READY_TIMEOUT,
            "{} not ready on :{port}{path} after {READY_TIMEOUT:?}; log:\n{}",
            process.name,
            process.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One HTTP/1.0 GET on 127.0.0.1 (the server closes the connection, no chunking); `None` if
/// unreachable or slower than 10 s.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

pub fn percent_encode(s: &str) -> String {
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

/// A PromQL query at `/api/v1/query`; the `data.result` array (empty on any error).
pub fn query(port: u16, promql: &str) -> Vec<serde_json::Value> {
    let path = format!("/api/v1/query?query={}", percent_encode(promql));
    let Some((200, body)) = http_get(port, &path) else {
        return Vec::new();
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// Raw samples of a range selector query (`metric{...}[30s]`): per series its labels and
/// `(timestamp_ms, value)` pairs.
pub fn raw_samples(port: u16, selector: &str) -> Vec<(serde_json::Value, Vec<(i64, String)>)> {
    query(port, selector)
        .into_iter()
        .map(|series| {
            let values = series["values"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|v| {
                    let ts = (v[0].as_f64().unwrap_or(0.0) * 1000.0).round() as i64;
                    (ts, v[1].as_str().unwrap_or("").to_string())
                })
                .collect();
            (series["metric"].clone(), values)
        })
        .collect()
}

/// A metric label of a query result as a string (`""` when absent).
pub fn label(series: &serde_json::Value, name: &str) -> String {
    series["metric"][name].as_str().unwrap_or("").to_string()
}

/// `n` metrics endpoints of ours, one listener (and so one `__address__`) each, on
/// 127.0.0.1, served by hyper on a private tokio runtime. Each answers `GET /metrics` with
/// `render(target_index, scrape_number)`. Dropping the fleet stops every listener.
pub struct TargetFleet {
    pub addresses: Vec<String>,
    /// Scrapes answered, all targets together.
    pub scrapes: Arc<AtomicU64>,
    rt: Option<tokio::runtime::Runtime>,
}

pub type Render = Arc<dyn Fn(usize, u64) -> String + Send + Sync>;

/// How the targets answer: the `Content-Type` of the rendered body, and whether they gzip it
/// for a scraper that accepts gzip.
#[derive(Debug, Clone, Copy)]
pub struct Serving {
    pub content_type: &'static str,
    pub gzip: bool,
}

impl Serving {
    pub const TEXT: Serving = Serving {
        content_type: "text/plain; version=0.0.4; charset=utf-8",
        gzip: false,
    };
    pub const OPENMETRICS: Serving = Serving {
        content_type: "application/openmetrics-text; version=1.0.0; charset=utf-8",
        gzip: false,
    };
}

impl TargetFleet {
    pub fn start(n: usize, worker_threads: usize, render: Render) -> TargetFleet {
        TargetFleet::start_with_tls(n, worker_threads, render, None)
    }

    /// Like [`TargetFleet::start`]; with `tls`, every target serves HTTPS (HTTP/1.1) with it.
    pub fn start_with_tls(
        n: usize,
        worker_threads: usize,
        render: Render,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> TargetFleet {
        TargetFleet::start_serving(n, worker_threads, render, tls, Serving::TEXT)
    }

    /// Like [`TargetFleet::start_with_tls`], answering as `serving` says.
    pub fn start_serving(
        n: usize,
        worker_threads: usize,
        render: Render,
        tls: Option<Arc<rustls::ServerConfig>>,
        serving: Serving,
    ) -> TargetFleet {
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(worker_threads)
            .enable_all()
            .build()
            .expect("tokio runtime for the targets");
        let scrapes = Arc::new(AtomicU64::new(0));
        let mut addresses = Vec::with_capacity(n);
        for index in 0..n {
            let listener = rt
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .expect("bind a target port");
            addresses.push(listener.local_addr().unwrap().to_string());
            let render = render.clone();
            let scrapes = scrapes.clone();
            let count = Arc::new(AtomicU64::new(0));
            let acceptor = acceptor.clone();
            rt.spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let (render, scrapes, count) = (render.clone(), scrapes.clone(), count.clone());
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req: Request<_>| {
                            let reply = if req.uri().path() == "/metrics" {
                                let k = count.fetch_add(1, Ordering::Relaxed);
                                scrapes.fetch_add(1, Ordering::Relaxed);
                                let gzip = serving.gzip
                                    && req
                                        .headers()
                                        .get("accept-encoding")
                                        .and_then(|v| v.to_str().ok())
                                        .is_some_and(|v| v.contains("gzip"));
                                response(200, render(index, k), serving.content_type, gzip)
                            } else {
                                response(404, String::new(), serving.content_type, false)
                            };
                            async move { Ok::<_, std::convert::Infallible>(reply) }
                        });
                        let http = hyper::server::conn::http1::Builder::new();
                        match acceptor {
                            Some(a) => {
                                if let Ok(tls) = a.accept(stream).await {
                                    let _ = http.serve_connection(TokioIo::new(tls), service).await;
                                }
                            }
                            None => {
                                let _ = http.serve_connection(TokioIo::new(stream), service).await;
                            }
                        }
                    });
                }
            });
        }
        TargetFleet {
            addresses,
            scrapes,
            rt: Some(rt),
        }
    }
}

impl Drop for TargetFleet {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

fn response(status: u16, body: String, content_type: &str, gzip: bool) -> Response<Full<Bytes>> {
    let b = Response::builder()
        .status(status)
        .header("Content-Type", content_type);
    if !gzip {
        return b.body(Full::new(Bytes::from(body))).unwrap();
    }
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(body.as_bytes()).unwrap();
    b.header("Content-Encoding", "gzip")
        .body(Full::new(Bytes::from(e.finish().unwrap())))
        .unwrap()
}

/// CPU seconds (user + system) and resident memory of a process, from /proc.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
}

pub fn proc_sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name: utime is field 14, stime 15, rss 24.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    let rss_pages: u64 = f.get(21)?.parse().ok()?;
    Some(ProcSample {
        cpu_seconds: (utime + stime) / ticks,
        rss_bytes: rss_pages * page,
    })
}

/// The value of the first sample line `name{...} value` whose name-and-labels part starts
/// with `prefix`, summed over every matching line.
pub fn metric_sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.starts_with(prefix))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}
