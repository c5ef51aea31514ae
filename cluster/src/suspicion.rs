//! Lifeguard's suspicion timer: starts long and shrinks as independent members confirm.
//!
//! timeout(c) = max(min, max - (max - min) * ln(c + 1) / ln(k + 1)) for c confirmations out of
//! k expected (memberlist's formula). This module only computes deadlines; `membership`
//! decides what a suspicion means.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::time::Instant;

#[derive(Debug, Clone)]
pub struct Suspicion {
    pub incarnation: u64,
    start: Instant,
    min: Duration,
    max: Duration,
    /// Confirmations needed to reach the minimum timeout.
    k: u32,
    /// Members that suspected this one; the first accuser is in here but not counted.
    confirmers: BTreeSet<String>,
    confirmations: u32,
    /// Time added by the last-chance probe (see [`Suspicion::last_chance`]).
    extension: Duration,
}

impl Suspicion {
    pub fn new(
        incarnation: u64,
        from: &str,
        start: Instant,
        min: Duration,
        max: Duration,
        k: u32,
    ) -> Self {
        let mut confirmers = BTreeSet::new();
        confirmers.insert(from.to_string());
        Suspicion {
            incarnation,
            start,
            min,
            max: max.max(min),
            k,
            confirmers,
            confirmations: 0,
            extension: Duration::ZERO,
        }
    }

    /// Record an accusation by `from`; true if it is a new, independent one.
    pub fn confirm(&mut self, from: &str) -> bool {
        if self.confirmations >= self.k || !self.confirmers.insert(from.to_string()) {
            return false;
        }
        self.confirmations += 1;
        true
    }

    /// At the deadline, before declaring the member dead, probe it once more telling it that
    /// it is suspected, and wait `grace` for its refutation. True the first time (probe now),
    /// false once the last chance was given (declare now).
    pub fn last_chance(&mut self, grace: Duration) -> bool {
        if !self.extension.is_zero() {
            return false;
        }
        self.extension = grace.max(Duration::from_millis(1));
        true
    }

    /// Whether this suspicion has run at least its minimum timeout by `now`: only then is
    /// someone else's verdict of death believable without our own timer.
    pub fn is_ripe(&self, now: Instant) -> bool {
        now.saturating_since(self.start) >= self.min
    }

    pub fn deadline(&self) -> Instant {
        self.base_deadline() + self.extension
    }

    fn base_deadline(&self) -> Instant {
        if self.k == 0 {
            return self.start + self.min;
        }
        let frac = ((self.confirmations as f64) + 1.0).ln() / ((self.k as f64) + 1.0).ln();
        let span = self.max.saturating_sub(self.min);
        let timeout = self.max.saturating_sub(span.mul_f64(frac.min(1.0)));
        self.start + timeout.max(self.min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmations_shrink_the_timeout_down_to_the_minimum() {
        let min = Duration::from_secs(4);
        let max = Duration::from_secs(24);
        let mut s = Suspicion::new(1, "a", Instant::ZERO, min, max, 2);
        assert_eq!(s.deadline(), Instant::ZERO + max);
        assert!(!s.confirm("a"), "the first accuser does not count twice");
        assert!(s.confirm("b"));
        let mid = s.deadline();
        assert!(mid < Instant::ZERO + max && mid > Instant::ZERO + min);
        assert!(s.confirm("c"));
        assert_eq!(s.deadline(), Instant::ZERO + min);
        assert!(!s.confirm("d"), "no confirmations past k");
    }

    #[test]
    fn no_expected_confirmations_means_the_minimum() {
        let s = Suspicion::new(
            0,
            "a",
            Instant::from_millis(10),
            Duration::from_secs(1),
            Duration::from_secs(6),
            0,
        );
        assert_eq!(s.deadline(), Instant::from_millis(1010));
    }
}
