//! The server half of the HTTP/2 transport, and the accept loop every node uses.
//!
//! [`handle_transport`] answers the two ckit paths; [`serve`] accepts connections on a
//! [`Network`] listener and speaks HTTP/1.1 and HTTP/2 (h2c with prior knowledge) on the same
//! port, handing each request to the caller's router. The transport paths answer HTTP/1 with
//! 505, as ckit does. Bodies are read with a size limit; node work is queued with a bound.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::oneshot;

use crate::compress;
use crate::driver::{enqueue_packet, ClusterHandle, Cmd};
use crate::limits::{
    ConnectionCounts, MessageBudget, ServerStats, CONNECTIONS_PER_ADDRESS_MAX, HEADER_READ_TIMEOUT,
    HTTP1_BUFFER_MAX, HTTP2_HEADER_LIST_MAX, HTTP2_PENDING_RESETS_MAX,
};
use crate::net::Network;
use crate::tls::{log_limited, ClusterTls, ConnInfo, HANDSHAKE_TIMEOUT};
use crate::transport::{Unannounced, MESSAGE_PATH, STREAM_PATH};

pub type Body = Full<Bytes>;

/// A plain-text response.
pub fn text(status: StatusCode, msg: impl Into<String>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(msg.into())))
        .expect("static response parts are valid")
}

/// How long a packet's handler waits for the node's answer to put it in the response. The node
/// answers within microseconds unless its loop is busy or stalled; then the requester's
/// per-peer queue should not wait longer than this, and the answer goes as a request.
pub const ANSWER_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// Whether `path` belongs to the cluster transport.
pub fn is_transport_path(path: &str) -> bool {
    path == MESSAGE_PATH || path == STREAM_PATH
}

/// A transport request refused for its body: counted as a failed incoming packet.
fn refuse(handle: &ClusterHandle, status: StatusCode, msg: String) -> Response<Body> {
    handle
        .stats
        .rx_packets_failed
        .fetch_add(1, Ordering::Relaxed);
    text(status, msg)
}

/// Answer a request for one of the transport paths.
pub async fn handle_transport(handle: &ClusterHandle, req: Request<Incoming>) -> Response<Body> {
    let info = req.extensions().get::<ConnInfo>().cloned();
    if let Some(info) = &info {
        if !info.may_use_transport() {
            handle
                .stats
                .rx_unauthenticated
                .fetch_add(1, Ordering::Relaxed);
            return text(
                StatusCode::FORBIDDEN,
                "cluster TLS: the transport needs a client certificate signed by the cluster CA",
            );
        }
    }
    if req.version() != Version::HTTP_2 {
        return text(
            StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            "the cluster transport speaks HTTP/2 only",
        );
    }
    if req.method() != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use POST");
    }
    let path = req.uri().path().to_string();
    let headers = req.headers();
    let takes_answer = headers
        .get(hyper::header::ACCEPT)
        .is_some_and(|v| v.as_bytes() == cluster::CONTENT_TYPE.as_bytes());
    let takes_deflate = headers
        .get(hyper::header::ACCEPT_ENCODING)
        .is_some_and(|v| compress::accepts_deflate(v.as_bytes()));
    let deflated = match headers.get(hyper::header::CONTENT_ENCODING) {
        None => false,
        Some(v) if v.as_bytes() == compress::DEFLATE.as_bytes() => true,
        Some(v) => {
            return refuse(
                handle,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("content-encoding {v:?} is not supported (deflate is)"),
            );
        }
    };
    let limit = if path == MESSAGE_PATH {
        handle.packet_bytes_max
    } else {
        handle.push_pull_bytes_max
    };
    let body = match Limited::new(req.into_body(), limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return refuse(
                handle,
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body rejected (limit {limit} bytes): {e}"),
            );
        }
    };
    let body = if deflated {
        match compress::inflate(&body, limit) {
            Ok(b) => Bytes::from(b),
            Err(e) => return refuse(handle, StatusCode::BAD_REQUEST, e),
        }
    } else {
        body
    };
    if let Some(info) = info.filter(|i| i.names.is_some()) {
        let sender = cluster::wire::decode_envelope(&body).map(|e| e.sender_name);
        let sender = sender.unwrap_or_default();
        if !info.may_speak_as(&sender) {
            handle
                .stats
                .rx_identity_mismatches
                .fetch_add(1, Ordering::Relaxed);
            return text(
                StatusCode::FORBIDDEN,
                format!("cluster TLS: this certificate may not speak as node {sender:?}"),
            );
        }
    }
    if path == MESSAGE_PATH {
        let (reply, answer) = if takes_answer {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        if !enqueue_packet(&handle.cmds, &handle.stats, body, reply) {
            return text(StatusCode::SERVICE_UNAVAILABLE, "node is overloaded");
        }
        // The node's answer to the sender, if it has one at once, rides back in the response;
        // a node that is slow to handle the packet sends it later as a request of its own.
        if let Some(rx) = answer {
            if let Ok(Ok(bytes)) = tokio::time::timeout(ANSWER_WAIT, rx).await {
                return Response::builder()
                    .header(hyper::header::CONTENT_TYPE, cluster::CONTENT_TYPE)
                    .body(Full::new(bytes))
                    .expect("static response parts are valid");
            }
        }
        Response::new(Full::new(Bytes::new()))
    } else {
        let st = &handle.stats;
        st.streams.fetch_add(1, Ordering::Relaxed);
        st.streams_opened.fetch_add(1, Ordering::Relaxed);
        st.stream_rx_packets.fetch_add(1, Ordering::Relaxed);
        st.stream_rx_bytes
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        let r = push_pull(handle, body).await;
        st.streams.fetch_sub(1, Ordering::Relaxed);
        match r {
            Ok(answer) => {
                st.stream_tx_packets.fetch_add(1, Ordering::Relaxed);
                st.stream_tx_bytes
                    .fetch_add(answer.len() as u64, Ordering::Relaxed);
                let resp =
                    Response::builder().header(hyper::header::CONTENT_TYPE, cluster::CONTENT_TYPE);
                let (resp, answer) = if takes_deflate {
                    (
                        resp.header(hyper::header::CONTENT_ENCODING, compress::DEFLATE),
                        compress::deflate(&answer),
                    )
                } else {
                    (resp, answer)
                };
                resp.body(Full::new(Bytes::from(answer)))
                    .expect("static response parts are valid")
            }
            Err((status, msg)) => {
                st.streams_failed.fetch_add(1, Ordering::Relaxed);
                st.stream_rx_packets_failed.fetch_add(1, Ordering::Relaxed);
                text(status, msg)
            }
        }
    }
}

async fn push_pull(handle: &ClusterHandle, body: Bytes) -> Result<Vec<u8>, (StatusCode, String)> {
    let (tx, rx) = oneshot::channel();
    handle.cmds.try_send(Cmd::PushPull(body, tx)).map_err(|_| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "node is overloaded".to_string(),
        )
    })?;
    match tokio::time::timeout(handle.push_pull_timeout, rx).await {
        Ok(Ok(Ok(answer))) => Ok(answer),
        Ok(Ok(Err(e))) => Err((StatusCode::BAD_REQUEST, e)),
        Ok(Err(_)) => Err((StatusCode::SERVICE_UNAVAILABLE, "node stopped".to_string())),
        Err(_) => Err((StatusCode::SERVICE_UNAVAILABLE, "node busy".to_string())),
    }
}

/// Connections served at once; further ones are closed at accept (bounded memory under a
/// connection flood; a cluster of N nodes needs about 2N).
pub const CONNECTIONS_MAX: usize = 4096;

/// Accept connections forever, serving HTTP/1.1 and h2c on each with `router`.
pub async fn serve<N, F, Fut>(net: N, listener: N::Listener, router: F)
where
    N: Network,
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    serve_tls(net, listener, router, None, Arc::default()).await
}

/// [`serve`], over TLS when `tls` is set: every connection does a TLS handshake first (ALPN h2
/// or http/1.1; the client's certificate is asked for and verified if given), and each
/// request carries a [`ConnInfo`] extension saying what the connection proved. A plaintext
/// client on a TLS listener, or a TLS client on a plaintext one, is refused with a warning.
pub async fn serve_tls<N, F, Fut>(
    net: N,
    mut listener: N::Listener,
    router: F,
    tls: Option<Arc<ClusterTls>>,
    stats: Arc<ServerStats>,
) where
    N: Network,
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS_MAX));
    let per_address = Arc::new(ConnectionCounts::default());
    let budget = Arc::new(MessageBudget::default());
    let epoch = std::time::Instant::now();
    // One rate limit per kind of warning, so one kind of bad client cannot hide another.
    let last_warn: Arc<[std::sync::atomic::AtomicU64; 4]> = Arc::default();
    loop {
        let (stream, peer) = match net.accept(&mut listener).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            stats.connections_refused.fetch_add(1, Ordering::Relaxed);
            log_limited(&last_warn[0], epoch, || {
                tracing::warn!(
                    limit = CONNECTIONS_MAX,
                    "too many connections; closing new ones"
                );
            });
            drop(stream);
            continue;
        };
        let Some(address_slot) = per_address.acquire(peer.ip()) else {
            stats.connections_refused.fetch_add(1, Ordering::Relaxed);
            log_limited(&last_warn[0], epoch, || {
                tracing::warn!(%peer, limit = CONNECTIONS_PER_ADDRESS_MAX, "too many connections from one address; closing new ones");
            });
            drop(stream);
            continue;
        };
        let guard = Guard {
            ip: peer.ip(),
            budget: budget.clone(),
            stats: stats.clone(),
        };
        let router = router.clone();
        let tls = tls.clone();
        let last_warn = last_warn.clone();
        tokio::spawn(async move {
            let _slots = (slot, address_slot);
            let Some(tls) = tls else {
                let mut stream = Prefixed::new(stream);
                if stream.starts_with_tls().await {
                    log_limited(&last_warn[1], epoch, || {
                        tracing::warn!(%peer, "a TLS client connected to this plaintext listener; refused (is --cluster.enable-tls set on this node too?)");
                    });
                    return;
                }
                serve_conn(stream, router, ConnInfo::default(), guard).await;
                return;
            };
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config());
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(s)) => {
                    let certs = s.get_ref().1.peer_certificates();
                    let names = tls.binds_node_name().then(|| {
                        let names = certs
                            .and_then(|c| c.first())
                            .map(crate::tls::certificate_names)
                            .unwrap_or_default();
                        Arc::new(names)
                    });
                    let info = ConnInfo {
                        tls: true,
                        client_cert: certs.is_some(),
                        names,
                    };
                    serve_conn(s, router, info, guard).await;
                }
                Ok(Err(e)) if crate::tls::is_plaintext_mismatch(&e) => {
                    tls.stats
                        .plaintext_mismatches
                        .fetch_add(1, Ordering::Relaxed);
                    log_limited(&last_warn[2], epoch, || {
                        tracing::warn!(%peer, "a plaintext (h2c) client connected to this TLS listener; refused (is --cluster.enable-tls set on the peer?)");
                    });
                }
                Ok(Err(e)) => {
                    tls.stats.handshakes_failed.fetch_add(1, Ordering::Relaxed);
                    log_limited(&last_warn[3], epoch, || {
                        tracing::warn!(%peer, error = %e, "TLS handshake refused");
                    });
                }
                Err(_) => {
                    tls.stats.handshakes_failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
}

/// The per-connection share of the listener's limits: whose message budget requests draw
/// from.
struct Guard {
    ip: std::net::IpAddr,
    budget: Arc<MessageBudget>,
    stats: Arc<ServerStats>,
}

/// Serves one connection with `router`, every request tagged with `info`; transport requests
/// beyond the client address's budget get 429.
async fn serve_conn<S, F, Fut>(stream: S, router: F, info: ConnInfo, guard: Guard)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let guard = Arc::new(guard);
    let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        let router = router.clone();
        req.extensions_mut().insert(info.clone());
        let transport = is_transport_path(req.uri().path());
        let limited = transport && !guard.budget.allow(guard.ip, &guard.stats);
        // The transport's HTTP/2 answers go without `content-length` (see `Unannounced`).
        let announce = !transport || req.version() != Version::HTTP_2;
        async move {
            let resp = if limited {
                text(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many cluster messages from this address",
                )
            } else {
                router(req).await
            };
            Ok::<_, Infallible>(resp.map(|body| Unannounced { body, announce }))
        }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .auto_date_header(false)
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(HTTP1_BUFFER_MAX)
        .http2()
        .timer(TokioTimer::new())
        .auto_date_header(false)
        .max_header_list_size(HTTP2_HEADER_LIST_MAX)
        .max_pending_accept_reset_streams(HTTP2_PENDING_RESETS_MAX)
        // No HTTP/2 PINGs from the server: an idle cluster's traffic is its probes, and a
        // client that vanished is found by TCP keep-alive (`net.rs`) without bytes of ours.
        .max_concurrent_streams(256);
    if let Err(e) = builder.serve_connection(TokioIo::new(stream), svc).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// A stream whose first byte has been read to tell a TLS ClientHello (0x16) from HTTP, and is
/// given back on the first read.
struct Prefixed<S> {
    inner: S,
    first: Option<u8>,
}

impl<S: tokio::io::AsyncRead + Unpin> Prefixed<S> {
    fn new(inner: S) -> Self {
        Prefixed { inner, first: None }
    }

    /// Reads the first byte (waits at most [`HANDSHAKE_TIMEOUT`]); true if it opens a TLS
    /// record.
    async fn starts_with_tls(&mut self) -> bool {
        use tokio::io::AsyncReadExt;
        let mut b = [0u8; 1];
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.inner.read(&mut b)).await {
            Ok(Ok(1)) => {
                self.first = Some(b[0]);
                b[0] == 0x16
            }
            _ => false,
        }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if let Some(b) = self.first.take() {
            buf.put_slice(&[b]);
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

delegate_async_write!(Prefixed);

/// A router that serves only the transport paths (what the simulator's nodes run).
pub fn transport_router(
    handle: ClusterHandle,
) -> impl Fn(Request<Incoming>) -> std::pin::Pin<Box<dyn Future<Output = Response<Body>> + Send>>
       + Clone
       + Send
       + Sync
       + 'static {
    let handle = Arc::new(handle);
    move |req: Request<Incoming>| {
        let handle = handle.clone();
        Box::pin(async move {
            if is_transport_path(req.uri().path()) {
                handle_transport(&handle, req).await
            } else {
                text(StatusCode::NOT_FOUND, "not found")
            }
        })
    }
}
