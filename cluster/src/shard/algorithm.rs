//! The names of the sharding algorithms, as users write them in config and on the command line.
//!
//! This module owns only the enum, its default and its text form; the algorithms themselves
//! live in `ring.rs`, `rendezvous.rs`, `hashmod.rs` and `bounded.rs`.

use std::fmt;
use std::str::FromStr;

/// A sharding algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Algorithm {
    /// Consistent hashing with bounded loads over the shared target list (the default):
    /// peak:mean <= 1.05 by construction, near-minimal movement. Needs the whole key set;
    /// a lone lookup falls back to its ring's preference order.
    #[default]
    Bounded,
    /// ckit's `Ring(512)`, as Grafana Agent and Alloy use it.
    Ring,
    /// Rendezvous (highest random weight): exact 1/N expectation, O(N) per lookup.
    Rendezvous,
    /// Prometheus `hashmod`: md5 mod N. Baseline only; N -> N+1 moves N/(N+1) of targets.
    Hashmod,
}

impl Algorithm {
    /// Every algorithm, default first.
    pub const ALL: [Algorithm; 4] = [
        Algorithm::Bounded,
        Algorithm::Ring,
        Algorithm::Rendezvous,
        Algorithm::Hashmod,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Bounded => "bounded",
            Algorithm::Ring => "ring",
            Algorithm::Rendezvous => "rendezvous",
            Algorithm::Hashmod => "hashmod",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown sharding algorithm {s:?}: expected one of bounded, ring, rendezvous, hashmod"
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_is_the_default() {
        assert_eq!(Algorithm::default(), Algorithm::Bounded);
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_explained() {
        for a in Algorithm::ALL {
            assert_eq!(a.to_string().parse::<Algorithm>(), Ok(a));
        }
        let err = "consistent".parse::<Algorithm>().unwrap_err();
        assert!(
            err.contains("\"consistent\"") && err.contains("bounded"),
            "{err}"
        );
    }
}
