//! Reading a scenario file: the TOML walk behind [`Scenario::parse`]. Owns every check of a
//! key (allowed keys, types, ranges, near-miss hints) and of the story (node lifecycles, event
//! order); the types it fills are in the parent module.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;

/// Parses and validates scenario text; `file` names it in errors.
pub(super) fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
    Parser {
        file,
        initial_nodes: std::cell::Cell::new(0),
        joins: std::cell::RefCell::new(BTreeMap::new()),
    }
    .scenario(text)
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

mod events;
