//! Five nodes in one process on real loopback sockets, speaking HTTP/2: join and converge,
//! detect an abrupt stop, see a graceful leave, refuse a duplicate name.
//! Each node has its own tokio runtime so that dropping it stops the node abruptly: its
//! listener, connections and tasks all vanish at once, like a killed process.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cluster::{Config, NodeState, Rejection, Status};
use runtime::{server, static_resolver, ClusterHandle, JoinStatus, Network, NodeOptions, TokioNet};

struct TestNode {
    rt: tokio::runtime::Runtime,
    handle: ClusterHandle,
    addr: String,
}

fn fast_config() -> Config {
    Config {
        probe_interval: Duration::from_millis(400),
        probe_timeout: Duration::from_millis(200),
        push_pull_interval: Duration::from_secs(5),
        ..Config::default()
    }
}

fn start_node(name: &str, join: Vec<String>) -> TestNode {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (handle, addr) = rt.block_on(async {
        let listener = TokioNet
            .bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
            .await
            .unwrap();
        let addr = TokioNet.local_addr(&listener).unwrap().to_string();
        let mut opts = NodeOptions::new(name, &addr, fast_config());
        opts.join = static_resolver(join);
        opts.seed = addr.len() as u64;
        let (handle, _task) = runtime::start(TokioNet, opts).unwrap();
        tokio::spawn(server::serve(
            TokioNet,
            listener,
            server::transport_router(handle.clone()),
        ));
        handle.set_state(NodeState::Participant).await.unwrap();
        (handle, addr)
    });
    TestNode { rt, handle, addr }
}

fn wait_for(what: &str, limit: Duration, mut pred: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < limit {
        if pred() {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {limit:?} waiting for: {what}");
}

/// An HTTP/2 (prior knowledge) connection to `addr`, as a peer opens one.
async fn h2c(
    addr: &str,
) -> hyper::client::conn::http2::SendRequest<http_body_util::Full<bytes::Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    send
}

fn status_of(n: &TestNode, name: &str) -> Option<(Status, NodeState)> {
    n.handle
        .view()
        .members
        .iter()
        .find(|m| m.name == name)
        .map(|m| (m.status, m.state))
}

#[test]
fn five_nodes_over_http2_join_detect_a_crash_see_a_leave_and_refuse_a_duplicate() {
    let seed = start_node("node-1", vec![]);
    let mut nodes = vec![seed];
    for i in 2..=5 {
        let join = vec![nodes[0].addr.clone()];
        nodes.push(start_node(&format!("node-{i}"), join));
    }
    let names: Vec<String> = (1..=5).map(|i| format!("node-{i}")).collect();
    let took = wait_for(
        "all five see five participants",
        Duration::from_secs(20),
        || {
            nodes
                .iter()
                .all(|n| n.handle.view().participants() == names)
        },
    );
    eprintln!("converged in {took:?}");
    assert!(nodes[1..]
        .iter()
        .all(|n| matches!(n.handle.view().join, JoinStatus::Joined { .. })));
    let stats = &nodes[0].handle.stats;
    assert!(
        stats.rx_packets.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "packets went over HTTP/2"
    );

    // A duplicate name at another address is refused with the holder's address.
    let dup = start_node("node-3", vec![nodes[0].addr.clone()]);
    wait_for("the duplicate is rejected", Duration::from_secs(10), || {
        matches!(dup.handle.view().join, JoinStatus::Rejected { .. })
    });
    let JoinStatus::Rejected { reason, .. } = dup.handle.view().join.clone() else {
        unreachable!()
    };
    let expected = Rejection::NameConflict {
        name: "node-3".into(),
        holder_addr: nodes[2].addr.clone(),
    }
    .to_string();
    assert_eq!(reason, expected);
    assert!(reason.contains(&nodes[2].addr));
    drop(dup);
    for n in &nodes {
        let m = n
            .handle
            .view()
            .members
            .iter()
            .find(|m| m.name == "node-3")
            .cloned()
            .unwrap();
        assert_eq!(
            m.addr, nodes[2].addr,
            "the cluster still maps node-3 to its real holder"
        );
    }

    // Abrupt stop of node-4: drop its whole runtime.
    let crashed = nodes.remove(3);
    crashed.rt.shutdown_background();
    let took = wait_for(
        "node-4 declared dead by all others",
        Duration::from_secs(30),
        || {
            nodes
                .iter()
                .all(|n| matches!(status_of(n, "node-4"), Some((Status::Dead, _))))
        },
    );
    eprintln!("crash detected by all in {took:?}");

    // Graceful leave of node-5.
    let leaver = nodes.pop().unwrap();
    leaver
        .rt
        .block_on(leaver.handle.leave(Duration::from_secs(3)));
    let took = wait_for(
        "node-5 seen as left by all others",
        Duration::from_secs(5),
        || {
            nodes
                .iter()
                .all(|n| matches!(status_of(n, "node-5"), Some((Status::Left, _))))
        },
    );
    eprintln!("leave seen by all in {took:?}");
    drop(leaver);
    std::thread::sleep(Duration::from_secs(3));
    for n in &nodes {
        assert!(
            matches!(status_of(n, "node-5"), Some((Status::Left, _))),
            "left stays left, never dead"
        );
        assert_eq!(
            n.handle.view().participants(),
            vec!["node-1", "node-2", "node-3"]
        );
    }
}

#[test]
fn the_transport_refuses_http1_with_505_and_garbage_with_an_error() {
    let n = start_node("solo", vec![]);
    let addr = n.addr.clone();
    n.rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(
            b"POST /api/v1/ckit/transport/message HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        )
        .await
        .unwrap();
        let mut buf = vec![0u8; 256];
        let k = s.read(&mut buf).await.unwrap();
        let head = String::from_utf8_lossy(&buf[..k]).to_string();
        assert!(head.starts_with("HTTP/1.1 505"), "got {head}");
    });
    // Garbage over HTTP/2 is accepted by HTTP, rejected by the decoder and counted.
    let peers_stats = n.handle.stats.clone();
    n.rt.block_on(async {
        let mut send = h2c(&addr).await;
        let req = hyper::Request::post(format!("http://{addr}{}", runtime::MESSAGE_PATH))
            .body(http_body_util::Full::new(bytes::Bytes::from_static(
                b"not a cluster message",
            )))
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
    });
    wait_for("the bad packet is counted", Duration::from_secs(5), || {
        peers_stats
            .rx_packets_failed
            .load(std::sync::atomic::Ordering::Relaxed)
            == 1
            && n.handle.view().stats.packets_rx_failed == 1
    });
}

fn answers(n: &TestNode) -> [u64; 3] {
    use std::sync::atomic::Ordering::Relaxed;
    let s = &n.handle.stats;
    [
        s.rx_packets.load(Relaxed),
        s.rx_answers.load(Relaxed),
        s.tx_answers.load(Relaxed),
    ]
}

/// One HTTP/2 POST of `body` to `addr`'s packet path, saying `Accept: application/x.ckit` or
/// not; the response body.
async fn post_packet(addr: &str, body: Vec<u8>, accept: bool) -> bytes::Bytes {
    use http_body_util::{BodyExt, Full};
    let mut send = h2c(addr).await;
    let mut req = hyper::Request::post(format!("http://{addr}/api/v1/ckit/transport/message"))
        .header("content-type", cluster::CONTENT_TYPE);
    if accept {
        req = req.header("accept", cluster::CONTENT_TYPE);
    }
    let resp = send
        .send_request(req.body(Full::new(bytes::Bytes::from(body))).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), hyper::StatusCode::OK);
    // The transport's answers do not announce their length (bytes the h2 crate would send
    // uncompressed every time); END_STREAM ends them.
    assert!(resp.headers().get("content-length").is_none());
    resp.into_body().collect().await.unwrap().to_bytes()
}

fn ack_seq(bytes: &[u8]) -> Option<u32> {
    match cluster::wire::decode(bytes, 1 << 16).ok()?.1 {
        cluster::wire::BodyOf::Packet {
            primary: Some(cluster::wire::Primary::Ack { seq }),
            ..
        } => Some(seq),
        _ => None,
    }
}

/// A probe is one request: the ack rides back in the response to its ping when the requester
/// says `Accept: application/x.ckit` (every node of this version does). A requester that does
/// not (an older version) gets an empty response and the ack as a request to its address.
#[test]
fn acks_ride_in_the_ping_response_when_asked_and_come_as_requests_otherwise() {
    let a = start_node("node-a", vec![]);
    let b = start_node("node-b", vec![a.addr.clone()]);
    let both = vec!["node-a".to_string(), "node-b".to_string()];
    wait_for("two participants", Duration::from_secs(10), || {
        a.handle.view().participants() == both && b.handle.view().participants() == both
    });
    std::thread::sleep(Duration::from_secs(1));
    let before = [answers(&a), answers(&b)];
    // Each probes the other every 400 ms.
    std::thread::sleep(Duration::from_secs(4));
    let after = [answers(&a), answers(&b)];
    let d = |i: usize, k: usize| after[i][k] - before[i][k];
    for (i, other) in [(0, 1), (1, 0)] {
        let (received, answers_received, answers_sent) = (d(i, 0), d(i, 1), d(other, 2));
        eprintln!("node {i}: {received} packets received, {answers_received} of them answers (the other sent {answers_sent})");
        assert!(answers_received >= 6, "acks came back in responses");
        // Each side's incoming requests are the other's pings (and nothing else at idle):
        // none of them an ack.
        assert!(
            received - answers_received <= answers_sent + 1,
            "no ack came as a request of its own: {received} received, {answers_received} answers, {answers_sent} answers sent by the other"
        );
    }

    // An older peer: a ping without `Accept` from an address where we listen.
    let old =
        a.rt.block_on(async { tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap() });
    let old_addr = old.local_addr().unwrap().to_string();
    let ping = |seq: u32| {
        let env = cluster::wire::Envelope {
            kind: cluster::wire::Kind::Packet,
            cluster: String::new(),
            sender_name: "old-node".into(),
            sender_addr: old_addr.clone(),
        };
        let p = cluster::wire::Primary::Ping {
            seq,
            target: "node-a".into(),
            digest: 0,
        };
        cluster::wire::encode_packet(&env, Some(&p), &[])
    };
    let (tx, mut acks_as_requests) = tokio::sync::mpsc::unbounded_channel::<(u32, bool)>();
    a.rt.spawn(async move {
        loop {
            let (stream, _) = old.accept().await.unwrap();
            let tx = tx.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let tx = tx.clone();
                        async move {
                            use http_body_util::BodyExt;
                            let path = req.uri().path().to_string();
                            let announced = req.headers().contains_key("content-length");
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            if path == "/api/v1/ckit/transport/message" {
                                if let Some(seq) = ack_seq(&body) {
                                    let _ = tx.send((seq, announced));
                                }
                            }
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                http_body_util::Full::new(bytes::Bytes::new()),
                            ))
                        }
                    },
                );
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
            });
        }
    });
    let answer = a.rt.block_on(post_packet(&a.addr, ping(7001), false));
    assert!(answer.is_empty(), "no Accept, no answer in the response");
    let seq = a.rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), acks_as_requests.recv()).await
    });
    assert_eq!(
        seq.ok().flatten(),
        Some((7001, false)),
        "the ack came as a request (without content-length)"
    );
    let answer = a.rt.block_on(post_packet(&a.addr, ping(7002), true));
    assert_eq!(
        ack_seq(&answer),
        Some(7002),
        "with Accept, the ack is the response"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        acks_as_requests.try_recv().is_err(),
        "and it is not also sent as a request"
    );
}

/// Serves `answer(content-encoding, accept-encoding, body)` on every path from a listener of
/// its own, recording what each request said; the address and the record.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(Option<String>, Option<String>)>>>;

fn fake_peer(
    rt: &tokio::runtime::Runtime,
    answer: impl Fn(Option<&str>, &str) -> (hyper::StatusCode, Vec<u8>) + Send + Sync + 'static,
) -> (String, Seen) {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen: Seen = Default::default();
    let (record, answer) = (seen.clone(), std::sync::Arc::new(answer));
    rt.spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (record, answer) = (record.clone(), answer.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let (record, answer) = (record.clone(), answer.clone());
                        async move {
                            let h = |n: hyper::header::HeaderName| {
                                req.headers()
                                    .get(n)
                                    .map(|v| v.to_str().unwrap().to_string())
                            };
                            let (enc, acc) = (
                                h(hyper::header::CONTENT_ENCODING),
                                h(hyper::header::ACCEPT_ENCODING),
                            );
                            let path = req.uri().path().to_string();
                            if path.ends_with("/stream") {
                                record.lock().unwrap().push((enc.clone(), acc));
                            }
                            let (status, body) = answer(enc.as_deref(), &path);
                            let mut resp = hyper::Response::new(http_body_util::Full::new(
                                bytes::Bytes::from(body),
                            ));
                            *resp.status_mut() = status;
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    },
                );
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
            });
        }
    });
    (addr, seen)
}

/// Push/pull bodies are deflated both ways when both sides can (the answer only if the
/// request says `Accept-Encoding: deflate`); a peer that cannot decode a deflated body (an
/// older version answers 400) gets the same exchange again, plain. Inflating is bounded.
#[test]
fn push_pull_bodies_are_deflated_when_both_sides_can_and_plain_for_older_peers() {
    use cluster::wire::{self, BodyOf, Envelope, Kind, MemberRecord};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // An older peer: a deflated body is garbage to it.
    let old_addr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let a2 = old_addr.clone();
    let (addr, seen) = fake_peer(&rt, move |enc, path| {
        if !path.ends_with("/stream") {
            return (hyper::StatusCode::OK, Vec::new());
        }
        if enc.is_some() {
            return (hyper::StatusCode::BAD_REQUEST, b"bad magic".to_vec());
        }
        let me = a2.lock().unwrap().clone();
        let env = Envelope {
            kind: Kind::PushPullResponse,
            cluster: String::new(),
            sender_name: "old-node".into(),
            sender_addr: me.clone(),
        };
        let rec = MemberRecord {
            name: "old-node".into(),
            addr: me,
            incarnation: 1,
            status: cluster::Status::Alive,
            state: Some((NodeState::Participant, 1)),
        };
        (
            hyper::StatusCode::OK,
            wire::encode_push_pull(&env, false, &[rec]),
        )
    });
    *old_addr.lock().unwrap() = addr.clone();
    let n = start_node("node-a", vec![addr.clone()]);
    wait_for(
        "node-a joined the older peer",
        Duration::from_secs(10),
        || status_of(&n, "old-node").is_some(),
    );
    let first_two: Vec<_> = seen.lock().unwrap().iter().take(2).cloned().collect();
    let deflate = Some("deflate".to_string());
    assert_eq!(
        first_two,
        [(deflate.clone(), deflate.clone()), (None, deflate.clone())],
        "deflated, refused, then plain"
    );

    // A node of this version answers deflated when asked, plain otherwise.
    let me = "127.0.0.1:9".to_string();
    let join = wire::encode_push_pull(
        &Envelope {
            kind: Kind::PushPullRequest,
            cluster: String::new(),
            sender_name: "stranger".into(),
            sender_addr: me.clone(),
        },
        true,
        &[],
    );
    let post = |body: Vec<u8>, headers: &[(&str, &str)]| {
        let addr = n.addr.clone();
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        n.rt.block_on(async move {
            use http_body_util::{BodyExt, Full};
            let mut send = h2c(&addr).await;
            let mut req =
                hyper::Request::post(format!("http://{addr}/api/v1/ckit/transport/stream"))
                    .header("content-type", cluster::CONTENT_TYPE);
            for (k, v) in &headers {
                req = req.header(k.as_str(), v.as_str());
            }
            let resp = send
                .send_request(req.body(Full::new(bytes::Bytes::from(body))).unwrap())
                .await
                .unwrap();
            let enc = resp
                .headers()
                .get("content-encoding")
                .map(|v| v.to_str().unwrap().to_string());
            let status = resp.status();
            (
                status,
                enc,
                resp.into_body().collect().await.unwrap().to_bytes(),
            )
        })
    };
    let members = |bytes: &[u8]| match wire::decode(bytes, 1 << 20).unwrap().1 {
        BodyOf::PushPull { members, .. } => members.into_iter().map(|m| m.name).collect::<Vec<_>>(),
        other => panic!("not a push/pull answer: {other:?}"),
    };
    let deflated = runtime::compress::deflate(&join);
    let (status, enc, body) = post(
        deflated.clone(),
        &[
            ("content-encoding", "deflate"),
            ("accept-encoding", "gzip, deflate"),
        ],
    );
    assert_eq!(
        (status, enc.as_deref()),
        (hyper::StatusCode::OK, Some("deflate"))
    );
    let answer = runtime::compress::inflate(&body, 1 << 20).unwrap();
    assert!(members(&answer).contains(&"node-a".to_string()));
    let (status, enc, body) = post(join.clone(), &[]);
    assert_eq!((status, enc), (hyper::StatusCode::OK, None));
    assert!(members(&body).contains(&"node-a".to_string()));
    // Unknown encodings, bad deflate and bombs are refused.
    let (status, ..) = post(join.clone(), &[("content-encoding", "br")]);
    assert_eq!(status, hyper::StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, ..) = post(join, &[("content-encoding", "deflate")]);
    assert_eq!(status, hyper::StatusCode::BAD_REQUEST);
    let bomb = runtime::compress::deflate(&vec![0u8; 64 << 20]);
    let (status, _, body) = post(bomb, &[("content-encoding", "deflate")]);
    assert_eq!(status, hyper::StatusCode::BAD_REQUEST);
    assert!(
        String::from_utf8_lossy(&body).contains("beyond"),
        "{body:?}"
    );
    drop(rt);
}
