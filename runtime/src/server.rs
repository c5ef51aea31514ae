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

use crate::driver::{ClusterHandle, Cmd};
use crate::net::Network;
use crate::transport::{MESSAGE_PATH, STREAM_PATH};

pub type Body = Full<Bytes>;

/// A plain-text response.
pub fn text(status: StatusCode, msg: impl Into<String>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(msg.into())))
        .expect("static response parts are valid")
}

/// Whether `path` belongs to the cluster transport.
pub fn is_transport_path(path: &str) -> bool {
    path == MESSAGE_PATH || path == STREAM_PATH
}

/// Answer a request for one of the transport paths.
pub async fn handle_transport(handle: &ClusterHandle, req: Request<Incoming>) -> Response<Body> {
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
    let limit = if path == MESSAGE_PATH {
        handle.packet_bytes_max
    } else {
        handle.push_pull_bytes_max
    };
    let body = match Limited::new(req.into_body(), limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            handle
                .stats
                .rx_packets_failed
                .fetch_add(1, Ordering::Relaxed);
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body rejected (limit {limit} bytes): {e}"),
            );
        }
    };
    if path == MESSAGE_PATH {
        let len = body.len() as u64;
        match handle.cmds.try_send(Cmd::Packet(body)) {
            Ok(()) => {
                handle.stats.rx_queue_len.fetch_add(1, Ordering::Relaxed);
                handle.stats.rx_packets.fetch_add(1, Ordering::Relaxed);
                handle.stats.rx_bytes.fetch_add(len, Ordering::Relaxed);
                Response::new(Full::new(Bytes::new()))
            }
            Err(_) => {
                handle
                    .stats
                    .rx_packets_failed
                    .fetch_add(1, Ordering::Relaxed);
                text(StatusCode::SERVICE_UNAVAILABLE, "node is overloaded")
            }
        }
    } else {
        handle.stats.streams.fetch_add(1, Ordering::Relaxed);
        handle.stats.streams_opened.fetch_add(1, Ordering::Relaxed);
        let r = push_pull(handle, body).await;
        handle.stats.streams.fetch_sub(1, Ordering::Relaxed);
        match r {
            Ok(answer) => Response::builder()
                .header(hyper::header::CONTENT_TYPE, cluster::CONTENT_TYPE)
                .body(Full::new(Bytes::from(answer)))
                .expect("static response parts are valid"),
            Err((status, msg)) => {
                handle.stats.streams_failed.fetch_add(1, Ordering::Relaxed);
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
pub async fn serve<N, F, Fut>(net: N, mut listener: N::Listener, router: F)
where
    N: Network,
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS_MAX));
    loop {
        let (stream, _peer) = match net.accept(&mut listener).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(
                limit = CONNECTIONS_MAX,
                "too many connections; closing a new one"
            );
            drop(stream);
            continue;
        };
        let router = router.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let svc = hyper::service::service_fn(move |req| {
                let router = router.clone();
                async move { Ok::<_, Infallible>(router(req).await) }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .auto_date_header(false)
                .http2()
                .timer(TokioTimer::new())
                .auto_date_header(false)
                .max_concurrent_streams(256)
                .keep_alive_interval(std::time::Duration::from_secs(60))
                .keep_alive_timeout(std::time::Duration::from_secs(20));
            if let Err(e) = builder.serve_connection(TokioIo::new(stream), svc).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}

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
