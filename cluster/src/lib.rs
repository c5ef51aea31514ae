//! The clustering core: membership (SWIM + Lifeguard), node states (viewer, participant,
//! terminating) ordered by Lamport clocks, the wire format, and target sharding.
//!
//! This crate is sans-I/O and deterministic. It never reads a clock, opens a socket, spawns a
//! task or draws OS randomness: time comes in as [`Instant`] arguments, randomness from a seed
//! given at construction, and messages come in as bytes and leave through `poll_*` calls.
//! Everything observable iterates in a defined order (sorted maps and vectors).

pub mod shard;
