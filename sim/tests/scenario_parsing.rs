//! The scenario format: what parses, and the exact message for what does not (file, key path,
//! what was expected). The messages are users' only help, so they are pinned by a snapshot.

use std::time::Duration;

use sim::scenario::{Action, JoinSpec, LatencyRange, Scenario};
use sim::EngineKind;

const BASE: &str = r#"
name = "t"
duration = "3m"
[cluster]
nodes = 4
[targets]
count = 100
"#;

fn parse(extra: &str) -> Result<Scenario, String> {
    Scenario::parse("bad.toml", &format!("{BASE}{extra}")).map_err(|e| e.to_string())
}

/// The example of SIMULATION.md, verbatim, parses to what it says.
#[test]
fn the_contract_example_parses() {
    let text = r#"
name = "split_brain"             # required
description = "two halves that cannot see each other, then heal"
seed = 7                         # default seed; --seed overrides
duration = "180s"                # simulated time

[cluster]
nodes = 6                        # named node-1 .. node-6, all start at t=0
join = "node-1"                  # whom the others join: a node name, or "all"
probe_interval = "1s"
gossip_interval = "200ms"

[targets]
count = 1000                     # target-0 .. target-999, identical on every node

[network]
latency = ["1ms", "5ms"]         # one-way latency range
loss = 0.0                       # probability a packet or request is dropped

[[event]]                        # one action per event, events in time order
at = "30s"
partition = [["node-1", "node-2", "node-3"], ["node-4", "node-5", "node-6"]]

[[event]]
at = "90s"
heal = true

[expect]
converge_within = "30s"
max_redistribution_ratio = 1.1
"#;
    let s = Scenario::parse("split_brain.toml", text).unwrap();
    assert_eq!(s.name, "split_brain");
    assert_eq!(s.seed, 7);
    assert_eq!(s.duration, Duration::from_secs(180));
    assert_eq!(s.cluster.nodes, 6);
    assert_eq!(s.cluster.join, JoinSpec::Seed("node-1".into()));
    assert_eq!(
        s.cluster.protocol.probe_interval,
        Some(Duration::from_secs(1))
    );
    assert_eq!(
        s.cluster.protocol.gossip_interval,
        Some(Duration::from_millis(200))
    );
    assert_eq!(s.cluster.protocol.probe_timeout, None);
    assert_eq!(s.targets.count, 1000);
    assert_eq!(
        s.network.latency,
        LatencyRange {
            min: Duration::from_millis(1),
            max: Duration::from_millis(5)
        }
    );
    assert_eq!(s.events.len(), 2);
    assert_eq!(s.events[0].at, Duration::from_secs(30));
    assert_eq!(
        s.events[0].action.describe(),
        "partition [node-1 node-2 node-3] [node-4 node-5 node-6]"
    );
    assert_eq!(s.events[1].action, Action::Heal);
    assert_eq!(s.expect.converge_within, Some(Duration::from_secs(30)));
    assert_eq!(s.expect.max_redistribution_ratio, Some(1.1));
    assert_eq!(s.engine, None);
}

#[test]
fn every_action_parses_and_describes_itself() {
    let s = Scenario::parse(
        "all.toml",
        &format!(
            r#"engine = "fast"
{BASE}
[[event]]
at = "1s"
join = "node-5"
[[event]]
at = "2s"
crash = "node-5"
[[event]]
at = "3s"
restart = "node-5"
[[event]]
at = "4s"
leave = "node-2"
[[event]]
at = "5s"
targets = {{ nodes = ["node-1", "node-5"], count = 120 }}
[[event]]
at = "6s"
loss = 0.2
[[event]]
at = "7s"
latency = ["50ms", "200ms"]
[[event]]
at = "7s"
partition = [["node-1"], ["node-3", "node-4"]]
"#
        ),
    )
    .unwrap();
    let described: Vec<String> = s.events.iter().map(|e| e.action.describe()).collect();
    assert_eq!(
        described,
        [
            "join node-5",
            "crash node-5",
            "restart node-5",
            "leave node-2",
            "targets 120 on node-1 node-5",
            "loss 0.2",
            "latency 50ms..200ms",
            "partition [node-1] [node-3 node-4]",
        ]
    );
    let membership: Vec<bool> = s
        .events
        .iter()
        .map(|e| e.action.is_membership_change())
        .collect();
    assert_eq!(
        membership,
        [true, true, true, true, false, false, false, false]
    );
    assert_eq!(s.engine, Some(EngineKind::Fast));
    assert_eq!(
        s.all_nodes(),
        ["node-1", "node-2", "node-3", "node-4", "node-5"]
    );
}

#[test]
fn join_peers_follow_the_join_setting() {
    let seed = parse("[[event]]\nat = \"1s\"\njoin = \"extra\"\n").unwrap();
    assert_eq!(seed.join_peers("node-1"), Vec::<String>::new());
    assert_eq!(seed.join_peers("node-3"), ["node-1"]);
    assert_eq!(seed.join_peers("extra"), ["node-1"]);

    let ring = Scenario::parse(
        "r.toml",
        &BASE.replace("nodes = 4", "nodes = 4\njoin = \"ring\""),
    )
    .unwrap();
    assert_eq!(ring.join_peers("node-1"), ["node-2"]);
    assert_eq!(ring.join_peers("node-4"), ["node-1"]);

    let all = Scenario::parse(
        "a.toml",
        &BASE.replace("nodes = 4", "nodes = 3\njoin = \"all\""),
    )
    .unwrap();
    assert_eq!(all.join_peers("node-2"), ["node-1", "node-3"]);
}

/// Every kind of mistake, with the message the user gets. Reviewed by reading the snapshot:
/// each names the file, the key path and what was expected.
#[test]
fn bad_scenarios_are_rejected_with_the_key_and_what_was_expected() {
    let cases: Vec<(&str, String)> = vec![
        ("unknown top-level key", format!("durration = \"1m\"\n{BASE}")),
        ("events instead of event", format!("{BASE}[[events]]\nat = \"1s\"\nheal = true\n")),
        ("missing name", BASE.replace("name = \"t\"", "")),
        ("missing duration", BASE.replace("duration = \"3m\"", "")),
        ("duration without unit", BASE.replace("\"3m\"", "\"180\"")),
        ("duration as a number", BASE.replace("\"3m\"", "180")),
        ("duration with a space", BASE.replace("\"3m\"", "\"3 m\"")),
        ("zero nodes", BASE.replace("nodes = 4", "nodes = 0")),
        ("join names no node", BASE.replace("nodes = 4", "nodes = 4\njoin = \"node-9\"")),
        ("typo in a protocol override", BASE.replace("nodes = 4", "nodes = 4\nprobe_intervall = \"1s\"")),
        (
            "probe timeout not below interval",
            BASE.replace("nodes = 4", "nodes = 4\nprobe_interval = \"1s\"\nprobe_timeout = \"1s\""),
        ),
        ("unknown engine", format!("engine = \"quantum\"\n{BASE}")),
        ("syntax error", format!("{BASE}[network]\nloss = \n")),
        ("loss above one", format!("{BASE}[network]\nloss = 1.5\n")),
        ("latency min above max", format!("{BASE}[network]\nlatency = [\"10ms\", \"1ms\"]\n")),
        ("unknown node", format!("{BASE}[[event]]\nat = \"10s\"\ncrash = \"node-9\"\n")),
        (
            "node used before its join",
            format!("{BASE}[[event]]\nat = \"10s\"\ncrash = \"node-7\"\n[[event]]\nat = \"20s\"\njoin = \"node-7\"\n"),
        ),
        (
            "events out of time order",
            format!("{BASE}[[event]]\nat = \"30s\"\nheal = true\n[[event]]\nat = \"20s\"\nheal = true\n"),
        ),
        ("event after the end", format!("{BASE}[[event]]\nat = \"3m\"\nheal = true\n")),
        ("two actions in one event", format!("{BASE}[[event]]\nat = \"10s\"\ncrash = \"node-1\"\nleave = \"node-2\"\n")),
        ("no action", format!("{BASE}[[event]]\nat = \"10s\"\n")),
        ("missing at", format!("{BASE}[[event]]\nheal = true\n")),
        ("unknown key in an event", format!("{BASE}[[event]]\nat = \"10s\"\nheal = true\nnote = \"x\"\n")),
        ("heal = false", format!("{BASE}[[event]]\nat = \"10s\"\nheal = false\n")),
        (
            "crash a crashed node",
            format!("{BASE}[[event]]\nat = \"10s\"\ncrash = \"node-2\"\n[[event]]\nat = \"20s\"\ncrash = \"node-2\"\n"),
        ),
        ("join an existing name", format!("{BASE}[[event]]\nat = \"10s\"\njoin = \"node-2\"\n")),
        (
            "node in two partition groups",
            format!("{BASE}[[event]]\nat = \"10s\"\npartition = [[\"node-1\", \"node-2\"], [\"node-2\"]]\n"),
        ),
        ("partition not a list of lists", format!("{BASE}[[event]]\nat = \"10s\"\npartition = [\"node-1\", \"node-2\"]\n")),
        ("drift without count", format!("{BASE}[[event]]\nat = \"10s\"\ntargets = {{ nodes = [\"node-1\"] }}\n")),
        (
            "run too short to judge the last event",
            format!("{BASE}[[event]]\nat = \"2m50s\"\nheal = true\n[expect]\nconverge_within = \"30s\"\n"),
        ),
        ("ratio below one", format!("{BASE}[expect]\nmax_redistribution_ratio = 0.5\n")),
    ];
    let mut snapshot = String::new();
    for (what, text) in cases {
        let message = match Scenario::parse("bad.toml", &text) {
            Ok(_) => panic!("{what}: accepted:\n{text}"),
            Err(e) => e.to_string(),
        };
        assert!(message.starts_with("bad.toml: "), "{what}: {message}");
        snapshot.push_str(&format!("{what}\n  {message}\n"));
    }
    insta::assert_snapshot!(snapshot);
}

#[test]
fn large_groups_are_described_in_a_few_names() {
    let s = Scenario::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scenarios/large/large_partition.toml"
    )))
    .unwrap();
    assert_eq!(
        s.events[0].action.describe(),
        "partition [node-1 node-2 node-3 ... node-499 node-500 (500 nodes)] \
         [node-501 node-502 node-503 ... node-999 node-1000 (500 nodes)]"
    );
}
