//! Scenario files: the TOML schema of SIMULATION.md, parsed strictly into a [`Scenario`].
//!
//! This module owns the scenario format and every message a user sees about a bad file: each
//! error names the file, the key path (`event[3].crash`) and what was expected. It validates the
//! whole story before anything runs (names, order, lifecycles), so an engine can trust a
//! `Scenario` without re-checking it. It must not run anything or depend on an engine.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use crate::duration::{format_duration, parse_duration};
use crate::engine::EngineKind;

/// Most nodes a scenario may start with (`cluster.nodes`); a limit, not a promise that an engine
/// runs that many at a useful speed (see SIMULATION.md for each engine's range).
pub const NODES_MAX: u32 = 10_000;
/// Most targets a scenario may list (`targets.count` and `targets` events).
pub const TARGETS_MAX: u32 = 1_000_000;
/// Most events in one scenario file.
pub const EVENTS_MAX: usize = 10_000;

/// A bad scenario file: where (file and key path) and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    /// The file as the user named it.
    pub file: String,
    /// Dotted key path, e.g. `cluster.nodes` or `event[3].crash`; for TOML syntax errors the
    /// position, e.g. `line 4, column 9`.
    pub key: String,
    /// What was wrong and what was expected.
    pub problem: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.file, self.key, self.problem)
    }
}

impl std::error::Error for ScenarioError {}

/// A validated scenario: the whole fault story of one simulated run.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// The file this came from, as named by the user (used in messages and repro commands).
    pub file: String,
    pub name: String,
    pub description: String,
    /// Default seed (`--seed` overrides). Default 0.
    pub seed: u64,
    /// Simulated run time.
    pub duration: Duration,
    /// Engine the file asks for; `--engine` overrides; default turmoil.
    pub engine: Option<EngineKind>,
    pub cluster: ClusterSpec,
    pub targets: TargetsSpec,
    pub network: NetworkSpec,
    /// In time order (ties keep file order), all before `duration`.
    pub events: Vec<Event>,
    pub expect: Expect,
}

/// `[cluster]`: the nodes that start at t=0, how they find each other, protocol overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSpec {
    /// Named `node-1` .. `node-<nodes>`, all started at t=0.
    pub nodes: u32,
    pub join: JoinSpec,
    pub protocol: ProtocolOverrides,
}

/// Whom each node is given as join peers (`cluster.join`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinSpec {
    /// `join = "node-1"`: every other node joins this one; it joins nobody. Default `node-1`.
    Seed(String),
    /// `join = "all"`: every node is given every other starting node (parallel start with full
    /// knowledge; Alloy with a DNS name listing all replicas).
    All,
    /// `join = "ring"`: node-i joins node-(i+1), the last joins node-1, all at once. Every node
    /// joins a *different* peer: the parallel-start shape that split Agent clusters in two
    /// (agent#4465) when joins race; only gossip and periodic rejoin can merge the pieces.
    Ring,
}

impl JoinSpec {
    pub fn as_str(&self) -> &str {
        match self {
            JoinSpec::Seed(name) => name,
            JoinSpec::All => "all",
            JoinSpec::Ring => "ring",
        }
    }
}

/// Optional protocol overrides from `[cluster]`; `None` keeps the core's default. Names follow
/// `cluster::Config` field names; engines copy the `Some` values onto their config.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProtocolOverrides {
    pub probe_interval: Option<Duration>,
    pub probe_timeout: Option<Duration>,
    pub indirect_checks: Option<u32>,
    pub suspicion_mult: Option<u32>,
    pub suspicion_max_timeout_mult: Option<u32>,
    pub retransmit_mult: Option<u32>,
    pub gossip_interval: Option<Duration>,
    pub gossip_nodes: Option<u32>,
    pub gossip_to_the_dead: Option<Duration>,
    pub push_pull_interval: Option<Duration>,
    pub awareness_max_multiplier: Option<u32>,
    pub tombstone_ttl: Option<Duration>,
    pub join_peers_max: Option<u32>,
    pub suspicion_unit: Option<Duration>,
    pub verifiers: Option<u32>,
    /// Driver setting (Agent `--cluster.rejoin-interval`): how often a node re-joins its peers.
    pub rejoin_interval: Option<Duration>,
}

/// `[targets]`: `target-0` .. `target-<count-1>`, identical on every node at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetsSpec {
    pub count: u32,
}

/// `[network]`: link behaviour at start (events may change it).
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkSpec {
    /// One-way latency range, uniform. Default `["1ms", "5ms"]`.
    pub latency: LatencyRange,
    /// Probability that a packet or request is dropped. Default 0.
    pub loss: f64,
}

/// A one-way latency range, `min <= max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencyRange {
    pub min: Duration,
    pub max: Duration,
}

/// One scheduled fault or change.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Position in the file's `[[event]]` list (0-based), for messages.
    pub index: usize,
    pub at: Duration,
    pub action: Action,
}

/// What an event does. Exactly one per `[[event]]`.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Nodes in different groups cannot reach each other; a node in no group is alone.
    /// Replaces any partition in force.
    Partition(Vec<Vec<String>>),
    /// Every live node can reach every other again.
    Heal,
    /// Abrupt stop: no leave message, state lost. The process is killed, the host stays up:
    /// its port refuses connections and the connections peers held to it are closed.
    Crash(String),
    /// The host loses power (or its network): the node stops, and nothing answers at its
    /// address: no refusals, no closed connections, requests time out. `restart` brings it back.
    PowerOff(String),
    /// The node's event loop is starved for `duration` (a CPU-starved process): it handles
    /// nothing meanwhile, then catches up on what arrived.
    Stall {
        node: String,
        duration: Duration,
    },
    /// Same name, fresh process state (a running node is stopped first).
    Restart(String),
    /// Graceful: terminating, then left, then the process stops.
    Leave(String),
    /// A new node, beyond `cluster.nodes`.
    Join(String),
    /// Config drift: these nodes now list `count` targets.
    Targets {
        nodes: Vec<String>,
        count: u32,
    },
    Loss(f64),
    Latency(LatencyRange),
}

impl Action {
    /// The key that names this action in the file.
    pub fn key(&self) -> &'static str {
        match self {
            Action::Partition(_) => "partition",
            Action::Heal => "heal",
            Action::Crash(_) => "crash",
            Action::PowerOff(_) => "power_off",
            Action::Stall { .. } => "stall",
            Action::Restart(_) => "restart",
            Action::Leave(_) => "leave",
            Action::Join(_) => "join",
            Action::Targets { .. } => "targets",
            Action::Loss(_) => "loss",
            Action::Latency(_) => "latency",
        }
    }

    /// Whether this action changes the set of participants (crash, restart, leave, join): the
    /// changes the redistribution invariant measures.
    pub fn is_membership_change(&self) -> bool {
        matches!(
            self,
            Action::Crash(_)
                | Action::PowerOff(_)
                | Action::Restart(_)
                | Action::Leave(_)
                | Action::Join(_)
        )
    }

    /// One-line description used in event logs and reports; every engine uses this text so
    /// their reports compare line by line.
    pub fn describe(&self) -> String {
        match self {
            Action::Partition(groups) => {
                let groups: Vec<String> =
                    groups.iter().map(|g| format!("[{}]", names(g))).collect();
                format!("partition {}", groups.join(" "))
            }
            Action::Heal => "heal".to_string(),
            Action::Crash(n) => format!("crash {n}"),
            Action::PowerOff(n) => format!("power_off {n}"),
            Action::Stall { node, duration } => {
                format!("stall {node} for {}", format_duration(*duration))
            }
            Action::Restart(n) => format!("restart {n}"),
            Action::Leave(n) => format!("leave {n}"),
            Action::Join(n) => format!("join {n}"),
            Action::Targets { nodes, count } => format!("targets {count} on {}", names(nodes)),
            Action::Loss(p) => format!("loss {p}"),
            Action::Latency(r) => format!(
                "latency {}..{}",
                format_duration(r.min),
                format_duration(r.max)
            ),
        }
    }
}

/// Node names for one line of a report: all of them up to `NAMES_SHOWN_MAX`, else the first
/// and last few and how many (a 1,000-node partition is not a readable table cell).
fn names(list: &[String]) -> String {
    const NAMES_SHOWN_MAX: usize = 8;
    if list.len() <= NAMES_SHOWN_MAX {
        return list.join(" ");
    }
    format!(
        "{} ... {} ({} nodes)",
        list[..3].join(" "),
        list[list.len() - 2..].join(" "),
        list.len()
    )
}

/// `[expect]`: what must hold for the run to pass (beyond the invariants, which always apply).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expect {
    /// After every event (and after start), convergence within this time; and from the last
    /// event + this time to the end, converged at every observation.
    pub converge_within: Option<Duration>,
    /// Per membership change: moved fraction / ideal fraction at most this.
    pub max_redistribution_ratio: Option<f64>,
    /// False deaths tolerated before the `no_false_death` invariant fails. Default 0.
    pub max_false_deaths: u64,
}

impl Scenario {
    /// Reads and validates a scenario file. `path` is kept as written for messages.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            file: file.clone(),
            key: "(file)".to_string(),
            problem: format!("cannot read: {e}: expected a readable scenario TOML file"),
        })?;
        Scenario::parse(&file, &text)
    }

    /// Parses and validates scenario text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
        parse::parse(file, text)
    }

    pub fn duration_ms(&self) -> u64 {
        self.duration.as_millis() as u64
    }

    /// Names of the nodes started at t=0: `node-1` .. `node-<nodes>`.
    pub fn initial_nodes(&self) -> Vec<String> {
        (1..=self.cluster.nodes).map(node_name).collect()
    }

    /// Every node name the run can have: the initial ones, then those joined by events in
    /// event order.
    pub fn all_nodes(&self) -> Vec<String> {
        let mut names = self.initial_nodes();
        for e in &self.events {
            if let Action::Join(n) = &e.action {
                names.push(n.clone());
            }
        }
        names
    }

    /// Whom `node` is told to join when it starts (at t=0, on `join` and on `restart`), from
    /// `cluster.join`. Nodes joined by events, and any node under `"ring"` or `"all"` after
    /// t=0, get every initial node but themselves. Never contains `node` itself.
    pub fn join_peers(&self, node: &str) -> Vec<String> {
        let initial = self.initial_nodes();
        let is_initial = initial.iter().any(|n| n == node);
        let peers: Vec<String> = match &self.cluster.join {
            JoinSpec::Seed(seed) => vec![seed.clone()],
            JoinSpec::Ring if is_initial => {
                let i = initial.iter().position(|n| n == node).unwrap_or(0);
                vec![initial[(i + 1) % initial.len()].clone()]
            }
            JoinSpec::Ring | JoinSpec::All => initial.clone(),
        };
        peers.into_iter().filter(|p| p != node).collect()
    }
}

/// `node-<i>`, the name of the i-th initial node (1-based).
pub fn node_name(i: u32) -> String {
    format!("node-{i}")
}

mod parse;
