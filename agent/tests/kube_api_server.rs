//! Self-test of the test Kubernetes API server in `kube_support`, with a hand-written
//! HTTP/1.1 client (chunked bodies read line by line, as a watch client does).
mod kube_support;

use std::io::{Error, ErrorKind};
use std::time::Duration;

use kube_support::KubeApi;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const T: Duration = Duration::from_secs(5);

/// A Pod as in the API reference (core/v1 Pod).
fn pod(name: &str, namespace: &str, labels: Value, node: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {"prometheus.io/scrape": "true"},
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d8f",
                "uid": "0f2a3c4d-1111-4222-8333-444455556666", "controller": true,
            }],
        },
        "spec": {
            "nodeName": node,
            "containers": [{
                "name": "app",
                "image": "registry.example/app:1.0",
                "ports": [{"name": "metrics", "containerPort": 9100, "protocol": "TCP"}],
            }],
        },
        "status": {
            "phase": "Running",
            "podIP": "10.244.0.7",
            "hostIP": "192.168.1.10",
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    })
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct Conn {
    r: BufReader<TcpStream>,
    status: u16,
    chunked: bool,
    length: usize,
    buf: Vec<u8>,
}

async fn open(api: &KubeApi, target: &str, token: Option<&str>) -> Conn {
    let addr = api.url().trim_start_matches("http://").to_string();
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let head =
        format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\n{auth}\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    tokio::time::timeout(T, r.read_line(&mut line))
        .await
        .expect("response headers")
        .unwrap();
    let status = line
        .split_whitespace()
        .nth(1)
        .expect("status")
        .parse()
        .unwrap();
    let (mut chunked, mut length) = (false, 0);
    loop {
        line.clear();
        r.read_line(&mut line).await.unwrap();
        let l = line.trim_end().to_ascii_lowercase();
        if l.is_empty() {
            break;
        }
        chunked |= l == "transfer-encoding: chunked";
        if let Some(n) = l.strip_prefix("content-length: ") {
            length = n.parse().unwrap();
        }
    }
    Conn {
        r,
        status,
        chunked,
        length,
        buf: Vec::new(),
    }
}

impl Conn {
    /// The next line of a chunked body: `Ok(None)` at the final chunk, `Err` if the connection
    /// broke first.
    async fn next_line(&mut self) -> std::io::Result<Option<String>> {
        loop {
            if let Some(p) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=p).collect();
                return Ok(Some(String::from_utf8_lossy(&line).trim_end().to_string()));
            }
            let mut size = String::new();
            if self.r.read_line(&mut size).await? == 0 {
                return Err(Error::new(
                    ErrorKind::UnexpectedEof,
                    "connection closed mid-body",
                ));
            }
            let n = usize::from_str_radix(size.trim(), 16)
                .map_err(|e| Error::new(ErrorKind::InvalidData, e))?;
            let mut data = vec![0; n + 2];
            self.r.read_exact(&mut data).await?;
            if n == 0 {
                let rest = String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned();
                return Ok((!rest.is_empty()).then_some(rest));
            }
            self.buf.extend_from_slice(&data[..n]);
        }
    }

    async fn json(mut self) -> Value {
        let text = if self.chunked {
            let mut all = String::new();
            while let Some(l) = self.next_line().await.unwrap() {
                all.push_str(&l);
            }
            all
        } else {
            let mut body = vec![0; self.length];
            self.r.read_exact(&mut body).await.unwrap();
            String::from_utf8(body).unwrap()
        };
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }

    /// The next watch event (panics if the stream ends, breaks or stalls).
    async fn event(&mut self) -> Value {
        let line = tokio::time::timeout(T, self.next_line())
            .await
            .expect("event in time");
        serde_json::from_str(&line.expect("stream open").expect("stream not ended")).unwrap()
    }
}

async fn get(api: &KubeApi, target: &str) -> (u16, Value) {
    let c = open(api, target, None).await;
    (c.status, c.json().await)
}

fn names(list: &Value) -> Vec<&str> {
    let items = list["items"].as_array().unwrap();
    items
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect()
}

fn rv(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn four_pods() -> KubeApi {
    let api = KubeApi::start().await;
    api.apply(pod(
        "web-1",
        "default",
        json!({"app": "web", "tier": "front"}),
        "node-a",
    ));
    api.apply(pod("web-2", "default", json!({"app": "web"}), "node-b"));
    api.apply(pod("db-1", "default", json!({"app": "db"}), "node-a"));
    api.apply(pod(
        "dns",
        "kube-system",
        json!({"k8s-app": "dns"}),
        "node-b",
    ));
    api
}

#[tokio::test]
async fn list_selectors_and_paging() {
    let api = four_pods().await;
    let (code, l) = get(
        &api,
        &format!("/api/v1/pods?labelSelector={}", enc("app=web")),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        (&l["apiVersion"], &l["kind"]),
        (&json!("v1"), &json!("PodList"))
    );
    assert_eq!(names(&l), ["web-1", "web-2"]);
    assert_eq!(rv(&l), api.resource_version());
    assert!(
        l["items"][0].get("kind").is_none(),
        "built-in list items omit kind"
    );
    assert_eq!(
        l["items"][0]["spec"]["containers"][0]["ports"][0]["containerPort"],
        9100
    );
    for (sel, want) in [
        ("app in (web,db),tier!=front", vec!["db-1", "web-2"]),
        ("app==db", vec!["db-1"]),
        ("!app", vec!["dns"]),
        ("app notin (web)", vec!["db-1", "dns"]),
        ("tier", vec!["web-1"]),
    ] {
        let (_, l) = get(&api, &format!("/api/v1/pods?labelSelector={}", enc(sel))).await;
        assert_eq!(names(&l), want, "labelSelector {sel}");
    }
    let fields = enc("spec.nodeName=node-a,metadata.namespace!=kube-system");
    let (_, l) = get(&api, &format!("/api/v1/pods?fieldSelector={fields}")).await;
    assert_eq!(names(&l), ["db-1", "web-1"]);
    let (_, l) = get(&api, "/api/v1/namespaces/kube-system/pods").await;
    assert_eq!(names(&l), ["dns"]);
    let (code, s) = get(
        &api,
        &format!("/api/v1/pods?fieldSelector={}", enc("spec.foo=x")),
    )
    .await;
    assert_eq!(
        (code, &s["kind"], &s["reason"]),
        (400, &json!("Status"), &json!("BadRequest"))
    );
    for path in [
        "/api/v1/namespaces/default/nodes",
        "/api/v1/widgets",
        "/apis/x/v1/pods",
    ] {
        let (code, s) = get(&api, path).await;
        assert_eq!((code, &s["reason"]), (404, &json!("NotFound")), "{path}");
    }

    // Paging: limit=1, every item once, all pages at the first page's rv, even if objects
    // change between pages.
    let before = api.stats();
    let (mut seen, mut token, mut page_rvs) = (Vec::new(), String::new(), Vec::new());
    loop {
        let (code, l) = get(
            &api,
            &format!("/api/v1/pods?limit=1&continue={}", enc(&token)),
        )
        .await;
        assert_eq!(code, 200);
        assert_eq!(l["items"].as_array().unwrap().len(), 1);
        seen.extend(names(&l).iter().map(|n| n.to_string()));
        page_rvs.push(rv(&l));
        api.apply(pod(
            &format!("late-{}", seen.len()),
            "default",
            json!({}),
            "node-a",
        ));
        match l["metadata"]["continue"].as_str() {
            Some(t) => token = t.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, ["db-1", "web-1", "web-2", "dns"]);
    assert!(page_rvs.iter().all(|&r| r == page_rvs[0]), "{page_rvs:?}");
    let after = api.stats();
    assert_eq!(
        (
            after.lists - before.lists,
            after.list_pages - before.list_pages
        ),
        (1, 4)
    );

    // A custom resource's list items keep apiVersion/kind; nodes are cluster-scoped.
    api.apply(json!({
        "apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "podMetricsEndpoints": [{"port": "metrics"}]},
    }));
    api.apply(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a", "namespace": "x"}}));
    let (_, l) = get(
        &api,
        "/apis/monitoring.coreos.com/v1/namespaces/default/podmonitors",
    )
    .await;
    assert_eq!(
        (&l["kind"], &l["items"][0]["kind"]),
        (&json!("PodMonitorList"), &json!("PodMonitor"))
    );
    let (_, l) = get(&api, "/api/v1/nodes").await;
    assert_eq!(names(&l), ["node-a"]);
    assert!(l["items"][0]["metadata"].get("namespace").is_none());
}

#[tokio::test]
async fn watch_order_resume_selectors_and_gone() {
    let api = four_pods().await;
    let (_, l) = get(&api, "/api/v1/namespaces/default/pods").await;
    let rv0 = rv(&l);
    let target = format!("/api/v1/namespaces/default/pods?watch=true&resourceVersion={rv0}&allowWatchBookmarks=true&timeoutSeconds=30");
    let mut w = open(&api, &target, None).await;
    assert_eq!(w.status, 200);
    assert!(w.chunked);
    api.apply(pod("new", "default", json!({"app": "web"}), "node-a"));
    api.apply(pod("elsewhere", "other", json!({"app": "web"}), "node-a")); // other namespace
    api.apply(pod(
        "new",
        "default",
        json!({"app": "web", "v": "2"}),
        "node-a",
    ));
    api.delete("v1", "Pod", Some("default"), "new");
    api.bookmark();
    let mut last = rv0;
    for want in ["ADDED", "MODIFIED", "DELETED", "BOOKMARK"] {
        let e = w.event().await;
        assert_eq!(e["type"], want, "{e}");
        if want != "BOOKMARK" {
            assert_eq!(e["object"]["metadata"]["name"], "new");
            assert_eq!(e["object"]["kind"], "Pod");
        }
        let ordered = rv(&e["object"]) > last || (want == "BOOKMARK" && rv(&e["object"]) == last);
        assert!(ordered, "rv order: {e}");
        last = rv(&e["object"]);
    }
    assert_eq!(last, api.resource_version());

    // Resuming from the list's rv replays what happened since, in order.
    let mut again = open(&api, &target, None).await;
    for want in ["ADDED", "MODIFIED", "DELETED"] {
        assert_eq!(again.event().await["type"], want);
    }

    // Selectors on watches: stop matching -> DELETED, match again -> ADDED.
    let sel = enc("app=web");
    let now = api.resource_version();
    let mut s = open(
        &api,
        &format!("/api/v1/pods?watch=1&labelSelector={sel}&resourceVersion={now}"),
        None,
    )
    .await;
    api.apply(pod("web-2", "default", json!({"app": "db"}), "node-b"));
    api.apply(pod("web-2", "default", json!({"app": "web"}), "node-b"));
    let (gone, back) = (s.event().await, s.event().await);
    assert_eq!(
        (&gone["type"], &gone["object"]["metadata"]["labels"]["app"]),
        (&json!("DELETED"), &json!("web"))
    );
    assert_eq!(
        (&back["type"], &back["object"]["metadata"]["name"]),
        (&json!("ADDED"), &json!("web-2"))
    );

    // No resourceVersion: synthetic ADDED for current objects first.
    let mut fresh = open(&api, "/api/v1/namespaces/kube-system/pods?watch=true", None).await;
    assert_eq!(fresh.event().await["object"]["metadata"]["name"], "dns");
    // Streaming list (kube's InitialListStrategy::StreamingList): initial events, then a
    // BOOKMARK marking their end.
    let q = "watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&resourceVersion=0";
    let mut streaming = open(
        &api,
        &format!("/api/v1/namespaces/kube-system/pods?{q}"),
        None,
    )
    .await;
    assert_eq!(streaming.event().await["type"], "ADDED");
    let end = streaming.event().await;
    assert_eq!(end["type"], "BOOKMARK");
    assert_eq!(
        end["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );

    // After compaction an old rv gets the 410 ERROR event, then a clean end.
    api.compact();
    let mut old = open(&api, &target, None).await;
    assert_eq!(old.status, 200);
    let e = old.event().await;
    assert_eq!(e["type"], "ERROR");
    assert_eq!(
        (&e["object"]["code"], &e["object"]["reason"]),
        (&json!(410), &json!("Expired"))
    );
    assert!(e["object"]["message"]
        .as_str()
        .unwrap()
        .starts_with(&format!("too old resource version: {rv0} (")));
    assert!(tokio::time::timeout(T, old.next_line())
        .await
        .unwrap()
        .unwrap()
        .is_none());
    assert_eq!(api.stats().watches_gone, 1);
}

#[tokio::test]
async fn drop_watches_breaks_streams_and_timeouts_end_them() {
    let api = four_pods().await;
    let now = api.resource_version();
    let mut w = open(
        &api,
        &format!("/api/v1/pods?watch=true&resourceVersion={now}"),
        None,
    )
    .await;
    assert!(api.wait_open_watches(1, T).await);
    api.drop_watches();
    let r = tokio::time::timeout(T, w.next_line())
        .await
        .expect("broken in time");
    assert!(r.is_err(), "stream must break, not end cleanly: {r:?}");
    let stats = api.stats();
    assert_eq!((stats.watches_dropped, stats.open_watches), (1, 0));

    let target = format!("/api/v1/pods?watch=true&resourceVersion={now}&timeoutSeconds=1");
    let mut short = open(&api, &target, None).await;
    let end = tokio::time::timeout(T, short.next_line())
        .await
        .expect("timeout honoured");
    assert!(end.unwrap().is_none());
    drop(short);
    assert_eq!(api.stats().watches_started, 2);

    // A watcher that falls behind gets what was queued, then a clean end.
    let now = api.resource_version();
    let mut slow = open(
        &api,
        &format!("/api/v1/pods?watch=true&resourceVersion={now}"),
        None,
    )
    .await;
    for i in 0..=kube_support::WATCH_BUFFER {
        api.apply(pod(&format!("bulk-{i}"), "default", json!({}), "node-a"));
    }
    for _ in 0..kube_support::WATCH_BUFFER {
        assert_eq!(slow.event().await["type"], "ADDED");
    }
    assert!(slow.next_line().await.unwrap().is_none());
    assert_eq!(api.stats().watches_overflowed, 1);
}

#[tokio::test]
async fn bearer_token_is_enforced() {
    let api = four_pods().await;
    api.require_bearer_token("s3cret");
    for token in [None, Some("wrong")] {
        let c = open(&api, "/api/v1/pods", token).await;
        assert_eq!(c.status, 401);
        let s = c.json().await;
        assert_eq!(
            (&s["kind"], &s["code"], &s["reason"]),
            (&json!("Status"), &json!(401), &json!("Unauthorized"))
        );
    }
    let c = open(&api, "/api/v1/pods", Some("s3cret")).await;
    assert_eq!(c.status, 200);
    assert_eq!(names(&c.json().await).len(), 4);
    assert_eq!(api.stats().unauthorized, 2);
    assert_eq!(api.requests(), vec!["GET /api/v1/pods"; 3]);
}

/// kube-rs' own watcher against the server: paged initial list, resume after a broken
/// stream without relisting, relist after 410.
#[tokio::test]
async fn kube_rs_watcher_lists_resumes_and_relists() {
    use futures_util::StreamExt;
    use kube::runtime::watcher::{self, Event};

    let api = four_pods().await;
    api.require_bearer_token("t0ken");
    let mut cfg = kube::Config::new(api.url().parse().unwrap());
    cfg.auth_info = serde_json::from_value(json!({"token": "t0ken"})).unwrap();
    let pods =
        kube::Api::<k8s_openapi::api::core::v1::Pod>::all(kube::Client::try_from(cfg).unwrap());
    let wc = watcher::Config::default().labels("app=web").page_size(1);
    let mut events = watcher::watcher(pods, wc).boxed();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Some(e) = events.next().await {
            let _ = tx.send(match e {
                Ok(Event::Init) => "init".to_string(),
                Ok(Event::InitApply(p)) => format!("init {}", p.metadata.name.unwrap()),
                Ok(Event::InitDone) => "done".to_string(),
                Ok(Event::Apply(p)) => format!("apply {}", p.metadata.name.unwrap()),
                Ok(Event::Delete(p)) => format!("delete {}", p.metadata.name.unwrap()),
                Err(e) => format!("error {e}"),
            });
        }
    });
    macro_rules! next {
        () => {
            tokio::time::timeout(T, rx.recv())
                .await
                .expect("watcher event in time")
                .unwrap()
        };
    }
    for want in ["init", "init web-1", "init web-2", "done"] {
        assert_eq!(next!(), want);
    }
    assert_eq!((api.stats().lists, api.stats().list_pages), (1, 2));
    assert!(api.wait_open_watches(1, T).await);
    api.apply(pod("web-3", "default", json!({"app": "web"}), "node-a"));
    assert_eq!(next!(), "apply web-3");

    api.drop_watches(); // kube ends the stream at the unexpected EOF and watches again
    api.apply(pod("web-4", "default", json!({"app": "web"}), "node-a"));
    assert_eq!(next!(), "apply web-4", "resumed from its rv");
    assert_eq!(api.stats().lists, 1, "no relist after a broken stream");

    assert!(api.wait_open_watches(1, T).await);
    let unseen = json!({"app": "db", "v": "2"});
    api.apply(pod("db-1", "default", unseen, "node-a")); // moves the rv past the watcher's
    api.compact();
    api.drop_watches();
    let e = next!();
    assert!(e.contains("too old resource version"), "{e}");
    let relisted = [
        "init",
        "init web-1",
        "init web-2",
        "init web-3",
        "init web-4",
        "done",
    ];
    for want in relisted {
        assert_eq!(next!(), want);
    }
    let stats = api.stats();
    let counts = (stats.lists, stats.watches_gone, stats.watches_dropped);
    assert_eq!(counts, (2, 1, 2));
    assert_eq!(stats.unauthorized, 0);
    task.abort();
}
