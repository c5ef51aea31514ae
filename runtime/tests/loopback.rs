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
        let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let (mut send, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
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
