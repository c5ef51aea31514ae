//! Failure detection on the in-memory network: what the transport sees (refused and closed
//! connections, timeouts) used as evidence, the refusal quorum, verifiers, the last-chance
//! probe, stalls, and a node that missed the gossip of a death.

mod support;

use std::time::Duration;

use cluster::testkit::SimNet;
use cluster::wire::{self, Envelope, Kind, MemberRecord, Primary, Update};
use cluster::{Config, Instant, NodeState, Status, TransmitKind, Unreachable};
use support::*;

fn status_of(net: &SimNet, observer: usize, subject: usize) -> Option<Status> {
    view(net, observer)
        .into_iter()
        .find(|(n, _, _)| *n == name(subject))
        .map(|(_, s, _)| s)
}

fn all_see(net: &SimNet, observers: &[usize], subject: usize, status: Status) -> bool {
    observers
        .iter()
        .all(|&i| status_of(net, i, subject) == Some(status))
}

fn sum_stat(net: &SimNet, f: impl Fn(&cluster::Stats) -> u64) -> u64 {
    net.nodes().map(|n| f(n.stats())).sum()
}

/// A killed process: its peers' connections close, their checks are refused, and two
/// members' refusals make it dead everywhere without a suspicion timer.
#[test]
fn a_killed_process_is_dead_by_two_refusals_within_a_second() {
    let mut net = cluster(8, 11);
    net.run_for(Duration::from_secs(30));
    net.crash(&addr(5));
    let others = [1, 2, 3, 4, 6, 7, 8];
    let took = run_until(&mut net, Duration::from_secs(10), |net| {
        all_see(net, &others, 5, Status::Dead)
    })
    .expect("seen dead by all");
    assert!(took <= Duration::from_secs(1), "took {took:?}");
    assert!(
        net.stats.closed > 0 && net.stats.refused > 0,
        "{:?}",
        net.stats
    );
    assert!(sum_stat(&net, |s| s.deaths_by_refusal) > 0);
    assert!(sum_stat(&net, |s| s.peers_refused) >= 2);
}

/// One member's refused connection is not a death: the accused is alive, is told by the
/// members that check the accusation, and refutes.
#[test]
fn a_single_refusal_about_a_live_member_is_refuted() {
    let mut net = cluster(6, 12);
    net.run_for(Duration::from_secs(20));
    // node-2 alone claims node-4's port refused it (a rejecting firewall on its path, say).
    net.with_node(&addr(2), |nd, now| {
        nd.handle_unreachable(now, &addr(4), Unreachable::Refused)
    });
    assert_eq!(status_of(&net, 2, 4), Some(Status::Suspect));
    net.run_for(Duration::from_secs(30));
    for i in [1, 2, 3, 5, 6] {
        assert_eq!(status_of(&net, i, 4), Some(Status::Alive), "node-{i}");
    }
    let n4 = net.node(&addr(4)).unwrap();
    assert!(n4.incarnation() >= 1, "node-4 refuted");
    assert_eq!(sum_stat(&net, |s| s.deaths_by_refusal), 0);
}

/// A host that loses power answers nothing: no refusal, no closed connection. Probes,
/// indirect probes and the verifiers' checks time out, and the suspicion runs to its end.
#[test]
fn a_host_that_lost_power_is_dead_after_its_suspicion_with_no_refusal() {
    let mut net = cluster(10, 13);
    net.run_for(Duration::from_secs(30));
    net.power_off(&addr(6));
    let others = [1, 2, 3, 4, 5, 7, 8, 9, 10];
    let took = run_until(&mut net, Duration::from_secs(60), |net| {
        all_see(net, &others, 6, Status::Dead)
    })
    .expect("seen dead by all");
    let (min, _) = Config::default().suspicion_timeouts(10);
    assert!(took > min, "a suspicion ran first: {took:?}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert_eq!(net.stats.refused + net.stats.closed, 0, "{:?}", net.stats);
    assert_eq!(sum_stat(&net, |s| s.deaths_by_refusal), 0);
    assert!(
        sum_stat(&net, |s| s.checks_failed) > 0,
        "verifiers checked it"
    );
}

/// A suspicion raised by one member is checked at once by the `verifiers` members chosen for
/// it, not by all: the rest wait for their confirmations.
#[test]
fn about_verifiers_members_check_a_suspicion_at_once() {
    let mut net = cluster(20, 14);
    net.run_for(Duration::from_secs(30));
    let before = sum_stat(&net, |s| s.checks);
    // node-3 suspects node-9 on a timeout of its own (a forged one here; node-9 is fine).
    net.with_node(&addr(3), |nd, now| {
        let packet = forged(
            "mallory",
            &[Update::Suspect {
                name: name(9),
                incarnation: 0,
                from: name(3),
                refused: false,
            }],
        );
        nd.handle_packet(now, &packet).unwrap();
    });
    net.run_for(Duration::from_secs(1));
    let checks = sum_stat(&net, |s| s.checks) - before;
    let verifiers = Config::default().verifiers as u64;
    assert!(
        (1..=verifiers + 1).contains(&checks),
        "{checks} checks for one suspicion (verifiers {verifiers})"
    );
    net.run_for(Duration::from_secs(20));
    assert!(all_see(&net, &[1, 2, 3, 4, 5], 9, Status::Alive));
}

/// The suspect answered our last-chance probe: it is alive, so our suspicion is withdrawn
/// even if its refutation never reached us.
#[test]
fn an_answer_to_the_last_chance_probe_withdraws_the_suspicion() {
    let config = Config::default();
    let now = Instant::ZERO;
    let mut a = node(1, &config, 15, now);
    // a learns of node-2 and node-3 from a full-state exchange with node-2.
    let records = vec![
        MemberRecord {
            name: name(2),
            addr: addr(2),
            incarnation: 0,
            status: Status::Alive,
            state: Some((NodeState::Participant, 2)),
        },
        MemberRecord {
            name: name(3),
            addr: addr(3),
            incarnation: 0,
            status: Status::Alive,
            state: Some((NodeState::Participant, 2)),
        },
    ];
    let env = |sender: usize, kind| Envelope {
        kind,
        cluster: config.cluster_name.clone(),
        sender_name: name(sender),
        sender_addr: addr(sender),
    };
    a.handle_push_pull(
        now,
        &wire::encode_push_pull(&env(2, Kind::PushPullRequest), false, &records),
    )
    .unwrap();
    // node-2 says node-3 is suspect.
    let suspect = wire::encode_update(&Update::Suspect {
        name: name(3),
        incarnation: 0,
        from: name(2),
        refused: false,
    });
    a.handle_packet(
        now,
        &wire::encode_packet(&env(2, Kind::Packet), None, &[&suspect]),
    )
    .unwrap();
    assert!(a
        .members()
        .iter()
        .any(|m| m.name == name(3) && m.status == Status::Suspect));
    // Run a's timers until it sends its last chance to node-3: the first ping naming node-3
    // in the last moments of the suspicion (its minimum, less the time a check takes).
    // node-3 answers the pings before it (so a never counts one of them as telling node-3 in
    // vain), but its refutation never reaches a.
    let (min, _) = config.suspicion_timeouts(3);
    let min = min - config.probe_timeout * 2;
    let mut t = now;
    let mut last_chance = None;
    while last_chance.is_none() && t < now + Duration::from_secs(120) {
        t = a.poll_timeout().unwrap().max(t);
        a.handle_timeout(t);
        let mut acks = Vec::new();
        while let Some(tx) = a.poll_transmit() {
            if tx.kind != TransmitKind::Packet || tx.to != addr(3) {
                continue;
            }
            if let Ok((
                _,
                wire::Body::Packet {
                    primary: Some(Primary::Ping { seq, .. }),
                    ..
                },
            )) = wire::decode(&tx.payload, 1 << 16)
            {
                if t < now + min {
                    acks.push(seq);
                } else {
                    last_chance = Some(seq);
                }
            }
        }
        for seq in acks {
            let ack = wire::encode_packet(&env(3, Kind::Packet), Some(&Primary::Ack { seq }), &[]);
            a.handle_packet(t, &ack).unwrap();
        }
    }
    let seq = last_chance.expect("a last-chance ping to node-3");
    assert!(a
        .members()
        .iter()
        .any(|m| m.name == name(3) && m.status == Status::Suspect));
    // node-3 answers, with no refutation riding along (lost, say).
    let ack = wire::encode_packet(&env(3, Kind::Packet), Some(&Primary::Ack { seq }), &[]);
    a.handle_packet(t, &ack).unwrap();
    assert!(a
        .members()
        .iter()
        .any(|m| m.name == name(3) && m.status == Status::Alive));
    assert_eq!(a.stats().suspicions_withdrawn, 1);
}

/// A node whose event loop stalls for 1.5 s: probes of it go unanswered meanwhile, and its
/// own probes' acks wait in its queue. It handles them before its timers when it resumes,
/// so it neither dies nor accuses anyone.
#[test]
fn a_stalled_node_catches_up_and_nobody_dies() {
    let mut net = cluster(8, 16);
    net.run_for(Duration::from_secs(20));
    for _ in 0..10 {
        net.stall(&addr(3), Duration::from_millis(1500));
        net.run_for(Duration::from_secs(7));
    }
    assert!(
        net.stats.stalled > 0,
        "messages waited for the stalled node"
    );
    for i in 1..=8 {
        let v = view(&net, i);
        assert!(
            v.iter().all(|(_, s, _)| *s == Status::Alive),
            "node-{i}: {v:?}"
        );
    }
}

/// A member that missed all the gossip of a death (it happens: the news spreads in a few
/// rounds) learns it at its next full-state exchange, as the peer's verdict, instead of
/// waiting out its own suspicion timer or the periodic push/pull.
#[test]
fn a_verdict_in_a_full_state_exchange_ends_a_ripe_suspicion() {
    let config = Config::default();
    let now = Instant::ZERO;
    let mut a = node(1, &config, 17, now);
    let env = |sender: usize, kind| Envelope {
        kind,
        cluster: config.cluster_name.clone(),
        sender_name: name(sender),
        sender_addr: addr(sender),
    };
    let record = |i: usize, status| MemberRecord {
        name: name(i),
        addr: addr(i),
        incarnation: 0,
        status,
        state: Some((NodeState::Participant, 2)),
    };
    let alive: Vec<MemberRecord> = (2..=6).map(|i| record(i, Status::Alive)).collect();
    a.handle_push_pull(
        now,
        &wire::encode_push_pull(&env(2, Kind::PushPullRequest), false, &alive),
    )
    .unwrap();
    // a suspects node-5 itself (its own probe failed).
    a.handle_unreachable(now, &addr(5), Unreachable::Refused);
    assert!(a
        .members()
        .iter()
        .any(|m| m.name == name(5) && m.status == Status::Suspect));
    // Its suspicion has run its minimum when node-2's state, with node-5 dead, arrives.
    let (min, _) = config.suspicion_timeouts(6);
    let later = now + min + Duration::from_millis(1);
    let mut state = alive.clone();
    state[3] = record(5, Status::Dead);
    a.handle_push_pull(
        later,
        &wire::encode_push_pull(&env(2, Kind::PushPullRequest), false, &state),
    )
    .unwrap();
    assert!(a
        .members()
        .iter()
        .any(|m| m.name == name(5) && m.status == Status::Dead));
    // The same verdict about a member it holds alive is only a suspicion (stale verdicts
    // from a node that was cut off must not kill).
    state[3] = record(5, Status::Alive);
    state[2] = record(4, Status::Dead);
    a.handle_push_pull(
        later,
        &wire::encode_push_pull(&env(2, Kind::PushPullRequest), false, &state),
    )
    .unwrap();
    assert!(a
        .members()
        .iter()
        .any(|m| m.name == name(4) && m.status == Status::Suspect));
}

/// Requests across a partition time out; each timeout prompts a check of that member, so a
/// node cut off from everyone suspects all of them within seconds, not one per probe round.
#[test]
fn timeouts_prompt_checks_so_a_cut_off_node_suspects_everyone_quickly() {
    let mut net = cluster(9, 18);
    net.run_for(Duration::from_secs(20));
    let groups: Vec<Vec<String>> = (1..=9).map(|i| vec![addr(i)]).collect();
    net.partition(&groups);
    let took = run_until(&mut net, Duration::from_secs(60), |net| {
        (2..=9).all(|j| status_of(net, 1, j) != Some(Status::Alive))
    })
    .expect("node-1 suspects everyone");
    assert!(took < Duration::from_secs(15), "took {took:?}");
    assert!(net.stats.timed_out > 0);
    assert!(net.node(&addr(1)).unwrap().stats().peers_timed_out > 0);
    let took = run_until(&mut net, Duration::from_secs(60), |net| {
        (2..=9).all(|j| status_of(net, 1, j) == Some(Status::Dead))
    })
    .expect("and declares them dead");
    assert!(took < Duration::from_secs(40), "took {took:?}");
}
