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
    /// How long the last-chance probe takes (a direct then an indirect check).
    grace: Duration,
    /// When the last-chance probe, once sent, has had its time (see
    /// [`Suspicion::start_last_chance`]).
    last_chance_until: Option<Instant>,
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
        grace: Duration,
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
            grace,
            last_chance_until: None,
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

    /// Before declaring the member dead, probe it once more telling it that it is suspected
    /// (its answer withdraws the suspicion). The probe runs in the last `grace` of the timer,
    /// so it costs no time when the member is really gone: true the first time, when the
    /// probe is to be sent now; the deadline then waits at least until the probe had its time.
    pub fn start_last_chance(&mut self, now: Instant) -> bool {
        if self.last_chance_until.is_some() {
            return false;
        }
        self.last_chance_until = Some(now + self.grace);
        true
    }

    /// When the node must look at this suspicion again: the start of the last chance, then the
    /// deadline.
    pub fn wake_at(&self) -> Instant {
        match self.last_chance_until {
            Some(_) => self.deadline(),
            None => {
                let base = self.base_deadline();
                let lead = base.saturating_since(self.start).min(self.grace);
                Instant::from_elapsed(base.elapsed_since_epoch() - lead)
            }
        }
    }

    /// Whether this suspicion has run at least its minimum timeout by `now`: only then is
    /// someone else's verdict of death believable without our own timer.
    pub fn is_ripe(&self, now: Instant) -> bool {
        now.saturating_since(self.start) >= self.min
    }

    pub fn deadline(&self) -> Instant {
        let base = self.base_deadline();
        match self.last_chance_until {
            Some(until) if until > base => until,
            _ => base,
        }
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

    const GRACE: Duration = Duration::from_secs(1);

    #[test]
    fn confirmations_shrink_the_timeout_down_to_the_minimum() {
        let min = Duration::from_secs(4);
        let max = Duration::from_secs(24);
        let mut s = Suspicion::new(1, "a", false, Instant::ZERO, min, max, 2, GRACE);
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
        let mut s = Suspicion::new(1, "a", true, Instant::ZERO, min, max, 1, GRACE);
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
            GRACE,
        );
        assert_eq!(s.deadline(), Instant::from_millis(1010));
    }

    #[test]
    fn the_last_chance_runs_in_the_last_grace_of_the_timer_and_is_never_cut_short() {
        let (min, max) = (Duration::from_secs(4), Duration::from_secs(24));
        let mut s = Suspicion::new(1, "a", false, Instant::ZERO, min, max, 1, GRACE);
        assert_eq!(s.wake_at(), Instant::ZERO + (max - GRACE));
        assert!(s.start_last_chance(Instant::ZERO + (max - GRACE)));
        assert!(!s.start_last_chance(Instant::ZERO + max), "once");
        assert_eq!(s.deadline(), Instant::ZERO + max, "no time added");
        // A confirmation now would move the deadline to the minimum, long past: the probe
        // still gets its time.
        assert!(s.confirm("b", false));
        assert_eq!(s.deadline(), Instant::ZERO + max);
        assert_eq!(s.wake_at(), s.deadline());
        // A timer shorter than the grace: the probe starts at once and runs its whole time.
        let mut short =
            Suspicion::new(1, "a", false, Instant::ZERO, GRACE / 2, GRACE / 2, 0, GRACE);
        assert_eq!(short.wake_at(), Instant::ZERO);
        assert!(short.start_last_chance(Instant::ZERO));
        assert_eq!(short.deadline(), Instant::ZERO + GRACE);
    }
}
