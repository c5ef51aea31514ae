//! One HTTP GET of a target's metrics: a timeout over the whole exchange and a bound on the
//! body size. Knows nothing about the exposition format.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// The client every scrape loop of a manager shares (keeps connections to targets alive).
pub type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// Idle connections to targets are closed after this long.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// What we ask targets for: the text format only (we do not decode protobuf or gzip).
const ACCEPT: &str = "text/plain;version=0.0.4;q=1,*/*;q=0.1";

pub fn new_client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .build(connector)
}

/// GETs `url`; fails on a non-200 status, a timeout, a body over `body_size_limit_bytes`, or a
/// compressed body.
pub async fn fetch(
    client: &HttpClient,
    url: &str,
    timeout: Duration,
    body_size_limit_bytes: u64,
) -> Result<Vec<u8>, String> {
    let request = hyper::Request::get(url)
        .header(hyper::header::ACCEPT, ACCEPT)
        .header(
            hyper::header::USER_AGENT,
            concat!("agent/", env!("CARGO_PKG_VERSION")),
        )
        .header(
            "X-Prometheus-Scrape-Timeout-Seconds",
            format!("{}", timeout.as_secs_f64()),
        )
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("invalid request: {e}"))?;
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| format!("request failed: {}", error_chain(&e)))?;
        let status = response.status();
        if status != hyper::StatusCode::OK {
            return Err(format!("server returned HTTP status {status}"));
        }
        if let Some(enc) = response.headers().get(hyper::header::CONTENT_ENCODING) {
            if enc.as_bytes() != b"identity" {
                return Err(format!(
                    "unsupported Content-Encoding {:?}; expected none",
                    String::from_utf8_lossy(enc.as_bytes())
                ));
            }
        }
        let mut body = response.into_body();
        let mut buf: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("reading body failed: {}", error_chain(&e)))?;
            if let Ok(data) = frame.into_data() {
                if buf.len() as u64 + data.len() as u64 > body_size_limit_bytes {
                    return Err(format!(
                        "body size limit of {body_size_limit_bytes} bytes exceeded"
                    ));
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(buf)
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "scrape timed out after {}",
            crate::config::format_duration(timeout)
        )),
    }
}

/// An error with its causes, `outer: inner: root`.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}
