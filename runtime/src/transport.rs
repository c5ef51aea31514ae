//! The client half of the HTTP/2 transport: one connection and one bounded queue per peer.
//!
//! Packets go to `POST /api/v1/ckit/transport/message` through the peer's own worker, so a slow
//! or dead peer only fills its own queue (ckit sends every packet from one worker; one stuck
//! peer stalls everyone). Push/pull exchanges go to `POST /api/v1/ckit/transport/stream` as one
//! request and one response, each bounded in size and time. Connections are h2c (prior
//! knowledge). A connection that went silent (a partition, a dead host) is noticed by the
//! request timeouts and replaced; idle connections send nothing (no HTTP/2 PINGs: the idle
//! cluster's traffic is its probes).
//!
//! What a request learns about the peer is reported to the node ([`cluster::Unreachable`]): a
//! refused connection (nothing listens there), a connection the peer closed, a request that
//! timed out. That is the failure detector's fastest evidence of a killed process.
//!
//! A packet request says `Accept: application/x.ckit`: the peer may put its answer to the
//! packet (an ack to a ping, a join answer) in the response body instead of sending it as a
//! request of its own, which halves the requests of a probe (an idle cluster's traffic is
//! mostly HTTP/2 framing). Peers that do not say so get their answers as requests, as before.
//! With `--cluster.tls-bind-node-name` answers always come as requests: the server checks a
//! requester's certificate against the sender's name, and a response has no such check.
//! Push/pull bodies are deflated both ways when both sides can ([`crate::compress`]). Neither
//! side announces a body's length (see [`Unannounced`]), and no HTTP/2 PINGs are sent: an
//! idle 50-node cluster's wire traffic is ~1.8x its messages' bytes instead of ~4x.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cluster::Unreachable;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http2::SendRequest;
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::mpsc;

use crate::compress;
use crate::net::Network;

/// Where the transport reports what it saw about a peer's address.
pub type Reporter = Box<dyn Fn(&str, Unreachable) + Send + Sync>;

/// Where a packet that a peer sent back in the response to one of our packets goes (the node).
pub type Deliver = Box<dyn Fn(Bytes) + Send + Sync>;

/// A request that did not get an answer, and what that says about the peer, if anything.
#[derive(Debug, Clone)]
pub struct SendError {
    pub why: Option<Unreachable>,
    pub msg: String,
    /// The peer's answer, if it answered with an error status.
    pub status: Option<StatusCode>,
}

impl SendError {
    fn other(msg: impl Into<String>) -> Self {
        SendError {
            why: None,
            msg: msg.into(),
            status: None,
        }
    }

    fn unreachable(why: Option<Unreachable>, msg: String) -> Self {
        SendError {
            why,
            msg,
            status: None,
        }
    }
}

/// What a request asks of the peer besides taking its body.
#[derive(Debug, Clone, Copy)]
enum Ask {
    /// A packet; `answer`: the node's answer may come in the response.
    Packet { answer: bool },
    /// A push/pull exchange, the body deflated or not; the answer may be deflated.
    PushPull { deflated: bool },
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

pub const MESSAGE_PATH: &str = "/api/v1/ckit/transport/message";
pub const STREAM_PATH: &str = "/api/v1/ckit/transport/stream";

/// Timeouts and limits of the transport.
#[derive(Debug, Clone)]
pub struct TransportOptions {
    /// TCP connect + HTTP/2 handshake.
    pub connect_timeout: Duration,
    /// One packet request, from queue to response headers.
    pub request_timeout: Duration,
    /// One whole push/pull exchange, both bodies included.
    pub push_pull_timeout: Duration,
    /// Packets queued per peer; more are dropped and counted as failed.
    pub peer_queue_len: usize,
    /// Peers with a live worker; packets to further peers are dropped and counted.
    pub peers_max: usize,
    /// Cluster TLS (`--cluster.enable-tls`): every connection to a peer is TLS with this
    /// node's certificate; `None` is h2c.
    pub tls: Option<Arc<crate::tls::ClusterTls>>,
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(2),
            push_pull_timeout: Duration::from_secs(10),
            peer_queue_len: 128,
            peers_max: 16 * 1024,
            tls: None,
        }
    }
}

/// Transport counters (`cluster_transport_*`). Each event is counted once, where it happens.
#[derive(Debug, Default)]
pub struct TransportStats {
    /// Transport requests refused on a TLS listener for lack of a client certificate.
    pub rx_unauthenticated: AtomicU64,
    /// Transport messages refused because the sender is not a name of the client's
    /// certificate (`--cluster.tls-bind-node-name`).
    pub rx_identity_mismatches: AtomicU64,
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub rx_packets_failed: AtomicU64,
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
    pub tx_packets_failed: AtomicU64,
    /// Of the packets received, those that came back in the response to one of ours.
    pub rx_answers: AtomicU64,
    /// Of the packets sent, those that went back in the response to a peer's request.
    pub tx_answers: AtomicU64,
    /// Packets waiting in peer queues (gauge).
    pub tx_queue_len: AtomicI64,
    /// Packets accepted by the HTTP handler but not yet handled by the node (gauge).
    pub rx_queue_len: AtomicI64,
    /// Push/pull exchanges in flight, both directions (gauge).
    pub streams: AtomicI64,
    pub streams_opened: AtomicU64,
    pub streams_failed: AtomicU64,
    /// Full states carried by push/pull exchanges (ckit's "stream packets"): sent is our
    /// state delivered to a peer that answered (initiator) or our answer written (responder);
    /// received is a peer's state read, as a request or as an answer.
    pub stream_tx_packets: AtomicU64,
    pub stream_tx_bytes: AtomicU64,
    /// Our state not delivered: the exchange we started failed (connect, timeout, error).
    pub stream_tx_packets_failed: AtomicU64,
    pub stream_rx_packets: AtomicU64,
    pub stream_rx_bytes: AtomicU64,
    /// A peer's state received but not taken in (node overloaded, bad payload, timeout).
    pub stream_rx_packets_failed: AtomicU64,
}

/// Faults a simulation may inject at the sender: drop a request with probability `loss`.
#[derive(Debug)]
pub struct Faults {
    loss_ppm: AtomicU64,
    rng: Mutex<ChaCha8Rng>,
    pub dropped: AtomicU64,
}

impl Faults {
    pub fn new(seed: u64) -> Self {
        Faults {
            loss_ppm: AtomicU64::new(0),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
            dropped: AtomicU64::new(0),
        }
    }

    pub fn set_loss(&self, loss: f64) {
        let ppm = (loss.clamp(0.0, 1.0) * 1_000_000.0) as u64;
        self.loss_ppm.store(ppm, Ordering::Relaxed);
    }

    fn drop_this(&self) -> bool {
        let ppm = self.loss_ppm.load(Ordering::Relaxed);
        if ppm == 0 {
            return false;
        }
        let hit = self.rng.lock().expect("faults rng").gen_range(0..1_000_000) < ppm;
        if hit {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }
}

type Conn = Arc<tokio::sync::Mutex<Option<SendRequest<Unannounced>>>>;

/// A body whose length is announced or not. Unannounced, hyper sends no `content-length`
/// header, whose value the h2 crate never compresses (5 bytes per request or response, a
/// tenth of a packet request's framing); the DATA frame that ends the stream says where the
/// body ends. The transport's HTTP/2 requests and responses leave it out.
pub(crate) struct Unannounced {
    pub(crate) body: Full<Bytes>,
    pub(crate) announce: bool,
}

impl Unannounced {
    pub(crate) fn new(body: Full<Bytes>) -> Self {
        Unannounced {
            body,
            announce: false,
        }
    }
}

impl hyper::body::Body for Unannounced {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        if self.announce {
            self.body.size_hint()
        } else {
            hyper::body::SizeHint::default()
        }
    }
}

struct Peer {
    queue: mpsc::Sender<Bytes>,
    conn: Conn,
}

/// A plaintext connection that fails with a clear error if the peer answers with a TLS record
/// (an HTTP/2 server's first bytes are a SETTINGS frame, whose length never starts with 0x15
/// or 0x16): the peer runs with `--cluster.enable-tls` and this node does not.
struct TlsSniff<S> {
    inner: S,
    checked: bool,
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for TlsSniff<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if !self.checked && buf.filled().len() > before {
            self.checked = true;
            if matches!(buf.filled()[before], 0x15 | 0x16) {
                let msg = "the peer answered with TLS: it runs with --cluster.enable-tls, and this node must too";
                warn_limited(msg);
                return std::task::Poll::Ready(Err(std::io::Error::other(msg)));
            }
        }
        r
    }
}

delegate_async_write!(TlsSniff);

/// A failed handshake with a peer, logged at most once every 10 s (per process).
fn warn_limited(msg: &str) {
    static LAST: AtomicU64 = AtomicU64::new(0);
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(std::time::Instant::now);
    crate::tls::log_limited(
        &LAST,
        epoch,
        || tracing::warn!(error = %msg, "cannot talk to a peer"),
    );
}

/// Outgoing side: per-peer workers and connections.
pub struct Peers<N: Network> {
    net: N,
    opts: TransportOptions,
    peers: Mutex<BTreeMap<String, Peer>>,
    pub stats: Arc<TransportStats>,
    pub faults: Arc<Faults>,
    report: Reporter,
    deliver: Deliver,
    /// The largest answer read from a packet's response.
    packet_bytes_max: usize,
    /// Whether packet requests take answers in their responses (see the module doc).
    answers_in_responses: bool,
    /// Peers that refused a deflated push/pull (older versions): they get plain ones.
    plain_peers: Mutex<std::collections::BTreeSet<String>>,
}

impl<N: Network> Peers<N> {
    pub fn new(
        net: N,
        opts: TransportOptions,
        stats: Arc<TransportStats>,
        faults: Arc<Faults>,
        report: Reporter,
        deliver: Deliver,
        packet_bytes_max: usize,
    ) -> Arc<Self> {
        let answers_in_responses = !opts.tls.as_ref().is_some_and(|t| t.binds_node_name());
        Arc::new(Peers {
            net,
            opts,
            peers: Mutex::new(BTreeMap::new()),
            stats,
            faults,
            report,
            deliver,
            packet_bytes_max,
            answers_in_responses,
            plain_peers: Mutex::default(),
        })
    }

    fn report_failure(&self, addr: &str, e: &SendError) {
        if let Some(why) = e.why {
            (self.report)(addr, why);
        }
    }

    fn conn_for(self: &Arc<Self>, to: &str) -> Option<(mpsc::Sender<Bytes>, Conn)> {
        let mut peers = self.peers.lock().expect("peers lock");
        if let Some(p) = peers.get(to) {
            if !p.queue.is_closed() {
                return Some((p.queue.clone(), p.conn.clone()));
            }
        }
        if peers.len() >= self.opts.peers_max && !peers.contains_key(to) {
            return None;
        }
        let (tx, rx) = mpsc::channel(self.opts.peer_queue_len);
        let conn: Conn = Arc::new(tokio::sync::Mutex::new(None));
        peers.insert(
            to.to_string(),
            Peer {
                queue: tx.clone(),
                conn: conn.clone(),
            },
        );
        let this = self.clone();
        let addr = to.to_string();
        let c = conn.clone();
        tokio::spawn(async move { this.peer_worker(addr, rx, c).await });
        Some((tx, conn))
    }

    /// Queue a packet for `to`. False when it was dropped (queue full, too many peers).
    pub fn send_packet(self: &Arc<Self>, to: &str, payload: Bytes) -> bool {
        let Some((queue, _)) = self.conn_for(to) else {
            self.stats.tx_packets_failed.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        match queue.try_send(payload) {
            Ok(()) => {
                self.stats.tx_queue_len.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(_) => {
                self.stats.tx_packets_failed.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    async fn peer_worker(self: Arc<Self>, addr: String, mut rx: mpsc::Receiver<Bytes>, conn: Conn) {
        while let Some(bytes) = rx.recv().await {
            self.stats.tx_queue_len.fetch_sub(1, Ordering::Relaxed);
            let len = bytes.len() as u64;
            let answers = self.answers_in_responses;
            let max = if answers { self.packet_bytes_max } else { 0 };
            let result = tokio::time::timeout(
                self.opts.request_timeout,
                self.request(
                    &addr,
                    &conn,
                    MESSAGE_PATH,
                    bytes,
                    max,
                    Ask::Packet { answer: answers },
                ),
            )
            .await;
            match result {
                Ok(Ok(answer)) => {
                    self.stats.tx_packets.fetch_add(1, Ordering::Relaxed);
                    self.stats.tx_bytes.fetch_add(len, Ordering::Relaxed);
                    // A simulation's message loss applies to the answer as to any packet.
                    if answers && !answer.is_empty() && !self.faults.drop_this() {
                        (self.deliver)(answer);
                    }
                }
                Ok(Err(e)) => {
                    tracing::debug!(peer = %addr, error = %e, "packet not delivered");
                    self.stats.tx_packets_failed.fetch_add(1, Ordering::Relaxed);
                    self.report_failure(&addr, &e);
                }
                Err(_) => {
                    tracing::debug!(peer = %addr, "packet timed out");
                    self.stats.tx_packets_failed.fetch_add(1, Ordering::Relaxed);
                    // A stalled connection is not reused.
                    *conn.lock().await = None;
                    (self.report)(&addr, Unreachable::TimedOut);
                }
            }
        }
    }

    /// One full-state exchange with `to`; the answer body or why there is none.
    pub async fn push_pull(
        self: &Arc<Self>,
        to: &str,
        payload: Vec<u8>,
        max_answer: usize,
    ) -> Result<Bytes, SendError> {
        let Some((_, conn)) = self.conn_for(to) else {
            return Err(SendError::other("too many peers"));
        };
        self.stats.streams.fetch_add(1, Ordering::Relaxed);
        self.stats.streams_opened.fetch_add(1, Ordering::Relaxed);
        let sent = payload.len() as u64;
        let exchange = async {
            if !self.plain_peers.lock().expect("plain peers").contains(to) {
                let body = Bytes::from(compress::deflate(&payload));
                let ask = Ask::PushPull { deflated: true };
                match self
                    .request(to, &conn, STREAM_PATH, body, max_answer, ask)
                    .await
                {
                    // An older version cannot decode it: plain bodies for this peer from now on.
                    Err(e)
                        if matches!(
                            e.status,
                            Some(StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE)
                        ) =>
                    {
                        tracing::debug!(peer = %to, error = %e, "deflated push/pull refused; sending plain ones");
                        let mut plain = self.plain_peers.lock().expect("plain peers");
                        if plain.len() < self.opts.peers_max {
                            plain.insert(to.to_string());
                        }
                    }
                    r => return r,
                }
            }
            let ask = Ask::PushPull { deflated: false };
            self.request(
                to,
                &conn,
                STREAM_PATH,
                Bytes::from(payload),
                max_answer,
                ask,
            )
            .await
        };
        let r = tokio::time::timeout(self.opts.push_pull_timeout, exchange).await;
        self.stats.streams.fetch_sub(1, Ordering::Relaxed);
        let r = match r {
            Ok(r) => r,
            Err(_) => {
                *conn.lock().await = None;
                Err(SendError::unreachable(
                    Some(Unreachable::TimedOut),
                    format!(
                        "push/pull timed out after {:?}",
                        self.opts.push_pull_timeout
                    ),
                ))
            }
        };
        let st = &self.stats;
        match &r {
            Ok(answer) => {
                st.stream_tx_packets.fetch_add(1, Ordering::Relaxed);
                st.stream_tx_bytes.fetch_add(sent, Ordering::Relaxed);
                st.stream_rx_packets.fetch_add(1, Ordering::Relaxed);
                st.stream_rx_bytes
                    .fetch_add(answer.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                st.streams_failed.fetch_add(1, Ordering::Relaxed);
                st.stream_tx_packets_failed.fetch_add(1, Ordering::Relaxed);
                self.report_failure(to, e);
            }
        }
        r
    }

    async fn connection(
        self: &Arc<Self>,
        addr: &str,
        conn: &Conn,
    ) -> Result<SendRequest<Unannounced>, SendError> {
        let mut slot = conn.lock().await;
        if let Some(s) = slot.as_ref() {
            if !s.is_closed() {
                return Ok(s.clone());
            }
        }
        *slot = None;
        let opts = &self.opts;
        let connect = async {
            let stream = self.net.connect(addr).await.map_err(|e| {
                SendError::unreachable(
                    (e.kind() == std::io::ErrorKind::ConnectionRefused)
                        .then_some(Unreachable::Refused),
                    format!("connect to {addr}: {e}"),
                )
            })?;
            let mut builder = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
            // No HTTP/2 keep-alive PINGs: hyper sends one whenever a request starts on a
            // connection idle for longer than the interval, which at 50 nodes is every probe
            // (each connection carries one request per ~100 s), 34 bytes both ways. Every
            // request has its own timeout, after which the connection is replaced.
            builder.timer(TokioTimer::new());
            let peer = addr.to_string();
            // The peer closing the connection (a process exits: its sockets close) is news
            // for the failure detector; so is our own closing after a timeout, harmlessly
            // (the member is checked at most once per probe interval).
            let this = self.clone();
            let closed = move |peer: &str| (this.report)(peer, Unreachable::Closed);
            let send = match &opts.tls {
                None => {
                    let stream = TlsSniff {
                        inner: stream,
                        checked: false,
                    };
                    let (send, connection) = builder.handshake(TokioIo::new(stream)).await.map_err(|e| {
                        let msg = format!("HTTP/2 handshake with {addr}: {e} (if the peer runs with --cluster.enable-tls, this node must too)");
                        warn_limited(&msg);
                        SendError::other(msg)
                    })?;
                    tokio::spawn(async move {
                        if let Err(e) = connection.await {
                            tracing::debug!(peer = %peer, error = %e, "connection closed");
                        }
                        closed(&peer);
                    });
                    send
                }
                Some(tls) => {
                    let name = tls.server_name(addr).map_err(SendError::other)?;
                    let connector = tokio_rustls::TlsConnector::from(tls.client_config());
                    let stream = connector.connect(name, stream).await.map_err(|e| {
                        let msg = if crate::tls::is_plaintext_mismatch(&e) {
                            tls.stats.plaintext_mismatches.fetch_add(1, Ordering::Relaxed);
                            format!("TLS handshake with {addr}: {e} (the peer does not speak TLS: is --cluster.enable-tls set on it?)")
                        } else {
                            tls.stats.handshakes_failed.fetch_add(1, Ordering::Relaxed);
                            format!("TLS handshake with {addr}: {e}")
                        };
                        warn_limited(&msg);
                        SendError::other(msg)
                    })?;
                    let (send, connection) =
                        builder.handshake(TokioIo::new(stream)).await.map_err(|e| {
                            SendError::other(format!("HTTP/2 handshake with {addr} over TLS: {e}"))
                        })?;
                    tokio::spawn(async move {
                        if let Err(e) = connection.await {
                            tracing::debug!(peer = %peer, error = %e, "connection closed");
                        }
                        closed(&peer);
                    });
                    send
                }
            };
            Ok::<_, SendError>(send)
        };
        let send = tokio::time::timeout(opts.connect_timeout, connect)
            .await
            .map_err(|_| {
                SendError::unreachable(
                    Some(Unreachable::TimedOut),
                    format!(
                        "connect to {addr} timed out after {:?}",
                        opts.connect_timeout
                    ),
                )
            })??;
        *slot = Some(send.clone());
        Ok(send)
    }

    async fn request(
        self: &Arc<Self>,
        addr: &str,
        conn: &Conn,
        path: &str,
        body: Bytes,
        max_answer: usize,
        ask: Ask,
    ) -> Result<Bytes, SendError> {
        if self.faults.drop_this() {
            if path == STREAM_PATH {
                // A lost exchange looks like a silent peer: the caller's timeout ends it.
                tokio::time::sleep(self.opts.push_pull_timeout).await;
            }
            return Err(SendError::other("dropped by fault injection"));
        }
        let mut send = self.connection(addr, conn).await?;
        send.ready()
            .await
            .map_err(|e| SendError::other(format!("{addr}: {e}")))?;
        let mut req = Request::post(format!("http://{addr}{path}"))
            .version(hyper::Version::HTTP_2)
            .header(hyper::header::CONTENT_TYPE, cluster::CONTENT_TYPE);
        match ask {
            Ask::Packet { answer: true } => {
                req = req.header(hyper::header::ACCEPT, cluster::CONTENT_TYPE);
            }
            Ask::Packet { answer: false } => {}
            Ask::PushPull { deflated } => {
                req = req.header(hyper::header::ACCEPT_ENCODING, compress::DEFLATE);
                if deflated {
                    req = req.header(hyper::header::CONTENT_ENCODING, compress::DEFLATE);
                }
            }
        }
        let req = req
            .body(Unannounced::new(Full::new(body)))
            .map_err(|e| SendError::other(e.to_string()))?;
        let resp = send
            .send_request(req)
            .await
            .map_err(|e| SendError::other(format!("{addr}: {e}")))?;
        let status = resp.status();
        let deflated = resp
            .headers()
            .get(hyper::header::CONTENT_ENCODING)
            .is_some_and(|v| v.as_bytes() == compress::DEFLATE.as_bytes());
        let limit = max_answer.max(4096);
        let body = Limited::new(resp.into_body(), limit)
            .collect()
            .await
            .map_err(|e| SendError::other(format!("{addr}: reading answer: {e}")))?
            .to_bytes();
        if status != StatusCode::OK {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            return Err(SendError {
                status: Some(status),
                ..SendError::other(format!("{addr} answered {status}: {text}"))
            });
        }
        if deflated && matches!(ask, Ask::PushPull { .. }) {
            return compress::inflate(&body, max_answer)
                .map(Bytes::from)
                .map_err(|e| SendError::other(format!("{addr}: reading answer: {e}")));
        }
        Ok(body)
    }
}
