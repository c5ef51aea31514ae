//! Each listener limit, sent past by a client on loopback, against a real two-node cluster:
//! connections per address, oversized headers, a slowloris request, a transport message flood
//! from one address, and a `/-/reload` loop. After each, the node still answers, the cluster
//! keeps both members, and the node's memory stays bounded (RSS from /proc).

mod common;
mod ports;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

fn rss_kib(pid: i32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Whether the server closed `s` (EOF or reset) within `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

fn both_members(a: &Agent) -> bool {
    names_in_state(&a.peers(), "participant").len() == 2
}

#[test]
fn a_node_keeps_its_membership_and_memory_under_every_listener_limit() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(2);
    let config = write_file(dir.path(), "empty.alloy", "// no components\n");
    let mut flags = strings(&["--cluster.enabled"]);
    flags.extend(strings(FAST));
    flags.push(config.display().to_string());
    let mut a = Agent::start("node-1", ports[0], &flags);
    let mut second = flags.clone();
    second.insert(
        0,
        format!("--cluster.join-addresses=127.0.0.1:{}", ports[0]),
    );
    let mut b = Agent::start("node-2", ports[1], &second);
    a.wait_healthy();
    b.wait_healthy();
    wait_for("a cluster of 2", Duration::from_secs(20), || {
        both_members(&a) && both_members(&b)
    });
    let rss_before = rss_kib(a.pid());
    let port = a.port;

    // 1. Connections per address: 64 are held, the rest closed at once and counted.
    let mut held: Vec<TcpStream> = (0..80)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut refused = 0;
    for s in held.iter_mut() {
        if closed_within(s, Duration::from_millis(200)) {
            refused += 1;
        }
    }
    assert!(refused >= 16, "{refused} of 80 connections refused");
    drop(held);
    wait_for("the node answers again", Duration::from_secs(5), || {
        get(port, "/-/healthy").is_some_and(|r| r.status == 200)
    });
    let m = a.metrics();
    assert!(sample(&m, "cluster_server_connections_refused_total").unwrap_or(0.0) >= 16.0);

    // 2. A 100 KiB header: refused (431 or closed), the node unharmed.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let big = "x".repeat(100 * 1024);
    let _ =
        s.write_all(format!("GET /metrics HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\n\r\n").as_bytes());
    let mut out = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.read_to_end(&mut out);
    let head = String::from_utf8_lossy(&out);
    assert!(
        out.is_empty() || head.starts_with("HTTP/1.1 431"),
        "{head:.80}"
    );

    // 3. Slowloris: a request line and then nothing. The server closes it after the header
    //    read timeout (10 s).
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: a\r\n")
        .unwrap();
    let started = Instant::now();
    assert!(
        closed_within(&mut slow, Duration::from_secs(20)),
        "slow request kept open"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "closed too early: {:?}",
        started.elapsed()
    );

    // 4. A flood of transport requests from one address: beyond the budget they get 429.
    let mut flood = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let req = format!(
        "POST {} HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
        runtime::MESSAGE_PATH
    );
    let batch = req.repeat(6000);
    let writer = {
        let mut w = flood.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = w.write_all(batch.as_bytes());
        })
    };
    flood
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match flood.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
        if String::from_utf8_lossy(&seen).matches("HTTP/1.1 ").count() >= 6000 {
            break;
        }
    }
    let _ = writer.join();
    let text = String::from_utf8_lossy(&seen);
    let limited = text.matches("HTTP/1.1 429").count();
    assert!(
        limited > 0,
        "no 429 among {} answers",
        text.matches("HTTP/1.1 ").count()
    );
    let m = a.metrics();
    assert!(
        sample(&m, "cluster_server_messages_rate_limited_total").unwrap_or(0.0) >= limited as f64
    );

    // 5. A reload loop: five in a row pass, then 429.
    let codes: Vec<u16> = (0..8)
        .map(|_| request(port, "POST", "/-/reload", "").map_or(0, |r| r.status))
        .collect();
    assert_eq!(&codes[..5], &[200; 5], "{codes:?}");
    assert!(codes[5..].contains(&429), "{codes:?}");

    // The cluster is intact and memory bounded.
    std::thread::sleep(Duration::from_secs(1));
    assert!(both_members(&a) && both_members(&b));
    let rss_after = rss_kib(a.pid());
    assert!(
        rss_after < rss_before + 64 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    println!("RSS of node-1: {rss_before} KiB before, {rss_after} KiB after the abuse");
}
