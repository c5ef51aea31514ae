//! The agent's HTTP surface on its one listener (HTTP/1.1 and h2c, served by
//! [`runtime::server::serve`]):
//!
//! | path                                | what                                              |
//! |-------------------------------------|---------------------------------------------------|
//! | `POST /api/v1/ckit/transport/*`     | cluster transport (HTTP/2 only; 404 when clustering is disabled) |
//! | `GET /api/v0/web/peers`             | `[{"name","addr","isSelf","state"}]`, live members sorted by name |
//! | `GET /api/v0/web/peers?members=all` | every member, tombstones included, with `status`, `incarnation`, `lamport` |
//! | `GET /api/v0/web/cluster`           | this node: name, address, state, join situation, readiness |
//! | `GET /` and `GET /clustering`       | the clustering page (assets embedded, no external requests) |
//! | `GET /metrics`                      | Prometheus metrics ([`crate::metrics`])           |
//! | `GET /-/ready`                      | 200 when participant and not waiting for size, else 503 and why |
//! | `GET /-/healthy`                    | 200 while the process serves                      |
//! | `POST /-/reload`                    | re-read the configuration file                    |
//!
//! Handlers only read shared status and answer; the lifecycle lives in [`crate::run`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::registry::Registry;
use runtime::server::{handle_transport, is_transport_path, text, Body};
use runtime::JoinStatus;
use serde::Serialize;

use crate::status::Status;

const PAGE_HTML: &str = include_str!("web/clustering.html");
const PAGE_JS: &str = include_str!("web/clustering.js");
const PAGE_CSS: &str = include_str!("web/clustering.css");

/// Everything the handlers need.
pub struct Http {
    pub status: Arc<Status>,
    pub registry: Registry,
    /// Re-reads the configuration file (`/-/reload`); `Err` carries the reason.
    pub reload: Box<dyn Fn() -> Result<String, String> + Send + Sync>,
    /// `/-/reload`'s token bucket: tokens left and when it was last refilled.
    pub reload_budget: std::sync::Mutex<(f64, Option<std::time::Instant>)>,
}

/// `/-/reload` may run [`RELOADS_BURST`] times in a row, then once per second; more get 429
/// (a reload re-reads files and may restart components: a client in a loop must not keep the
/// node busy, a person fixing a file and reloading again is never refused).
pub const RELOADS_BURST: f64 = 5.0;

/// One entry of `GET /api/v0/web/peers` (Grafana Agent's shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Peer {
    pub name: String,
    pub addr: String,
    #[serde(rename = "isSelf")]
    pub is_self: bool,
    pub state: String,
    /// With `?members=all` only: alive, suspect, dead or left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// With `?members=all` only: the SWIM incarnation this node holds for the member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incarnation: Option<u64>,
    /// With `?members=all` only: the Lamport time of the member's latest state this node holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lamport: Option<u64>,
}

/// `GET /api/v0/web/cluster`: this node, for the page.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    pub name: String,
    pub addr: String,
    pub state: String,
    pub clustering: bool,
    pub cluster_name: String,
    pub join_addresses: Vec<String>,
    /// seed, joining, joined, alone or rejected.
    pub join_status: &'static str,
    pub join_summary: String,
    /// Join addresses were given but no other member is alive.
    pub alone: bool,
    pub live_members: usize,
    pub ready: bool,
    pub ready_reason: String,
    pub lamport: u64,
    pub health_score: u32,
    pub config_sha256: Option<String>,
}

/// Live (alive or suspect) members, sorted by name (Grafana Agent's answer). With `all`, every
/// member this node knows, dead and left tombstones included, each with its membership status,
/// incarnation and Lamport time: what an outside observer needs to check the protocol's
/// invariants (the simulator's process engine reads it).
pub fn peers(status: &Status, all: bool) -> Vec<Peer> {
    let view = status.handle.view();
    view.members
        .iter()
        .filter(|m| all || matches!(m.status, cluster::Status::Alive | cluster::Status::Suspect))
        .map(|m| Peer {
            name: m.name.clone(),
            addr: m.addr.clone(),
            is_self: m.is_self,
            state: m.state.as_str().to_string(),
            status: all.then(|| m.status.as_str().to_string()),
            incarnation: all.then_some(m.incarnation),
            lamport: all.then_some(m.lamport),
        })
        .collect()
}

/// `?members=all` (among other query parameters).
fn wants_all_members(query: Option<&str>) -> bool {
    query.unwrap_or("").split('&').any(|kv| kv == "members=all")
}

pub fn node_info(status: &Status) -> NodeInfo {
    let view = status.handle.view();
    let readiness = status.phase().readiness();
    NodeInfo {
        name: view.name.clone(),
        addr: view.addr.clone(),
        state: view.state.as_str().to_string(),
        clustering: status.clustering,
        cluster_name: status.cluster_name.clone(),
        join_addresses: status.join_addresses.clone(),
        join_status: match view.join {
            JoinStatus::Seed => "seed",
            JoinStatus::Joining => "joining",
            JoinStatus::Joined { .. } => "joined",
            JoinStatus::Alone { .. } => "alone",
            JoinStatus::Rejected { .. } => "rejected",
        },
        join_summary: status.join_summary(&view),
        alone: status.alone(&view),
        live_members: crate::status::live_count(&view),
        ready: readiness.is_ok(),
        ready_reason: readiness.err().unwrap_or_default(),
        lamport: view.lamport,
        health_score: view.health_score,
        config_sha256: status.config_status().sha256,
    }
}

fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, content_type)
        .header(CACHE_CONTROL, "no-store")
        .body(Full::new(body.into()))
        .expect("static response parts are valid")
}

fn json<T: Serialize>(v: &T) -> Response<Body> {
    let body = serde_json::to_vec(v).expect("API types serialize");
    respond(StatusCode::OK, "application/json", body)
}

/// The router handed to [`runtime::server::serve`].
pub fn router(
    http: Arc<Http>,
) -> impl Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>>
       + Clone
       + Send
       + Sync
       + 'static {
    move |req: Request<Incoming>| {
        let http = http.clone();
        Box::pin(async move { route(&http, req).await })
    }
}

async fn route(http: &Http, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    if is_transport_path(&path) {
        if !http.status.clustering {
            return text(
                StatusCode::NOT_FOUND,
                "clustering is disabled on this node (--cluster.enabled)",
            );
        }
        return handle_transport(&http.status.handle, req).await;
    }
    let method = req.method().clone();
    if path == "/-/reload" {
        if method != Method::POST && method != Method::GET {
            return text(StatusCode::METHOD_NOT_ALLOWED, "use POST");
        }
        {
            let mut b = http.reload_budget.lock().unwrap();
            let now = std::time::Instant::now();
            let refill =
                b.1.map_or(RELOADS_BURST, |t| now.duration_since(t).as_secs_f64());
            b.0 = (b.0 + refill).min(RELOADS_BURST);
            b.1 = Some(now);
            if b.0 < 1.0 {
                return text(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many reloads; at most one per second after a burst of 5",
                );
            }
            b.0 -= 1.0;
        }
        return match (http.reload)() {
            Ok(msg) => text(StatusCode::OK, msg),
            Err(e) => text(StatusCode::BAD_REQUEST, e),
        };
    }
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use GET");
    }
    match path.as_str() {
        "/api/v0/web/peers" => json(&peers(&http.status, wants_all_members(req.uri().query()))),
        "/api/v0/web/cluster" => json(&node_info(&http.status)),
        "/" | "/clustering" => respond(StatusCode::OK, "text/html; charset=utf-8", PAGE_HTML),
        "/web/clustering.js" => respond(StatusCode::OK, "text/javascript; charset=utf-8", PAGE_JS),
        "/web/clustering.css" => respond(StatusCode::OK, "text/css; charset=utf-8", PAGE_CSS),
        "/metrics" => {
            let accept = req
                .headers()
                .get(hyper::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let (body, content_type) = crate::metrics::render(&http.registry, accept);
            respond(StatusCode::OK, content_type, body)
        }
        "/-/ready" => match http.status.phase().readiness() {
            Ok(()) => text(StatusCode::OK, "ready"),
            Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, why),
        },
        "/-/healthy" => text(StatusCode::OK, "healthy"),
        _ => text(StatusCode::NOT_FOUND, format!("not found: {path}")),
    }
}
