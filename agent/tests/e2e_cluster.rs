//! End-to-end: real `agent` processes on 127.0.0.1 (loopback only), observed through the
//! HTTP API and /metrics the way a user would. Protocol timings are sped up with the
//! documented advanced flags (see `common::FAST`). Every child is killed when a test ends or
//! fails (`common::Agent` is a drop guard).

mod common;
mod ports;

use std::time::{Duration, Instant};

use common::*;

fn join_flags(join: &str, extra: &[&str]) -> Vec<String> {
    let mut v = strings(&["--cluster.enabled"]);
    if !join.is_empty() {
        v.push(format!("--cluster.join-addresses={join}"));
    }
    v.extend(strings(FAST));
    v.extend(strings(extra));
    v
}

/// The story of issue 4: five agents (one joining by DNS name) converge to five
/// participants; a duplicate name is refused with the holder's address while the cluster is
/// unaffected; a kill -9 is noticed by everyone; a SIGTERM is seen as terminating, then the
/// node is gone and its process exits 0.
#[test]
fn five_agents_converge_refuse_a_duplicate_notice_a_crash_and_see_a_graceful_leave() {
    let ports = free_ports(6);
    let mut agents = vec![Agent::start("agent-1", ports[0], &join_flags("", &[]))];
    agents[0].wait_healthy();
    let seed = agents[0].addr();
    for i in 1..5 {
        // agent-2 joins through a DNS name (A record of localhost); the others list the seed
        // and one more peer (which may not be up yet: it is retried).
        let join = if i == 1 {
            format!("localhost:{}", ports[0])
        } else {
            format!("{seed},127.0.0.1:{}", ports[i - 1])
        };
        agents.push(Agent::start(
            &format!("agent-{}", i + 1),
            ports[i],
            &join_flags(&join, &[]),
        ));
    }
    for a in agents.iter_mut() {
        a.wait_healthy();
    }
    let names: Vec<String> = (1..=5).map(|i| format!("agent-{i}")).collect();
    let took = wait_for(
        "every agent lists the five agents as participants",
        Duration::from_secs(30),
        || {
            agents
                .iter()
                .all(|a| names_in_state(&a.peers(), "participant") == names)
        },
    );
    eprintln!("five agents converged in {took:?}");
    // Joins are full-state exchanges; probes and gossip (packets) follow within a probe
    // interval.
    wait_for(
        "every agent received gossip packets",
        Duration::from_secs(5),
        || {
            agents.iter().all(|a| {
                sample(&a.metrics(), "cluster_transport_rx_packets_total").unwrap_or(0.0) > 0.0
            })
        },
    );

    // What a user sees on each node.
    for (i, a) in agents.iter().enumerate() {
        let peers = a.peers();
        let me: Vec<&Peer> = peers.iter().filter(|p| p.is_self).collect();
        assert_eq!(me.len(), 1, "exactly one local node in {peers:?}");
        assert_eq!(me[0].name, a.name);
        assert_eq!(me[0].addr, a.addr());
        for p in &peers {
            let owner = agents.iter().find(|x| x.name == p.name).unwrap();
            assert_eq!(p.addr, owner.addr(), "advertised address of {}", p.name);
        }
        let m = a.metrics();
        assert_eq!(
            sample(&m, r#"cluster_node_peers{state="participant"}"#),
            Some(5.0),
            "{m}"
        );
        assert_eq!(
            sample(&m, r#"cluster_node_info{state="participant"}"#),
            Some(1.0)
        );
        assert_eq!(sample(&m, "cluster_node_alone"), Some(0.0));
        assert!(
            m.contains("# TYPE cluster_transport_rx_packets_total counter"),
            "{m}"
        );
        assert!(m.contains("# TYPE cluster_node_gossip_received_events_total counter"));
        assert!(m.contains(r#"agent_config_hash{sha256="e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"} 1"#));
        assert!(sample(&m, "cluster_transport_rx_packets_total").unwrap() > 0.0);
        assert!(sample(&m, "cluster_node_lamport_time").unwrap() > 0.0);
        assert_eq!(
            get(a.port, "/-/ready").unwrap().status,
            200,
            "agent-{}",
            i + 1
        );
    }
    let log2 = agents[1].log_text();
    assert!(log2.contains("joined the cluster"), "{log2}");

    // A sixth process with a taken name exits non-zero, naming the holder and its address.
    let holder = agents[2].addr();
    let mut dup = Agent::start("agent-3", ports[5], &join_flags(&seed, &[]));
    let status = dup.wait_exit(Duration::from_secs(20));
    assert!(!status.success(), "the duplicate must fail");
    let text = dup.log_text();
    assert!(
        text.contains("\"agent-3\"") && text.contains(&holder) && text.contains("already used"),
        "the error names the name and the holder's address: {text}"
    );
    drop(dup);
    std::thread::sleep(Duration::from_millis(500));
    for a in &agents {
        let peers = a.peers();
        assert_eq!(
            names_in_state(&peers, "participant"),
            names,
            "cluster unaffected"
        );
        let p3 = peers.iter().find(|p| p.name == "agent-3").unwrap();
        assert_eq!(p3.addr, holder, "agent-3 still maps to its holder");
    }
    // Counters reach /metrics with the next published view (at most 1 s later).
    wait_for(
        "the refusing seed counts the conflict",
        Duration::from_secs(5),
        || {
            let m = agents[0].metrics();
            let series = r#"cluster_node_gossip_received_events_total{event="node_conflict"}"#;
            sample(&m, series).unwrap_or(0.0) >= 1.0
                && sample(&m, "cluster_node_name_conflicts_total").unwrap_or(0.0) >= 1.0
        },
    );

    // kill -9 of agent-4: every other agent stops listing it.
    let mut crashed = agents.remove(3);
    crashed.signal(libc::SIGKILL);
    crashed.wait_exit(Duration::from_secs(5));
    let took = wait_for(
        "every other agent dropped the killed agent-4",
        Duration::from_secs(40),
        || {
            agents
                .iter()
                .all(|a| !a.peers().iter().any(|p| p.name == "agent-4"))
        },
    );
    eprintln!("crash of agent-4 noticed by all in {took:?}");
    // `?members=all` keeps the tombstone, with the status, incarnation and Lamport time an
    // outside observer (the simulator's process engine) checks invariants with; the default
    // answer keeps Grafana Agent's shape.
    for a in &agents {
        let all = get(a.port, "/api/v0/web/peers?members=all").expect("answers");
        let list: Vec<Peer> = serde_json::from_str(&all.body).expect("peers JSON");
        let dead = list.iter().find(|p| p.name == "agent-4");
        let dead = dead.unwrap_or_else(|| panic!("{}: agent-4's tombstone in {list:?}", a.name));
        assert_eq!(dead.status.as_deref(), Some("dead"), "{}: {dead:?}", a.name);
        assert!(
            dead.incarnation.is_some() && dead.lamport.is_some(),
            "{dead:?}"
        );
        let me = list.iter().find(|p| p.is_self).expect("self listed");
        assert_eq!(me.status.as_deref(), Some("alive"), "{me:?}");
        let plain = get(a.port, "/api/v0/web/peers").expect("answers").body;
        assert!(!plain.contains("status"), "{plain}");
    }

    // SIGTERM of agent-5: seen terminating, then gone; its process exits 0.
    let mut leaver = agents.pop().unwrap();
    let others = &agents;
    leaver.signal(libc::SIGTERM);
    let sent = Instant::now();
    let mut seen_terminating = false;
    wait_for(
        "every other agent dropped agent-5 after its SIGTERM",
        Duration::from_secs(15),
        || {
            let views: Vec<Vec<Peer>> = others.iter().map(|a| a.peers()).collect();
            seen_terminating |= views
                .iter()
                .flatten()
                .any(|p| p.name == "agent-5" && p.state == "terminating");
            views.iter().all(|v| !v.iter().any(|p| p.name == "agent-5"))
        },
    );
    let status = leaver.wait_exit(Duration::from_secs(10));
    eprintln!("agent-5 exited {status} {:?} after SIGTERM", sent.elapsed());
    assert!(
        status.success(),
        "graceful shutdown exits 0: {}",
        leaver.log_text()
    );
    assert!(
        seen_terminating,
        "a peer showed agent-5 as terminating before it left"
    );
    for a in others {
        let m = a.metrics();
        assert!(
            sample(&m, r#"cluster_node_members{status="left"}"#).unwrap_or(0.0) >= 1.0,
            "{} recorded agent-5 as left (not dead): {m}",
            a.name
        );
        assert_eq!(
            names_in_state(&a.peers(), "participant"),
            vec!["agent-1", "agent-2", "agent-3"]
        );
    }
}

/// `--cluster.name` isolates clusters: a node of another cluster stays alone, says so, and
/// the cluster never lists it.
#[test]
fn a_node_with_another_cluster_name_cannot_join() {
    let ports = free_ports(3);
    let mut a = Agent::start("red-1", ports[0], &join_flags("", &["--cluster.name=red"]));
    a.wait_healthy();
    let mut b = Agent::start(
        "red-2",
        ports[1],
        &join_flags(&a.addr(), &["--cluster.name=red"]),
    );
    b.wait_healthy();
    let mut blue = Agent::start(
        "blue-1",
        ports[2],
        &join_flags(&a.addr(), &["--cluster.name=blue"]),
    );
    blue.wait_healthy();
    wait_for("red-2 joins red-1", Duration::from_secs(15), || {
        names_in_state(&a.peers(), "participant") == ["red-1", "red-2"]
    });
    wait_for("blue-1 says it is alone", Duration::from_secs(15), || {
        get(blue.port, "/api/v0/web/cluster").is_some_and(|r| r.body.contains("\"alone\":true"))
    });
    // Several rejoin intervals (2 s) later, still separate.
    std::thread::sleep(Duration::from_secs(5));
    let info = get(blue.port, "/api/v0/web/cluster").unwrap().body;
    assert!(
        info.contains("\"alone\":true") && info.contains("--cluster.name"),
        "{info}"
    );
    assert_eq!(blue.peers().len(), 1);
    // With --cluster.name, the cluster series carry it as `cluster_name` (as Alloy's).
    assert_eq!(
        sample(
            &blue.metrics(),
            r#"cluster_node_alone{cluster_name="blue"}"#
        ),
        Some(1.0)
    );
    for n in [&a, &b] {
        let listed: Vec<String> = n.peers().into_iter().map(|p| p.name).collect();
        assert_eq!(listed, vec!["red-1", "red-2"]);
    }
    assert!(
        sample(
            &a.metrics(),
            r#"cluster_node_cluster_name_mismatches_total{cluster_name="red"}"#
        )
        .unwrap()
            >= 1.0,
        "red-1 counted the refused joins"
    );
    assert!(blue
        .log_text()
        .contains("alone although join addresses were given"));
}

/// Issue 17, without TLS: a process that reaches the port posts lies a member could never
/// have told (a `left` of a live node at incarnation u64::MAX, a suspicion of the receiver
/// near the maximum, a Lamport time at u64::MAX). Each is refused and counted; nobody is
/// evicted, no clock freezes, and the cluster still agrees on a later change.
#[test]
fn lies_beyond_any_reachable_incarnation_or_clock_evict_and_freeze_nobody() {
    use cluster::wire::{encode_packet, encode_update, Envelope, Kind, Update};
    use cluster::NodeState;
    let ports = free_ports(3);
    let mut agents = vec![Agent::start("agent-1", ports[0], &join_flags("", &[]))];
    agents[0].wait_healthy();
    let seed = agents[0].addr();
    for i in 1..3 {
        let name = format!("agent-{}", i + 1);
        agents.push(Agent::start(&name, ports[i], &join_flags(&seed, &[])));
    }
    for a in agents.iter_mut() {
        a.wait_healthy();
    }
    let all = ["agent-1", "agent-2", "agent-3"];
    let agree = |agents: &[Agent]| {
        agents
            .iter()
            .all(|a| names_in_state(&a.peers(), "participant") == all)
    };
    wait_for("three participants", Duration::from_secs(20), || {
        agree(&agents)
    });
    let clock_before = sample(&agents[0].metrics(), "cluster_node_lamport_time").unwrap();

    let env = Envelope {
        kind: Kind::Packet,
        cluster: String::new(),
        sender_name: "mallory".into(),
        sender_addr: "127.0.0.1:1".into(),
    };
    let lies = [
        Update::Left {
            name: "agent-2".into(),
            incarnation: u64::MAX,
        },
        Update::Suspect {
            name: "agent-1".into(),
            incarnation: u64::MAX - 1,
            from: "mallory".into(),
            refused: true,
        },
        Update::State {
            name: "agent-3".into(),
            state: NodeState::Terminating,
            lamport: u64::MAX,
        },
    ];
    let encoded: Vec<Vec<u8>> = lies.iter().map(encode_update).collect();
    let refs: Vec<&[u8]> = encoded.iter().map(|u| u.as_slice()).collect();
    let packet = encode_packet(&env, None, &refs);
    let status = h2c_post(ports[0], runtime::MESSAGE_PATH, packet);
    assert!(status.is_success(), "the transport answered {status}");

    wait_for("the lies are counted", Duration::from_secs(5), || {
        sample(
            &agents[0].metrics(),
            "cluster_node_updates_out_of_bounds_total",
        ) == Some(3.0)
    });
    // Several probe and gossip rounds later: nobody evicted or terminating, the clock moved
    // only by ordinary steps.
    std::thread::sleep(Duration::from_secs(3));
    assert!(agree(&agents), "{:?}", agents[0].peers());
    let clock_after = sample(&agents[0].metrics(), "cluster_node_lamport_time").unwrap();
    assert!(
        clock_after < clock_before + 1000.0,
        "clock jumped from {clock_before} to {clock_after}"
    );
    // Clocks still move: a real leave spreads and is seen by the others.
    let leaver = agents.pop().unwrap();
    leaver.signal(libc::SIGTERM);
    wait_for("agent-3's leave is seen", Duration::from_secs(20), || {
        agents
            .iter()
            .all(|a| names_in_state(&a.peers(), "participant") == ["agent-1", "agent-2"])
    });
}

/// One POST over HTTP/2 without TLS (prior knowledge), as a peer sends transport messages.
fn h2c_post(port: u16, path: &str, body: Vec<u8>) -> hyper::StatusCode {
    use http_body_util::Full;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = hyper::Request::post(format!("http://127.0.0.1:{port}{path}"))
            .header("content-type", "application/x.ckit")
            .body(Full::new(bytes::Bytes::from(body)))
            .unwrap();
        send.send_request(req).await.unwrap().status()
    })
}

/// Nothing reachable at start: the node runs alone, says so (log, API, metric), keeps
/// retrying at the rejoin interval, and joins once a peer appears.
#[test]
fn an_unreachable_peer_leaves_the_node_alone_until_a_rejoin_reaches_it() {
    let ports = free_ports(2);
    let later = format!("127.0.0.1:{}", ports[1]);
    let mut a = Agent::start("early", ports[0], &join_flags(&later, &[]));
    a.wait_healthy();
    wait_for(
        "the early node reports being alone",
        Duration::from_secs(10),
        || sample(&a.metrics(), "cluster_node_alone") == Some(1.0),
    );
    wait_for("the log says it is alone", Duration::from_secs(5), || {
        a.log_text()
            .contains("alone although join addresses were given")
    });
    // The page data says so too, and the node still works as a cluster of one.
    let info = get(a.port, "/api/v0/web/cluster").unwrap().body;
    assert!(
        info.contains("\"alone\":true") && info.contains("rejoin-interval"),
        "{info}"
    );
    assert_eq!(get(a.port, "/-/ready").unwrap().status, 200);

    let mut b = Agent::start("late", ports[1], &join_flags("", &[]));
    b.wait_healthy();
    let took = wait_for("a rejoin merges the two", Duration::from_secs(15), || {
        names_in_state(&a.peers(), "participant") == ["early", "late"]
            && names_in_state(&b.peers(), "participant") == ["early", "late"]
    });
    eprintln!("merged {took:?} after the late node started");
    wait_for("no longer alone", Duration::from_secs(5), || {
        sample(&a.metrics(), "cluster_node_alone") == Some(0.0)
    });
}

/// `--cluster.wait-for-size`: viewers until the cluster is big enough (not ready, with the
/// reason), participants after; `--cluster.wait-timeout` gives up waiting.
#[test]
fn wait_for_size_keeps_nodes_viewers_until_the_cluster_is_big_enough() {
    let ports = free_ports(3);
    let wait2 = ["--cluster.wait-for-size=2"];
    let mut a = Agent::start("w-1", ports[0], &join_flags("", &wait2));
    a.wait_healthy();
    std::thread::sleep(Duration::from_millis(500));
    let ready = get(a.port, "/-/ready").unwrap();
    assert_eq!(ready.status, 503);
    assert!(
        ready.body.contains("--cluster.wait-for-size"),
        "{}",
        ready.body
    );
    assert_eq!(names_in_state(&a.peers(), "viewer"), ["w-1"]);

    let mut b = Agent::start("w-2", ports[1], &join_flags(&a.addr(), &wait2));
    b.wait_healthy();
    wait_for("both become participants", Duration::from_secs(15), || {
        names_in_state(&a.peers(), "participant") == ["w-1", "w-2"]
            && names_in_state(&b.peers(), "participant") == ["w-1", "w-2"]
    });
    assert_eq!(get(a.port, "/-/ready").unwrap().status, 200);

    let mut c = Agent::start(
        "w-solo",
        ports[2],
        &join_flags(
            "",
            &["--cluster.wait-for-size=3", "--cluster.wait-timeout=1s"],
        ),
    );
    c.wait_healthy();
    let took = wait_for("the wait times out", Duration::from_secs(10), || {
        get(c.port, "/-/ready").is_some_and(|r| r.status == 200)
    });
    assert!(took >= Duration::from_millis(500), "it did wait: {took:?}");
    assert!(c.log_text().contains("wait-timeout"));
}

/// Without `--cluster.enabled` the agent is a one-node cluster on the same code path, and
/// refuses cluster traffic.
#[test]
fn without_clustering_the_agent_is_a_cluster_of_one() {
    let port = free_ports(1)[0];
    let mut a = Agent::start(
        "solo",
        port,
        &strings(&["--cluster.join-addresses=127.0.0.1:1"]),
    );
    a.wait_healthy();
    wait_for("participant", Duration::from_secs(5), || {
        names_in_state(&a.peers(), "participant") == ["solo"]
    });
    let p = &a.peers()[0];
    assert!(p.is_self);
    assert_eq!(p.addr, a.addr());
    let m = a.metrics();
    assert_eq!(
        sample(&m, r#"cluster_node_peers{state="participant"}"#),
        Some(1.0)
    );
    assert_eq!(sample(&m, "cluster_node_alone"), Some(0.0));
    let t = request(port, "POST", "/api/v1/ckit/transport/message", "").unwrap();
    assert_eq!(t.status, 404);
    assert!(t.body.contains("--cluster.enabled"));
    assert_eq!(get(port, "/-/ready").unwrap().status, 200);
    a.signal(libc::SIGINT);
    assert!(a.wait_exit(Duration::from_secs(5)).success());
}

/// The config file is checked before anything starts, hashed for the drift alert, and
/// reloaded on `/-/reload` (a bad file keeps the previous one).
#[test]
fn the_config_file_is_checked_hashed_and_reloadable() {
    let dir = tempfile::tempdir().unwrap();
    let good = "// no components yet\n";
    let path = write_file(dir.path(), "config.alloy", good);
    let ports = free_ports(2);
    let mut a = Agent::start("cfg", ports[0], &[path.display().to_string()]);
    a.wait_healthy();
    let sha = |s: &str| {
        use sha2::Digest;
        sha2::Sha256::digest(s.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let series = |s: &str| format!("agent_config_hash{{sha256=\"{}\"}}", sha(s));
    assert_eq!(sample(&a.metrics(), &series(good)), Some(1.0));

    let changed = "// still no components\n";
    std::fs::write(&path, changed).unwrap();
    assert_eq!(
        request(a.port, "POST", "/-/reload", "").unwrap().status,
        200
    );
    let m = a.metrics();
    assert_eq!(sample(&m, &series(changed)), Some(1.0), "{m}");
    assert_eq!(sample(&m, "agent_config_last_load_successful"), Some(1.0));

    std::fs::write(&path, "prometheus.scrape \"x\" {\n").unwrap();
    let r = request(a.port, "POST", "/-/reload", "").unwrap();
    assert_eq!(r.status, 400);
    assert!(r.body.contains("config.alloy"), "{}", r.body);
    let m = a.metrics();
    assert_eq!(
        sample(&m, &series(changed)),
        Some(1.0),
        "the previous config stays"
    );
    assert_eq!(sample(&m, "agent_config_last_load_successful"), Some(0.0));
    assert_eq!(sample(&m, "agent_config_load_failures_total"), Some(1.0));

    // A bad file at start: exit 1 before joining anything, naming the file.
    let mut bad = Agent::start("bad", ports[1], &[path.display().to_string()]);
    let status = bad.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(1));
    assert!(
        bad.log_text().contains("config.alloy"),
        "{}",
        bad.log_text()
    );
}

/// Flag errors name the flag and the bad value, exit 2; `--help` documents every flag.
#[test]
fn flag_errors_name_the_flag_and_value_and_help_lists_every_flag() {
    let bin = env!("CARGO_BIN_EXE_agent");
    let out = std::process::Command::new(bin)
        .args(["run", "--cluster.rejoin-interval=sometimes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--cluster.rejoin-interval") && err.contains("sometimes"),
        "{err}"
    );

    let out = std::process::Command::new(bin)
        .args(["run", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--server.http.listen-addr",
        "--cluster.enabled",
        "--cluster.node-name",
        "--cluster.advertise-address",
        "--cluster.advertise-interfaces",
        "--cluster.join-addresses",
        "--cluster.rejoin-interval",
        "--cluster.max-join-peers",
        "--cluster.name",
        "--cluster.wait-for-size",
        "--cluster.wait-timeout",
        "--cluster.probe-interval",
    ] {
        assert!(help.contains(flag), "--help documents {flag}");
    }
}

/// The advertised address defaults to an interface address with the listener's port: here
/// `lo` (loopback only) with a listener on every interface.
#[test]
fn the_advertised_address_comes_from_the_named_interfaces() {
    let port = free_ports(1)[0];
    let mut a = Agent::start(
        "iface",
        port,
        &strings(&[
            "--cluster.enabled",
            "--cluster.advertise-interfaces=nope0,lo",
            &format!("--server.http.listen-addr=0.0.0.0:{port}"),
        ]),
    );
    a.wait_healthy();
    wait_for("listed", Duration::from_secs(5), || !a.peers().is_empty());
    assert_eq!(a.peers()[0].addr, format!("127.0.0.1:{port}"));
    assert!(a.log_text().contains("interface lo"), "{}", a.log_text());
}

/// Idle footprint of a 20-node loopback cluster over 60 s (default protocol timings):
/// RSS, CPU and bytes per node. Run it with
/// `cargo test --release -p agent --test e2e_cluster -- --ignored --nocapture idle_footprint`.
/// Ten agents with the default protocol timings (no test overrides); five of them are killed
/// with SIGKILL one after the other. Each time, every survivor must drop the dead one within
/// 6 s (issue 13's p99 goal at 50 nodes): its connections close, its port refuses, and two
/// members' refusals make it dead with no suspicion timer. The times are printed (`cargo test
/// ... -- --nocapture`; BENCHMARKS.md records the median).
#[test]
fn killed_agents_are_dropped_by_all_within_seconds_with_default_timings() {
    const NODES: usize = 10;
    let ports = free_ports(NODES);
    let seed = format!("127.0.0.1:{}", ports[0]);
    let mut agents = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let mut flags = strings(&["--cluster.enabled"]);
        if i > 0 {
            flags.push(format!("--cluster.join-addresses={seed}"));
        }
        let mut a = Agent::start(&format!("kill-{i:02}"), *port, &flags);
        a.wait_healthy();
        agents.push(a);
    }
    wait_for(
        "10 participants everywhere",
        Duration::from_secs(60),
        || {
            agents
                .iter()
                .all(|a| names_in_state(&a.peers(), "participant").len() == NODES)
        },
    );
    // Let every node probe around, so connections exist as in a cluster that has run a while.
    std::thread::sleep(Duration::from_secs(5));
    let mut times = Vec::new();
    for victim in 1..=5 {
        let name = agents[victim].name.clone();
        agents[victim].signal(libc::SIGKILL);
        let survivors: Vec<&Agent> = agents
            .iter()
            .enumerate()
            .filter(|(i, _)| *i == 0 || *i > victim)
            .map(|(_, a)| a)
            .collect();
        let took = wait_for(
            &format!("every survivor drops {name}"),
            Duration::from_secs(6),
            || {
                survivors
                    .iter()
                    .all(|a| !a.peers().iter().any(|p| p.name == name))
            },
        );
        println!(
            "kill -9 of {name}: dropped by all {} survivors after {took:?}",
            survivors.len()
        );
        times.push(took);
        std::thread::sleep(Duration::from_secs(3));
    }
    times.sort();
    println!("kill -9 seen by all, median of 5: {:?}", times[2]);
    let refused: f64 = agents[0..1]
        .iter()
        .chain(&agents[6..])
        .filter_map(|a| sample(&a.metrics(), "cluster_node_peers_refused_total"))
        .sum();
    assert!(refused > 0.0, "the survivors' connections were refused");
}

/// The idle footprint of `IDLE_NODES` agents (default 50) with default timings (or with
/// `IDLE_FLAGS` added): RSS, CPU, and bytes on the wire per node over a minute, once every node
/// holds its connections. A measurement, run by hand (`--ignored`).
#[test]
#[ignore]
fn idle_footprint_of_a_cluster() {
    let nodes: usize = std::env::var("IDLE_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    // Two push/pull intervals at 50 nodes (60 s scaled to 120 s): each node's figure is then
    // its own average, not whether its periodic exchange fell in the window.
    let window = Duration::from_secs(
        std::env::var("IDLE_WINDOW_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(240),
    );
    const NODES_NAME: &str = "participants everywhere";
    let ports = free_ports(nodes);
    let seed = format!("127.0.0.1:{}", ports[0]);
    let mut agents = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let mut flags = strings(&["--cluster.enabled"]);
        if i > 0 {
            flags.push(format!("--cluster.join-addresses={seed}"));
        }
        // IDLE_FLAGS="--cluster.push-pull-interval=4m ..." measures other timings.
        flags.extend(
            std::env::var("IDLE_FLAGS")
                .unwrap_or_default()
                .split_whitespace()
                .map(String::from),
        );
        let mut a = Agent::start(&format!("idle-{i:02}"), *port, &flags);
        a.wait_healthy();
        agents.push(a);
    }
    wait_for(NODES_NAME, Duration::from_secs(180), || {
        agents
            .iter()
            .all(|a| names_in_state(&a.peers(), "participant").len() == nodes)
    });
    // Let the join burst settle, and wait for the steady state: each node opens a connection
    // to a member the first time it probes it (one member per 2 s), so at 50 nodes the last
    // connections open ~100 s after the start. Steady = no new socket for 20 s.
    std::thread::sleep(Duration::from_secs(10));
    let settle_start = Instant::now();
    let mut sockets = tcp_bytes_sent().len();
    while settle_start.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_secs(20));
        let now = tcp_bytes_sent().len();
        if now == sockets {
            break;
        }
        sockets = now;
    }
    println!(
        "steady after {:.0} s more: {sockets} established sockets",
        settle_start.elapsed().as_secs_f64()
    );
    // The window excludes the /metrics scrapes themselves: scrape, then read /proc before
    // it; read /proc, then scrape after it.
    let before: Vec<Sample> = agents.iter().map(|a| Sample::take(a, true)).collect();
    let sockets_before = tcp_bytes_sent();
    std::thread::sleep(window);
    let sockets_after = tcp_bytes_sent();
    let after: Vec<Sample> = agents.iter().map(|a| Sample::take(a, false)).collect();
    let secs = window.as_secs_f64();
    // TCP payload each process sent in the window (HTTP/2 frames and TLS records, no IP or
    // TCP headers): per established socket, bytes_sent at the end less at the start (all of
    // it for a socket opened meanwhile).
    let mut sent_by_pid: std::collections::BTreeMap<i32, u64> = Default::default();
    for (key, after) in &sockets_after {
        let before = sockets_before.get(key).copied().unwrap_or(0);
        *sent_by_pid.entry(key.0).or_default() += after.saturating_sub(before);
    }
    let closed = sockets_before
        .keys()
        .filter(|k| !sockets_after.contains_key(*k))
        .count();
    let opened = sockets_after
        .keys()
        .filter(|k| !sockets_before.contains_key(*k))
        .count();
    let rows: Vec<Row> = before
        .iter()
        .zip(&after)
        .zip(&agents)
        .map(|((b, a), agent)| Row {
            rss_mib: a.rss_kib as f64 / 1024.0,
            cpu_pct: (a.cpu_ticks - b.cpu_ticks) as f64 / ticks_per_sec() / secs * 100.0,
            payload_bps: (a.tx_payload - b.tx_payload) / secs,
            wire_bps: sent_by_pid.get(&agent.pid()).copied().unwrap_or(0) as f64 / secs,
        })
        .collect();
    let (rss_mean, rss_max) = mean_max(rows.iter().map(|r| r.rss_mib));
    let (cpu_mean, cpu_max) = mean_max(rows.iter().map(|r| r.cpu_pct));
    let (pay_mean, pay_max) = mean_max(rows.iter().map(|r| r.payload_bps));
    let (wire_mean, wire_max) = mean_max(rows.iter().map(|r| r.wire_bps));
    println!("idle footprint, {nodes} nodes, {secs:.0} s window (mean / max per node):");
    println!("  RSS                          {rss_mean:.1} / {rss_max:.1} MiB");
    println!("  CPU                          {cpu_mean:.2} / {cpu_max:.2} % of one core");
    println!("  gossip payload sent          {pay_mean:.1} / {pay_max:.1} B/s (cluster_transport_tx_bytes_total: gossip packets, not push/pull)");
    println!("  TCP payload sent             {wire_mean:.1} / {wire_max:.1} B/s (HTTP/2 framing included; ss bytes_sent)");
    println!("  sockets opened / closed in the window: {opened} / {closed}");
}

/// bytes_sent of every established TCP socket of the machine, by (pid, local, peer), from
/// `ss -tinp` (tcp_info).
fn tcp_bytes_sent() -> std::collections::BTreeMap<(i32, String, String), u64> {
    let out = std::process::Command::new("ss")
        .args(["-tinpH", "state", "established"])
        .output()
        .expect("ss (iproute2) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut map = std::collections::BTreeMap::new();
    let mut current: Option<(i32, String, String)> = None;
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) {
            // Recv-Q Send-Q Local Peer users:(("agent",pid=N,fd=M))
            let f: Vec<&str> = line.split_whitespace().collect();
            let pid = line
                .split("pid=")
                .nth(1)
                .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|p| p.parse().ok());
            current = match (pid, f.get(2), f.get(3)) {
                (Some(pid), Some(local), Some(peer)) => {
                    Some((pid, local.to_string(), peer.to_string()))
                }
                _ => None,
            };
        } else if let Some(key) = current.take() {
            let sent = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("bytes_sent:"))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            map.insert(key, sent);
        }
    }
    map
}

/// One node's figures over the window.
struct Row {
    rss_mib: f64,
    cpu_pct: f64,
    payload_bps: f64,
    wire_bps: f64,
}

fn mean_max(v: impl Iterator<Item = f64>) -> (f64, f64) {
    let v: Vec<f64> = v.collect();
    let max = v.iter().cloned().fold(f64::MIN, f64::max);
    (v.iter().sum::<f64>() / v.len() as f64, max)
}

struct Sample {
    rss_kib: u64,
    cpu_ticks: u64,
    /// cluster_transport_tx_bytes_total: gossip packet payload sent.
    tx_payload: f64,
}

impl Sample {
    fn take(a: &Agent, scrape_first: bool) -> Sample {
        let pid = a.pid();
        let scraped = scrape_first.then(|| a.metrics());
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
            .split_whitespace()
            .collect();
        let cpu_ticks = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
        let m = scraped.unwrap_or_else(|| a.metrics());
        let tx_payload = sample(&m, "cluster_transport_tx_bytes_total").unwrap_or(0.0);
        Sample {
            rss_kib,
            cpu_ticks,
            tx_payload,
        }
    }
}

fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}
