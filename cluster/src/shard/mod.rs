//! Target sharding: which node scrapes which target, computed locally by every node.
//!
//! Each node computes owners from the same inputs (the peer list with states, and the target
//! list) with the same deterministic function, so no ownership messages are exchanged. This
//! module owns that function and its measurement; it must never read a clock, draw OS
//! randomness or iterate a hash map in anything observable.
//!
//! Where things live:
//! - `key.rs`: target keys (Alloy >= 1.2 label hashing) and string keys;
//! - `peer.rs`: [`Peer`], [`Op`] and the eligibility rule (write: participants; read:
//!   participants and terminating nodes; viewers never own);
//! - `algorithm.rs`: the [`Algorithm`] names (`bounded` default, `ring`, `rendezvous`,
//!   `hashmod`);
//! - `ring.rs`, `rendezvous.rs`, `hashmod.rs`, `bounded.rs`: the algorithms;
//! - `sharder.rs`: [`Sharder`], which caches the eligible peer views and the sorted target list
//!   so a membership change costs one rebuild plus one linear pass;
//! - `assignment.rs`: [`Assignment`], the owner of every target, with counts and diffs;
//! - `quality.rs`: [`quality::distribution`], balance and movement as ANCHORS.md measures them.

mod algorithm;
mod assignment;
mod bounded;
pub mod hashmod;
mod key;
mod peer;
pub mod quality;
mod rendezvous;
mod ring;
mod sharder;

pub use algorithm::Algorithm;
pub use assignment::Assignment;
pub use bounded::BoundedConfig;
pub use key::{key_of_str, target_key};
pub use peer::{Op, Peer};
pub use quality::DistributionReport;
pub use sharder::{Sharder, RING_TOKENS_PER_NODE};

#[cfg(test)]
mod tests;
