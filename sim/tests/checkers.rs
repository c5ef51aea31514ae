//! Each checker on hand-built observation sequences: it catches the violation it is named
//! after, and stays quiet on a clean story.

use sim::check::redistribution::baseline_moved_fraction;
use sim::check::{
    assess, ideal_fraction, moved_fraction, Assignment, ConvergenceChecker,
    LamportMonotonicChecker, MovementBaseline, NoFalseDeathChecker, NoResurrectionChecker,
    OwnershipAccounting, RedistributionChecker, Violations,
};
use sim::observe::{NodeState, Observation, Status};
use sim::testkit::{modulo, World};

fn names(n: u32) -> Vec<String> {
    (1..=n).map(|i| format!("node-{i}")).collect()
}

// ---------------------------------------------------------------- lamport_monotonic

fn lamport(snapshots: &[Observation]) -> Violations {
    let mut c = LamportMonotonicChecker::default();
    let mut out = Vec::new();
    for s in snapshots {
        c.observe(s, &mut out);
    }
    out
}

#[test]
fn a_member_lamport_time_going_back_is_caught() {
    let mut w = World::new(3, 10);
    w.view_mut("node-1", "node-2").lamport = 7;
    let before = w.snapshot();
    w.advance(500).view_mut("node-1", "node-2").lamport = 6;
    let out = lamport(&[before, w.snapshot()]);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].invariant, "lamport_monotonic");
    assert_eq!(out[0].at_ms, 500);
    assert!(
        out[0]
            .detail
            .contains("node-1 holds node-2's state at Lamport time 6 after having held time 7"),
        "{}",
        out[0].detail
    );
}

#[test]
fn a_member_incarnation_going_back_is_caught() {
    let mut w = World::new(3, 10);
    w.view_mut("node-3", "node-1").incarnation = 4;
    let before = w.snapshot();
    w.advance(500).view_mut("node-3", "node-1").incarnation = 3;
    let out = lamport(&[before, w.snapshot()]);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0]
        .detail
        .contains("node-3 holds node-1 at incarnation 3 after having held incarnation 4"));
}

#[test]
fn an_observer_own_clock_going_back_is_caught() {
    let mut w = World::new(2, 10);
    w.node_mut("node-2").lamport = 9;
    let before = w.snapshot();
    w.advance(500).node_mut("node-2").lamport = 8;
    let out = lamport(&[before, w.snapshot()]);
    assert_eq!(out.len(), 1);
    assert!(out[0]
        .detail
        .contains("node-2's own Lamport clock went back from 9 to 8"));
}

#[test]
fn a_restarted_observer_starts_with_fresh_clocks() {
    let mut w = World::new(2, 10);
    w.node_mut("node-2").lamport = 9;
    w.view_mut("node-2", "node-1").lamport = 9;
    let before = w.snapshot();
    w.advance(500);
    let n = w.node_mut("node-2");
    n.restarts += 1;
    n.lamport = 0;
    w.view_mut("node-2", "node-1").lamport = 1;
    assert!(lamport(&[before, w.snapshot()]).is_empty());
}

#[test]
fn a_member_may_start_from_zero_only_if_restarted_and_forgotten() {
    let mut w = World::new(2, 10);
    w.view_mut("node-1", "node-2").incarnation = 5;
    let s0 = w.snapshot();
    // node-2 restarts with fresh state; node-1 still holds it: incarnation 0 is a regression.
    w.advance(500).node_mut("node-2").restarts += 1;
    w.view_mut("node-1", "node-2").incarnation = 0;
    let held = w.snapshot();
    assert_eq!(lamport(&[s0.clone(), held]).len(), 1);
    // Same, but node-1 had forgotten node-2 in between: a new process, nothing to compare.
    let mut forgot = w.clone();
    forgot
        .node_mut("node-1")
        .members
        .to_mut()
        .retain(|m| m.name != "node-2");
    let gap = forgot.snapshot();
    assert!(lamport(&[s0, gap, w.advance(500).snapshot()]).is_empty());
}

// ---------------------------------------------------------------- no_resurrection

fn resurrection(snapshots: &[Observation]) -> Violations {
    let mut c = NoResurrectionChecker::default();
    let mut out = Vec::new();
    for s in snapshots {
        c.observe(s, &mut out);
    }
    out
}

#[test]
fn a_dead_member_back_at_the_same_incarnation_is_caught() {
    let mut w = World::new(3, 10);
    w.crash("node-3");
    w.settle();
    let dead = w.snapshot();
    assert_eq!(
        dead.node("node-1")
            .unwrap()
            .member("node-3")
            .unwrap()
            .status,
        Status::Dead
    );
    w.advance(500).view_mut("node-1", "node-3").status = Status::Alive;
    let out = resurrection(&[dead, w.snapshot()]);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].invariant, "no_resurrection");
    assert!(
        out[0].detail.contains(
            "node-1 sees node-3 alive at incarnation 0 after seeing it dead at incarnation 0"
        ),
        "{}",
        out[0].detail
    );
}

#[test]
fn a_left_member_back_as_suspect_at_the_same_incarnation_is_caught() {
    let mut w = World::new(3, 10);
    w.leave("node-2");
    let left = w.snapshot();
    w.advance(500).view_mut("node-3", "node-2").status = Status::Suspect;
    let out = resurrection(&[left, w.snapshot()]);
    assert_eq!(out.len(), 1);
    assert!(out[0]
        .detail
        .contains("node-3 sees node-2 suspect at incarnation 0 after seeing it left"));
}

#[test]
fn a_refuted_death_with_a_higher_incarnation_is_fine() {
    let mut w = World::new(3, 10);
    w.crash("node-3");
    w.settle();
    let dead = w.snapshot();
    w.restart("node-3");
    w.settle();
    let back = w.advance(500).snapshot();
    assert_eq!(
        back.node("node-1")
            .unwrap()
            .member("node-3")
            .unwrap()
            .incarnation,
        1
    );
    assert!(resurrection(&[dead, back]).is_empty());
}

#[test]
fn a_forgotten_member_may_come_back_at_any_incarnation_only_as_a_new_process() {
    let mut w = World::new(3, 10);
    w.view_mut("node-1", "node-3").incarnation = 2;
    w.crash("node-3");
    w.settle();
    let dead = w.snapshot();
    w.advance(500)
        .node_mut("node-1")
        .members
        .to_mut()
        .retain(|m| m.name != "node-3");
    let forgotten = w.snapshot();
    // Stale gossip brings the same, never restarted, process back: a ghost.
    let mut ghost = w.clone();
    ghost
        .advance(500)
        .node_mut("node-1")
        .members
        .to_mut()
        .push(sim::MemberView {
            status: Status::Alive,
            incarnation: 1,
            ..dead
                .node("node-1")
                .unwrap()
                .member("node-3")
                .unwrap()
                .clone()
        });
    ghost
        .node_mut("node-1")
        .members
        .to_mut()
        .sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(
        resurrection(&[dead.clone(), forgotten.clone(), ghost.snapshot()]).len(),
        1
    );
    // A restarted process at incarnation 1 after node-1 forgot the old one: fine.
    let mut fresh = ghost.clone();
    fresh.node_mut("node-3").restarts += 1;
    assert!(resurrection(&[dead, forgotten, fresh.snapshot()]).is_empty());
}

// ---------------------------------------------------------------- no_false_death

#[test]
fn declaring_a_live_reachable_node_dead_is_counted_and_fails_beyond_the_tolerance() {
    let mut w = World::new(3, 10);
    let s0 = w.snapshot();
    w.advance(500).view_mut("node-1", "node-2").status = Status::Dead;
    let s1 = w.snapshot();
    let mut c = NoFalseDeathChecker::default();
    c.observe(&s0);
    c.observe(&s1);
    assert_eq!(c.false_deaths, 1);
    let mut tolerated = Vec::new();
    c.finish(1, &mut tolerated);
    assert!(tolerated.is_empty());
    let mut out = Vec::new();
    c.finish(0, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].invariant, "no_false_death");
    assert_eq!(out[0].at_ms, 500);
    assert!(out[0].detail.contains("node-1 declared node-2 dead"));
}

#[test]
fn suspecting_a_live_reachable_node_is_counted_but_not_a_violation() {
    let mut w = World::new(3, 10);
    let s0 = w.snapshot();
    w.advance(500).view_mut("node-1", "node-2").status = Status::Suspect;
    let mut c = NoFalseDeathChecker::default();
    c.observe(&s0);
    c.observe(&w.snapshot());
    assert_eq!((c.false_deaths, c.false_suspicions), (0, 1));
}

#[test]
fn declaring_crashed_or_partitioned_nodes_dead_is_not_a_false_death() {
    let mut w = World::new(4, 10);
    let mut c = NoFalseDeathChecker::default();
    c.observe(&w.snapshot());
    w.crash("node-4");
    c.observe(&w.advance(500).snapshot());
    w.settle();
    c.observe(&w.advance(500).snapshot());
    w.partition(&[&["node-1"], &["node-2", "node-3"]]);
    c.observe(&w.advance(500).snapshot());
    w.settle();
    let s = w.advance(500).snapshot();
    assert_eq!(
        s.node("node-1").unwrap().member("node-2").unwrap().status,
        Status::Dead
    );
    c.observe(&s);
    assert_eq!(c.false_deaths, 0);
}

#[test]
fn a_member_that_has_not_joined_yet_cannot_be_falsely_dead() {
    let mut w = World::new(2, 10);
    w.join("node-3", 10); // knows only itself
    w.node_mut("node-1").members.to_mut().push(sim::MemberView {
        name: "node-3".into(),
        addr: "node-3:12345".into(),
        status: Status::Alive,
        state: NodeState::Participant,
        incarnation: 0,
        lamport: 1,
    });
    let s0 = w.snapshot();
    w.advance(500).view_mut("node-1", "node-3").status = Status::Dead;
    let mut c = NoFalseDeathChecker::default();
    c.observe(&s0);
    c.observe(&w.snapshot());
    assert_eq!(c.false_deaths, 0);
}

// ---------------------------------------------------------------- convergence

#[test]
fn a_settled_cluster_is_converged_with_one_assignment() {
    let w = World::new(4, 100);
    let a = assess(&w.snapshot());
    assert!(a.converged, "{:?}", a.reason);
    let assignment = a.assignment.expect("one side");
    assert_eq!(assignment.participants, names(4));
    assert_eq!(assignment.owners.len(), 100);
}

#[test]
fn stale_views_duplicates_gaps_and_owning_viewers_are_not_converged() {
    let mut w = World::new(3, 30);
    w.crash("node-3");
    let stale = assess(&w.snapshot());
    assert!(!stale.converged);
    assert_eq!(
        stale.reason.unwrap(),
        "node-1 still counts node-3 as participant(s)"
    );

    let mut dup = World::new(3, 30);
    let t = dup.nodes["node-1"].owned_targets[0];
    dup.node_mut("node-2").owned_targets.push(t);
    dup.node_mut("node-2").owned_targets.sort();
    let r = assess(&dup.snapshot()).reason.unwrap();
    assert_eq!(r, format!("target-{t} is owned by both node-1 and node-2"));

    let mut gap = World::new(3, 30);
    let t = gap.node_mut("node-2").owned_targets.remove(0);
    assert_eq!(
        assess(&gap.snapshot()).reason.unwrap(),
        format!("target-{t} has no owner among node-1 node-2 node-3")
    );

    let mut viewer = World::new(3, 30);
    viewer.join("node-4", 30);
    viewer.node_mut("node-4").state = NodeState::Viewer;
    viewer.settle();
    viewer.node_mut("node-4").owned_targets = vec![0];
    assert_eq!(
        assess(&viewer.snapshot()).reason.unwrap(),
        "node-4 owns target-0 but is viewer, not a participant"
    );
}

#[test]
fn each_side_of_a_partition_converges_on_its_own() {
    let mut w = World::new(4, 40);
    w.partition(&[&["node-1", "node-2"], &["node-3", "node-4"]]);
    let before = assess(&w.snapshot());
    assert!(!before.converged);
    w.settle();
    let s = w.snapshot();
    let a = assess(&s);
    assert!(a.converged, "{:?}", a.reason);
    assert!(
        a.assignment.is_none(),
        "no single assignment across a partition"
    );
    // Both sides own every target: duplicates, but converged.
    let owned: usize = s.nodes.iter().map(|n| n.owned_targets.len()).sum();
    assert_eq!(owned, 80);
}

#[test]
fn targets_only_some_nodes_list_do_not_block_convergence() {
    let mut w = World::new(3, 100);
    w.set_targets("node-3", 120);
    w.settle();
    assert!(assess(&w.snapshot()).converged);
}

#[test]
fn convergence_time_is_measured_from_each_event() {
    let mut w = World::new(3, 10);
    let mut c = ConvergenceChecker::default();
    c.observe(0, &assess(&w.snapshot()));
    c.event(1_000);
    w.crash("node-3");
    for t in [1_000, 1_500, 2_000] {
        w.at_ms = t;
        c.observe(t, &assess(&w.snapshot()));
    }
    w.settle();
    c.observe(2_500, &assess(&w.snapshot()));
    c.event(3_000); // nothing changes after this one, and nothing converges again: never
    w.crash("node-2");
    c.observe(3_000, &assess(&w.snapshot()));
    c.observe(4_000, &assess(&w.snapshot()));
    let (startup, changes) = c.changes(4_000);
    assert_eq!(startup, Some(0));
    assert_eq!(changes[0].converged_after_ms, Some(1_500));
    assert_eq!(changes[1].converged_after_ms, None);

    let mut out = Vec::new();
    c.finish(
        4_000,
        Some(1_000),
        &["crash node-3".into(), "crash node-2".into()],
        &mut out,
    );
    let details: Vec<&str> = out.iter().map(|v| v.detail.as_str()).collect();
    assert_eq!(
        details,
        [
            "after crash node-3 at 1000 ms: converged only after 1500 ms, expected within 1000 ms",
            "after crash node-2 at 3000 ms: not converged within 1000 ms (at 4000 ms: node-1 still counts node-2 as participant(s))",
            "not converged at 4000 ms, after the last event + 1000 ms (1 of the observations from 4000 ms on): node-1 still counts node-2 as participant(s)",
        ]
    );
}

// ---------------------------------------------------------------- ownership accounting

#[test]
fn unowned_and_duplicate_target_seconds_integrate_over_time() {
    let mut w = World::new(2, 10);
    for n in w.nodes.values_mut() {
        n.owned_targets = (0..10).collect(); // both own everything at start
    }
    let mut acc = OwnershipAccounting::default();
    acc.observe(&w.snapshot()); // t=0: 10 duplicates
    w.settle();
    acc.observe(&w.advance(1_000).snapshot()); // t=1s: clean
    let lost = w.nodes["node-2"].owned_targets.len() as f64;
    w.crash("node-2");
    acc.observe(&w.advance(1_000).snapshot()); // t=2s: node-2's targets unowned
    w.settle();
    acc.observe(&w.advance(500).snapshot()); // t=2.5s: clean
    acc.finish(4_000);
    assert_eq!(acc.duplicate_target_seconds(), 10.0);
    assert_eq!(acc.unowned_target_seconds(), lost * 0.5);
}

// ---------------------------------------------------------------- redistribution

#[test]
fn ideal_movement_is_one_over_n_plus_one_on_join_and_one_over_n_on_leave() {
    let five = names(5);
    let six = names(6);
    assert_eq!(ideal_fraction(&five, &six), 1.0 / 6.0);
    assert_eq!(ideal_fraction(&six, &five), 1.0 / 6.0);
    assert_eq!(ideal_fraction(&five, &five), 0.0);
    let mut swapped = names(4);
    swapped.push("node-9".into());
    assert_eq!(ideal_fraction(&five, &swapped), 1.0 / 5.0);
    assert_eq!(ideal_fraction(&[], &five), 0.0);
}

#[test]
fn moved_fraction_compares_owners_by_name() {
    let before = Assignment {
        participants: vec!["a".into(), "b".into()],
        owners: vec![0, 1, 0, 1],
    };
    let after = Assignment {
        participants: vec!["a".into(), "b".into(), "c".into()],
        owners: vec![0, 2, 0, 1],
    };
    assert_eq!(moved_fraction(&before, &after), Some(0.25));
}

/// `t mod N` as a baseline: from 5 to 6 nodes it keeps a target only when t mod 30 < 5.
struct Modulo;
impl MovementBaseline for Modulo {
    fn name(&self) -> &'static str {
        "modulo"
    }
    fn owners(&self, participants: &[String], targets: u32) -> Option<Vec<u32>> {
        Some(
            (0..targets)
                .map(|t| modulo(participants, t) as u32)
                .collect(),
        )
    }
}

#[test]
fn a_modulo_baseline_moves_n_over_n_plus_one() {
    let moved = baseline_moved_fraction(&Modulo, &names(5), &names(6), 3_000).unwrap();
    assert!((moved - 5.0 / 6.0).abs() < 1e-12, "{moved}");
}

/// Prometheus hashmod (from cluster::shard) on a join: about N/(N+1) moves, far above ideal.
#[test]
fn hashmod_moves_most_targets_on_a_join() {
    let moved =
        baseline_moved_fraction(&sim::check::Hashmod, &names(9), &names(10), 10_000).unwrap();
    assert!((moved - 0.9).abs() < 0.02, "expected ~9/10, got {moved}");
    let same = baseline_moved_fraction(&sim::check::Hashmod, &names(5), &names(5), 1_000);
    assert_eq!(same, Some(0.0));
}

#[test]
fn redistribution_compares_the_converged_assignments_around_a_change() {
    let mut w = World::new(5, 1_000);
    let mut r = RedistributionChecker::default();
    r.observe(assess(&w.snapshot()).assignment.as_ref());
    r.event(1_000, true, "join node-6");
    w.join("node-6", 1_000);
    r.observe(assess(&w.snapshot()).assignment.as_ref()); // not converged yet
    w.settle();
    r.observe(assess(&w.snapshot()).assignment.as_ref());
    r.event(2_000, false, "loss 0.1");

    let mut out = Vec::new();
    let found = r.finish(&Modulo, Some(1.5), &mut out);
    assert!(out.is_empty(), "{out:?}");
    let join = found[0]
        .as_ref()
        .expect("membership change with both assignments");
    assert_eq!((join.participants_before, join.participants_after), (5, 6));
    assert_eq!(join.ideal_fraction, 1.0 / 6.0);
    let moved = join.moved_fraction.unwrap();
    assert!(
        moved > 0.10 && moved < 0.25,
        "rendezvous moves about 1/6: {moved}"
    );
    assert!(join.hashmod_moved_fraction.unwrap() > 0.8);
    assert!(found[1].is_none(), "not a membership change");

    let mut strict = Vec::new();
    r.finish(&Modulo, Some(1.0), &mut strict);
    assert!(moved <= 1.0 / 6.0 || strict.len() == 1, "{strict:?}");
}

#[test]
fn movement_is_unknown_when_the_cluster_had_not_converged_before_the_change() {
    let mut w = World::new(3, 100);
    let mut r = RedistributionChecker::default();
    w.crash("node-3"); // never settled before the next change
    r.observe(assess(&w.snapshot()).assignment.as_ref());
    r.event(1_000, true, "join node-4");
    w.join("node-4", 100);
    w.settle();
    r.observe(assess(&w.snapshot()).assignment.as_ref());
    let mut out = Vec::new();
    assert_eq!(r.finish(&Modulo, Some(1.1), &mut out), vec![None]);
}
