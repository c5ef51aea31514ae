//! The Lamport clock that orders node-state messages, as ckit uses it.
//!
//! `tick` on every local change, `observe` on every received time. A message about a node wins
//! over another about the same node when its time is higher. This module owns only the counter;
//! the rules about which message wins live in `membership`.

/// A Lamport clock. The value never goes backwards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LamportClock {
    time: u64,
}

impl LamportClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// The current time.
    pub fn now(&self) -> u64 {
        self.time
    }

    /// Advance for a local event and return the new time.
    pub fn tick(&mut self) -> u64 {
        self.time = self.time.saturating_add(1);
        self.time
    }

    /// Account for a time seen in a message: the clock moves past it.
    pub fn observe(&mut self, seen: u64) {
        if seen >= self.time {
            self.time = seen.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn observe_moves_past_the_seen_time() {
        let mut c = LamportClock::new();
        c.observe(10);
        assert_eq!(c.now(), 11);
        assert_eq!(c.tick(), 12);
        c.observe(3);
        assert_eq!(c.now(), 12, "an older time leaves the clock alone");
    }

    proptest! {
        #[test]
        fn never_goes_backwards(ops in proptest::collection::vec(proptest::option::of(0u64..1_000), 0..200)) {
            let mut c = LamportClock::new();
            let mut last = c.now();
            for op in ops {
                match op {
                    Some(seen) => { c.observe(seen); prop_assert!(c.now() > seen); }
                    None => { c.tick(); }
                }
                prop_assert!(c.now() >= last);
                last = c.now();
            }
        }
    }
}
