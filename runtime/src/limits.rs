//! The listener's protection against bad or abusive clients, on top of the per-request body
//! limits of [`crate::server`]: connections per client address, transport messages per second
//! per client address (a token bucket), and the HTTP limits every connection gets (header
//! sizes, a header read timeout against slowloris, HTTP/2 stream and reset bounds). A node
//! under any of these keeps serving its peers; what it refuses is counted in [`ServerStats`].

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Connections one client address may hold at once. A cluster needs about two per peer
/// address; Prometheus needs one.
pub const CONNECTIONS_PER_ADDRESS_MAX: usize = 64;
/// Transport messages per second one client address may send (sustained)...
pub const MESSAGES_PER_SECOND: f64 = 2000.0;
/// ...and in a burst. A node's peers send a few dozen per second each.
pub const MESSAGES_BURST: f64 = 4000.0;
/// A request's headers must arrive within this (HTTP/1.1; slowloris).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest HTTP/1.1 read buffer (request line and headers).
pub const HTTP1_BUFFER_MAX: usize = 64 * 1024;
/// Largest HTTP/2 header list.
pub const HTTP2_HEADER_LIST_MAX: u32 = 16 * 1024;
/// HTTP/2 streams a client may reset before they are accepted, before the connection is
/// closed (rapid reset, CVE-2023-44487).
pub const HTTP2_PENDING_RESETS_MAX: usize = 32;
/// Addresses tracked by the rate limiter; the least recently used beyond it are forgotten.
const TRACKED_ADDRESSES_MAX: usize = 16 * 1024;

/// What the listener refused (`cluster_server_*` metrics).
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Connections closed at accept: too many at once from one address, or in all.
    pub connections_refused: AtomicU64,
    /// Transport requests answered 429: their address sent more than its budget.
    pub messages_rate_limited: AtomicU64,
}

/// Connections held per client address.
#[derive(Debug, Default)]
pub struct ConnectionCounts {
    held: Mutex<BTreeMap<IpAddr, usize>>,
}

/// A held connection slot; released on drop.
pub struct ConnectionSlot {
    counts: Arc<ConnectionCounts>,
    ip: IpAddr,
}

impl ConnectionCounts {
    /// A slot for one more connection from `ip`, if it holds fewer than the maximum.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<ConnectionSlot> {
        let mut held = self.held.lock().unwrap();
        let n = held.entry(ip).or_default();
        if *n >= CONNECTIONS_PER_ADDRESS_MAX {
            return None;
        }
        *n += 1;
        Some(ConnectionSlot {
            counts: self.clone(),
            ip,
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut held = self.counts.held.lock().unwrap();
        if let Some(n) = held.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

/// A token bucket per client address for transport messages.
#[derive(Debug, Default)]
pub struct MessageBudget {
    buckets: Mutex<BTreeMap<IpAddr, (f64, Instant)>>,
}

impl MessageBudget {
    /// Takes one message from `ip`'s budget; false when it is spent.
    pub fn allow(&self, ip: IpAddr, stats: &ServerStats) -> bool {
        let now = Instant::now();
        let mut b = self.buckets.lock().unwrap();
        if b.len() >= TRACKED_ADDRESSES_MAX && !b.contains_key(&ip) {
            // Forget the address idle longest (full buckets cost nothing to rebuild).
            if let Some(oldest) = b.iter().min_by_key(|(_, (_, t))| *t).map(|(k, _)| *k) {
                b.remove(&oldest);
            }
        }
        let (tokens, last) = b.entry(ip).or_insert((MESSAGES_BURST, now));
        let refill = now.duration_since(*last).as_secs_f64() * MESSAGES_PER_SECOND;
        *tokens = (*tokens + refill).min(MESSAGES_BURST);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            stats.messages_rate_limited.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}
