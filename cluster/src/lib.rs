//! The clustering core: membership (SWIM + Lifeguard), node states (viewer, participant,
//! terminating) ordered by Lamport clocks, the wire format, and target sharding.
//!
//! This crate is sans-I/O and deterministic. It never reads a clock, opens a socket, spawns a
//! task or draws OS randomness: time comes in as [`Instant`] arguments, randomness from a seed
//! given at construction, and messages come in as bytes and leave through `poll_*` calls
//! (the quinn-proto / foca shape). Everything observable iterates in a defined order.
//!
//! Files: `config` (every knob and its default), `lamport`, `state` (node states), `wire`
//! (bytes <-> messages), `broadcast` (gossip queue), `suspicion` (Lifeguard timers),
//! `membership` (the [`Node`] state machine), `shard` (who owns which target).

pub mod broadcast;
pub mod config;
pub mod lamport;
pub mod membership;
pub mod shard;
pub mod state;
pub mod suspicion;
pub mod testkit;
pub mod time;
pub mod wire;

pub use config::{Config, ConfigError};
pub use membership::{Event, MemberView, Node, Stats, Transmit, TransmitKind, Unreachable};
pub use state::NodeState;
pub use time::Instant;
pub use wire::{Rejection, Status, WireError, CONTENT_TYPE};
