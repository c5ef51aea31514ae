//! Test fixtures for the http_client tests: throwaway CAs and certificates (rcgen), TLS and
//! plain HTTP servers on 127.0.0.1 that echo what they saw, and a tiny HTTP proxy.
#![allow(dead_code)] // each test binary uses a different subset

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent::http_client::{ClientError, HttpClient, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
    pub pem: String,
}

pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl Leaf {
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.der.clone()]
    }
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        let pem = cert.pem();
        Ca { cert, key, pem }
    }

    pub fn issue(&self, sans: &[&str], client: bool) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(
            DnType::CommonName,
            sans.first().copied().unwrap_or("client"),
        );
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }

    pub fn server_leaf(&self) -> Leaf {
        self.issue(&["localhost", "127.0.0.1"], false)
    }

    pub fn roots(&self) -> RootCertStore {
        let mut r = RootCertStore::empty();
        r.add(self.cert.der().clone()).unwrap();
        r
    }
}

/// A server config offering h2 and http/1.1; optionally requiring a client
/// certificate from `client_ca`; optionally TLS 1.2 only.
pub fn server_config(leaf: &Leaf, client_ca: Option<&Ca>, tls12_only: bool) -> Arc<ServerConfig> {
    let versions: &[&'static rustls::SupportedProtocolVersion] = if tls12_only {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap();
    let builder = match client_ca {
        Some(ca) => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(Arc::new(ca.roots()), provider())
                .build()
                .unwrap(),
        ),
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_single_cert(leaf.chain(), leaf.key()).unwrap();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(cfg)
}

#[derive(Clone, Default)]
struct ConnInfo {
    alpn: Option<String>,
    client_cert: bool,
    tls_version: Option<String>,
}

async fn handle(
    req: hyper::Request<hyper::body::Incoming>,
    info: ConnInfo,
) -> hyper::Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let reply = |status: u16, body: String| {
        hyper::Response::builder()
            .status(status)
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    if path == "/status/401" {
        let auth = req
            .headers()
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned());
        // Echo the credential back, as some servers do: the client must not put bodies in errors.
        return reply(401, format!("denied {auth:?}"));
    }
    if let Some(n) = path.strip_prefix("/redirect/") {
        let n: u32 = n.parse().unwrap();
        if n > 0 {
            return hyper::Response::builder()
                .status(302)
                .header("location", format!("/redirect/{}", n - 1))
                .body(Full::new(Bytes::new()))
                .unwrap();
        }
    }
    if path == "/to" {
        let loc = req
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("url="))
            .unwrap_or("/")
            .to_owned();
        return hyper::Response::builder()
            .status(302)
            .header("location", loc)
            .body(Full::new(Bytes::new()))
            .unwrap();
    }
    if path == "/loop" {
        return hyper::Response::builder()
            .status(302)
            .header("location", "/loop")
            .body(Full::new(Bytes::new()))
            .unwrap();
    }
    if path == "/big" {
        return reply(200, "x".repeat(100_000));
    }
    if path == "/slow" {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                serde_json::Value::String(v.to_str().unwrap_or("?").to_owned()),
            )
        })
        .collect();
    let body = serde_json::json!({
        "path": req.uri().path_and_query().map(|p| p.as_str()).unwrap_or(""),
        "uri": req.uri().to_string(),
        "version": format!("{:?}", req.version()),
        "authorization": req.headers().get("authorization").map(|v| v.to_str().unwrap().to_owned()),
        "alpn": info.alpn,
        "client_cert": info.client_cert,
        "tls_version": info.tls_version,
        "headers": headers,
    });
    reply(200, body.to_string())
}

async fn serve<I>(io: I, info: ConnInfo)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| {
        let info = info.clone();
        async move { Ok::<_, Infallible>(handle(req, info).await) }
    });
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

pub struct HttpsServer {
    pub addr: SocketAddr,
    /// Swap to change the certificate for new connections.
    pub config: Arc<Mutex<Arc<ServerConfig>>>,
}

impl HttpsServer {
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{}", self.addr, path)
    }
}

pub async fn spawn_https(cfg: Arc<ServerConfig>) -> HttpsServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = Arc::new(Mutex::new(cfg));
    let current = config.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let cfg = current.lock().unwrap().clone();
            tokio::spawn(async move {
                let Ok(tls) = tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await else {
                    return;
                };
                let (_, conn) = tls.get_ref();
                let info = ConnInfo {
                    alpn: conn
                        .alpn_protocol()
                        .map(|p| String::from_utf8_lossy(p).into_owned()),
                    client_cert: conn.peer_certificates().is_some_and(|c| !c.is_empty()),
                    tls_version: conn.protocol_version().map(|v| format!("{v:?}")),
                };
                serve(tls, info).await;
            });
        }
    });
    HttpsServer { addr, config }
}

pub async fn spawn_http() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(serve(tcp, ConnInfo::default()));
        }
    });
    addr
}

/// A minimal HTTP proxy: CONNECT tunnels and absolute-form forwarding. It
/// records the request line (and Proxy-Authorization) of each connection.
pub struct TestProxy {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<String>>>,
}

pub async fn spawn_proxy() -> TestProxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                let end = loop {
                    let n = client.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    head.extend_from_slice(&buf[..n]);
                    if let Some(p) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                        break p + 4;
                    }
                };
                let text = String::from_utf8_lossy(&head[..end]).into_owned();
                let first = text.lines().next().unwrap_or("").to_owned();
                let proxy_auth = text
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("proxy-authorization: ")
                            .or_else(|| l.strip_prefix("Proxy-Authorization: "))
                    })
                    .map(str::to_owned);
                log.lock().unwrap().push(match proxy_auth {
                    Some(a) => format!("{first} | proxy-authorization: {a}"),
                    None => first.clone(),
                });
                let mut parts = first.split_whitespace();
                let method = parts.next().unwrap_or("");
                let target = parts.next().unwrap_or("").to_owned();
                if method == "CONNECT" {
                    let Ok(mut up) = TcpStream::connect(&target).await else {
                        return;
                    };
                    client
                        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                        .await
                        .unwrap();
                    up.write_all(&head[end..]).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
                } else {
                    let hostport = target
                        .strip_prefix("http://")
                        .and_then(|t| t.split('/').next())
                        .unwrap_or("")
                        .to_owned();
                    let Ok(mut up) = TcpStream::connect(&hostport).await else {
                        return;
                    };
                    up.write_all(&head).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
                }
            });
        }
    });
    TestProxy { addr, seen }
}

pub fn write_file(dir: &Path, name: &str, content: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p.to_str().unwrap().to_owned()
}

pub async fn get(client: &HttpClient, url: &str) -> Result<Response, ClientError> {
    get_with(client, url, &[]).await
}

pub async fn get_with(
    client: &HttpClient,
    url: &str,
    headers: &[(&str, &str)],
) -> Result<Response, ClientError> {
    let mut b = http::Request::get(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    client
        .send(
            b.body(Bytes::new()).unwrap(),
            Duration::from_secs(10),
            1 << 20,
        )
        .await
}

pub fn json(resp: &Response) -> serde_json::Value {
    serde_json::from_slice(&resp.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", resp.body))
}

pub async fn body_text(b: hyper::body::Incoming) -> String {
    String::from_utf8_lossy(&b.collect().await.unwrap().to_bytes()).into_owned()
}
