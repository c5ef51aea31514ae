//! Time as the core sees it: an [`Instant`] handed in by the driver.
//!
//! The core never reads a clock. Drivers pick an epoch (process start, simulation start) and pass
//! the time elapsed since it; the core only compares and adds. This keeps the core deterministic
//! and lets the simulator jump straight to the next wakeup.

use std::ops::{Add, AddAssign};
use std::time::Duration;

/// A point in time, measured from an epoch chosen by the driver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(Duration);

impl Instant {
    pub const ZERO: Instant = Instant(Duration::ZERO);

    pub fn from_elapsed(since_epoch: Duration) -> Self {
        Instant(since_epoch)
    }

    pub fn from_millis(ms: u64) -> Self {
        Instant(Duration::from_millis(ms))
    }

    pub fn elapsed_since_epoch(self) -> Duration {
        self.0
    }

    pub fn as_millis(self) -> u64 {
        self.0.as_millis() as u64
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(d))
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        self.0 = self.0.saturating_add(d);
    }
}
