//! Helpers shared by the `pipeline_*` tests: a tiny HTTP/1 server on loopback, a recording
//! receiver, and bounded polling. Test code only.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent::scrape::{Appender, Sample};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

pub type Reply = Response<Full<Bytes>>;
pub type Handler =
    Arc<dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync>;

/// An HTTP/1 server on 127.0.0.1 with an ephemeral port; stops when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub async fn start(handler: Handler) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let handler = handler.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let handler = handler.clone();
                        async move { Ok::<_, std::convert::Infallible>(handler(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        TestServer { addr, task }
    }

    /// A server answering every request with `status` and `body` from `f(path)`.
    pub async fn serving(f: impl Fn(&str) -> (u16, String) + Send + Sync + 'static) -> TestServer {
        let f = Arc::new(f);
        TestServer::start(Arc::new(move |req: Request<Incoming>| {
            let (status, body) = f(req.uri().path());
            Box::pin(async move { reply(status, body) })
        }))
        .await
    }

    pub fn address(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn reply(status: u16, body: impl Into<Bytes>) -> Reply {
    Response::builder()
        .status(status)
        .header("Content-Type", "text/plain; version=0.0.4")
        .body(Full::new(body.into()))
        .unwrap()
}

/// A receiver that keeps every sample it is given.
#[derive(Default)]
pub struct Recorder {
    pub samples: Mutex<Vec<Sample>>,
}

impl Appender for Recorder {
    fn append(&self, samples: &[Sample]) {
        self.samples.lock().unwrap().extend_from_slice(samples);
    }
}

impl Recorder {
    pub fn take(&self) -> Vec<Sample> {
        std::mem::take(&mut *self.samples.lock().unwrap())
    }

    pub fn named(&self, name: &str) -> Vec<Sample> {
        self.samples
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.labels.name() == name)
            .cloned()
            .collect()
    }
}

/// Polls `f` every 20ms until it returns `Some`, or panics after `limit` naming `what`.
pub async fn eventually<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
