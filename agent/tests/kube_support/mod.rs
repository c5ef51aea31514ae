//! A test Kubernetes API server on 127.0.0.1 speaking the list/watch protocol over plain
//! HTTP/1.1 (h2c prior knowledge too, via hyper-util's auto builder), for tests of
//! `discovery.kubernetes` (kube-rs and its runtime `watcher`) and `prometheus.operator.*`.
//! Objects are JSON put in with [`KubeApi::apply`] / [`KubeApi::delete`].
//!
//! What it checks: the bearer token once [`KubeApi::require_bearer_token`] is set (else 401);
//! the path names a served resource in a valid scope (else 404); GET only (else 405);
//! selector syntax and supported field labels, and a numeric `resourceVersion` on watch (else
//! 400). Every error has a v1 `Status` body. Object schemas are not validated: `apply` needs
//! only `apiVersion`, `kind`, `metadata.name`; namespaced kinds without `metadata.namespace`
//! get `"default"`; cluster-scoped kinds lose it.
//!
//! What it implements:
//! - Resources: v1 `pods`, `services`, `endpoints`, `nodes` and `namespaces` (cluster-scoped),
//!   `discovery.k8s.io/v1` `endpointslices`, `networking.k8s.io/v1` `ingresses`,
//!   `monitoring.coreos.com/v1` `podmonitors`, `servicemonitors`, at
//!   `/api/v1[/namespaces/{ns}]/{plural}` and `/apis/{group}/{version}[/namespaces/{ns}]/{plural}`.
//! - One global resourceVersion counter (like etcd's revision, starting at 100). `apply` sets
//!   `metadata.resourceVersion`, and `metadata.uid` when missing (kept on replace); applying
//!   an identical object is a no-op (no new rv, no event), as on a real server.
//! - List: `{Kind}List`, `metadata.resourceVersion` (+ `continue`), items in namespace/name
//!   order; built-in kinds' items omit `apiVersion`/`kind` as the real server does, custom
//!   resources (monitoring.coreos.com) keep them as a CRD's do. `limit`/`continue`: the first
//!   page snapshots the whole result, later pages come from it with its rv (consistent); a
//!   token dropped by [`KubeApi::compact`] (or by 64 newer paged lists) gets 410 `Expired`.
//!   `resourceVersion`/`resourceVersionMatch` are accepted; the current state is served.
//! - `labelSelector`: `a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`, `a notin (x,y)`, `,` =
//!   AND. `fieldSelector`: `=`, `==`, `!=` on `metadata.name`, `metadata.namespace`, and for
//!   pods `spec.nodeName`, `status.phase`, `status.podIP`, `spec.hostNetwork`.
//! - Watch (`watch=true|1`): chunked `application/json`, one `{"type","object"}` per line,
//!   headers sent at once; per watch, events in rv order. `resourceVersion=N`: every retained
//!   event with rv > N, then live ones; N older than the history (after `compact`, or beyond
//!   the last [`HISTORY`] events) gets one `ERROR` event with a 410 `Expired` Status ("too old
//!   resource version: N (M)"), then a clean end. `resourceVersion` unset or `0`: synthetic
//!   `ADDED` for the current matching objects first (the real default; `sendInitialEvents=false`
//!   turns it off). `sendInitialEvents=true` (kube's streaming list): the same from any rv, then
//!   a BOOKMARK annotated `k8s.io/initial-events-end: "true"` if `allowWatchBookmarks=true`.
//!   Selectors filter events as the watch cache does: an object that stops matching gives
//!   `DELETED` (old content, new rv), one that starts matching gives `ADDED`. `timeoutSeconds`
//!   ends the stream cleanly (default [`DEFAULT_WATCH_TIMEOUT`]). A watch more than
//!   [`WATCH_BUFFER`] events behind is closed cleanly, as the API server closes slow watchers.
//! - Controls: [`KubeApi::bookmark`]; [`KubeApi::drop_watches`] aborts the connections
//!   mid-chunk (kube-rs takes that unexpected EOF as a resumable end and watches again from its
//!   last rv, without an error event); [`KubeApi::compact`]; [`KubeApi::stats`];
//!   [`KubeApi::requests`].
//!
//! Not implemented: writes over HTTP, single-object GET, discovery (`/api`, `/apis`),
//! protobuf, periodic server-sent bookmarks, graceful deletion (apply a `deletionTimestamp`
//! yourself), `creationTimestamp`/`generation`, waiting on a future `resourceVersion`.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

/// Events kept for watches resuming from an older resourceVersion.
pub const HISTORY: usize = 10_000;
/// Events buffered per watch before a slow watcher is closed.
pub const WATCH_BUFFER: usize = 1_000;
/// Watch length when the client sends no `timeoutSeconds`.
pub const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(300);
const FIRST_RV: u64 = 100;
const MAX_PAGERS: usize = 64;

/// (apiVersion, plural, kind, namespaced)
#[rustfmt::skip]
const RESOURCES: &[(&str, &str, &str, bool)] = &[
    ("v1", "pods", "Pod", true),
    ("v1", "services", "Service", true),
    ("v1", "endpoints", "Endpoints", true),
    ("v1", "nodes", "Node", false),
    ("v1", "namespaces", "Namespace", false),
    ("discovery.k8s.io/v1", "endpointslices", "EndpointSlice", true),
    ("networking.k8s.io/v1", "ingresses", "Ingress", true),
    ("monitoring.coreos.com/v1", "podmonitors", "PodMonitor", true),
    ("monitoring.coreos.com/v1", "servicemonitors", "ServiceMonitor", true),
];

/// (resource index, namespace or "" for cluster-scoped, name); sorts like etcd keys.
type Key = (usize, String, String);

fn find(pred: impl Fn(&(&str, &str, &str, bool)) -> bool) -> Option<usize> {
    RESOURCES.iter().position(pred)
}

fn key(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Key {
    let res = find(|r| r.0 == api_version && r.2 == kind)
        .unwrap_or_else(|| panic!("kube test server: unsupported {api_version} {kind}"));
    let ns = if RESOURCES[res].3 {
        namespace.unwrap_or("default")
    } else {
        ""
    };
    (res, ns.to_string(), name.to_string())
}

/// Request counters (see [`KubeApi::stats`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// List operations started (requests without a `continue` token) that were served.
    pub lists: u64,
    /// List responses served (every page, including the first).
    pub list_pages: u64,
    /// Watch streams opened (not counting those answered with a 410 ERROR event).
    pub watches_started: u64,
    /// Watches answered with the 410 `Expired` ERROR event.
    pub watches_gone: u64,
    /// Watch streams aborted by [`KubeApi::drop_watches`].
    pub watches_dropped: u64,
    /// Watch streams closed because the client fell [`WATCH_BUFFER`] events behind.
    pub watches_overflowed: u64,
    /// Requests answered 401.
    pub unauthorized: u64,
    /// Watch streams open right now.
    pub open_watches: usize,
}

struct Event {
    rv: u64,
    res: usize,
    deleted: bool,
    /// The new state; for a deletion the last state with the deletion's rv.
    obj: Value,
    /// The state before (None for a creation).
    prev: Option<Value>,
}

/// A label requirement: key, operator ("in", "notin", "exists", "!"), values. `a=b` is
/// `a in (b)`, `a!=b` is `a notin (b)`.
type LabelReq = (String, &'static str, Vec<String>);

struct Filter {
    res: usize,
    namespace: Option<String>,
    labels: Vec<LabelReq>,
    /// (field path, equal?, value)
    fields: Vec<(String, bool, String)>,
}

struct Watch {
    id: u64,
    filter: Filter,
    bookmarks: bool,
    /// Live events with an rv at or below this were already replayed (or predate the watch).
    from: u64,
    tx: mpsc::Sender<Bytes>,
    abort: oneshot::Sender<()>,
}

#[derive(Default)]
struct State {
    rv: u64,
    /// Events with rv <= this are forgotten; watches from older rvs get 410.
    compacted: u64,
    objects: BTreeMap<Key, Value>,
    history: VecDeque<Event>,
    watches: Vec<Watch>,
    next_id: u64,
    /// List snapshots for continue tokens: id -> (rv, all matching items).
    pagers: BTreeMap<u64, (u64, Vec<Value>)>,
    token: Option<String>,
    stats: Stats,
    requests: VecDeque<String>,
}

struct Inner(Mutex<State>);

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct ServerTask(tokio::task::AbortHandle);

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.0.abort(); // also aborts every connection (they live in the task's JoinSet)
    }
}

/// Handle on the test API server; clones share it; the server stops when the last drops.
#[derive(Clone)]
pub struct KubeApi {
    inner: Arc<Inner>,
    addr: SocketAddr,
    _task: Arc<ServerTask>,
}

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

impl KubeApi {
    /// Binds 127.0.0.1:0 and serves on a tokio task.
    pub async fn start() -> KubeApi {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut state = State::default();
        (state.rv, state.compacted) = (FIRST_RV, FIRST_RV);
        let inner = Arc::new(Inner(Mutex::new(state)));
        let server = inner.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    r = listener.accept() => {
                        let Ok((tcp, _)) = r else { continue };
                        let inner = server.clone();
                        let svc = service_fn(move |req| {
                            let resp = handle(&inner, req);
                            async move { Ok::<_, Infallible>(resp) }
                        });
                        let http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                        conns.spawn(async move {
                            let _ = http.serve_connection(TokioIo::new(tcp), svc).await;
                        });
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        let _task = Arc::new(ServerTask(task.abort_handle()));
        KubeApi { inner, addr, _task }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// From now on, requests without `Authorization: Bearer <token>` get 401 (replaces any
    /// earlier token).
    pub fn require_bearer_token(&self, token: &str) {
        self.inner.lock().token = Some(token.to_string());
    }

    /// Creates or replaces the object (by apiVersion, kind, namespace, name) and notifies
    /// matching watches (ADDED or MODIFIED). Panics on an unsupported kind or missing name.
    pub fn apply(&self, mut obj: Value) {
        let text = |v: &Value| v.as_str().map(str::to_string);
        let api_version = text(&obj["apiVersion"]).expect("apiVersion");
        let kind = text(&obj["kind"]).expect("kind");
        let name = text(&obj["metadata"]["name"]).expect("metadata.name");
        let ns = text(&obj["metadata"]["namespace"]);
        let k = key(&api_version, &kind, ns.as_deref(), &name);
        let meta = obj["metadata"].as_object_mut().unwrap();
        match RESOURCES[k.0].3 {
            true => meta.insert("namespace".into(), json!(k.1)),
            false => meta.remove("namespace"),
        };
        let mut st = self.inner.lock();
        let prev = st.objects.get(&k).cloned();
        if meta.get("uid").is_none() {
            let uid = match &prev {
                Some(p) => p["metadata"]["uid"].clone(),
                None => json!(format!("6b756265-7465-4000-8000-{:012x}", st.rv + 1)),
            };
            meta.insert("uid".into(), uid);
        }
        if let Some(p) = &prev {
            let mut old = p.clone();
            old["metadata"]["resourceVersion"] = obj["metadata"]["resourceVersion"].clone();
            if old == obj {
                return; // a no-op update: no new resourceVersion, no event
            }
        }
        st.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(st.rv.to_string());
        st.objects.insert(k.clone(), obj.clone());
        st.record(k.0, false, obj, prev);
    }

    /// Deletes the object (no-op if absent); watches get DELETED with its last state and the
    /// deletion's new resourceVersion.
    pub fn delete(&self, api_version: &str, kind: &str, namespace: Option<&str>, name: &str) {
        let k = key(api_version, kind, namespace, name);
        let mut st = self.inner.lock();
        let Some(prev) = st.objects.remove(&k) else {
            return;
        };
        st.rv += 1;
        let mut obj = prev.clone();
        obj["metadata"]["resourceVersion"] = json!(st.rv.to_string());
        st.record(k.0, true, obj, Some(prev));
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.inner.lock().rv
    }

    /// Aborts every open watch stream mid-stream: the connection is closed without the final
    /// chunk, as when a load balancer or the API server goes away.
    pub fn drop_watches(&self) {
        let mut st = self.inner.lock();
        let watches = std::mem::take(&mut st.watches);
        st.stats.watches_dropped += watches.len() as u64;
        for w in watches {
            let _ = w.abort.send(());
        }
    }

    /// Forgets the event history (and list continue tokens): a later watch from an older
    /// resourceVersion gets the 410 ERROR event, a later continue gets 410.
    pub fn compact(&self) {
        let mut st = self.inner.lock();
        st.compacted = st.rv;
        st.history.clear();
        st.pagers.clear();
    }

    /// Sends a BOOKMARK with the current resourceVersion on every open watch that asked for
    /// `allowWatchBookmarks`.
    pub fn bookmark(&self) {
        let mut st = self.inner.lock();
        let (rv, mut overflowed) = (st.rv, 0);
        st.watches.retain(|w| {
            let line = || event_line("BOOKMARK", &bookmark_object(w.filter.res, rv, false));
            !w.bookmarks || w.from > rv || send(w, line(), &mut overflowed)
        });
        st.stats.watches_overflowed += overflowed;
    }

    pub fn stats(&self) -> Stats {
        let st = self.inner.lock();
        let mut stats = st.stats.clone();
        stats.open_watches = st.watches.len();
        stats
    }

    pub fn open_watches(&self) -> usize {
        self.inner.lock().watches.len()
    }

    /// Waits until at least `n` watches are open; false on timeout.
    pub async fn wait_open_watches(&self, n: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.open_watches() < n {
            if tokio::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Request lines as received, e.g. `GET /api/v1/pods?labelSelector=app%3Dweb&limit=500`
    /// (query left percent-encoded; the last 10,000).
    pub fn requests(&self) -> Vec<String> {
        self.inner.lock().requests.iter().cloned().collect()
    }
}

impl State {
    /// Appends an event to the history and queues it on every watch that sees it.
    fn record(&mut self, res: usize, deleted: bool, obj: Value, prev: Option<Value>) {
        let ev = Event {
            rv: self.rv,
            res,
            deleted,
            obj,
            prev,
        };
        let mut overflowed = 0;
        self.watches.retain(|w| match convert(&ev, &w.filter) {
            Some((t, obj)) if ev.rv > w.from => send(w, event_line(t, &obj), &mut overflowed),
            _ => true,
        });
        self.stats.watches_overflowed += overflowed;
        self.history.push_back(ev);
        if self.history.len() > HISTORY {
            self.compacted = self.history.pop_front().map_or(self.compacted, |e| e.rv);
        }
    }
}

/// Queues a line on a watch; false (drop the watch, ending its stream) if it is gone or full.
fn send(w: &Watch, line: Bytes, overflowed: &mut u64) -> bool {
    let sent = w.tx.try_send(line);
    *overflowed += matches!(sent, Err(mpsc::error::TrySendError::Full(_))) as u64;
    sent.is_ok()
}

/// What a watch with `f` sees of `ev`, as the API server's watch cache decides it.
fn convert(ev: &Event, f: &Filter) -> Option<(&'static str, Value)> {
    if ev.res != f.res {
        return None;
    }
    let cur = !ev.deleted && f.matches(&ev.obj);
    let old = ev.prev.as_ref().is_some_and(|p| f.matches(p));
    match (cur, old) {
        (true, false) => Some(("ADDED", ev.obj.clone())),
        (true, true) => Some(("MODIFIED", ev.obj.clone())),
        (false, true) => {
            let mut o = ev.prev.clone().unwrap();
            o["metadata"]["resourceVersion"] = json!(ev.rv.to_string());
            Some(("DELETED", o))
        }
        (false, false) => None,
    }
}

fn event_line(t: &str, obj: &Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({ "type": t, "object": obj })).unwrap();
    v.push(b'\n');
    Bytes::from(v)
}

fn bookmark_object(res: usize, rv: u64, initial_end: bool) -> Value {
    let mut meta = json!({ "resourceVersion": rv.to_string() });
    if initial_end {
        meta["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
    }
    json!({ "kind": RESOURCES[res].2, "apiVersion": RESOURCES[res].0, "metadata": meta })
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    })
}

fn respond(code: u16, body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() = hyper::StatusCode::from_u16(code).unwrap();
    let json = hyper::header::HeaderValue::from_static("application/json");
    resp.headers_mut().insert(hyper::header::CONTENT_TYPE, json);
    resp
}

fn reply(code: u16, body: &Value) -> Response<Body> {
    let body = Full::new(Bytes::from(body.to_string())).map_err(|e: Infallible| match e {});
    respond(code, body.boxed_unsync())
}

fn fail(code: u16, reason: &str, message: &str) -> Response<Body> {
    reply(code, &status(code, reason, message))
}

fn handle(inner: &Arc<Inner>, req: Request<hyper::body::Incoming>) -> Response<Body> {
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut st = inner.lock();
    if st.requests.len() >= 10_000 {
        st.requests.pop_front();
    }
    st.requests.push_back(format!("{} {target}", req.method()));
    if let Some(token) = &st.token {
        let auth = req.headers().get("authorization").map(|v| v.as_bytes());
        if auth != Some(format!("Bearer {token}").as_bytes()) {
            st.stats.unauthorized += 1;
            return fail(401, "Unauthorized", "Unauthorized");
        }
    }
    if req.method() != Method::GET {
        return fail(405, "MethodNotAllowed", "only list and watch are served");
    }
    let Some((res, namespace)) = route(req.uri().path()) else {
        const MSG: &str = "the server could not find the requested resource";
        return fail(404, "NotFound", MSG);
    };
    let q = parse_query(req.uri().query().unwrap_or(""));
    let arg = |k: &str| q.get(k).map_or("", String::as_str);
    let filter = match Filter::new(res, namespace, arg("labelSelector"), arg("fieldSelector")) {
        Ok(f) => f,
        Err(msg) => return fail(400, "BadRequest", &msg),
    };
    if matches!(arg("watch"), "true" | "1") {
        watch(inner, &mut st, filter, &q)
    } else {
        list(&mut st, &filter, &q)
    }
}

fn route(path: &str) -> Option<(usize, Option<String>)> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (api_version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => (v.to_string(), rest),
        ["apis", g, v, rest @ ..] => (format!("{g}/{v}"), rest),
        _ => return None,
    };
    let (namespace, plural) = match rest {
        [p] => (None, *p),
        ["namespaces", ns, p] => (Some(ns.to_string()), *p),
        _ => return None,
    };
    let i = find(|r| r.0 == api_version && r.1 == plural)?;
    (namespace.is_none() || RESOURCES[i].3).then_some((i, namespace))
}

type Query = BTreeMap<String, String>;

/// A positive number parameter.
fn number(q: &Query, k: &str) -> Option<u64> {
    q.get(k).and_then(|v| v.parse().ok()).filter(|&n| n > 0)
}

fn parse_query(q: &str) -> Query {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        let (b, mut out, mut i) = (s.as_bytes(), Vec::new(), 0);
        while i < b.len() {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3).unwrap_or(b"")).unwrap_or("");
            match (b[i], u8::from_str_radix(hex, 16)) {
                (b'%', Ok(v)) => (out.push(v), i += 3),
                (c, _) => (out.push(c), i += 1),
            };
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    let pairs = q.split('&').filter(|p| !p.is_empty());
    pairs
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn list(st: &mut State, f: &Filter, q: &Query) -> Response<Body> {
    let limit = number(q, "limit").map(|l| l as usize);
    let (id, offset) = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let parsed = token.strip_prefix('p').and_then(|t| t.split_once('.'));
            let parsed = parsed.and_then(|(i, o)| Some((i.parse().ok()?, o.parse().ok()?)));
            let Some((id, offset)) = parsed else {
                return fail(400, "BadRequest", "continue key is not valid");
            };
            if !st.pagers.contains_key(&id) {
                let msg = "The provided continue parameter is too old to display a consistent \
                           list result. You can start a new list without the continue parameter.";
                return fail(410, "Expired", msg);
            }
            (id, offset)
        }
        None => {
            st.stats.lists += 1;
            let custom = RESOURCES[f.res].0.starts_with("monitoring.coreos.com/");
            let items = st.matching(f).map(|v| {
                let mut v = v.clone();
                if !custom {
                    // Built-in list items come without apiVersion/kind; a CRD's keep them.
                    let o = v.as_object_mut().unwrap();
                    (o.remove("apiVersion"), o.remove("kind"));
                }
                v
            });
            let items = items.collect();
            let (id, rv) = (st.next_id, st.rv);
            st.next_id += 1;
            st.pagers.insert(id, (rv, items));
            (id, 0)
        }
    };
    st.stats.list_pages += 1;
    let (rv, items) = &st.pagers[&id];
    let end = limit.map_or(items.len(), |l| (offset + l).min(items.len()));
    let page = items.get(offset.min(end)..end).unwrap_or_default().to_vec();
    let mut meta = json!({ "resourceVersion": rv.to_string() });
    if end < items.len() {
        meta["continue"] = json!(format!("p{id}.{end}"));
    } else {
        st.pagers.remove(&id);
    }
    while st.pagers.len() > MAX_PAGERS {
        st.pagers.pop_first();
    }
    let (api_version, _, kind, _) = RESOURCES[f.res];
    let body = json!({
        "apiVersion": api_version, "kind": format!("{kind}List"), "metadata": meta, "items": page,
    });
    reply(200, &body)
}

fn watch(inner: &Arc<Inner>, st: &mut State, f: Filter, q: &Query) -> Response<Body> {
    let from = match q.get("resourceVersion").map(String::as_str) {
        None | Some("") | Some("0") => None,
        Some(s) => match s.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => return fail(400, "BadRequest", &format!("invalid resourceVersion {s:?}")),
        },
    };
    let flag = |k: &str| q.get(k).map(|v| v == "true" || v == "1");
    let bookmarks = flag("allowWatchBookmarks").unwrap_or(false);
    let initial = flag("sendInitialEvents").unwrap_or(from.is_none());
    let timeout = number(q, "timeoutSeconds").map_or(DEFAULT_WATCH_TIMEOUT, Duration::from_secs);
    let mut prefix = VecDeque::new();
    let gone = from.filter(|&n| n < st.compacted && !initial);
    if let Some(n) = gone {
        st.stats.watches_gone += 1;
        let msg = format!("too old resource version: {n} ({})", st.compacted);
        prefix.push_back(event_line("ERROR", &status(410, "Expired", &msg)));
    } else if initial {
        prefix.extend(st.matching(&f).map(|v| event_line("ADDED", v)));
        if flag("sendInitialEvents") == Some(true) && bookmarks {
            let end = bookmark_object(f.res, st.rv, true);
            prefix.push_back(event_line("BOOKMARK", &end));
        }
    } else if let Some(n) = from {
        let since = st.history.iter().filter(|e| e.rv > n);
        let seen = since.filter_map(|e| convert(e, &f));
        prefix.extend(seen.map(|(t, o)| event_line(t, &o)));
    }
    let (tx, rx) = mpsc::channel(WATCH_BUFFER);
    let (abort, abort_rx) = oneshot::channel();
    let mut guard = None; // for a 410 both senders drop here: the stream ends after the ERROR
    if gone.is_none() {
        let from = from.filter(|_| !initial).unwrap_or(0).max(st.rv);
        let id = st.next_id;
        st.next_id += 1;
        st.watches.push(Watch {
            id,
            filter: f,
            bookmarks,
            from,
            tx,
            abort,
        });
        st.stats.watches_started += 1;
        guard = Some(WatchGuard(inner.clone(), id));
    }
    let deadline = tokio::time::Instant::now() + timeout;
    stream_reply(WatchStream {
        prefix,
        rx,
        abort: Some(abort_rx),
        deadline,
        _guard: guard,
    })
}

/// Unregisters a watch (by id) when its response body is dropped (client gone, stream ended).
struct WatchGuard(Arc<Inner>, u64);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.lock().watches.retain(|w| w.id != self.1);
    }
}

struct WatchStream {
    /// Lines sent before the live ones (replayed or initial events, or the 410 ERROR).
    prefix: VecDeque<Bytes>,
    rx: mpsc::Receiver<Bytes>,
    /// Fires on drop_watches(); its sender dropped unfired means the watch was unregistered.
    abort: Option<oneshot::Receiver<()>>,
    deadline: tokio::time::Instant,
    _guard: Option<WatchGuard>,
}

fn stream_reply(ws: WatchStream) -> Response<Body> {
    let stream = futures_util::stream::unfold(ws, |mut ws| async move {
        if let Some(line) = ws.prefix.pop_front() {
            return Some((Ok(Frame::data(line)), ws));
        }
        loop {
            tokio::select! {
                biased;
                r = async { ws.abort.as_mut().unwrap().await }, if ws.abort.is_some() => match r {
                    Ok(()) => {
                        (ws.abort, ws.rx) = (None, mpsc::channel(1).1); // nothing after this
                        let err = std::io::Error::other("watch dropped by the test server");
                        return Some((Err(err), ws)); // an error frame: hyper drops the connection
                    }
                    Err(_) => ws.abort = None, // unregistered: send what is queued, then end
                },
                line = ws.rx.recv() => return line.map(|l| (Ok(Frame::data(l)), ws)),
                _ = tokio::time::sleep_until(ws.deadline) => return None,
            }
        }
    });
    respond(200, StreamBody::new(stream).boxed_unsync())
}

impl Filter {
    fn new(res: usize, ns: Option<String>, labels: &str, fields: &str) -> Result<Filter, String> {
        let labels = split_top(labels).into_iter().map(parse_label_req);
        let mut f = Filter {
            res,
            namespace: ns,
            labels: labels.collect::<Result<_, _>>()?,
            fields: Vec::new(),
        };
        let pod_fields = "spec.nodeName status.phase status.podIP spec.hostNetwork";
        for term in fields.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, eq, value) = match term.split_once("!=") {
                Some((k, v)) => (k.trim(), false, v),
                None => match term.split_once("==").or_else(|| term.split_once('=')) {
                    Some((k, v)) => (k.trim(), true, v),
                    None => return Err(format!("invalid selector: {fields:?}")),
                },
            };
            let ok = ["metadata.name", "metadata.namespace"].contains(&field)
                || (RESOURCES[res].2 == "Pod" && pod_fields.split(' ').any(|p| p == field));
            if !ok {
                return Err(format!("field label not supported: {field}"));
            }
            let value = value.trim().to_string();
            f.fields.push((field.to_string(), eq, value));
        }
        Ok(f)
    }

    fn matches(&self, obj: &Value) -> bool {
        let meta = &obj["metadata"];
        let ns_ok = match &self.namespace {
            Some(ns) => meta["namespace"] == ns.as_str(),
            None => true,
        };
        let labels_ok = self.labels.iter().all(|(k, op, values)| {
            let label = meta["labels"].get(k).and_then(Value::as_str);
            let listed = label.is_some_and(|l| values.iter().any(|v| v == l));
            match *op {
                "in" => listed,
                "notin" => !listed,
                "exists" => label.is_some(),
                _ => label.is_none(),
            }
        });
        let fields_ok = self.fields.iter().all(|(path, eq, want)| {
            let got = match path.split('.').fold(obj, |v, seg| &v[seg]) {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (got == *want) == *eq
        });
        ns_ok && labels_ok && fields_ok
    }
}

impl State {
    /// Stored objects that `f` selects, in key order.
    fn matching<'a>(&'a self, f: &'a Filter) -> impl Iterator<Item = &'a Value> + 'a {
        let objects = self.objects.iter().filter(|(k, _)| k.0 == f.res);
        objects.map(|(_, v)| v).filter(|v| f.matches(v))
    }
}

/// Splits on commas outside parentheses; empty input gives no terms.
fn split_top(s: &str) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for piece in s.split(',').filter(|_| !s.trim().is_empty()) {
        match terms.last_mut() {
            Some(t) if t.matches('(').count() > t.matches(')').count() => {
                *t += &format!(",{piece}")
            }
            _ => terms.push(piece.to_string()),
        }
    }
    terms
}

fn parse_label_req(t: String) -> Result<LabelReq, String> {
    let t = t.trim();
    let err = || format!("unable to parse requirement: {t:?}");
    let word = |s: &str, extra: &str| {
        let s = s.trim();
        let ok = s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(c));
        ok.then(|| s.to_string()).ok_or_else(err)
    };
    let key = |k: &str| word(k, "-_./").and_then(|k| (!k.is_empty()).then_some(k).ok_or_else(err));
    let value = |v: &str| word(v, "-_.");
    if let Some(k) = t.strip_prefix('!') {
        return Ok((key(k)?, "!", Vec::new()));
    }
    if let Some(p) = t.find('(') {
        let inner = t[p + 1..].strip_suffix(')').ok_or_else(err)?;
        let values = inner.split(',').map(value).collect::<Result<Vec<_>, _>>()?;
        let mut head = t[..p].split_whitespace();
        let (k, op) = (key(head.next().unwrap_or(""))?, head.next());
        return match (op, head.next()) {
            (Some("in"), None) => Ok((k, "in", values)),
            (Some("notin"), None) => Ok((k, "notin", values)),
            _ => Err(err()),
        };
    }
    if let Some((k, v)) = t.split_once("!=") {
        Ok((key(k)?, "notin", vec![value(v)?]))
    } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
        Ok((key(k)?, "in", vec![value(v)?]))
    } else {
        Ok((key(t)?, "exists", Vec::new()))
    }
}
