//! Cluster TLS end to end, real processes on loopback: three agents with
//! `--cluster.enable-tls` and certificates of one CA (rcgen) form a cluster; a fourth with a
//! certificate of another CA, and a fifth speaking h2c, are refused and counted while the
//! cluster is unaffected; a TLS client without a certificate gets `/metrics` but cannot use
//! the transport (a forged `left` about a member has no effect); replacing a node's
//! certificate files is picked up without a restart (reload counter, new expiry).

mod common;
mod ports;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        let cert = p.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A node certificate (server and client use) for 127.0.0.1 expiring on 1 January of
    /// `year`; writes `NAME.crt` and `NAME.key` into `dir`.
    fn node(&self, dir: &Path, name: &str, year: i32) {
        let key = KeyPair::generate().unwrap();
        let mut p =
            CertificateParams::new(vec!["127.0.0.1".to_string(), name.to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        p.not_before = rcgen::date_time_ymd(2025, 1, 1);
        p.not_after = rcgen::date_time_ymd(year, 1, 1);
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        // Written then renamed, as a certificate manager does: readers never see half a file.
        for (ext, text) in [("crt", cert.pem()), ("key", key.serialize_pem())] {
            let tmp = dir.join(format!("{name}.{ext}.tmp"));
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, dir.join(format!("{name}.{ext}"))).unwrap();
        }
    }

    fn write(&self, path: &Path) {
        std::fs::write(path, self.cert.pem()).unwrap();
    }
}

/// 1 January of `year`, Unix seconds.
fn jan_1(year: i32) -> f64 {
    rcgen::date_time_ymd(year, 1, 1).unix_timestamp() as f64
}

/// An HTTP/1.1 request over TLS to 127.0.0.1:`port`, trusting `ca`, with no client
/// certificate. Returns the status and body.
fn https(port: u16, ca: &Path, method: &str, path: &str, body: &[u8]) -> Option<(u16, String)> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).ok()?;
    let tcp = TcpStream::connect(("127.0.0.1", port)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).ok()?;
    tls.write_all(body).ok()?;
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

fn tls_flags(dir: &Path, name: &str, ca: &Path) -> Vec<String> {
    vec![
        "--cluster.enable-tls".into(),
        format!("--cluster.tls-ca-path={}", ca.display()),
        format!(
            "--cluster.tls-cert-path={}",
            dir.join(format!("{name}.crt")).display()
        ),
        format!(
            "--cluster.tls-key-path={}",
            dir.join(format!("{name}.key")).display()
        ),
    ]
}

struct Tls<'a> {
    ca: &'a Path,
}

impl Tls<'_> {
    fn peers(&self, a: &Agent) -> Vec<Peer> {
        https(a.port, self.ca, "GET", "/api/v0/web/peers", b"")
            .and_then(|(_, b)| serde_json::from_str(&b).ok())
            .unwrap_or_default()
    }

    fn metrics(&self, a: &Agent) -> String {
        https(a.port, self.ca, "GET", "/metrics", b"")
            .map(|(_, b)| b)
            .unwrap_or_default()
    }
}

fn start(name: &str, port: u16, mut flags: Vec<String>, join: Option<u16>) -> Agent {
    flags.push("--cluster.enabled".into());
    flags.extend(strings(FAST));
    if let Some(p) = join {
        flags.push(format!("--cluster.join-addresses=127.0.0.1:{p}"));
    }
    Agent::start(name, port, &flags)
}

#[test]
fn mutual_tls_keeps_outsiders_out_and_certificates_rotate_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new("cluster CA");
    let ca_path: PathBuf = d.join("ca.pem");
    ca.write(&ca_path);
    let other = Ca::new("another CA");
    let other_path = d.join("other-ca.pem");
    other.write(&other_path);
    for n in ["node-1", "node-2", "node-3"] {
        ca.node(d, n, 2040);
    }
    other.node(d, "rogue", 2040);
    let t = Tls { ca: &ca_path };

    let ports = free_ports(5);
    let mut agents: Vec<Agent> = Vec::new();
    for (i, n) in ["node-1", "node-2", "node-3"].iter().enumerate() {
        let join = (i > 0).then_some(ports[0]);
        agents.push(start(n, ports[i], tls_flags(d, n, &ca_path), join));
    }
    wait_for(
        "three TLS nodes form a cluster",
        Duration::from_secs(30),
        || {
            agents
                .iter()
                .all(|a| names_in_state(&t.peers(a), "participant").len() == 3)
        },
    );
    let log = agents[0].log_text();
    assert!(log.contains("https://127.0.0.1"), "{log}");
    // Over TLS too, acks come back in the responses to their pings.
    wait_for("acks in responses", Duration::from_secs(10), || {
        agents.iter().all(|a| {
            sample(&t.metrics(a), "cluster_transport_rx_answers_total").unwrap_or(0.0) >= 1.0
        })
    });

    // A node with a certificate from another CA (it trusts that CA only): refused by TLS.
    let rogue = start(
        "rogue",
        ports[3],
        tls_flags(d, "rogue", &other_path),
        Some(ports[0]),
    );
    // A node without TLS: its h2c is refused by the TLS listener.
    let plain = start("plain", ports[4], Vec::new(), Some(ports[0]));
    wait_for(
        "both outsiders refused and counted",
        Duration::from_secs(20),
        || {
            let m = t.metrics(&agents[0]);
            sample(&m, "cluster_tls_handshakes_failed_total").unwrap_or(0.0) >= 1.0
                && sample(&m, "cluster_tls_plaintext_mismatches_total").unwrap_or(0.0) >= 1.0
        },
    );
    wait_for(
        "the plaintext node says why",
        Duration::from_secs(20),
        || plain.log_text().contains("--cluster.enable-tls"),
    );
    assert!(agents[0].log_text().contains("plaintext (h2c) client"));
    std::thread::sleep(Duration::from_secs(3));
    for a in &agents {
        let names: Vec<String> = t.peers(a).into_iter().map(|p| p.name).collect();
        assert_eq!(names.len(), 3, "{}: {names:?}", a.name);
        assert!(!names.iter().any(|n| n == "rogue" || n == "plain"));
    }
    let plain_peers = peers(plain.port).unwrap_or_default();
    assert_eq!(
        plain_peers.len(),
        1,
        "the plaintext node stays alone: {plain_peers:?}"
    );

    // A TLS client without a certificate: /metrics yes, the transport no. A forged `left`
    // about node-2 sent that way changes nothing.
    use cluster::wire::{encode_packet, encode_update, Envelope, Kind, Update};
    let env = Envelope {
        kind: Kind::Packet,
        cluster: String::new(),
        sender_name: "mallory".into(),
        sender_addr: "127.0.0.1:1".into(),
    };
    let lie = encode_update(&Update::Left {
        name: "node-2".into(),
        incarnation: 5,
    });
    let packet = encode_packet(&env, None, &[&lie]);
    let (status, body) = https(ports[0], &ca_path, "POST", runtime::MESSAGE_PATH, &packet).unwrap();
    assert_eq!(status, 403, "{body}");
    let m = t.metrics(&agents[0]);
    assert_eq!(
        sample(&m, "cluster_transport_rx_unauthenticated_total"),
        Some(1.0)
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(names_in_state(&t.peers(&agents[0]), "participant").len(), 3);

    // Rotation: node-1 gets a new certificate (another expiry) in place.
    assert_eq!(
        sample(&m, "cluster_tls_certificate_expiry_timestamp_seconds"),
        Some(jan_1(2040))
    );
    ca.node(d, "node-1", 2041);
    wait_for(
        "the new certificate is loaded",
        Duration::from_secs(20),
        || {
            let m = t.metrics(&agents[0]);
            sample(&m, "cluster_tls_reloads_total") == Some(1.0)
                && sample(&m, "cluster_tls_certificate_expiry_timestamp_seconds")
                    == Some(jan_1(2041))
        },
    );
    // New connections use it: a fresh node still joins through node-1.
    drop(rogue);
    ca.node(d, "node-4", 2040);
    let late = start(
        "node-4",
        ports[3],
        tls_flags(d, "node-4", &ca_path),
        Some(ports[0]),
    );
    agents.push(late);
    wait_for(
        "node-4 joins after the rotation",
        Duration::from_secs(30),
        || {
            agents
                .iter()
                .all(|a| names_in_state(&t.peers(a), "participant").len() == 4)
        },
    );
}

#[test]
fn with_names_bound_to_certificates_a_valid_certificate_cannot_speak_as_another_node() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new("cluster CA");
    let ca_path = d.join("ca.pem");
    ca.write(&ca_path);
    for n in ["node-1", "node-2"] {
        ca.node(d, n, 2040);
    }
    let t = Tls { ca: &ca_path };
    let bound = |cert: &str| {
        let mut f = tls_flags(d, cert, &ca_path);
        f.push("--cluster.tls-bind-node-name".into());
        f
    };
    let ports = free_ports(3);
    let a = start("node-1", ports[0], bound("node-1"), None);
    let b = start("node-2", ports[1], bound("node-2"), Some(ports[0]));
    let agents = [a, b];
    wait_for(
        "two bound nodes form a cluster",
        Duration::from_secs(30),
        || {
            agents
                .iter()
                .all(|a| names_in_state(&t.peers(a), "participant").len() == 2)
        },
    );
    // node-2's certificate, used by a process that calls itself node-9.
    let imposter = start("node-9", ports[2], bound("node-2"), Some(ports[0]));
    wait_for(
        "the imposter's messages are refused",
        Duration::from_secs(20),
        || {
            sample(
                &t.metrics(&agents[0]),
                "cluster_transport_rx_identity_mismatches_total",
            )
            .unwrap_or(0.0)
                >= 1.0
        },
    );
    assert!(imposter.log_text().contains("does not hold its node name"));
    std::thread::sleep(Duration::from_secs(2));
    for a in &agents {
        let names: Vec<String> = t.peers(a).into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["node-1", "node-2"], "{}", a.name);
        // A response has no certificate check of the sender's name: with names bound, every
        // answer comes as a request, checked by the server.
        let m = t.metrics(a);
        assert!(sample(&m, "cluster_transport_rx_packets_total").unwrap_or(0.0) > 0.0);
        assert_eq!(sample(&m, "cluster_transport_rx_answers_total"), Some(0.0));
        assert_eq!(sample(&m, "cluster_transport_tx_answers_total"), Some(0.0));
    }
}
