//! Distribution quality of a sharding algorithm, measured the way ANCHORS.md measures ckit.
//!
//! This module owns the measurement setup and the [`DistributionReport`]: balance of one
//! assignment (peak:mean, coefficient of variation) and movement when one node joins or leaves,
//! each next to its ideal. It is pure and deterministic: the same arguments give the same report
//! on every machine. It must not grow knobs that make our numbers incomparable with ANCHORS.md.
//!
//! Setup (seed 0 is exactly the ANCHORS.md setup):
//! - targets: keys `xxhash64("target-<i>")` for `i in 0..targets`; for a seed `s != 0` the
//!   names are salted as `target-<i>-s<s>`, so each seed is an independent key set;
//! - nodes: `node-0 .. node-<N-1>`, all participants; ownership for [`Op::Write`];
//! - join: `node-<N>` is added; ideal movement `1/(N+1)` of all targets;
//! - leave: one node is removed, `node-<j>` with `j = ChaCha8Rng::seed_from_u64(seed)
//!   .gen_range(0..N)`; ideal movement `1/N`.
//!
//! Movement counts every target whose owner name changed, as a fraction of all targets.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{key_of_str, Algorithm, Assignment, Op, Peer, Sharder};

/// Balance and movement of one algorithm at one size. Fractions are of all targets.
#[derive(Debug, Clone, PartialEq)]
pub struct DistributionReport {
    pub algorithm: String,
    pub nodes: usize,
    pub targets: usize,
    /// Largest per-node count over the mean count `targets / nodes`.
    pub peak_to_mean: f64,
    /// Population standard deviation of per-node counts over their mean.
    pub cv: f64,
    pub moved_on_join: f64,
    /// `1 / (nodes + 1)`.
    pub ideal_on_join: f64,
    pub moved_on_leave: f64,
    /// `1 / nodes`.
    pub ideal_on_leave: f64,
    /// What Prometheus `hashmod` moves on the same join (the baseline, ~`N / (N + 1)`).
    pub hashmod_moved_on_join: f64,
}

/// The target names of the setup for `seed` (see the module docs).
pub fn target_name(i: usize, seed: u64) -> String {
    if seed == 0 {
        format!("target-{i}")
    } else {
        format!("target-{i}-s{seed}")
    }
}

/// The node that leaves in the setup for `seed`.
pub fn leaving_node(nodes: usize, seed: u64) -> usize {
    assert!(nodes > 0, "a leave needs at least one node");
    ChaCha8Rng::seed_from_u64(seed).gen_range(0..nodes)
}

/// Measures `algorithm` (with its default tuning) on `nodes` nodes and `targets` targets.
pub fn distribution(
    algorithm: Algorithm,
    nodes: usize,
    targets: usize,
    seed: u64,
) -> DistributionReport {
    distribution_of(&Sharder::new(algorithm), nodes, targets, seed)
}

/// Measures a configured sharder (e.g. `Sharder::with_bounded_config`). Its peers and keys are
/// replaced; only its algorithm and tuning are used.
pub fn distribution_of(
    template: &Sharder,
    nodes: usize,
    targets: usize,
    seed: u64,
) -> DistributionReport {
    assert!(nodes > 0, "distribution needs at least one node");
    let keys: Vec<u64> = (0..targets)
        .map(|i| key_of_str(&target_name(i, seed)))
        .collect();
    let peers: Vec<Peer> = (0..=nodes)
        .map(|i| Peer::participant(format!("node-{i}")))
        .collect();
    let leaver = leaving_node(nodes, seed);
    let left: Vec<Peer> = peers[..nodes]
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != leaver)
        .map(|(_, p)| p.clone())
        .collect();

    let mut sharder = template.clone();
    sharder.set_keys(&keys);
    let mut run = |peers: &[Peer]| -> Assignment {
        sharder.set_peers(peers);
        sharder.assign(Op::Write)
    };
    let before = run(&peers[..nodes]);
    let joined = run(&peers);
    let after_leave = run(&left);

    let fraction = |moved: usize| {
        if targets == 0 {
            0.0
        } else {
            moved as f64 / targets as f64
        }
    };
    let moved_on_join = fraction(joined.moved_from(&before));
    let hashmod_moved_on_join = if template.algorithm() == Algorithm::Hashmod {
        moved_on_join
    } else {
        let mut hashmod = Sharder::new(Algorithm::Hashmod);
        hashmod.set_keys(&keys);
        hashmod.set_peers(&peers[..nodes]);
        let h_before = hashmod.assign(Op::Write);
        hashmod.set_peers(&peers);
        fraction(hashmod.assign(Op::Write).moved_from(&h_before))
    };
    let (peak_to_mean, cv) = balance(before.counts(), targets, nodes);
    DistributionReport {
        algorithm: template.algorithm().to_string(),
        nodes,
        targets,
        peak_to_mean,
        cv,
        moved_on_join,
        ideal_on_join: 1.0 / (nodes + 1) as f64,
        moved_on_leave: fraction(after_leave.moved_from(&before)),
        ideal_on_leave: 1.0 / nodes as f64,
        hashmod_moved_on_join,
    }
}

/// (peak:mean, cv) of per-node counts.
fn balance(counts: &[u32], targets: usize, nodes: usize) -> (f64, f64) {
    if targets == 0 {
        return (0.0, 0.0);
    }
    let mean = targets as f64 / nodes as f64;
    let peak = counts.iter().copied().max().unwrap_or(0) as f64;
    let var = counts
        .iter()
        .map(|&c| (c as f64 - mean).powi(2))
        .sum::<f64>()
        / nodes as f64;
    (peak / mean, var.sqrt() / mean)
}

impl DistributionReport {
    /// Movement on join over its ideal (1.0 is perfect).
    pub fn join_ratio(&self) -> f64 {
        self.moved_on_join / self.ideal_on_join
    }

    /// Movement on leave over its ideal (1.0 is perfect).
    pub fn leave_ratio(&self) -> f64 {
        self.moved_on_leave / self.ideal_on_leave
    }

    /// One JSON object, keys in field order, numbers in Rust's shortest round-trip form
    /// (non-finite numbers as `null`).
    pub fn to_json(&self) -> String {
        let mut out = String::from("{\"algorithm\":");
        push_json_string(&mut out, &self.algorithm);
        out.push_str(&format!(
            ",\"nodes\":{},\"targets\":{}",
            self.nodes, self.targets
        ));
        for (name, value) in [
            ("peak_to_mean", self.peak_to_mean),
            ("cv", self.cv),
            ("moved_on_join", self.moved_on_join),
            ("ideal_on_join", self.ideal_on_join),
            ("moved_on_leave", self.moved_on_leave),
            ("ideal_on_leave", self.ideal_on_leave),
            ("hashmod_moved_on_join", self.hashmod_moved_on_join),
        ] {
            out.push_str(&format!(",\"{name}\":"));
            if value.is_finite() {
                out.push_str(&format!("{value}"));
            } else {
                out.push_str("null");
            }
        }
        out.push('}');
        out
    }
}

fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_zero_uses_the_anchor_target_names() {
        assert_eq!(target_name(7, 0), "target-7");
        assert_eq!(target_name(7, 3), "target-7-s3");
    }

    #[test]
    fn same_seed_is_reproducible() {
        let a = distribution(Algorithm::Bounded, 7, 2_000, 5);
        let b = distribution(Algorithm::Bounded, 7, 2_000, 5);
        assert_eq!(a, b);
        assert_eq!(leaving_node(10, 5), leaving_node(10, 5));
    }

    #[test]
    fn hashmod_baseline_moves_almost_everything_on_join() {
        let r = distribution(Algorithm::Hashmod, 10, 5_000, 0);
        assert!((r.moved_on_join - 10.0 / 11.0).abs() < 0.03, "{r:?}");
        assert_eq!(r.moved_on_join, r.hashmod_moved_on_join);
    }

    #[test]
    fn json_has_every_field_in_order() {
        let r = DistributionReport {
            algorithm: "ring".into(),
            nodes: 10,
            targets: 100,
            peak_to_mean: 1.5,
            cv: 0.25,
            moved_on_join: 0.125,
            ideal_on_join: 0.0625,
            moved_on_leave: 0.5,
            ideal_on_leave: 0.1,
            hashmod_moved_on_join: f64::NAN,
        };
        assert_eq!(
            r.to_json(),
            "{\"algorithm\":\"ring\",\"nodes\":10,\"targets\":100,\"peak_to_mean\":1.5,\
             \"cv\":0.25,\"moved_on_join\":0.125,\"ideal_on_join\":0.0625,\
             \"moved_on_leave\":0.5,\"ideal_on_leave\":0.1,\"hashmod_moved_on_join\":null}"
        );
    }
}
