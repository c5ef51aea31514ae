//! Scenario files: the TOML schema of SIMULATION.md, parsed strictly into a [`Scenario`].
//!
//! This module owns the scenario format and every message a user sees about a bad file: each
//! error names the file, the key path (`event[3].crash`) and what was expected. It validates the
//! whole story before anything runs (names, order, lifecycles), so an engine can trust a
//! `Scenario` without re-checking it. It must not run anything or depend on an engine.

use std::collections::BTreeMap;
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
        Parser {
            file,
            initial_nodes: std::cell::Cell::new(0),
            joins: std::cell::RefCell::new(BTreeMap::new()),
        }
        .scenario(text)
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

const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "seed",
    "duration",
    "engine",
    "cluster",
    "targets",
    "network",
    "event",
    "expect",
];
const CLUSTER_DURATION_KEYS: &[&str] = &[
    "probe_interval",
    "probe_timeout",
    "gossip_interval",
    "gossip_to_the_dead",
    "push_pull_interval",
    "tombstone_ttl",
    "rejoin_interval",
    "suspicion_unit",
];
const CLUSTER_COUNT_KEYS: &[&str] = &[
    "indirect_checks",
    "suspicion_mult",
    "suspicion_max_timeout_mult",
    "retransmit_mult",
    "gossip_nodes",
    "awareness_max_multiplier",
    "join_peers_max",
    "verifiers",
];
const ACTION_KEYS: &[&str] = &[
    "partition",
    "heal",
    "crash",
    "power_off",
    "stall",
    "restart",
    "leave",
    "join",
    "targets",
    "loss",
    "latency",
];

/// Where a node is in its life at a point of the story; used to reject impossible stories
/// (crashing a node that is already down) before anything runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    Running,
    /// Down since the event with this index.
    Crashed(usize),
    Left(usize),
}

struct Parser<'a> {
    file: &'a str,
    /// `cluster.nodes`, once read.
    initial_nodes: std::cell::Cell<u32>,
    /// Names joined by events -> index of the joining event, for "joins only later" hints.
    joins: std::cell::RefCell<BTreeMap<String, usize>>,
}

/// A TOML table being read: which keys were allowed, under which path.
struct Fields<'t> {
    path: String,
    table: &'t toml::Table,
}

impl<'t> Fields<'t> {
    fn key(&self, k: &str) -> String {
        if self.path.is_empty() {
            k.to_string()
        } else {
            format!("{}.{}", self.path, k)
        }
    }

    fn get(&self, k: &str) -> Option<&'t toml::Value> {
        self.table.get(k)
    }
}

impl<'a> Parser<'a> {
    fn err(&self, key: impl Into<String>, problem: impl Into<String>) -> ScenarioError {
        ScenarioError {
            file: self.file.to_string(),
            key: key.into(),
            problem: problem.into(),
        }
    }

    fn fields<'t>(
        &self,
        path: String,
        table: &'t toml::Table,
        allowed: &[&str],
    ) -> Result<Fields<'t>, ScenarioError> {
        let fields = Fields { path, table };
        if let Some(unknown) = table.keys().find(|k| !allowed.contains(&k.as_str())) {
            let mut problem = format!("unknown key: expected one of {}", allowed.join(", "));
            if let Some(near) = allowed.iter().find(|a| near_miss(a, unknown)) {
                problem = format!(
                    "unknown key (did you mean `{near}`?): expected one of {}",
                    allowed.join(", ")
                );
            }
            return Err(self.err(fields.key(unknown), problem));
        }
        Ok(fields)
    }

    fn scenario(&self, text: &str) -> Result<Scenario, ScenarioError> {
        let root: toml::Table = toml::from_str(text).map_err(|e| {
            let key = match e.span() {
                Some(span) => {
                    let (line, column) = line_column(text, span.start);
                    format!("line {line}, column {column}")
                }
                None => "(syntax)".to_string(),
            };
            let message = e.message().trim().replace('\n', "; ");
            self.err(key, format!("invalid TOML: {message}"))
        })?;
        let top = self.fields(String::new(), &root, TOP_KEYS)?;

        let name = self.required_string(&top, "name")?;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        {
            return Err(self.err(
                "name",
                format!("{name:?} is not a usable name: expected letters, digits, '_', '-' or '.' (it names the report folder)"),
            ));
        }
        let description = match top.get("description") {
            None => String::new(),
            Some(v) => self.string(&top.key("description"), v)?.to_string(),
        };
        let seed = match top.get("seed") {
            None => 0,
            Some(v) => self.integer(&top.key("seed"), v, 0, i64::MAX as u64)?,
        };
        let duration = match top.get("duration") {
            None => {
                return Err(self.err(
                    "duration",
                    "missing: expected the simulated run time, e.g. duration = \"180s\"",
                ))
            }
            Some(v) => self.duration(&top.key("duration"), v)?,
        };
        if duration.is_zero() {
            return Err(self.err("duration", "\"0s\": expected a run time above zero"));
        }
        let engine = match top.get("engine") {
            None => None,
            Some(v) => {
                let s = self.string(&top.key("engine"), v)?;
                Some(s.parse::<EngineKind>().map_err(|e| self.err("engine", e))?)
            }
        };

        let cluster = match top.get("cluster") {
            None => {
                return Err(self.err(
                    "cluster",
                    "missing: expected a [cluster] table with at least `nodes`",
                ))
            }
            Some(v) => self.cluster(self.table("cluster", v)?)?,
        };
        let targets = match top.get("targets") {
            None => {
                return Err(self.err(
                    "targets",
                    "missing: expected a [targets] table with `count`",
                ))
            }
            Some(v) => self.targets(self.table("targets", v)?)?,
        };
        let network = match top.get("network") {
            None => NetworkSpec {
                latency: LatencyRange {
                    min: Duration::from_millis(1),
                    max: Duration::from_millis(5),
                },
                loss: 0.0,
            },
            Some(v) => self.network(self.table("network", v)?)?,
        };
        let events = match top.get("event") {
            None => Vec::new(),
            Some(toml::Value::Array(items)) => self.events(items, &cluster, duration)?,
            Some(other) => {
                return Err(self.err(
                    "event",
                    format!(
                        "found {}: expected a list of [[event]] tables",
                        describe_value(other)
                    ),
                ))
            }
        };
        let expect = match top.get("expect") {
            None => Expect::default(),
            Some(v) => self.expect(self.table("expect", v)?, duration)?,
        };
        if let (Some(within), Some(last)) = (expect.converge_within, events.last()) {
            if last.at + within > duration {
                return Err(self.err(
                    "expect.converge_within",
                    format!(
                        "event[{}] at {} + {} ends after the run (duration = {}): expected a run long enough to judge convergence after the last event",
                        last.index,
                        format_duration(last.at),
                        format_duration(within),
                        format_duration(duration)
                    ),
                ));
            }
        }
        Ok(Scenario {
            file: self.file.to_string(),
            name,
            description,
            seed,
            duration,
            engine,
            cluster,
            targets,
            network,
            events,
            expect,
        })
    }

    fn cluster(&self, table: &toml::Table) -> Result<ClusterSpec, ScenarioError> {
        let mut allowed = vec!["nodes", "join"];
        allowed.extend_from_slice(CLUSTER_DURATION_KEYS);
        allowed.extend_from_slice(CLUSTER_COUNT_KEYS);
        let f = self.fields("cluster".to_string(), table, &allowed)?;
        let nodes = match f.get("nodes") {
            None => {
                return Err(self.err(
                    "cluster.nodes",
                    "missing: expected how many nodes start at t=0, e.g. nodes = 6",
                ))
            }
            Some(v) => self.integer(&f.key("nodes"), v, 1, NODES_MAX as u64)? as u32,
        };
        let join = match f.get("join") {
            None => JoinSpec::Seed(node_name(1)),
            Some(v) => {
                let s = self.string(&f.key("join"), v)?;
                match s {
                    "all" => JoinSpec::All,
                    "ring" => JoinSpec::Ring,
                    name if is_initial_node(name, nodes) => JoinSpec::Seed(name.to_string()),
                    other => {
                        return Err(self.err(
                            "cluster.join",
                            format!(
                            "{other:?}: expected \"all\", \"ring\" or a starting node name ({})",
                            node_range(nodes)
                        ),
                        ))
                    }
                }
            }
        };
        let mut p = ProtocolOverrides::default();
        let mut durations: BTreeMap<&str, Duration> = BTreeMap::new();
        for k in CLUSTER_DURATION_KEYS {
            if let Some(v) = f.get(k) {
                durations.insert(k, self.duration(&f.key(k), v)?);
            }
        }
        let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
        for k in CLUSTER_COUNT_KEYS {
            if let Some(v) = f.get(k) {
                counts.insert(k, self.integer(&f.key(k), v, 1, 1_000)? as u32);
            }
        }
        for k in [
            "probe_interval",
            "probe_timeout",
            "gossip_interval",
            "suspicion_unit",
        ] {
            if durations.get(k) == Some(&Duration::ZERO) {
                return Err(self.err(f.key(k), "\"0s\": expected a positive interval"));
            }
        }
        if let (Some(timeout), Some(interval)) = (
            durations.get("probe_timeout"),
            durations.get("probe_interval"),
        ) {
            if timeout >= interval {
                return Err(self.err(
                    "cluster.probe_timeout",
                    format!(
                        "{} is not below probe_interval {}: expected a probe timeout shorter than the probe interval",
                        format_duration(*timeout),
                        format_duration(*interval)
                    ),
                ));
            }
        }
        p.probe_interval = durations.get("probe_interval").copied();
        p.probe_timeout = durations.get("probe_timeout").copied();
        p.gossip_interval = durations.get("gossip_interval").copied();
        p.gossip_to_the_dead = durations.get("gossip_to_the_dead").copied();
        p.push_pull_interval = durations.get("push_pull_interval").copied();
        p.tombstone_ttl = durations.get("tombstone_ttl").copied();
        p.rejoin_interval = durations.get("rejoin_interval").copied();
        p.indirect_checks = counts.get("indirect_checks").copied();
        p.suspicion_mult = counts.get("suspicion_mult").copied();
        p.suspicion_max_timeout_mult = counts.get("suspicion_max_timeout_mult").copied();
        p.retransmit_mult = counts.get("retransmit_mult").copied();
        p.gossip_nodes = counts.get("gossip_nodes").copied();
        p.awareness_max_multiplier = counts.get("awareness_max_multiplier").copied();
        p.join_peers_max = counts.get("join_peers_max").copied();
        p.suspicion_unit = durations.get("suspicion_unit").copied();
        p.verifiers = counts.get("verifiers").copied();
        Ok(ClusterSpec {
            nodes,
            join,
            protocol: p,
        })
    }

    fn targets(&self, table: &toml::Table) -> Result<TargetsSpec, ScenarioError> {
        let f = self.fields("targets".to_string(), table, &["count"])?;
        let count = match f.get("count") {
            None => {
                return Err(self.err(
                    "targets.count",
                    "missing: expected how many targets every node lists, e.g. count = 1000",
                ))
            }
            Some(v) => self.integer(&f.key("count"), v, 0, TARGETS_MAX as u64)? as u32,
        };
        Ok(TargetsSpec { count })
    }

    fn network(&self, table: &toml::Table) -> Result<NetworkSpec, ScenarioError> {
        let f = self.fields("network".to_string(), table, &["latency", "loss"])?;
        let latency = match f.get("latency") {
            None => LatencyRange {
                min: Duration::from_millis(1),
                max: Duration::from_millis(5),
            },
            Some(v) => self.latency(&f.key("latency"), v)?,
        };
        let loss = match f.get("loss") {
            None => 0.0,
            Some(v) => self.probability(&f.key("loss"), v)?,
        };
        Ok(NetworkSpec { latency, loss })
    }

    fn expect(&self, table: &toml::Table, duration: Duration) -> Result<Expect, ScenarioError> {
        let f = self.fields(
            "expect".to_string(),
            table,
            &[
                "converge_within",
                "max_redistribution_ratio",
                "max_false_deaths",
            ],
        )?;
        let converge_within = match f.get("converge_within") {
            None => None,
            Some(v) => {
                let d = self.duration(&f.key("converge_within"), v)?;
                if d.is_zero() || d > duration {
                    return Err(self.err(
                        "expect.converge_within",
                        format!(
                            "{}: expected a time above zero and at most the run's duration {}",
                            format_duration(d),
                            format_duration(duration)
                        ),
                    ));
                }
                Some(d)
            }
        };
        let max_redistribution_ratio = match f.get("max_redistribution_ratio") {
            None => None,
            Some(v) => {
                let r = self.number(&f.key("max_redistribution_ratio"), v)?;
                if !(r.is_finite() && r >= 1.0) {
                    return Err(self.err(
                        "expect.max_redistribution_ratio",
                        format!("{r}: expected a ratio of at least 1.0 (moved / ideal; 1.0 is optimal), e.g. 1.1"),
                    ));
                }
                Some(r)
            }
        };
        let max_false_deaths = match f.get("max_false_deaths") {
            None => 0,
            Some(v) => self.integer(&f.key("max_false_deaths"), v, 0, 1_000_000)?,
        };
        Ok(Expect {
            converge_within,
            max_redistribution_ratio,
            max_false_deaths,
        })
    }

    fn events(
        &self,
        items: &[toml::Value],
        cluster: &ClusterSpec,
        duration: Duration,
    ) -> Result<Vec<Event>, ScenarioError> {
        if items.len() > EVENTS_MAX {
            return Err(self.err(
                "event",
                format!("{} events: expected at most {EVENTS_MAX}", items.len()),
            ));
        }
        self.initial_nodes.set(cluster.nodes);
        for (index, item) in items.iter().enumerate() {
            if let Some(toml::Value::String(name)) = item.get("join") {
                self.joins.borrow_mut().entry(name.clone()).or_insert(index);
            }
        }
        let mut lives: BTreeMap<String, Life> = (1..=cluster.nodes)
            .map(|i| (node_name(i), Life::Running))
            .collect();
        let mut events: Vec<Event> = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let path = format!("event[{index}]");
            let toml::Value::Table(table) = item else {
                return Err(self.err(
                    path,
                    format!(
                        "found {}: expected an [[event]] table",
                        describe_value(item)
                    ),
                ));
            };
            let mut allowed = vec!["at"];
            allowed.extend_from_slice(ACTION_KEYS);
            let f = self.fields(path.clone(), table, &allowed)?;
            let at = match f.get("at") {
                None => {
                    return Err(self.err(
                        f.key("at"),
                        "missing: expected when the event happens, e.g. at = \"30s\"",
                    ))
                }
                Some(v) => self.duration(&f.key("at"), v)?,
            };
            if let Some(prev) = events.last() {
                if at < prev.at {
                    return Err(self.err(
                        f.key("at"),
                        format!(
                            "{} is before event[{}].at {}: expected events in time order",
                            format_duration(at),
                            prev.index,
                            format_duration(prev.at)
                        ),
                    ));
                }
            }
            if at >= duration {
                return Err(self.err(
                    f.key("at"),
                    format!(
                        "{} is not before the end of the run (duration = {}): expected a time inside the run",
                        format_duration(at),
                        format_duration(duration)
                    ),
                ));
            }
            let present: Vec<&str> = ACTION_KEYS
                .iter()
                .copied()
                .filter(|k| table.contains_key(*k))
                .collect();
            let key = match present.as_slice() {
                [one] => *one,
                [] => {
                    return Err(self.err(
                        path,
                        format!("no action: expected exactly one of {}", ACTION_KEYS.join(", ")),
                    ))
                }
                many => {
                    return Err(self.err(
                        path,
                        format!(
                            "{} actions ({}): expected exactly one action per [[event]]; split them into events at the same time",
                            many.len(),
                            many.join(", ")
                        ),
                    ))
                }
            };
            let value = &table[key];
            let kp = f.key(key);
            let action = match key {
                "partition" => Action::Partition(self.partition(&kp, value, &lives)?),
                "heal" => match value {
                    toml::Value::Boolean(true) => Action::Heal,
                    other => {
                        return Err(self.err(
                            kp,
                            format!("found {}: expected heal = true", describe_value(other)),
                        ))
                    }
                },
                "crash" | "power_off" | "leave" => {
                    let node = self.known_node(&kp, value, &lives)?;
                    match lives[&node] {
                        Life::Running => {}
                        Life::Crashed(i) | Life::Left(i) => {
                            let how = if matches!(lives[&node], Life::Crashed(_)) {
                                "crashed"
                            } else {
                                "left"
                            };
                            return Err(self.err(
                                kp,
                                format!("{node} is not running at {} ({how} by event[{i}]): expected a running node (restart it first)", format_duration(at)),
                            ));
                        }
                    }
                    let life = if key == "leave" {
                        Life::Left(index)
                    } else {
                        Life::Crashed(index)
                    };
                    lives.insert(node.clone(), life);
                    match key {
                        "crash" => Action::Crash(node),
                        "power_off" => Action::PowerOff(node),
                        _ => Action::Leave(node),
                    }
                }
                "stall" => self.stall(&kp, value, &lives, at)?,
                "restart" => {
                    let node = self.known_node(&kp, value, &lives)?;
                    lives.insert(node.clone(), Life::Running);
                    Action::Restart(node)
                }
                "join" => {
                    let node = self.string(&kp, value)?.to_string();
                    if !is_valid_node_name(&node) {
                        return Err(self.err(kp, format!("{node:?}: expected a node name of letters, digits, '_', '-' or '.'")));
                    }
                    if lives.contains_key(&node) {
                        return Err(self.err(
                            kp,
                            format!("{node} already exists: expected a new node name (use restart = {node:?} to bring an existing node back)"),
                        ));
                    }
                    lives.insert(node.clone(), Life::Running);
                    Action::Join(node)
                }
                "targets" => self.drift(&kp, value, &lives)?,
                "loss" => Action::Loss(self.probability(&kp, value)?),
                "latency" => Action::Latency(self.latency(&kp, value)?),
                _ => unreachable!("ACTION_KEYS and this match list the same keys"),
            };
            events.push(Event { index, at, action });
        }
        Ok(events)
    }

    fn partition(
        &self,
        key: &str,
        value: &toml::Value,
        lives: &BTreeMap<String, Life>,
    ) -> Result<Vec<Vec<String>>, ScenarioError> {
        let expected =
            "expected a list of node groups, e.g. [[\"node-1\", \"node-2\"], [\"node-3\"]]";
        let toml::Value::Array(groups) = value else {
            return Err(self.err(key, format!("found {}: {expected}", describe_value(value))));
        };
        if groups.is_empty() {
            return Err(self.err(
                key,
                format!("empty: {expected} (use heal = true to end a partition)"),
            ));
        }
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut out = Vec::with_capacity(groups.len());
        for (gi, group) in groups.iter().enumerate() {
            let gkey = format!("{key}[{gi}]");
            let toml::Value::Array(members) = group else {
                return Err(self.err(gkey, format!("found {}: {expected}", describe_value(group))));
            };
            if members.is_empty() {
                return Err(self.err(gkey, "empty group: expected at least one node name"));
            }
            let mut names = Vec::with_capacity(members.len());
            for (mi, m) in members.iter().enumerate() {
                let mkey = format!("{gkey}[{mi}]");
                let name = self.known_node(&mkey, m, lives)?;
                if let Some(other) = seen.insert(name.clone(), gi) {
                    return Err(self.err(
                        mkey,
                        format!("{name} is already in group {other}: expected each node in at most one group"),
                    ));
                }
                names.push(name);
            }
            out.push(names);
        }
        Ok(out)
    }

    fn stall(
        &self,
        key: &str,
        value: &toml::Value,
        lives: &BTreeMap<String, Life>,
        at: Duration,
    ) -> Result<Action, ScenarioError> {
        let example = "expected stall = { node = \"node-3\", for = \"1.5s\" }";
        let toml::Value::Table(t) = value else {
            return Err(self.err(key, format!("found {}: {example}", describe_value(value))));
        };
        let f = self.fields(key.to_string(), t, &["node", "for"])?;
        let Some(node) = f.get("node") else {
            return Err(self.err(f.key("node"), format!("missing: {example}")));
        };
        let node = self.known_node(&f.key("node"), node, lives)?;
        if lives[&node] != Life::Running {
            return Err(self.err(
                f.key("node"),
                format!(
                    "{node} is not running at {}: expected a running node",
                    format_duration(at)
                ),
            ));
        }
        let duration = match f.get("for") {
            None => return Err(self.err(f.key("for"), format!("missing: {example}"))),
            Some(v) => self.duration(&f.key("for"), v)?,
        };
        if duration.is_zero() {
            return Err(self.err(f.key("for"), "\"0s\": expected a positive duration"));
        }
        Ok(Action::Stall { node, duration })
    }

    fn drift(
        &self,
        key: &str,
        value: &toml::Value,
        lives: &BTreeMap<String, Life>,
    ) -> Result<Action, ScenarioError> {
        let toml::Value::Table(t) = value else {
            return Err(self.err(
                key,
                format!(
                    "found {}: expected targets = {{ nodes = [\"node-1\"], count = 1200 }}",
                    describe_value(value)
                ),
            ));
        };
        let f = self.fields(key.to_string(), t, &["nodes", "count"])?;
        let nodes = match f.get("nodes") {
            Some(toml::Value::Array(items)) if !items.is_empty() => {
                let mut names = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let name = self.known_node(&format!("{}[{i}]", f.key("nodes")), item, lives)?;
                    if names.contains(&name) {
                        return Err(self.err(
                            format!("{}[{i}]", f.key("nodes")),
                            format!("{name} is listed twice: expected each node once"),
                        ));
                    }
                    names.push(name);
                }
                names
            }
            Some(other) => {
                return Err(self.err(
                    f.key("nodes"),
                    format!(
                        "found {}: expected a non-empty list of node names",
                        describe_value(other)
                    ),
                ))
            }
            None => {
                return Err(self.err(
                    f.key("nodes"),
                    "missing: expected the nodes whose config changes, e.g. nodes = [\"node-1\"]",
                ))
            }
        };
        let count = match f.get("count") {
            None => {
                return Err(self.err(
                    f.key("count"),
                    "missing: expected how many targets those nodes now list",
                ))
            }
            Some(v) => self.integer(&f.key("count"), v, 0, TARGETS_MAX as u64)? as u32,
        };
        Ok(Action::Targets { nodes, count })
    }

    fn known_node(
        &self,
        key: &str,
        value: &toml::Value,
        lives: &BTreeMap<String, Life>,
    ) -> Result<String, ScenarioError> {
        let name = self.string(key, value)?;
        if lives.contains_key(name) {
            return Ok(name.to_string());
        }
        let initial = self.initial_nodes.get();
        let joined: Vec<&str> = lives
            .keys()
            .filter(|n| !is_initial_node(n, initial))
            .map(String::as_str)
            .collect();
        let mut known = node_range(initial);
        if !joined.is_empty() {
            known = format!("{known} or a node joined earlier ({})", joined.join(", "));
        } else {
            known = format!("{known} or a node joined by an earlier event");
        }
        if let Some(index) = self.joins.borrow().get(name) {
            return Err(self.err(
                key,
                format!(
                    "{name} does not exist yet: it joins only in event[{index}]; expected {known}"
                ),
            ));
        }
        Err(self.err(key, format!("unknown node {name:?}: expected {known}")))
    }

    fn table<'t>(
        &self,
        key: &str,
        value: &'t toml::Value,
    ) -> Result<&'t toml::Table, ScenarioError> {
        match value {
            toml::Value::Table(t) => Ok(t),
            other => Err(self.err(
                key,
                format!("found {}: expected a [{key}] table", describe_value(other)),
            )),
        }
    }

    fn required_string(&self, f: &Fields<'_>, k: &str) -> Result<String, ScenarioError> {
        match f.get(k) {
            None => Err(self.err(f.key(k), format!("missing: expected {k} = \"...\""))),
            Some(v) => Ok(self.string(&f.key(k), v)?.to_string()),
        }
    }

    fn string<'v>(&self, key: &str, value: &'v toml::Value) -> Result<&'v str, ScenarioError> {
        match value {
            toml::Value::String(s) => Ok(s),
            other => Err(self.err(
                key,
                format!("found {}: expected a string", describe_value(other)),
            )),
        }
    }

    fn integer(
        &self,
        key: &str,
        value: &toml::Value,
        min: u64,
        max: u64,
    ) -> Result<u64, ScenarioError> {
        match value {
            toml::Value::Integer(i) if *i >= 0 && (*i as u64) >= min && (*i as u64) <= max => {
                Ok(*i as u64)
            }
            toml::Value::Integer(i) => Err(self.err(
                key,
                format!("{i}: expected a whole number from {min} to {max}"),
            )),
            other => Err(self.err(
                key,
                format!(
                    "found {}: expected a whole number from {min} to {max}",
                    describe_value(other)
                ),
            )),
        }
    }

    fn number(&self, key: &str, value: &toml::Value) -> Result<f64, ScenarioError> {
        match value {
            toml::Value::Float(x) => Ok(*x),
            toml::Value::Integer(i) => Ok(*i as f64),
            other => Err(self.err(
                key,
                format!("found {}: expected a number", describe_value(other)),
            )),
        }
    }

    fn probability(&self, key: &str, value: &toml::Value) -> Result<f64, ScenarioError> {
        let p = self.number(key, value)?;
        if (0.0..=1.0).contains(&p) {
            Ok(p)
        } else {
            Err(self.err(
                key,
                format!("{p}: expected a probability from 0.0 to 1.0, e.g. 0.1 for 10%"),
            ))
        }
    }

    fn duration(&self, key: &str, value: &toml::Value) -> Result<Duration, ScenarioError> {
        match value {
            toml::Value::String(s) => parse_duration(s).map_err(|e| self.err(key, e)),
            other => Err(self.err(
                key,
                format!(
                    "found {}: expected a duration string such as \"30s\", \"200ms\" or \"1m\"",
                    describe_value(other)
                ),
            )),
        }
    }

    fn latency(&self, key: &str, value: &toml::Value) -> Result<LatencyRange, ScenarioError> {
        let expected = "expected a one-way latency range [min, max], e.g. [\"1ms\", \"5ms\"]";
        match value {
            toml::Value::Array(items) if items.len() == 2 => {
                let min = self.duration(&format!("{key}[0]"), &items[0])?;
                let max = self.duration(&format!("{key}[1]"), &items[1])?;
                if min > max {
                    return Err(self.err(
                        key,
                        format!(
                            "min {} is above max {}: {expected}",
                            format_duration(min),
                            format_duration(max)
                        ),
                    ));
                }
                Ok(LatencyRange { min, max })
            }
            other => Err(self.err(key, format!("found {}: {expected}", describe_value(other)))),
        }
    }
}

fn is_initial_node(name: &str, nodes: u32) -> bool {
    name.strip_prefix("node-")
        .and_then(|i| i.parse::<u32>().ok())
        .is_some_and(|i| i >= 1 && i <= nodes && node_name(i) == name)
}

fn is_valid_node_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

fn node_range(nodes: u32) -> String {
    match nodes {
        1 => "node-1".to_string(),
        2 => "node-1 or node-2".to_string(),
        n => format!("node-1 .. node-{n}"),
    }
}

/// A short, user-facing description of a TOML value for "found X" messages.
fn describe_value(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("string {s:?}"),
        toml::Value::Integer(i) => format!("integer {i}"),
        toml::Value::Float(x) => format!("float {x}"),
        toml::Value::Boolean(b) => format!("boolean {b}"),
        toml::Value::Datetime(d) => format!("datetime {d}"),
        toml::Value::Array(_) => "a list".to_string(),
        toml::Value::Table(_) => "a table".to_string(),
    }
}

/// Whether `typed` looks like a typo of `key`: a plural, or one edit away.
fn near_miss(key: &str, typed: &str) -> bool {
    if typed == format!("{key}s") || key == format!("{typed}s") {
        return true;
    }
    let (a, b): (Vec<char>, Vec<char>) = (key.chars().collect(), typed.chars().collect());
    if a.len().abs_diff(b.len()) > 1 {
        return false;
    }
    // Levenshtein distance <= 1.
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()] <= 1
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}
