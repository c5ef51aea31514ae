//! `RedistributionChecker`: per membership change, how many targets moved compared with the
//! ideal and with Prometheus hashmod on the same change.
//!
//! Owns the movement arithmetic (ideal fraction, moved fraction) and the baseline hook. Reads
//! converged assignments from `convergence::assess`; never computes ownership itself.

use super::convergence::Assignment;
use super::{Violation, Violations};

pub const INVARIANT: &str = "redistribution";

/// A sharding scheme to compare against on the same participant change.
pub trait MovementBaseline {
    fn name(&self) -> &'static str;
    /// Owner (index into `participants`, sorted names) of each of `target-0 .. target-<targets-1>`,
    /// or `None` when this baseline is not available in this build.
    fn owners(&self, participants: &[String], targets: u32) -> Option<Vec<u32>>;
}

/// Prometheus `hashmod`: md5 of the target, last 8 bytes big-endian, mod N over the sorted
/// participant list. Going N -> N+1 it moves about N/(N+1) of the targets.
#[derive(Debug, Default, Clone, Copy)]
pub struct Hashmod;

impl MovementBaseline for Hashmod {
    fn name(&self) -> &'static str {
        "hashmod"
    }

    /// Computed by `cluster::shard` (the one hashmod implementation), over the simulator's
    /// targets `target-<i>` keyed with `cluster::shard::key_of_str`, all participants.
    fn owners(&self, participants: &[String], targets: u32) -> Option<Vec<u32>> {
        use cluster::shard::{key_of_str, Algorithm, Assignment as ShardAssignment, Op, Peer};
        if participants.is_empty() {
            return None;
        }
        let peers: Vec<Peer> = participants
            .iter()
            .map(|p| Peer::participant(p.clone()))
            .collect();
        let keys: Vec<u64> = (0..targets)
            .map(|t| key_of_str(&format!("target-{t}")))
            .collect();
        let assignment = ShardAssignment::compute(Algorithm::Hashmod, &peers, &keys, Op::Write);
        (0..keys.len())
            .map(|t| {
                let owner = assignment.owner_of(t)?;
                participants
                    .iter()
                    .position(|p| p == owner)
                    .map(|i| i as u32)
            })
            .collect()
    }
}

/// The least fraction of targets any balanced assignment must move when the participants go
/// from `before` to `after` (both sorted): the share of the nodes that left, or of the nodes
/// that arrived, whichever is larger. Join of one to N: 1/(N+1). Leave of one from N: 1/N.
/// Same set: 0. An empty side moves nothing (there was nothing, or nothing is left, to move).
pub fn ideal_fraction(before: &[String], after: &[String]) -> f64 {
    if before.is_empty() || after.is_empty() {
        return 0.0;
    }
    let left = before
        .iter()
        .filter(|n| after.binary_search(n).is_err())
        .count();
    let arrived = after
        .iter()
        .filter(|n| before.binary_search(n).is_err())
        .count();
    let left_share = left as f64 / before.len() as f64;
    let arrived_share = arrived as f64 / after.len() as f64;
    left_share.max(arrived_share)
}

/// Fraction of the targets both assignments cover whose owner (by name) differs; `None` when
/// they share no target.
pub fn moved_fraction(before: &Assignment, after: &Assignment) -> Option<f64> {
    moved_between(
        &before.participants,
        &before.owners,
        &after.participants,
        &after.owners,
    )
}

fn moved_between(bp: &[String], bo: &[u32], ap: &[String], ao: &[u32]) -> Option<f64> {
    let shared = bo.len().min(ao.len());
    if shared == 0 {
        return None;
    }
    let moved = (0..shared)
        .filter(|&t| bp[bo[t] as usize] != ap[ao[t] as usize])
        .count();
    Some(moved as f64 / shared as f64)
}

/// The baseline's moved fraction for the same participant change over `targets` targets.
pub fn baseline_moved_fraction(
    baseline: &dyn MovementBaseline,
    before: &[String],
    after: &[String],
    targets: u32,
) -> Option<f64> {
    if before.is_empty() || after.is_empty() {
        return None;
    }
    let bo = baseline.owners(before, targets)?;
    let ao = baseline.owners(after, targets)?;
    moved_between(before, &bo, after, &ao)
}

/// Movement of one membership change.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeMovement {
    pub participants_before: u32,
    pub participants_after: u32,
    pub moved_fraction: Option<f64>,
    pub ideal_fraction: f64,
    pub hashmod_moved_fraction: Option<f64>,
}

/// For each membership change, the converged assignment just before it and the first converged
/// assignment after it (before the next event), compared target by target.
///
/// Why it matters: every moved target is a hand-over with a possible gap or duplicate. Consistent
/// hashing promises ~1/(N+1) on a join; hashmod moves ~N/(N+1). The ratio moved/ideal is the
/// price of the algorithm (ring-512 is a few percent above 1) and catches nodes that disagree
/// about the ring, which would move far more.
///
/// Without a converged unpartitioned assignment on both sides of the change (a change during a
/// partition, or before the cluster settled) the movement is unknown and reported as null.
#[derive(Debug, Default)]
pub struct RedistributionChecker {
    events_seen: usize,
    /// Latest converged assignment and the number of events seen when it was taken.
    last: Option<(usize, Assignment)>,
    pending: Vec<Pending>,
}

#[derive(Debug)]
struct Pending {
    at_ms: u64,
    membership: bool,
    description: String,
    before: Option<Assignment>,
    after: Option<Assignment>,
}

impl RedistributionChecker {
    pub fn event(&mut self, at_ms: u64, membership: bool, description: &str) {
        let before = match &self.last {
            Some((epoch, a)) if *epoch == self.events_seen => Some(a.clone()),
            _ => None,
        };
        self.events_seen += 1;
        self.pending.push(Pending {
            at_ms,
            membership,
            description: description.to_string(),
            before,
            after: None,
        });
    }

    pub fn observe(&mut self, assignment: Option<&Assignment>) {
        let Some(a) = assignment else { return };
        if let Some(p) = self.pending.last_mut() {
            if p.after.is_none() && p.before.is_some() && p.membership {
                p.after = Some(a.clone());
            }
        }
        match &self.last {
            Some((epoch, last)) if *epoch == self.events_seen && last == a => {}
            _ => self.last = Some((self.events_seen, a.clone())),
        }
    }

    /// One entry per event, in order: `None` for events that are not membership changes.
    pub fn finish(
        &self,
        baseline: &dyn MovementBaseline,
        max_ratio: Option<f64>,
        out: &mut Violations,
    ) -> Vec<Option<ChangeMovement>> {
        self.pending
            .iter()
            .map(|p| {
                if !p.membership {
                    return None;
                }
                let (Some(before), Some(after)) = (&p.before, &p.after) else {
                    return None;
                };
                let ideal = ideal_fraction(&before.participants, &after.participants);
                let moved = moved_fraction(before, after);
                let targets = before.owners.len().min(after.owners.len()) as u32;
                let hashmod = baseline_moved_fraction(baseline, &before.participants, &after.participants, targets);
                if let (Some(max), Some(moved)) = (max_ratio, moved) {
                    if ideal > 0.0 && moved / ideal > max {
                        out.push(Violation::new(
                            p.at_ms,
                            INVARIANT,
                            format!(
                                "{}: moved {:.4} of targets, ideal {:.4}: ratio {:.3} above {max}",
                                p.description,
                                moved,
                                ideal,
                                moved / ideal
                            ),
                        ));
                    } else if ideal == 0.0 && moved > 0.0 {
                        out.push(Violation::new(
                            p.at_ms,
                            INVARIANT,
                            format!(
                                "{}: moved {:.4} of targets although the participants are the same before and after",
                                p.description, moved
                            ),
                        ));
                    }
                }
                Some(ChangeMovement {
                    participants_before: before.participants.len() as u32,
                    participants_after: after.participants.len() as u32,
                    moved_fraction: moved,
                    ideal_fraction: ideal,
                    hashmod_moved_fraction: hashmod,
                })
            })
            .collect()
    }
}
