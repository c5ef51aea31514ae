//! Unit tests of the member table's caches against freshly computed copies.
use super::*;
use crate::testkit::SimNet;
use crate::wire::MemberRecord;

/// The digest as first written: over a copy of `members()` (live ones, self included).
fn digest_of_copies(n: &Node) -> u32 {
    let mut h = xxhash_rust::xxh64::Xxh64::new(0);
    for m in n.members() {
        if matches!(m.status, Status::Alive | Status::Suspect) {
            h.update(m.name.as_bytes());
            h.update(&[0xff, m.state.to_wire()]);
            h.update(&m.incarnation.to_le_bytes());
        }
    }
    h.digest() as u32
}

/// The full state as first written: from a copy of `members()`.
fn state_of_copies(n: &Node, kind: Kind, join: bool) -> Vec<u8> {
    let records: Vec<MemberRecord> = n
        .members()
        .into_iter()
        .map(|m| MemberRecord {
            state: n.states.get(&m.name).copied(),
            name: m.name,
            addr: m.addr,
            incarnation: m.incarnation,
            status: m.status,
        })
        .collect();
    wire::encode_push_pull(&n.envelope(kind), join, &records)
}

/// The cached and copy-free digest, live count and full state stay equal to what a fresh
/// copy of the table gives, through joins, a crash (suspect, dead), a leave, forgotten
/// tombstones and a restart.
#[test]
fn cached_summaries_match_the_table() {
    let addr = |i: usize| format!("10.0.0.{i}:7946");
    let config = Config {
        tombstone_ttl: Duration::from_secs(20),
        ..Config::default()
    };
    let mut net = SimNet::new(7);
    for i in 1..=8 {
        let n = Node::new(
            config.clone(),
            &format!("node-{i}"),
            &addr(i),
            i as u64,
            net.now(),
        )
        .unwrap();
        net.add(n);
        net.with_node(&addr(i), |nd, now| {
            nd.join(now, &[addr(1)]);
            nd.set_state(NodeState::Participant).unwrap();
        });
    }
    let mut checked = 0;
    let mut suspected = 0;
    for step in 0..240 {
        net.run_for(Duration::from_millis(500));
        match step {
            40 => {
                // Silent: suspicions run their timers (a killed process would be dead at
                // once by refusals).
                net.power_off(&addr(3));
            }
            60 => {
                net.with_node(&addr(5), |nd, _| nd.leave());
            }
            70 => {
                net.crash(&addr(5));
            }
            150 => {
                let n = Node::new(config.clone(), "node-3", &addr(3), 99, net.now()).unwrap();
                net.add(n);
                net.with_node(&addr(3), |nd, now| {
                    nd.join(now, &[addr(1)]);
                });
            }
            _ => {}
        }
        for i in 1..=8 {
            let Some(n) = net.node(&addr(i)) else {
                continue;
            };
            // Self always counts (a leaving node too: it still runs the protocol).
            let live = 1 + n
                .members()
                .iter()
                .filter(|m| !m.is_self && matches!(m.status, Status::Alive | Status::Suspect))
                .count();
            assert_eq!(n.live_count(), live, "node-{i} at step {step}");
            assert_eq!(
                n.encode_state(Kind::PushPullRequest, true),
                state_of_copies(n, Kind::PushPullRequest, true)
            );
            for (name, m) in &n.members {
                assert_eq!(
                    n.hot[&n.name_hash(name)].member,
                    Some((m.status, m.incarnation, addr_hash(&m.addr))),
                    "node-{i}: hot index of {name}"
                );
            }
            for (name, &(_, t)) in &n.states {
                if *name != n.name {
                    assert_eq!(
                        n.hot[&n.name_hash(name)].lamport,
                        Some(t),
                        "node-{i}: {name}'s lamport"
                    );
                }
            }
            let names: BTreeSet<u64> = n
                .members
                .keys()
                .chain(n.states.keys())
                .map(|k| n.name_hash(k))
                .collect();
            assert!(n.hot.keys().all(|k| names.contains(k)));
            assert_eq!(
                n.suspicions.earliest(),
                n.suspicions.map.values().map(Suspicion::wake_at).min(),
                "node-{i}: cached earliest suspicion wake-up"
            );
            suspected += n.suspicions.map.len();
            let want = digest_of_copies(n);
            net.with_node(&addr(i), |nd, _| {
                assert_eq!(nd.view_digest(), want, "node-{i} at step {step}");
            });
            checked += 1;
        }
    }
    assert!(checked > 1000);
    assert!(suspected > 0, "the crash was suspected");
    let n1 = net.node(&addr(1)).unwrap();
    assert!(n1.stats.members_refused_full == 0);
    assert!(
        n1.members().iter().all(|m| m.name != "node-5"),
        "node-5's tombstone was forgotten (the roster was rebuilt)"
    );
}
