//! Helpers shared by the core's integration tests: node names and addresses, a cluster on
//! the in-memory network, views, waiting for a condition, forged packets.
#![allow(dead_code)]

use std::time::Duration;

use cluster::testkit::SimNet;
use cluster::{Config, Instant, Node, NodeState, Status};

pub fn addr(i: usize) -> String {
    format!("10.0.0.{i}:12345")
}

pub fn name(i: usize) -> String {
    format!("node-{i}")
}

pub fn node(i: usize, config: &Config, seed: u64, now: Instant) -> Node {
    Node::new(
        config.clone(),
        &name(i),
        &addr(i),
        seed * 1000 + i as u64,
        now,
    )
    .unwrap()
}

/// Start `n` nodes that all join node-1 and become participants.
pub fn cluster(n: usize, seed: u64) -> SimNet {
    let config = Config::default();
    let mut net = SimNet::new(seed);
    for i in 1..=n {
        net.add(node(i, &config, seed, net.now()));
        net.with_node(&addr(i), |nd, now| {
            nd.join(now, &[addr(1)]);
            nd.set_state(NodeState::Participant).unwrap();
        });
    }
    net
}

/// The (name, status) pairs `observer` lists for every member.
pub fn view(net: &SimNet, observer: usize) -> Vec<(String, Status, NodeState)> {
    net.node(&addr(observer))
        .unwrap()
        .members()
        .into_iter()
        .map(|m| (m.name, m.status, m.state))
        .collect()
}

pub fn alive_names(net: &SimNet, observer: usize) -> Vec<String> {
    view(net, observer)
        .into_iter()
        .filter(|(_, s, _)| *s == Status::Alive)
        .map(|(n, _, _)| n)
        .collect()
}

/// Run until `pred` holds, at most `limit`; returns the time it took.
pub fn run_until(
    net: &mut SimNet,
    limit: Duration,
    pred: impl Fn(&SimNet) -> bool,
) -> Option<Duration> {
    let start = net.now();
    while net.now().saturating_since(start) < limit {
        if pred(net) {
            return Some(net.now().saturating_since(start));
        }
        net.run_for(Duration::from_millis(100));
    }
    pred(net).then(|| net.now().saturating_since(start))
}

/// A packet from `sender` (not a member) carrying `updates`, as a buggy or forging peer
/// would send it.
pub fn forged(sender: &str, updates: &[cluster::wire::Update]) -> Vec<u8> {
    use cluster::wire::{encode_packet, encode_update, Envelope, Kind};
    let env = Envelope {
        kind: Kind::Packet,
        cluster: Config::default().cluster_name,
        sender_name: sender.to_string(),
        sender_addr: "10.9.9.9:12345".to_string(),
    };
    let encoded: Vec<Vec<u8>> = updates.iter().map(encode_update).collect();
    let refs: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
    encode_packet(&env, None, &refs)
}
