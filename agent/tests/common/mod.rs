//! Helpers for the end-to-end tests: start real `agent` processes on 127.0.0.1, talk to them
//! over plain HTTP/1.1 like a user would, and kill every child when a test ends or fails.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub use agent::http::Peer;

/// Protocol timings for tests (documented advanced flags): probe every 300 ms, gossip every
/// 100 ms, full sync every 5 s, rejoin every 2 s. The defaults would make the tests slow.
pub const FAST: &[&str] = &[
    "--cluster.probe-interval=300ms",
    "--cluster.probe-timeout=150ms",
    "--cluster.gossip-interval=100ms",
    "--cluster.push-pull-interval=5s",
    "--cluster.rejoin-interval=2s",
];

pub use crate::ports::free_ports;

/// A running agent process. Dropping it kills the process (SIGKILL) if it still runs, and
/// prints its log when the test is failing.
pub struct Agent {
    pub name: String,
    pub port: u16,
    pub child: Option<Child>,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Agent {
    /// Start `agent run` with the node name, `extra` flags and (unless `extra` has them)
    /// `--server.http.listen-addr=127.0.0.1:<port>` and a `--storage.path` of its own.
    pub fn start(name: &str, port: u16, extra: &[String]) -> Agent {
        Agent::start_with_env(name, port, extra, &[])
    }

    /// [`Agent::start`] with extra environment variables.
    pub fn start_with_env(name: &str, port: u16, extra: &[String], env: &[(&str, &str)]) -> Agent {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let mut args = vec!["run".to_string(), format!("--cluster.node-name={name}")];
        if !extra
            .iter()
            .any(|a| a.starts_with("--server.http.listen-addr"))
        {
            args.push(format!("--server.http.listen-addr=127.0.0.1:{port}"));
        }
        if !extra.iter().any(|a| a.starts_with("--storage.path")) {
            args.push(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ));
        }
        args.extend(extra.iter().cloned());
        let child = Command::new(env!("CARGO_BIN_EXE_agent"))
            .args(&args)
            .env("AGENT_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start the agent binary");
        Agent {
            name: name.to_string(),
            port,
            child: Some(child),
            log,
            _dir: dir,
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "kill({}, {sig})", self.pid());
    }

    /// Wait for the process to exit (at most `limit`); its exit status.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("running");
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            if start.elapsed() > limit {
                panic!(
                    "{} did not exit within {limit:?}; log:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until the HTTP server answers `/-/healthy`.
    pub fn wait_healthy(&mut self) {
        let port = self.port;
        let name = self.name.clone();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Some(c) = self.child.as_mut() {
                if let Some(status) = c.try_wait().unwrap() {
                    panic!("{name} exited early ({status}); log:\n{}", self.log_text());
                }
            }
            if get(port, "/-/healthy").is_some_and(|r| r.status == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{name} never answered /-/healthy; log:\n{}",
            self.log_text()
        );
    }

    pub fn peers(&self) -> Vec<Peer> {
        peers(self.port).unwrap_or_default()
    }

    pub fn metrics(&self) -> String {
        get(self.port, "/metrics")
            .map(|r| r.body)
            .unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            let text = self.log_text();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            eprintln!(
                "----- last log lines of {} (port {}) -----",
                self.name, self.port
            );
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

/// One HTTP/1.1 request over a fresh connection; `None` when the server is not reachable.
pub fn request(port: u16, method: &str, path: &str, extra_headers: &str) -> Option<Answer> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{extra_headers}Content-Length: 0\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some(Answer {
        status,
        headers: head.to_string(),
        body: body.to_string(),
    })
}

pub fn get(port: u16, path: &str) -> Option<Answer> {
    request(port, "GET", path, "")
}

/// `GET /api/v0/web/peers`, parsed.
pub fn peers(port: u16) -> Option<Vec<Peer>> {
    let a = get(port, "/api/v0/web/peers")?;
    (a.status == 200).then(|| serde_json::from_str(&a.body).expect("peers JSON"))?
}

/// Names of the listed peers in `state`.
pub fn names_in_state(peers: &[Peer], state: &str) -> Vec<String> {
    peers
        .iter()
        .filter(|p| p.state == state)
        .map(|p| p.name.clone())
        .collect()
}

/// The value of the sample whose name-and-labels part is exactly `series` (for example
/// `cluster_node_peers{state="participant"}`).
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}

/// Poll `pred` every 50 ms until it holds; panic after `limit` naming `what`.
pub fn wait_for(what: &str, limit: Duration, mut pred: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < limit {
        if pred() {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {limit:?} waiting for: {what}");
}

pub fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write file");
    p
}
