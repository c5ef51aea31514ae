//! Protocol configuration: every timing, fan-out and limit of the membership protocol, with its
//! default and where that default comes from.
//!
//! The defaults aim at issue 13's goals with no per-deployment tuning (figures in
//! BENCHMARKS.md, "Failure detection", each with the command that reproduces it):
//! - a killed process is dropped by all within a second, whatever the probe interval: the
//!   transport reports its closed connections and refused port, and two members' refusals are a
//!   death (no timer);
//! - a host that vanished without a trace is dropped after one probe, three verifiers' checks
//!   and the suspicion timeout, whose last second carries a last-chance probe of the suspect
//!   (so the chance costs no time when the host is really gone): ~9 s at 50 nodes (memberlist
//!   LAN: 8.9 s for a crash, which it cannot tell from a silent loss);
//! - probes every 2 s keep the idle cluster's traffic under 100 B/s per node on the wire;
//! - no false death over 1,000 seeds of 10% loss, 50-500 ms latency spikes and a node
//!   stalled for 1.5 s (scenarios/packet_loss, latency_spikes, stalled_node).
//! This module validates values; it does not run anything.

use std::fmt;
use std::time::Duration;

/// Membership protocol settings. Build with [`Config::default`] (or [`Config::lan`]) and adjust.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Name of the cluster; messages from another cluster name are refused.
    pub cluster_name: String,
    /// How often a member probes one other member. memberlist LAN: 1 s; ckit: 5 s; ours: 2 s,
    /// the idle traffic budget (a probe and its ack cost ~150 B on the wire with HTTP/2
    /// framing). A crash no longer waits for a probe (its closed connections tell); the
    /// interval matters for hosts that vanish silently. Scaled by the Lifeguard health
    /// multiplier while this node is unhealthy.
    pub probe_interval: Duration,
    /// How long to wait for a direct ack before asking others to probe indirectly (memberlist
    /// LAN: 500 ms; ckit: 2 s). A late direct ack still counts until the probe ends at the next
    /// tick, so one-way latencies up to ~1 s cause no suspicion (scenarios/latency_spikes).
    /// Must be below `probe_interval`.
    pub probe_timeout: Duration,
    /// How many members are asked to probe indirectly (memberlist `IndirectChecks`: 3).
    pub indirect_checks: usize,
    /// Suspicion timeout multiplier: min timeout = mult * max(1, log10(n)) * `suspicion_unit`
    /// (memberlist `SuspicionMult`: 4). Ours: 3, so 3 s at 10 nodes, 5.1 s at 50, 9 s at 1,000:
    /// what the suspect needs to hear of it (the verifiers' pings tell it within a round trip)
    /// and for its refutation to spread, with room for a 1.5 s stall (no false death over
    /// 1,000 seeds of packet_loss, latency_spikes, stalled_node).
    pub suspicion_mult: u32,
    /// The unit of the suspicion timeout. memberlist multiplies by its probe interval (1 s on
    /// LAN); ours probes less often to keep idle traffic low, and what the timeout must cover
    /// (the suspect hearing of it and its refutation spreading) does not depend on that.
    pub suspicion_unit: Duration,
    /// Members that check a suspicion raised by someone else at once (out of cycle), chosen by
    /// a hash every node computes alike; also the confirmations that bring the suspicion timeout
    /// down to its minimum (memberlist waits for `SuspicionMult - 2` natural probes instead).
    pub verifiers: usize,
    /// Max suspicion timeout as a multiple of the min one, shrunk by confirmations (Lifeguard;
    /// memberlist `SuspicionMaxTimeoutMult`: 6). Ours: 4: the verifiers confirm within a couple
    /// of seconds, so the max only holds when no one can confirm, i.e. a node cut off alone;
    /// 4 keeps a lone node's convergence under 40 s (scenarios/islands_uneven: 23 s max over
    /// 1,000 seeds).
    pub suspicion_max_timeout_mult: u32,
    /// Each update is retransmitted about `retransmit_mult * ceil(log10(n + 1))` times
    /// (memberlist `RetransmitMult`: 4).
    pub retransmit_mult: u32,
    /// How often queued updates are gossiped (memberlist LAN: 200 ms). Nothing is sent when the
    /// queue is empty.
    pub gossip_interval: Duration,
    /// Members gossiped to per gossip round (memberlist LAN `GossipNodes`: 3).
    pub gossip_nodes: usize,
    /// Dead members still receive gossip for this long so they learn and can refute
    /// (memberlist `GossipToTheDeadTime`: 30 s).
    pub gossip_to_the_dead: Duration,
    /// Full state exchange with one random member (memberlist LAN: 30 s; ours: 60 s, scaled up
    /// above 32 members as memberlist does). Zero disables periodic push/pull.
    pub push_pull_interval: Duration,
    /// Lifeguard local health: the largest multiplier applied to probe interval and timeout
    /// (memberlist `AwarenessMaxMultiplier`: 8).
    pub awareness_max_multiplier: u32,
    /// Largest packet this node builds when piggybacking gossip (bytes). memberlist: 1400 (UDP);
    /// HTTP/2 bodies have no MTU, 4 KiB keeps requests small.
    pub gossip_packet_bytes_max: usize,
    /// Largest packet accepted from the wire (bytes). Larger input is rejected and counted.
    pub packet_bytes_max: usize,
    /// Largest push/pull body accepted or produced (bytes).
    pub push_pull_bytes_max: usize,
    /// Members kept, tombstones included. New members beyond this are refused and counted.
    pub members_max: usize,
    /// Updates waiting to be gossiped; the most-transmitted are dropped beyond this.
    pub broadcast_queue_max: usize,
    /// Packets waiting for the driver to send; the oldest are dropped beyond this.
    pub outbox_max: usize,
    /// Dead and left members are forgotten after this long.
    pub tombstone_ttl: Duration,
    /// Seeds contacted per join attempt (Alloy `--cluster.max-join-peers`: 5).
    pub join_peers_max: usize,
    /// Join the seeds again this often, so clusters that formed apart (parallel start, a
    /// partition that outlived the tombstones) merge (Alloy `--cluster.rejoin-interval`: 60 s).
    /// `None` disables periodic rejoin.
    pub rejoin_interval: Option<Duration>,
    /// After a join that reached nobody while alone, retry after this long, doubling up to
    /// `rejoin_interval` (Alloy waits the whole rejoin interval; a parallel start then runs
    /// split for a minute).
    pub join_retry_min: Duration,
    /// Exchange state with one dead (not left) member this often, round-robin over them, so a
    /// member that was only cut off is found again when the network heals without waiting for
    /// it to rejoin (Serf's reconnect loop, every 30 s; memberlist has none). Ours: 2 s; a
    /// truly dead member costs a refused or unanswered connection attempt, no bytes; two nodes
    /// cut off from everyone and then put together find each other within seconds
    /// (scenarios/islands_uneven). `None` disables.
    pub reconnect_interval: Option<Duration>,
    /// Probes carry a digest of the prober's view (live members, their incarnations and node
    /// states); a node whose view differs exchanges full state with the prober, at most once
    /// per this interval. This closes the gaps bounded gossip leaves (a missed refutation, a
    /// missed join) without waiting for the periodic push/pull. `None` disables.
    pub digest_sync_interval: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cluster_name: String::new(),
            probe_interval: Duration::from_secs(2),
            probe_timeout: Duration::from_millis(500),
            indirect_checks: 3,
            suspicion_mult: 3,
            suspicion_unit: Duration::from_secs(1),
            verifiers: 3,
            suspicion_max_timeout_mult: 4,
            retransmit_mult: 4,
            gossip_interval: Duration::from_millis(200),
            gossip_nodes: 3,
            gossip_to_the_dead: Duration::from_secs(30),
            push_pull_interval: Duration::from_secs(60),
            awareness_max_multiplier: 8,
            gossip_packet_bytes_max: 4096,
            packet_bytes_max: 64 * 1024,
            push_pull_bytes_max: 8 * 1024 * 1024,
            members_max: 16 * 1024,
            broadcast_queue_max: 4096,
            outbox_max: 4096,
            tombstone_ttl: Duration::from_secs(600),
            join_peers_max: 5,
            rejoin_interval: Some(Duration::from_secs(60)),
            join_retry_min: Duration::from_secs(1),
            reconnect_interval: Some(Duration::from_secs(2)),
            digest_sync_interval: Some(Duration::from_secs(5)),
        }
    }
}

/// Highest incarnation accepted from a peer. A node raises its incarnation by one per
/// refutation, so no honest node gets near 2^62; an update above it is a lie (or corruption)
/// and is rejected, which keeps every node able to refute any accusation it accepts (the
/// forged `left` at `u64::MAX` that could never be refuted, issue 17).
pub const INCARNATION_MAX: u64 = 1 << 62;

/// Largest rise of a known member's incarnation accepted in one update: one refutation adds
/// one, and even a node refuting every probe for a year stays far below 2^32. A bigger jump
/// cannot come from the member and is rejected (and counted), so a liar needs billions of
/// accepted lies to walk anyone towards [`INCARNATION_MAX`].
pub const INCARNATION_JUMP_MAX: u64 = 1 << 32;

/// Highest Lamport time accepted for a node state, and the largest distance above this node's
/// own clock: clocks tick once per state change, so honest times stay tiny; a time near
/// `u64::MAX` would freeze every clock that observes it (nothing could be newer).
pub const LAMPORT_MAX: u64 = 1 << 62;
pub const LAMPORT_JUMP_MAX: u64 = 1 << 32;

/// A configuration value that cannot work, with the field named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: &'static str,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid cluster config: {}: {}", self.field, self.reason)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// memberlist's LAN profile (probe 1 s, timeout 500 ms, push/pull 30 s): faster detection,
    /// more traffic.
    pub fn lan() -> Self {
        Config {
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(500),
            suspicion_mult: 4,
            suspicion_unit: Duration::from_secs(1),
            suspicion_max_timeout_mult: 6,
            push_pull_interval: Duration::from_secs(30),
            ..Config::default()
        }
    }

    /// Check every value; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field, reason: &str| {
            Err(ConfigError {
                field,
                reason: reason.to_string(),
            })
        };
        if self.cluster_name.len() > crate::wire::STR_BYTES_MAX {
            return err("cluster_name", "must be at most 255 bytes");
        }
        if self.probe_interval.is_zero() {
            return err("probe_interval", "must not be zero");
        }
        if self.probe_timeout.is_zero() || self.probe_timeout >= self.probe_interval {
            return err(
                "probe_timeout",
                "must be above zero and below probe_interval",
            );
        }
        if self.gossip_interval.is_zero() {
            return err("gossip_interval", "must not be zero");
        }
        if self.suspicion_mult == 0 {
            return err("suspicion_mult", "must not be zero");
        }
        if self.suspicion_unit.is_zero() {
            return err("suspicion_unit", "must not be zero");
        }
        if self.suspicion_max_timeout_mult == 0 {
            return err("suspicion_max_timeout_mult", "must not be zero");
        }
        if self.retransmit_mult == 0 {
            return err("retransmit_mult", "must not be zero");
        }
        if self.awareness_max_multiplier == 0 {
            return err("awareness_max_multiplier", "must not be zero");
        }
        if self.gossip_packet_bytes_max < 512
            || self.gossip_packet_bytes_max > self.packet_bytes_max
        {
            return err(
                "gossip_packet_bytes_max",
                "must be at least 512 and at most packet_bytes_max",
            );
        }
        if self.members_max < 2 {
            return err("members_max", "must be at least 2");
        }
        if self.broadcast_queue_max == 0 || self.outbox_max == 0 {
            return err("broadcast_queue_max/outbox_max", "must not be zero");
        }
        if self.rejoin_interval.is_some_and(|d| d.is_zero()) {
            return err("rejoin_interval", "must not be zero (use None to disable)");
        }
        if self.reconnect_interval.is_some_and(|d| d.is_zero()) {
            return err(
                "reconnect_interval",
                "must not be zero (use None to disable)",
            );
        }
        if self.join_retry_min.is_zero() {
            return err("join_retry_min", "must not be zero");
        }
        if self.join_peers_max == 0 {
            return err("join_peers_max", "must not be zero");
        }
        Ok(())
    }

    /// Retransmissions per update for a cluster of `n` members: mult * ceil(log10(n + 1)).
    pub fn retransmit_limit(&self, n: usize) -> u32 {
        let scale = ((n as f64) + 1.0).log10().ceil().max(1.0) as u32;
        self.retransmit_mult * scale
    }

    /// Lifeguard's suspicion bounds for a cluster of `n` members: (min, max).
    pub fn suspicion_timeouts(&self, n: usize) -> (Duration, Duration) {
        let node_scale = (n.max(1) as f64).log10().max(1.0);
        let min = self
            .suspicion_unit
            .mul_f64(self.suspicion_mult as f64 * node_scale);
        (min, min * self.suspicion_max_timeout_mult)
    }

    /// memberlist's push/pull scaling: past 32 members the interval grows with log2(n / 32).
    pub fn push_pull_interval_for(&self, n: usize) -> Duration {
        const SCALE_THRESHOLD: usize = 32;
        if n <= SCALE_THRESHOLD {
            return self.push_pull_interval;
        }
        let mult = ((n as f64).log2() - (SCALE_THRESHOLD as f64).log2()).ceil() + 1.0;
        self.push_pull_interval.mul_f64(mult)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
        Config::lan().validate().unwrap();
    }

    #[test]
    fn validation_names_the_field() {
        let c = Config {
            probe_timeout: Duration::from_secs(5),
            ..Config::default()
        };
        let e = c.validate().unwrap_err();
        assert_eq!(e.field, "probe_timeout");
        assert!(e.to_string().contains("below probe_interval"));
    }

    #[test]
    fn suspicion_and_retransmits_scale_with_log_n() {
        let c = Config::lan();
        assert_eq!(c.retransmit_limit(1), 4);
        assert_eq!(c.retransmit_limit(10), 8);
        assert_eq!(c.retransmit_limit(100), 12);
        let (min10, max10) = c.suspicion_timeouts(10);
        assert_eq!(min10, Duration::from_secs(4));
        assert_eq!(max10, Duration::from_secs(24));
        let (min1000, _) = c.suspicion_timeouts(1000);
        assert_eq!(min1000, Duration::from_secs(12));
    }

    #[test]
    fn push_pull_interval_grows_past_32_members() {
        let c = Config::lan();
        assert_eq!(c.push_pull_interval_for(32), Duration::from_secs(30));
        assert_eq!(c.push_pull_interval_for(64), Duration::from_secs(60));
        assert_eq!(c.push_pull_interval_for(1000), Duration::from_secs(180));
    }
}
