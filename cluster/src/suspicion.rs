//! Lifeguard's suspicion timer: starts long and shrinks as independent members confirm.
//!
//! timeout(c) = max(min, max - (max - min) * ln(c + 1) / ln(k + 1)) for c confirmations out of
//! k expected (memberlist's formula). It also keeps which accusers had a refused connection to
//! the member (strong evidence, see `membership::probe`). This module only computes deadlines
//! and counts; `membership` decides what a suspicion means.

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
    /// Accusers whose connection to the member was refused (at most
    /// [`crate::membership::REFUSED_QUORUM`] kept).
    refusers: BTreeSet<String>,
    /// Time added by the last-chance probe (see [`Suspicion::last_chance`]).
    extension: Duration,
}

impl Suspicion {
    pub fn new(
        incarnation: u64,
        from: &str,
        refused: bool,
        start: Instant,
        min: Duration,
        max: Duration,
        k: u32,
    ) -> Self {
        let mut confirmers = BTreeSet::new();
        confirmers.insert(from.to_string());
        let mut refusers = BTreeSet::new();
        if refused {
            refusers.insert(from.to_string());
        }
        Suspicion {
            refusers,
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

    /// Record an accusation by `from` (`refused`: its connection was refused); true if it is
    /// news: a new independent confirmation, or a new refusal.
    pub fn confirm(&mut self, from: &str, refused: bool) -> bool {
        let quorum = crate::membership::REFUSED_QUORUM;
        let new_refusal =
            refused && self.refusers.len() < quorum && self.refusers.insert(from.to_string());
        let new_confirmation =
            self.confirmations < self.k && self.confirmers.insert(from.to_string());
        if new_confirmation {
            self.confirmations += 1;
        }
        new_refusal || new_confirmation
    }

    /// Distinct accusers whose connections were refused (capped at the quorum).
    pub fn refusals(&self) -> usize {
        self.refusers.len()
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
        let mut s = Suspicion::new(1, "a", false, Instant::ZERO, min, max, 2);
        assert_eq!(s.deadline(), Instant::ZERO + max);
        assert!(
            !s.confirm("a", false),
            "the first accuser does not count twice"
        );
        assert!(s.confirm("b", false));
        let mid = s.deadline();
        assert!(mid < Instant::ZERO + max && mid > Instant::ZERO + min);
        assert!(s.confirm("c", false));
        assert_eq!(s.deadline(), Instant::ZERO + min);
        assert!(!s.confirm("d", false), "no confirmations past k");
    }

    #[test]
    fn refusals_are_counted_once_per_accuser_up_to_the_quorum() {
        let (min, max) = (Duration::from_secs(4), Duration::from_secs(24));
        let mut s = Suspicion::new(1, "a", true, Instant::ZERO, min, max, 1);
        assert_eq!(s.refusals(), 1);
        assert!(
            !s.confirm("a", true),
            "the first accuser's refusal is already in"
        );
        // A timeout confirmation from b, then b's own refusal: both are news.
        assert!(s.confirm("b", false));
        assert_eq!(s.refusals(), 1);
        assert!(s.confirm("b", true));
        assert_eq!(s.refusals(), 2);
        assert!(
            !s.confirm("c", true),
            "past the quorum and past k: nothing new"
        );
        assert_eq!(s.refusals(), crate::membership::REFUSED_QUORUM);
    }

    #[test]
    fn no_expected_confirmations_means_the_minimum() {
        let s = Suspicion::new(
            0,
            "a",
            false,
            Instant::from_millis(10),
            Duration::from_secs(1),
            Duration::from_secs(6),
            0,
        );
        assert_eq!(s.deadline(), Instant::from_millis(1010));
    }
}
