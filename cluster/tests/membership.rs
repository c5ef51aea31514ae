//! Membership behaviour on the in-memory network: join, failure detection, graceful leave,
//! name conflicts, cluster isolation, partitions, restarts and node states.

mod support;

use std::time::Duration;

use cluster::testkit::SimNet;
use cluster::{Config, Event, Node, NodeState, Rejection, Status};
use support::*;

#[test]
fn five_nodes_join_and_converge_quickly() {
    let mut net = cluster(5, 1);
    let all: Vec<String> = (1..=5).map(name).collect();
    let took = run_until(&mut net, Duration::from_secs(10), |net| {
        (1..=5).all(|i| {
            alive_names(net, i) == all
                && view(net, i)
                    .iter()
                    .all(|(_, _, st)| *st == NodeState::Participant)
        })
    })
    .expect("converged");
    assert!(took < Duration::from_secs(3), "join took {took:?}");
}

#[test]
fn an_abruptly_stopped_node_is_declared_dead_by_all_others() {
    let mut net = cluster(5, 2);
    net.run_for(Duration::from_secs(5));
    net.crash(&addr(3));
    let took = run_until(&mut net, Duration::from_secs(60), |net| {
        [1, 2, 4, 5].iter().all(|&i| {
            view(net, i)
                .iter()
                .any(|(n, s, _)| *n == name(3) && *s == Status::Dead)
        })
    })
    .expect("crash detected by all");
    // Its connections closed and its port refuses: two refusals make it dead, no timer.
    assert!(
        took < Duration::from_secs(2),
        "crash detection took {took:?}"
    );
}

#[test]
fn a_graceful_leave_is_seen_as_left_not_dead() {
    let mut net = cluster(5, 3);
    net.run_for(Duration::from_secs(5));
    net.with_node(&addr(2), |n, _| {
        n.set_state(NodeState::Terminating).unwrap();
        n.leave();
    });
    let spread = run_until(&mut net, Duration::from_secs(5), |net| {
        net.node(&addr(2)).unwrap().broadcasts_pending() == 0
    });
    assert!(spread.is_some(), "leave message spread");
    net.crash(&addr(2));
    let took = run_until(&mut net, Duration::from_secs(5), |net| {
        [1, 3, 4, 5].iter().all(|&i| {
            view(net, i)
                .iter()
                .any(|(n, s, _)| *n == name(2) && *s == Status::Left)
        })
    })
    .expect("leave seen by all");
    assert!(took < Duration::from_secs(2));
    net.run_for(Duration::from_secs(30));
    for i in [1, 3, 4, 5] {
        let v = view(&net, i);
        let (_, s, _) = v.iter().find(|(n, _, _)| *n == name(2)).unwrap();
        assert_eq!(
            *s,
            Status::Left,
            "node-{i} must keep node-2 as left, never dead"
        );
    }
}

#[test]
fn a_duplicate_name_at_another_address_is_refused_and_the_cluster_is_untouched() {
    let mut net = cluster(3, 4);
    net.run_for(Duration::from_secs(3));
    net.take_events();
    let impostor = Node::new(
        Config::default(),
        &name(2),
        "10.0.0.99:12345",
        77,
        net.now(),
    )
    .unwrap();
    net.add(impostor);
    net.with_node("10.0.0.99:12345", |n, now| n.join(now, &[addr(1)]));
    net.run_for(Duration::from_secs(3));
    let events = net.take_events();
    let rejected = events.iter().find_map(|(_, who, e)| match e {
        Event::JoinRejected { rejection, .. } if who == "10.0.0.99:12345" => {
            Some(rejection.clone())
        }
        _ => None,
    });
    assert_eq!(
        rejected,
        Some(Rejection::NameConflict {
            name: name(2),
            holder_addr: addr(2)
        })
    );
    let msg = rejected.unwrap().to_string();
    assert!(
        msg.contains(&addr(2)),
        "error names the holder's address: {msg}"
    );
    for i in 1..=3 {
        let m = net.node(&addr(i)).unwrap().members();
        let n2 = m.iter().find(|m| m.name == name(2)).unwrap();
        assert_eq!(
            n2.addr,
            addr(2),
            "node-{i} still maps node-2 to the real holder"
        );
        assert_eq!(n2.status, Status::Alive);
    }
    assert!(net.node(&addr(1)).unwrap().stats().name_conflicts >= 1);
}

#[test]
fn a_node_of_another_cluster_name_cannot_join() {
    let mut net = cluster(3, 5);
    net.run_for(Duration::from_secs(2));
    net.take_events();
    let other = Config {
        cluster_name: "other".into(),
        ..Config::default()
    };
    net.add(Node::new(other, "stranger", "10.0.0.50:12345", 9, net.now()).unwrap());
    net.with_node("10.0.0.50:12345", |n, now| n.join(now, &[addr(1)]));
    net.run_for(Duration::from_secs(5));
    let failed = net
        .take_events()
        .into_iter()
        .any(|(_, who, e)| who == "10.0.0.50:12345" && matches!(e, Event::JoinFailed { .. }));
    assert!(failed, "the stranger's join fails");
    assert!(alive_names(&net, 1).iter().all(|n| n != "stranger"));
    assert_eq!(net.node("10.0.0.50:12345").unwrap().live_count(), 1);
    assert!(net.node(&addr(1)).unwrap().stats().cluster_mismatches >= 1);
}

#[test]
fn a_partition_splits_the_view_and_a_heal_merges_it_back() {
    let mut net = cluster(6, 6);
    net.run_for(Duration::from_secs(5));
    let a: Vec<String> = (1..=3).map(addr).collect();
    let b: Vec<String> = (4..=6).map(addr).collect();
    net.partition(&[a, b]);
    let split = run_until(&mut net, Duration::from_secs(90), |net| {
        alive_names(net, 1) == vec![name(1), name(2), name(3)]
            && alive_names(net, 4) == vec![name(4), name(5), name(6)]
    });
    assert!(split.is_some(), "each side sees only itself");
    net.heal();
    // Dead members are not probed, so healing relies on push/pull or rejoin; a rejoin at the
    // agent's rejoin interval is what the driver does.
    for i in 1..=6 {
        net.with_node(&addr(i), |n, now| n.join(now, &[addr(1), addr(4)]));
    }
    let all: Vec<String> = (1..=6).map(name).collect();
    let healed = run_until(&mut net, Duration::from_secs(30), |net| {
        (1..=6).all(|i| alive_names(net, i) == all)
    });
    assert!(
        healed.is_some(),
        "views merge after heal: {:?}",
        alive_names(&net, 1)
    );
}

#[test]
fn periodic_push_pull_heals_a_partition_without_rejoin_while_suspects_linger() {
    let config = Config {
        push_pull_interval: Duration::from_secs(5),
        ..Config::default()
    };
    let mut net = SimNet::new(8);
    for i in 1..=4 {
        net.add(node(i, &config, 8, net.now()));
        net.with_node(&addr(i), |n, now| {
            n.join(now, &[addr(1)]);
        });
    }
    net.run_for(Duration::from_secs(5));
    net.partition(&[vec![addr(1), addr(2)], vec![addr(3), addr(4)]]);
    // Short partition: shorter than the suspicion timeout, so members are suspect, not dead.
    net.run_for(Duration::from_secs(4));
    net.heal();
    let all: Vec<String> = (1..=4).map(name).collect();
    let healed = run_until(&mut net, Duration::from_secs(60), |net| {
        (1..=4).all(|i| alive_names(net, i) == all)
    });
    assert!(healed.is_some());
}

#[test]
fn a_restarted_node_rejoins_with_a_higher_incarnation_and_restates_itself() {
    let mut net = cluster(4, 9);
    net.run_for(Duration::from_secs(5));
    let old_inc = net.node(&addr(3)).unwrap().incarnation();
    net.crash(&addr(3));
    run_until(&mut net, Duration::from_secs(60), |net| {
        view(net, 1)
            .iter()
            .any(|(n, s, _)| *n == name(3) && *s == Status::Dead)
    })
    .expect("dead first");
    // Same name, same address, fresh process state.
    let fresh = node(3, &Config::default(), 99, net.now());
    net.add(fresh);
    net.with_node(&addr(3), |n, now| n.join(now, &[addr(1)]));
    let back = run_until(&mut net, Duration::from_secs(20), |net| {
        (1..=4).all(|i| alive_names(net, i).contains(&name(3)))
    });
    assert!(
        back.is_some(),
        "restart is not a conflict and comes back alive"
    );
    let new_inc = net.node(&addr(3)).unwrap().incarnation();
    assert!(
        new_inc > old_inc,
        "refuted its tombstone: {new_inc} > {old_inc}"
    );
    // The fresh run is a viewer; the old run's `participant` must not win.
    let st = run_until(&mut net, Duration::from_secs(10), |net| {
        (1..=4).all(|i| {
            view(net, i)
                .iter()
                .any(|(n, _, st)| *n == name(3) && *st == NodeState::Viewer)
        })
    });
    assert!(
        st.is_some(),
        "newer Lamport time of the fresh run wins everywhere"
    );
}

#[test]
fn node_state_changes_spread_and_only_move_forward() {
    let mut net = cluster(4, 10);
    net.run_for(Duration::from_secs(3));
    net.with_node(&addr(4), |n, _| {
        n.set_state(NodeState::Terminating).unwrap()
    });
    let spread = run_until(&mut net, Duration::from_secs(5), |net| {
        (1..=4).all(|i| {
            view(net, i)
                .iter()
                .any(|(n, _, st)| *n == name(4) && *st == NodeState::Terminating)
        })
    });
    assert!(spread.is_some());
    let err = net
        .with_node(&addr(4), |n, _| n.set_state(NodeState::Participant))
        .unwrap();
    assert!(err.is_err());
}

#[test]
fn under_ten_percent_loss_no_live_node_is_declared_dead() {
    let mut net = cluster(8, 11);
    net.run_for(Duration::from_secs(5));
    net.set_loss(0.10);
    net.run_for(Duration::from_secs(180));
    for i in 1..=8 {
        let dead: Vec<_> = view(&net, i)
            .into_iter()
            .filter(|(_, s, _)| *s == Status::Dead)
            .collect();
        assert!(
            dead.is_empty(),
            "node-{i} declared {dead:?} dead under loss"
        );
    }
    assert!(net.stats.dropped_loss > 100, "loss really happened");
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let run = |seed| {
        let mut net = cluster(6, seed);
        net.run_for(Duration::from_secs(5));
        net.crash(&addr(2));
        net.run_for(Duration::from_secs(30));
        (
            net.stats.clone(),
            (1..=6)
                .filter(|&i| i != 2)
                .map(|i| format!("{:?}", net.node(&addr(i)).unwrap().members()))
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(run(21), run(21));
    assert_ne!(run(21).0, run(22).0);
}

#[test]
fn a_node_started_before_its_seed_joins_within_seconds_not_a_rejoin_interval() {
    let config = Config::default();
    let mut net = SimNet::new(31);
    net.add(node(2, &config, 31, net.now()));
    net.with_node(&addr(2), |n, now| {
        n.join(now, &[addr(1)]);
    });
    // The seed comes up 3 s later; the first join was refused.
    net.run_for(Duration::from_secs(3));
    net.add(node(1, &config, 31, net.now()));
    let took = run_until(&mut net, Duration::from_secs(60), |net| {
        alive_names(net, 2) == vec![name(1), name(2)]
    })
    .expect("joined");
    assert!(
        took < Duration::from_secs(10),
        "backoff retry, not the 60 s rejoin interval: took {took:?}"
    );
}

#[test]
fn views_that_diverged_while_gossip_was_lost_resync_through_probe_digests() {
    let config = Config {
        push_pull_interval: Duration::ZERO,
        rejoin_interval: None,
        reconnect_interval: None,
        ..Config::default()
    };
    let mut net = SimNet::new(32);
    for i in 1..=5 {
        net.add(node(i, &config, 32, net.now()));
        net.with_node(&addr(i), |n, now| {
            n.join(now, &[addr(1)]);
            n.set_state(NodeState::Participant).unwrap();
        });
    }
    net.run_for(Duration::from_secs(5));
    // Every packet lost while node-5 announces `terminating`: the bounded retransmits run out.
    net.set_loss(1.0);
    net.with_node(&addr(5), |n, _| {
        n.set_state(NodeState::Terminating).unwrap()
    });
    net.run_for(Duration::from_millis(2_500));
    net.set_loss(0.0);
    let terminating_everywhere = |net: &SimNet| {
        (1..=5).all(|i| {
            view(net, i).iter().any(|(n, s, st)| {
                *n == name(5) && *s == Status::Alive && *st == NodeState::Terminating
            })
        })
    };
    let took = run_until(&mut net, Duration::from_secs(30), terminating_everywhere)
        .expect("digests resynced the views without push/pull or rejoin");
    let syncs: u64 = (1..=5)
        .map(|i| net.node(&addr(i)).unwrap().stats().digest_syncs)
        .sum();
    assert!(syncs > 0, "the repair came from digest syncs");
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

#[test]
fn a_healed_partition_merges_through_reconnects_without_rejoin_or_push_pull() {
    let config = Config {
        push_pull_interval: Duration::ZERO,
        rejoin_interval: None,
        ..Config::default()
    };
    let mut net = SimNet::new(33);
    for i in 1..=6 {
        net.add(node(i, &config, 33, net.now()));
        net.with_node(&addr(i), |n, now| {
            n.join(now, &[addr(1)]);
        });
    }
    net.run_for(Duration::from_secs(5));
    net.partition(&[(1..=3).map(addr).collect(), (4..=6).map(addr).collect()]);
    let split = run_until(&mut net, Duration::from_secs(120), |net| {
        view(net, 1)
            .iter()
            .filter(|(_, s, _)| *s == Status::Dead)
            .count()
            == 3
    });
    assert!(split.is_some(), "each side declared the other dead");
    net.heal();
    let all: Vec<String> = (1..=6).map(name).collect();
    let took = run_until(&mut net, Duration::from_secs(60), |net| {
        (1..=6).all(|i| alive_names(net, i) == all)
    })
    .expect("merged after the heal");
    assert!(
        took <= Duration::from_secs(15),
        "within about one reconnect interval (10 s): {took:?}"
    );
}

#[test]
fn incarnations_and_lamport_times_beyond_reach_are_refused_and_a_node_can_always_refute() {
    use cluster::wire::Update;
    let mut net = cluster(4, 17);
    assert!(run_until(&mut net, Duration::from_secs(30), |net| {
        (1..=4).all(|i| alive_names(net, i).len() == 4)
    })
    .is_some());
    let inc2 = net.node(&addr(2)).unwrap().incarnation();
    // A forged `left` about node-2 at u64::MAX, a suspicion of node-1 itself near the
    // maximum, a jump of 2^40 over node-3's incarnation, and a state of node-4 at a Lamport
    // time that would freeze every clock.
    let lies = [
        Update::Left {
            name: name(2),
            incarnation: u64::MAX,
        },
        Update::Suspect {
            name: name(1),
            incarnation: u64::MAX - 1,
            from: "mallory".into(),
            refused: false,
        },
        Update::Dead {
            name: name(3),
            incarnation: 1 << 40,
            from: "mallory".into(),
            refused: true,
        },
        Update::State {
            name: name(4),
            state: NodeState::Terminating,
            lamport: u64::MAX,
        },
    ];
    let clock = net.node(&addr(1)).unwrap().lamport_time();
    net.with_node(&addr(1), |nd, now| {
        nd.handle_packet(now, &forged("mallory", &lies)).unwrap()
    });
    let n1 = net.node(&addr(1)).unwrap();
    assert_eq!(n1.stats().updates_out_of_bounds, 4);
    assert_eq!(
        n1.incarnation(),
        0,
        "node-1 did not refute a lie it refused"
    );
    assert!(n1.lamport_time() < clock + 10, "the clock did not jump");
    net.run_for(Duration::from_secs(10));
    for i in 1..=4 {
        assert_eq!(
            alive_names(&net, i).len(),
            4,
            "node-{i}: {:?}",
            view(&net, i)
        );
        assert!(view(&net, i)
            .iter()
            .all(|(_, _, s)| *s == NodeState::Participant));
    }

    // A believable forged `left` (one above node-2's incarnation) is accepted, as it must be
    // without authentication (cluster TLS is the defence), but node-2 refutes it and the
    // others take it back.
    net.with_node(&addr(1), |nd, now| {
        let lie = Update::Left {
            name: name(2),
            incarnation: inc2 + 1,
        };
        nd.handle_packet(now, &forged("mallory", &[lie])).unwrap()
    });
    assert!(!alive_names(&net, 1).contains(&name(2)));
    assert!(run_until(&mut net, Duration::from_secs(30), |net| {
        (1..=4).all(|i| alive_names(net, i).len() == 4)
    })
    .is_some());
    assert!(net.node(&addr(2)).unwrap().incarnation() > inc2 + 1);
    // Clocks still move: a real state change spreads.
    net.with_node(&addr(4), |nd, _| {
        nd.set_state(NodeState::Terminating).unwrap()
    });
    assert!(run_until(&mut net, Duration::from_secs(30), |net| {
        view(net, 1)
            .iter()
            .any(|(n, _, s)| *n == name(4) && *s == NodeState::Terminating)
    })
    .is_some());
}

/// A rejoin repairs clusters that formed apart, so it contacts only the join addresses that
/// are not live members already: in a converged cluster the periodic rejoin sends nothing;
/// once the seed is dead (or was never met) it is contacted again.
#[test]
fn a_rejoin_contacts_only_join_addresses_that_are_not_live_members() {
    use cluster::wire::{self, Envelope, Kind, MemberRecord};
    use cluster::{Instant, TransmitKind};
    let config = Config::default();
    let rejoin = config.rejoin_interval.expect("rejoin on by default");
    let mut a = node(1, &config, 21, Instant::ZERO);
    a.join(Instant::ZERO, &[addr(2)]);
    let joins = |a: &mut Node| {
        let mut n = 0;
        while let Some(t) = a.poll_transmit() {
            n += usize::from(t.kind == TransmitKind::PushPull { join: true } && t.to == addr(2));
        }
        n
    };
    assert_eq!(joins(&mut a), 1, "the first join contacts the seed");
    // The seed answers: node-2 is a live member.
    let env = Envelope {
        kind: Kind::PushPullResponse,
        cluster: config.cluster_name.clone(),
        sender_name: name(2),
        sender_addr: addr(2),
    };
    let record = |status| MemberRecord {
        name: name(2),
        addr: addr(2),
        incarnation: 0,
        status,
        state: Some((NodeState::Participant, 2)),
    };
    let answer = wire::encode_push_pull(&env, false, &[record(Status::Alive)]);
    a.handle_push_pull_response(Instant::ZERO, &addr(2), &answer)
        .unwrap();
    // Three rejoin intervals pass (node-2 answers every probe in this story): no rejoin.
    let mut t = Instant::ZERO;
    let mut sent = 0;
    while t < Instant::ZERO + rejoin * 3 {
        t = a.poll_timeout().unwrap();
        a.handle_timeout(t);
        while let Some(tx) = a.poll_transmit() {
            sent += usize::from(tx.kind == TransmitKind::PushPull { join: true });
            if let Ok((
                _,
                wire::Body::Packet {
                    primary: Some(wire::Primary::Ping { seq, .. }),
                    ..
                },
            )) = wire::decode(&tx.payload, 1 << 16)
            {
                let mut env = env.clone();
                env.kind = Kind::Packet;
                let ack = wire::encode_packet(&env, Some(&wire::Primary::Ack { seq }), &[]);
                a.handle_packet(t, &ack).unwrap();
            }
        }
    }
    assert_eq!(sent, 0, "a converged cluster's rejoins send nothing");
    // node-2 leaves the view (declared dead by someone): the next rejoin contacts it again.
    let dead = wire::encode_update(&wire::Update::Dead {
        name: name(2),
        incarnation: 0,
        from: name(3),
        refused: true,
    });
    let mut env3 = env.clone();
    env3.kind = Kind::Packet;
    env3.sender_name = name(3);
    env3.sender_addr = addr(3);
    a.handle_packet(t, &wire::encode_packet(&env3, None, &[&dead]))
        .unwrap();
    a.handle_unreachable(t, &addr(2), cluster::Unreachable::Refused);
    assert!(a
        .members()
        .iter()
        .any(|m| m.name == name(2) && m.status == Status::Dead));
    let until = t + rejoin + std::time::Duration::from_secs(1);
    let mut rejoined = 0;
    while t < until {
        t = a.poll_timeout().unwrap();
        a.handle_timeout(t);
        rejoined += joins(&mut a);
    }
    assert!(rejoined >= 1, "the dead seed is contacted again");
}
