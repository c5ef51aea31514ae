//! End to end over TLS and basic auth with real components, as a user of a hosted receiver
//! would run it: a throwaway CA (rcgen), `prometheus-node-exporter` serving `/metrics` only
//! over HTTPS (`--web.config.file` with `tls_server_config`), and a Prometheus remote-write
//! receiver that requires TLS and basic auth (`basic_auth_users`, bcrypt). One `agent`
//! process scrapes node_exporter over HTTPS (gzip, as node_exporter answers), keeps a few
//! metrics with `prometheus.relabel`, and remote-writes to three endpoints of the receiver:
//!
//! - `good` (right CA, right password from a `password_file`): the data arrives;
//! - `wrong_password`: the receiver answers 401; the samples are counted in
//!   `prometheus_remote_storage_samples_failed_total` and never retried;
//! - `other_ca` (trusts another CA): refused with a log line naming the endpoint and the
//!   certificate problem, retried with backoff.
//!
//! A second node_exporter with a certificate from the other CA is a scrape target too: its
//! `up` is 0 in Prometheus and the agent logs why. No password appears in the agent's log or
//! `/metrics`. Loopback only; every wait is bounded; every process is killed at the end.

mod common;
mod ports;
mod scrape_support;

use std::path::Path;
use std::time::Duration;

use agent::http_client::{BasicAuth, ClientSettings, HttpClient, Secret, TlsSettings};
use bytes::Bytes;
use common::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use scrape_support::*;

const PASSWORD: &str = "s3cret-Pa55";
const WRONG_PASSWORD: &str = "not-the-Pa55";

/// A CA and one server certificate it signed for 127.0.0.1 and localhost, as PEM.
struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn pki(name: &str) -> Pki {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, format!("{name} test CA"));
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let mut server = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    server
        .distinguished_name
        .push(DnType::CommonName, format!("{name} server"));
    let key = KeyPair::generate().unwrap();
    let cert = server.signed_by(&key, &ca_cert, &ca_key).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// Writes `pki`'s files under `dir` with `prefix`; returns a web config for Prometheus and
/// node_exporter (`--web.config.file`) serving TLS with them, plus `users` for basic auth.
fn web_config(dir: &Path, prefix: &str, pki: &Pki, users: &[(&str, &str)]) -> std::path::PathBuf {
    let cert = write_file(dir, &format!("{prefix}.crt"), &pki.cert_pem);
    let key = write_file(dir, &format!("{prefix}.key"), &pki.key_pem);
    let mut yml = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
        cert.display(),
        key.display()
    );
    if !users.is_empty() {
        yml.push_str("basic_auth_users:\n");
        for (user, password) in users {
            // Cost 4: the lowest bcrypt allows; the test does not need a slow hash.
            let hash = bcrypt::hash(password, 4).unwrap();
            yml.push_str(&format!("  {user}: {hash}\n"));
        }
    }
    write_file(dir, &format!("{prefix}-web.yml"), &yml)
}

/// The receiver's query API over TLS with basic auth, through the agent's own client.
struct Api {
    rt: tokio::runtime::Runtime,
    client: HttpClient,
    port: u16,
}

impl Api {
    fn new(ca_file: &Path, port: u16) -> Api {
        let settings = ClientSettings {
            tls: TlsSettings {
                ca_file: Some(ca_file.display().to_string()),
                ..TlsSettings::default()
            },
            basic_auth: Some(BasicAuth {
                username: "agent".into(),
                password: Some(Secret::new(PASSWORD.to_string())),
                password_file: None,
            }),
            ..ClientSettings::default()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = HttpClient::new(&settings, "e2e-tls-test").unwrap();
        Api { rt, client, port }
    }

    /// `data.result` of an instant query; empty on any error.
    fn query(&self, promql: &str) -> Vec<serde_json::Value> {
        let url = format!(
            "https://127.0.0.1:{}/api/v1/query?query={}",
            self.port,
            percent_encode(promql)
        );
        let req = hyper::Request::get(url).body(Bytes::new()).unwrap();
        let Ok(resp) = self
            .rt
            .block_on(self.client.send(req, Duration::from_secs(10), 16 << 20))
        else {
            return Vec::new();
        };
        let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    fn status_of(&self, path: &str, settings: &ClientSettings) -> Option<u16> {
        let client = HttpClient::new(settings, "e2e-tls-test").ok()?;
        let req = hyper::Request::get(format!("https://127.0.0.1:{}{path}", self.port))
            .body(Bytes::new())
            .unwrap();
        let resp = self
            .rt
            .block_on(client.send(req, Duration::from_secs(10), 1 << 20))
            .ok()?;
        Some(resp.status.as_u16())
    }
}

#[test]
fn scrape_and_remote_write_over_tls_with_basic_auth() {
    let Some(prometheus) = installed(PROMETHEUS, "prometheus") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "prometheus is required in CI"
        );
        eprintln!("skipping: prometheus is not installed");
        return;
    };
    let Some(node_exporter) = installed(NODE_EXPORTER, "prometheus-node-exporter") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "node_exporter is required in CI"
        );
        eprintln!("skipping: prometheus-node-exporter is not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ours, theirs) = (pki("ours"), pki("other"));
    let ca_file = write_file(d, "ca.pem", &ours.ca_pem);
    let other_ca_file = write_file(d, "other-ca.pem", &theirs.ca_pem);
    let password_file = write_file(d, "password", &format!("{PASSWORD}\n"));
    let [receiver_port, exporter_port, rogue_port, agent_port]: [u16; 4] =
        free_ports(4).try_into().unwrap();

    // The receiver: TLS and basic auth on every endpoint, remote write included.
    let receiver_web = web_config(d, "receiver", &ours, &[("agent", PASSWORD)]);
    std::fs::write(d.join("receiver.yml"), "global:\n  scrape_interval: 1m\n").unwrap();
    let mut receiver = Process::spawn(
        "prometheus (TLS receiver)",
        &prometheus,
        &[
            format!("--config.file={}", d.join("receiver.yml").display()),
            format!("--storage.tsdb.path={}", d.join("data").display()),
            format!("--web.listen-address=127.0.0.1:{receiver_port}"),
            format!("--web.config.file={}", receiver_web.display()),
            "--web.enable-remote-write-receiver".into(),
        ],
        d.join("receiver.log"),
    );
    let exporter_web = web_config(d, "exporter", &ours, &[]);
    let rogue_web = web_config(d, "rogue", &theirs, &[]);
    let exporter = |name: &str, port: u16, web: &Path| {
        Process::spawn(
            name,
            &node_exporter,
            &[
                format!("--web.listen-address=127.0.0.1:{port}"),
                format!("--web.config.file={}", web.display()),
                "--collector.disable-defaults".into(),
                "--collector.cpu".into(),
                "--collector.loadavg".into(),
                "--collector.meminfo".into(),
            ],
            d.join(format!("{name}.log")),
        )
    };
    let _exporter = exporter("node_exporter (TLS)", exporter_port, &exporter_web);
    let _rogue = exporter("node_exporter (other CA)", rogue_port, &rogue_web);

    let api = Api::new(&ca_file, receiver_port);
    let ready = wait_for("the TLS receiver to answer", READY_TIMEOUT, || {
        receiver.assert_running();
        api.status_of("/-/ready", &api_settings(&ca_file, Some(PASSWORD))) == Some(200)
    });
    eprintln!("receiver ready after {ready:?}");
    // The receiver really requires both: no password -> 401; a wrong CA -> no answer.
    assert_eq!(
        api.status_of("/-/ready", &api_settings(&ca_file, None)),
        Some(401)
    );
    assert_eq!(
        api.status_of("/-/ready", &api_settings(&other_ca_file, Some(PASSWORD))),
        None
    );

    let url = format!("https://127.0.0.1:{receiver_port}/api/v1/write");
    let config = format!(
        r#"prometheus.scrape "node" {{
  targets = [
    {{"__address__" = "127.0.0.1:{exporter_port}"}},
    {{"__address__" = "127.0.0.1:{rogue_port}", "ca" = "other"}},
  ]
  scheme          = "https"
  job_name        = "node"
  scrape_interval = "1s"
  scrape_timeout  = "1s"
  tls_config {{ ca_file = "{ca}" }}
  forward_to = [prometheus.relabel.keep.receiver]
}}

prometheus.relabel "keep" {{
  rule {{
    source_labels = ["__name__"]
    regex         = "up|node_load1|scrape_samples_scraped"
    action        = "keep"
  }}
  rule {{
    target_label = "via"
    replacement  = format("%s-%s", "tls", sys.env("E2E_TLS_SUFFIX"))
  }}
  forward_to = [
    prometheus.remote_write.good.receiver,
    prometheus.remote_write.wrong_password.receiver,
    prometheus.remote_write.other_ca.receiver,
  ]
}}

prometheus.remote_write "good" {{
  endpoint {{
    name = "good"
    url  = "{url}"
    basic_auth {{
      username      = "agent"
      password_file = "{password_file}"
    }}
    tls_config {{ ca_file = "{ca}" }}
    queue_config {{ batch_send_deadline = "500ms" }}
  }}
}}

prometheus.remote_write "wrong_password" {{
  endpoint {{
    name = "wrong_password"
    url  = "{url}"
    basic_auth {{
      username = "agent"
      password = "{WRONG_PASSWORD}"
    }}
    tls_config {{ ca_file = "{ca}" }}
    queue_config {{ batch_send_deadline = "500ms" }}
  }}
}}

prometheus.remote_write "other_ca" {{
  endpoint {{
    name = "other_ca"
    url  = "{url}"
    basic_auth {{
      username = "agent"
      password = "{PASSWORD}"
    }}
    tls_config {{ ca_file = "{other_ca}" }}
    queue_config {{ batch_send_deadline = "500ms" }}
  }}
}}
"#,
        ca = ca_file.display(),
        other_ca = other_ca_file.display(),
        password_file = password_file.display(),
    );
    let config_file = write_file(d, "agent.alloy", &config);
    std::env::set_var("E2E_TLS_SUFFIX", "ok");
    let mut agent = Agent::start(
        "tls-agent",
        agent_port,
        &[config_file.display().to_string()],
    );
    agent.wait_healthy();

    // Data arrives through TLS on both legs, relabeled.
    let arrived = wait_for(
        "node_load1 over TLS in the receiver",
        Duration::from_secs(60),
        || {
            let found = api.query(&format!(
                "node_load1{{instance=\"127.0.0.1:{exporter_port}\",job=\"node\",via=\"tls-ok\"}}"
            ));
            !found.is_empty()
        },
    );
    eprintln!("first samples arrived after {arrived:?}");
    // The rogue target's failed scrape (a TLS handshake that the other CA's server refuses)
    // can end after the good target's first batch was sent: wait for both `up` samples.
    wait_for(
        "up of both targets in the receiver",
        Duration::from_secs(30),
        || api.query("up{job=\"node\"}").len() >= 2,
    );
    let up = api.query("up{job=\"node\"}");
    let up_of = |port: u16| {
        up.iter()
            .find(|s| label(s, "instance") == format!("127.0.0.1:{port}"))
            .map(|s| s["value"][1].as_str().unwrap_or("").to_string())
    };
    assert_eq!(up_of(exporter_port).as_deref(), Some("1"), "{up:?}");
    assert_eq!(
        up_of(rogue_port).as_deref(),
        Some("0"),
        "a target with a certificate of another CA is down: {up:?}"
    );
    assert!(
        api.query("node_cpu_seconds_total").is_empty(),
        "prometheus.relabel keeps only the three metric names"
    );

    // The wrong password: refused, counted as failed, never retried.
    let metric = |name: &str, endpoint: &str| {
        let text = agent.metrics();
        sample(
            &text,
            &format!(
                "{name}{{component_id=\"prometheus.remote_write.{endpoint}\",url=\"{endpoint}\"}}"
            ),
        )
        .unwrap_or(0.0)
    };
    wait_for(
        "401s to be counted as failed",
        Duration::from_secs(30),
        || {
            metric(
                "prometheus_remote_storage_samples_failed_total",
                "wrong_password",
            ) > 0.0
        },
    );
    assert_eq!(
        metric(
            "prometheus_remote_storage_samples_retried_total",
            "wrong_password"
        ),
        0.0,
        "no retries on 401"
    );
    assert_eq!(
        metric("prometheus_remote_storage_samples_total", "wrong_password"),
        0.0
    );
    assert!(metric("prometheus_remote_storage_samples_total", "good") > 0.0);

    // The other CA: refused, retried with backoff, and the log says which endpoint and why.
    wait_for(
        "a log line about the other_ca endpoint",
        Duration::from_secs(30),
        || {
            agent.log_text().lines().any(|l| {
                l.contains("other_ca")
                    && l.contains("retrying")
                    && l.to_lowercase().contains("certificate")
            })
        },
    );
    assert_eq!(
        metric("prometheus_remote_storage_samples_total", "other_ca"),
        0.0
    );
    assert!(
        metric(
            "prometheus_remote_storage_samples_retried_total",
            "other_ca"
        ) > 0.0
    );
    let log = agent.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains(&format!("127.0.0.1:{rogue_port}"))
                && l.to_lowercase().contains("certificate")),
        "the scrape of the other-CA target logs why it failed:\n{log}"
    );

    for l in log
        .lines()
        .filter(|l| l.to_lowercase().contains("certificate"))
        .take(2)
    {
        eprintln!("agent log: {l}");
    }

    // Secrets stay secret.
    let metrics = agent.metrics();
    for secret in [PASSWORD, WRONG_PASSWORD] {
        assert!(
            !log.contains(secret),
            "the agent log shows a password:\n{log}"
        );
        assert!(!metrics.contains(secret), "/metrics shows a password");
    }
    agent.signal(libc::SIGTERM);
    assert!(agent.wait_exit(Duration::from_secs(15)).success());
}

fn api_settings(ca_file: &Path, password: Option<&str>) -> ClientSettings {
    ClientSettings {
        tls: TlsSettings {
            ca_file: Some(ca_file.display().to_string()),
            ..TlsSettings::default()
        },
        basic_auth: password.map(|p| BasicAuth {
            username: "agent".into(),
            password: Some(Secret::new(p.to_string())),
            password_file: None,
        }),
        ..ClientSettings::default()
    }
}
