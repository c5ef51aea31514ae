//! `OwnershipAccounting`: how many target-seconds went unscraped or were scraped twice.
//!
//! Owns the time integral of ownership gaps and overlaps; not an invariant with a pass/fail of
//! its own (convergence is), but the number users feel.

use crate::observe::Observation;

/// Integrates, over the run, the targets nobody owns and the extra owners of targets owned
/// more than once, among live nodes.
///
/// Why it matters: an unowned target is a gap in someone's metrics; a duplicate is double
/// scrape load and out-of-order samples at the remote-write end (alloy#249, #784). Split brain
/// shows up here as duplicates, config drift as unowned targets.
///
/// Definitions: a target is wanted when some live node lists it. Unowned target-seconds: the
/// time each wanted target had no live owner. Duplicate target-seconds: for each target, time x
/// (owners - 1) while it had two or more. Each observation holds until the next one; the last
/// one until the end of the run.
#[derive(Debug, Default)]
pub struct OwnershipAccounting {
    /// (at_ms, unowned, duplicate) of the latest observation.
    prev: Option<(u64, u64, u64)>,
    unowned_target_ms: u128,
    duplicate_target_ms: u128,
    counts: Vec<u32>,
}

impl OwnershipAccounting {
    pub fn observe(&mut self, obs: &Observation) {
        let wanted = obs
            .nodes
            .iter()
            .filter(|n| n.live)
            .map(|n| n.config_targets)
            .max()
            .unwrap_or(0) as usize;
        self.counts.clear();
        self.counts.resize(wanted, 0);
        for n in obs.nodes.iter().filter(|n| n.live) {
            for &t in &n.owned_targets {
                if let Some(c) = self.counts.get_mut(t as usize) {
                    *c += 1;
                }
            }
        }
        let unowned = self.counts.iter().filter(|c| **c == 0).count() as u64;
        let duplicate: u64 = self
            .counts
            .iter()
            .map(|c| u64::from(c.saturating_sub(1)))
            .sum();
        self.advance(obs.at_ms);
        self.prev = Some((obs.at_ms, unowned, duplicate));
    }

    fn advance(&mut self, to_ms: u64) {
        if let Some((at, unowned, duplicate)) = self.prev {
            let span = u128::from(to_ms.saturating_sub(at));
            self.unowned_target_ms += span * u128::from(unowned);
            self.duplicate_target_ms += span * u128::from(duplicate);
        }
    }

    /// Closes the last interval at the end of the run.
    pub fn finish(&mut self, duration_ms: u64) {
        self.advance(duration_ms);
        if let Some(prev) = &mut self.prev {
            prev.0 = prev.0.max(duration_ms);
        }
    }

    pub fn unowned_target_seconds(&self) -> f64 {
        self.unowned_target_ms as f64 / 1000.0
    }

    pub fn duplicate_target_seconds(&self) -> f64 {
        self.duplicate_target_ms as f64 / 1000.0
    }
}
