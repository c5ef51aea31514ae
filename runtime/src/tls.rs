//! Cluster TLS (`--cluster.enable-tls`): HTTP/2 over TLS (rustls, ALPN h2) for every cluster
//! request, with mutual authentication against one CA.
//!
//! It owns: loading the CA, the node's certificate and key into a rustls server config (the
//! listener) and client config (the transport's connections), re-reading the files when they
//! change (checked at most every [`RELOAD_CHECK`]; a bad new file keeps the previous config and
//! is counted), and the counters of refused handshakes. The server asks every client for a
//! certificate and verifies any it gets against the CA; a client without one may read
//! `/metrics`, the page and the API, but the transport paths refuse it (see
//! [`ConnInfo`]). Works over any [`crate::Network`] stream (tokio TCP and turmoil).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// Files are checked for changes at most this often.
pub const RELOAD_CHECK: Duration = Duration::from_secs(5);
/// A TLS handshake (either side) gives up after this long: a slow or silent client cannot hold
/// a connection slot.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The cluster TLS settings (Alloy's flag names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// `--cluster.tls-ca-path`: the CA that signs every node's certificate.
    pub ca: PathBuf,
    /// `--cluster.tls-cert-path`: this node's certificate (server and client).
    pub cert: PathBuf,
    /// `--cluster.tls-key-path`.
    pub key: PathBuf,
    /// `--cluster.tls-server-name`: the name peers' certificates are verified against; by
    /// default the host of the address dialled.
    pub server_name: Option<String>,
    /// `--cluster.tls-bind-node-name`: a peer may only speak as a node name its certificate
    /// holds (a SAN DNS name or the common name).
    pub bind_node_name: bool,
}

/// What the listener knows about a connection; put on every request it serves.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnInfo {
    /// The connection is TLS (the listener runs with cluster TLS).
    pub tls: bool,
    /// The client presented a certificate the CA signed.
    pub client_cert: bool,
    /// With `--cluster.tls-bind-node-name`: the names the client's certificate holds; only
    /// these may appear as the sender of its messages.
    pub names: Option<Arc<Vec<String>>>,
}

impl ConnInfo {
    /// Whether a transport request on this connection is allowed: plaintext listeners allow
    /// all; TLS listeners only clients with a verified certificate.
    pub fn may_use_transport(&self) -> bool {
        !self.tls || self.client_cert
    }

    /// Whether the connection may send messages as node `sender`.
    pub fn may_speak_as(&self, sender: &str) -> bool {
        self.names
            .as_ref()
            .is_none_or(|n| n.iter().any(|x| x == sender))
    }
}

/// The DNS names and common name of a DER certificate.
pub fn certificate_names(cert: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, c)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return Vec::new();
    };
    let mut out: Vec<String> = c
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_string))
        .collect();
    if let Ok(Some(san)) = c.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                out.push(d.to_string());
            }
        }
    }
    out
}

/// Counters of refused connections and reloads (`cluster_tls_*` metrics).
#[derive(Debug, Default)]
pub struct TlsStats {
    /// Handshakes that failed (bad or unknown certificate, wrong CA, timeouts).
    pub handshakes_failed: AtomicU64,
    /// Clients that spoke plaintext (h2c) to the TLS listener, or TLS to a plaintext one.
    pub plaintext_mismatches: AtomicU64,
    pub reloads: AtomicU64,
    pub reload_errors: AtomicU64,
    /// The node certificate's expiry, Unix seconds (0 if unknown).
    pub cert_not_after: AtomicU64,
}

struct Loaded {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    stamp: Vec<Option<SystemTime>>,
    checked: Instant,
}

/// The loaded TLS configs of one node.
pub struct ClusterTls {
    files: TlsFiles,
    loaded: RwLock<Loaded>,
    pub stats: Arc<TlsStats>,
}

impl std::fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterTls")
            .field("files", &self.files)
            .finish()
    }
}

fn read(path: &PathBuf, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))
}

fn stamp(files: &TlsFiles) -> Vec<Option<SystemTime>> {
    [&files.ca, &files.cert, &files.key]
        .iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds both configs from the files; the error names the file and what is wrong.
fn build(files: &TlsFiles) -> Result<(Arc<ServerConfig>, Arc<ClientConfig>, u64), String> {
    let ca_pem = read(&files.ca, "--cluster.tls-ca-path")?;
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&ca_pem) {
        let c =
            c.map_err(|e| format!("--cluster.tls-ca-path {}: not PEM: {e}", files.ca.display()))?;
        roots
            .add(c)
            .map_err(|e| format!("--cluster.tls-ca-path {}: {e}", files.ca.display()))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "--cluster.tls-ca-path {} holds no certificate",
            files.ca.display()
        ));
    }
    let cert_pem = read(&files.cert, "--cluster.tls-cert-path")?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            format!(
                "--cluster.tls-cert-path {}: not PEM: {e}",
                files.cert.display()
            )
        })?;
    if chain.is_empty() {
        return Err(format!(
            "--cluster.tls-cert-path {} holds no certificate",
            files.cert.display()
        ));
    }
    let not_after = not_after_unix(&chain[0]).unwrap_or(0);
    let key_pem = read(&files.key, "--cluster.tls-key-path")?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
        format!(
            "--cluster.tls-key-path {}: no PEM private key",
            files.key.display()
        )
    })?;
    let roots = Arc::new(roots);
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| format!("client certificate verifier: {e}"))?;
    let mut server = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(|e| format!("--cluster.tls-cert-path / --cluster.tls-key-path: {e}"))?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut client = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| format!("--cluster.tls-cert-path / --cluster.tls-key-path: {e}"))?;
    client.alpn_protocols = vec![b"h2".to_vec()];
    Ok((Arc::new(server), Arc::new(client), not_after))
}

/// The `notAfter` of a DER certificate, in Unix seconds.
fn not_after_unix(cert: &CertificateDer<'_>) -> Option<u64> {
    let (_, c) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    u64::try_from(c.validity().not_after.timestamp()).ok()
}

impl ClusterTls {
    /// Loads the files; an error names the flag and the file.
    pub fn load(files: TlsFiles) -> Result<Arc<ClusterTls>, String> {
        let (server, client, not_after) = build(&files)?;
        let stats = Arc::new(TlsStats::default());
        stats.cert_not_after.store(not_after, Ordering::Relaxed);
        Ok(Arc::new(ClusterTls {
            loaded: RwLock::new(Loaded {
                server,
                client,
                stamp: stamp(&files),
                checked: Instant::now(),
            }),
            files,
            stats,
        }))
    }

    /// Re-reads the files if they changed since the last look (at most every
    /// [`RELOAD_CHECK`]). A bad new file keeps the previous configs.
    fn maybe_reload(&self) {
        {
            let l = self.loaded.read().unwrap();
            if l.checked.elapsed() < RELOAD_CHECK {
                return;
            }
        }
        let mut l = self.loaded.write().unwrap();
        if l.checked.elapsed() < RELOAD_CHECK {
            return;
        }
        l.checked = Instant::now();
        let now = stamp(&self.files);
        if now == l.stamp {
            return;
        }
        match build(&self.files) {
            Ok((server, client, not_after)) => {
                l.server = server;
                l.client = client;
                l.stamp = now;
                self.stats.reloads.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .cert_not_after
                    .store(not_after, Ordering::Relaxed);
                tracing::info!("cluster TLS certificate files changed; reloaded");
            }
            Err(e) => {
                self.stats.reload_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "cluster TLS files changed but cannot be used; keeping the previous ones");
            }
        }
    }

    /// The names this node's own certificate holds.
    pub fn own_names(&self) -> Vec<String> {
        let Ok(pem) = std::fs::read(&self.files.cert) else {
            return Vec::new();
        };
        CertificateDer::pem_slice_iter(&pem)
            .next()
            .and_then(|c| c.ok())
            .map(|c| certificate_names(&c))
            .unwrap_or_default()
    }

    /// Whether senders are bound to their certificate's names.
    pub fn binds_node_name(&self) -> bool {
        self.files.bind_node_name
    }

    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.maybe_reload();
        self.loaded.read().unwrap().server.clone()
    }

    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.maybe_reload();
        self.loaded.read().unwrap().client.clone()
    }

    /// The name a peer at `addr` ("host:port") must prove.
    pub fn server_name(&self, addr: &str) -> Result<ServerName<'static>, String> {
        let host = match &self.files.server_name {
            Some(n) => n.clone(),
            None => {
                let h = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr);
                h.trim_start_matches('[').trim_end_matches(']').to_string()
            }
        };
        ServerName::try_from(host.clone()).map_err(|_| format!("invalid TLS server name {host:?}"))
    }
}

/// Whether a TLS error means the other side does not speak TLS at all.
pub fn is_plaintext_mismatch(e: &std::io::Error) -> bool {
    let s = e.to_string();
    s.contains("InvalidContentType") || s.contains("corrupt message") || s.contains("HTTP request")
}

/// At most one warning per kind every 10 s (a flood of bad clients must not flood the log).
pub fn log_limited(last: &AtomicU64, epoch: Instant, f: impl FnOnce()) {
    let now = epoch.elapsed().as_secs();
    let prev = last.load(Ordering::Relaxed);
    if (prev == 0 || now >= prev + 10)
        && last
            .compare_exchange(prev, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        f();
    }
}
