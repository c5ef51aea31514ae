//! Ports for the servers a test starts (agents, Prometheus, node_exporter, endpoints of ours).
//!
//! A port taken from `bind(127.0.0.1:0)` and released comes from the kernel's ephemeral range,
//! the same range every outgoing connection takes its source port from: between the release
//! and the server's own bind, any connection on the machine (an agent scraping, Prometheus
//! dialling) may take it, and the server fails with "address already in use" (it did in CI).
//! The ports here lie below that range, so only a listener can hold one; each is checked free
//! by binding it, and a process-wide counter never hands the same one out twice.
//!
//! Declared once per test binary (`mod ports;` in the test's root) so the counter is shared
//! by every helper module of that binary.
#![allow(dead_code)] // each test binary uses a different subset

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// The lowest port handed out (clear of well-known and most registered service ports).
const LOW: u32 = 10_000;

/// Ports free a moment ago on 127.0.0.1, distinct, outside the ephemeral range.
pub fn free_ports(n: usize) -> Vec<u16> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let high = ephemeral_low().min(65_536);
    if high <= LOW + 1_000 {
        // The ephemeral range starts too low to stay out of it: fall back to the kernel's pick.
        return ephemeral(n);
    }
    let span = high - LOW;
    // Another test binary running at the same time starts elsewhere in the window.
    let start = std::process::id().wrapping_mul(2_654_435_761) % span;
    let mut ports = Vec::with_capacity(n);
    for _ in 0..span {
        if ports.len() == n {
            break;
        }
        let port = (LOW + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            ports.push(port);
        }
    }
    assert_eq!(ports.len(), n, "no {n} free ports in {LOW}..{high}");
    ports
}

/// One port, as [`free_ports`].
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// The first port of the kernel's ephemeral range (Linux default 32768).
fn ephemeral_low() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

fn ephemeral(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}
