//! The `turmoil` engine: every node is a turmoil host running the agent's own driver and HTTP/2
//! transport ([`runtime`]) over turmoil's simulated TCP and clock.
//!
//! Nothing here is a second protocol path: hosts call `runtime::start(TurmoilNet, ..)` and
//! `runtime::server::serve`, exactly as the agent does with `TokioNet`. The engine only
//! schedules faults (turmoil partitions, crashes, bounces, latency; request loss through the
//! runtime's fault hook) and reads each node's published view at the observation interval.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster::NodeState;
use runtime::{server, static_resolver, ClusterView, Faults, Network, NodeOptions, TurmoilNet};
use tokio::sync::mpsc;

use super::common::{self, LiveNode, OwnershipCache};
use crate::engine::{Engine, EngineError, EngineKind, EngineOutcome};
use crate::observe::{
    Counters, EventRecord, NodeObservation, Observation, ObservationSink, Reachability, View,
    OBSERVATION_INTERVAL_MS,
};
use crate::scenario::{Action, Scenario};

/// Real driver + HTTP/2 on turmoil. Fidelity; up to ~20 nodes at useful speed.
#[derive(Debug, Clone, Copy)]
pub struct TurmoilEngine {
    /// turmoil's step. Latencies are rounded up to it; 10 ms keeps 10 nodes well above 100x.
    pub tick: Duration,
}

impl Default for TurmoilEngine {
    fn default() -> Self {
        TurmoilEngine {
            tick: Duration::from_millis(10),
        }
    }
}

/// Largest cluster this engine accepts; beyond it use the fast engine.
pub const NODES_MAX: usize = 64;

enum Control {
    Leave,
    SetLoss(f64),
    Stall(Duration),
}

#[derive(Default)]
struct HostState {
    restarts: u32,
    /// The node's process was killed while its host stays up: the host runs nothing, so its
    /// port refuses connections (turmoil delivers nothing to a crashed host, which would look
    /// like a host that lost power).
    killed: bool,
    view: Option<Arc<ClusterView>>,
    control: Option<mpsc::UnboundedSender<Control>>,
    faults: Option<Arc<Faults>>,
    /// Counters of earlier processes of this node, added when a process ends.
    banked_messages: u64,
    banked_bytes: u64,
    banked_dropped: u64,
}

impl HostState {
    /// Fold the current process's counters into the banked totals (the process is ending).
    fn bank(&mut self) {
        if let Some(v) = self.view.take() {
            self.banked_messages += v.stats.packets_tx + v.stats.push_pulls_tx;
            self.banked_bytes += v.stats.bytes_tx;
        }
        if let Some(f) = self.faults.take() {
            self.banked_dropped += f.dropped.load(std::sync::atomic::Ordering::Relaxed);
        }
        self.control = None;
    }
}

type Shared = Arc<Mutex<BTreeMap<String, HostState>>>;

struct Ctx {
    config: cluster::Config,
    rejoin: Option<Duration>,
    seed: u64,
    loss: Arc<Mutex<f64>>,
    shared: Shared,
}

fn add_host(sim: &mut turmoil::Sim<'_>, ctx: &Ctx, scenario: &Scenario, name: &str) {
    let name = name.to_string();
    let seeds: Vec<String> = scenario
        .join_peers(&name)
        .iter()
        .map(|n| common::addr_of(n))
        .collect();
    let config = ctx.config.clone();
    let rejoin = ctx.rejoin;
    let seed = ctx.seed;
    let loss = ctx.loss.clone();
    let shared = ctx.shared.clone();
    shared
        .lock()
        .expect("shared")
        .entry(name.clone())
        .or_default();
    let host = name.clone();
    sim.host(host.as_str(), move || {
        let (name, seeds, config, loss, shared) =
            (name.clone(), seeds.clone(), config.clone(), loss.clone(), shared.clone());
        async move {
            if shared.lock().expect("shared")[&name].killed {
                std::future::pending::<()>().await;
            }
            let restarts = shared.lock().expect("shared")[&name].restarts;
            let listener = TurmoilNet
                .bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), common::PORT))
                .await?;
            let mut opts = NodeOptions::new(&name, &common::addr_of(&name), config);
            opts.seed = common::node_seed(seed, &name, restarts);
            opts.join = static_resolver(seeds);
            opts.rejoin_interval = rejoin;
            let (handle, _task) = runtime::start(TurmoilNet, opts)?;
            handle.faults.set_loss(*loss.lock().expect("loss"));
            tokio::spawn(server::serve(
                TurmoilNet,
                listener,
                server::transport_router(handle.clone()),
            ));
            handle.set_state(NodeState::Participant).await?;
            let (tx, mut rx) = mpsc::unbounded_channel();
            {
                let mut s = shared.lock().expect("shared");
                let h = s.get_mut(&name).expect("registered");
                h.control = Some(tx);
                h.faults = Some(handle.faults.clone());
            }
            let mut watch = handle.watch();
            loop {
                {
                    let view = watch.borrow_and_update().clone();
                    shared.lock().expect("shared").get_mut(&name).expect("registered").view =
                        Some(view);
                }
                tokio::select! {
                    biased;
                    c = rx.recv() => match c {
                        Some(Control::Leave) => {
                            // Keep publishing while leaving: the node is terminating (and owns
                            // nothing) from the moment the leave starts, not when it ends.
                            let leave = handle.leave(common::LEAVE_TIMEOUT);
                            tokio::pin!(leave);
                            loop {
                                tokio::select! {
                                    biased;
                                    _ = &mut leave => break,
                                    r = watch.changed() => {
                                        if r.is_err() {
                                            break;
                                        }
                                        let view = watch.borrow_and_update().clone();
                                        shared.lock().expect("shared").get_mut(&name).expect("registered").view = Some(view);
                                    }
                                }
                            }
                            let view = handle.view();
                            shared.lock().expect("shared").get_mut(&name).expect("registered").view = Some(view);
                            return Ok(());
                        }
                        Some(Control::SetLoss(p)) => handle.faults.set_loss(p),
                        Some(Control::Stall(d)) => handle.stall(d).await,
                        None => return Ok(()),
                    },
                    r = watch.changed() => if r.is_err() { return Ok(()) },
                }
            }
        }
    });
}

/// Cut every link between nodes on different sides, and every link of a powered-off host;
/// repair the others.
fn apply_partition(
    sim: &mut turmoil::Sim<'_>,
    names: &[String],
    r: &Reachability,
    off: &std::collections::BTreeSet<String>,
) {
    for (i, a) in names.iter().enumerate() {
        for b in &names[i + 1..] {
            if r.can_reach(a, b) && !off.contains(a) && !off.contains(b) {
                sim.repair(a.as_str(), b.as_str());
            } else {
                sim.partition(a.as_str(), b.as_str());
            }
        }
    }
}

impl Engine for TurmoilEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Turmoil
    }

    fn run(
        &self,
        scenario: &Scenario,
        seed: u64,
        sink: &mut dyn ObservationSink,
    ) -> Result<EngineOutcome, EngineError> {
        let all = scenario.all_nodes();
        if all.len() > NODES_MAX {
            return Err(EngineError::Unsupported(format!(
                "{} nodes: the turmoil engine runs at most {NODES_MAX}; use --engine fast",
                all.len()
            )));
        }
        let ctx = Ctx {
            config: common::protocol_config(scenario),
            rejoin: common::rejoin_interval(scenario),
            seed,
            loss: Arc::new(Mutex::new(scenario.network.loss)),
            shared: Arc::new(Mutex::new(BTreeMap::new())),
        };
        ctx.config
            .validate()
            .map_err(|e| EngineError::Unsupported(e.to_string()))?;
        let lat = &scenario.network.latency;
        let mut sim = turmoil::Builder::new()
            .simulation_duration(scenario.duration + Duration::from_secs(3600))
            .tick_duration(self.tick)
            .min_message_latency(lat.min)
            .max_message_latency(lat.max.max(lat.min))
            .rng_seed(seed)
            .build();
        let mut started: Vec<String> = Vec::new();
        for name in scenario.initial_nodes() {
            add_host(&mut sim, &ctx, scenario, &name);
            started.push(name);
        }
        let mut reachability = Reachability::Full;
        // Hosts that lost power: crashed, and every link of theirs cut (so nothing answers,
        // not even a refusal) until they restart.
        let mut powered_off = std::collections::BTreeSet::new();
        let mut counters = Counters::default();
        let mut cache = OwnershipCache::default();
        let mut views: BTreeMap<String, (Arc<ClusterView>, View)> = BTreeMap::new();
        let mut config_targets: BTreeMap<String, u32> = BTreeMap::new();
        let end_ms = scenario.duration_ms();
        let mut events = scenario.events.iter().peekable();
        let mut next_obs_ms = 0u64;
        loop {
            let next_event_ms = events.peek().map(|e| e.at.as_millis() as u64);
            let t_ms = match next_event_ms {
                Some(e) if e <= next_obs_ms => e,
                _ => next_obs_ms,
            };
            if t_ms > end_ms {
                break;
            }
            while (sim.elapsed().as_millis() as u64) < t_ms {
                sim.step()
                    .map_err(|e| EngineError::Failed(format!("a host failed: {e}")))?;
            }
            // Hosts started (t=0, join, restart) or told to leave at t only act when turmoil
            // next polls them: one step lets the event take effect before the observation at
            // t, as it does at once in the fast engine. Without it the observation at t shows
            // the world before the event, and a join or leave looks converged after 0 ms.
            let mut settle = t_ms == 0;
            while let Some(e) = events.next_if(|e| e.at.as_millis() as u64 == t_ms) {
                settle |= matches!(
                    e.action,
                    Action::Join(_) | Action::Restart(_) | Action::Leave(_)
                );
                match &e.action {
                    Action::Partition(_) | Action::Heal => {
                        reachability = reachability.after(&e.action).expect("partition or heal");
                        apply_partition(&mut sim, &started, &reachability, &powered_off);
                    }
                    Action::Crash(n) => {
                        if let Some(h) = ctx.shared.lock().expect("shared").get_mut(n) {
                            h.bank();
                            h.killed = true;
                        }
                        // Its tasks end (their connections close under their peers) and the
                        // host comes back with no listener.
                        sim.bounce(n.as_str());
                    }
                    Action::PowerOff(n) => {
                        sim.crash(n.as_str());
                        if let Some(h) = ctx.shared.lock().expect("shared").get_mut(n) {
                            h.bank();
                        }
                        powered_off.insert(n.clone());
                        apply_partition(&mut sim, &started, &reachability, &powered_off);
                    }
                    Action::Stall { node, duration } => {
                        let s = ctx.shared.lock().expect("shared");
                        if let Some(tx) = s.get(node).and_then(|h| h.control.as_ref()) {
                            let _ = tx.send(Control::Stall(*duration));
                        }
                    }
                    Action::Restart(n) => {
                        if powered_off.remove(n) {
                            apply_partition(&mut sim, &started, &reachability, &powered_off);
                        }
                        {
                            let mut s = ctx.shared.lock().expect("shared");
                            let h = s.get_mut(n).expect("validated node");
                            h.bank();
                            h.restarts += 1;
                            h.killed = false;
                        }
                        sim.bounce(n.as_str());
                    }
                    Action::Leave(n) => {
                        let s = ctx.shared.lock().expect("shared");
                        if let Some(tx) = s.get(n).and_then(|h| h.control.as_ref()) {
                            let _ = tx.send(Control::Leave);
                        }
                    }
                    Action::Join(n) => {
                        add_host(&mut sim, &ctx, scenario, n);
                        started.push(n.clone());
                        apply_partition(&mut sim, &started, &reachability, &powered_off);
                    }
                    Action::Targets { nodes, count } => {
                        for n in nodes {
                            config_targets.insert(n.clone(), *count);
                        }
                    }
                    Action::Loss(p) => {
                        *ctx.loss.lock().expect("loss") = *p;
                        let s = ctx.shared.lock().expect("shared");
                        for h in s.values() {
                            if let Some(tx) = &h.control {
                                let _ = tx.send(Control::SetLoss(*p));
                            }
                        }
                    }
                    Action::Latency(r) => sim.set_max_message_latency(r.max),
                }
                counters.faults.count(&e.action);
                sink.event(&EventRecord::from_scenario(e));
            }
            if settle {
                sim.step()
                    .map_err(|e| EngineError::Failed(format!("a host failed: {e}")))?;
            }
            if t_ms == next_obs_ms {
                let mut nodes = Vec::with_capacity(started.len());
                let mut sorted = started.clone();
                sorted.sort();
                for name in &sorted {
                    let targets = config_targets
                        .get(name)
                        .copied()
                        .unwrap_or(scenario.targets.count);
                    let running = sim.is_host_running(name.as_str());
                    let s = ctx.shared.lock().expect("shared");
                    let h = &s[name];
                    match (&h.view, running) {
                        (Some(view), true) if !view.leaving || h.control.is_some() => {
                            let me = view.members.iter().find(|m| m.is_self);
                            // A view the node has not republished is the same view.
                            let members = match views.get(name) {
                                Some((published, v)) if Arc::ptr_eq(published, view) => v.clone(),
                                _ => {
                                    let v = common::view_of(&view.members);
                                    views.insert(name.clone(), (view.clone(), v.clone()));
                                    v
                                }
                            };
                            let live = LiveNode {
                                name,
                                restarts: h.restarts,
                                state: view.state,
                                incarnation: me.map_or(0, |m| m.incarnation),
                                lamport: view.lamport,
                                view: members,
                                config_targets: targets,
                            };
                            nodes.push(live.observe(&mut cache));
                        }
                        _ => nodes.push(NodeObservation::down(name.clone(), h.restarts, targets)),
                    }
                }
                sink.observe(&Observation {
                    at_ms: t_ms,
                    nodes,
                    reachability: reachability.clone(),
                });
                next_obs_ms += OBSERVATION_INTERVAL_MS;
            }
        }
        let mut s = ctx.shared.lock().expect("shared");
        for h in s.values_mut() {
            h.bank();
            counters.messages_sent += h.banked_messages;
            counters.bytes_sent += h.banked_bytes;
            counters.faults.dropped_messages += h.banked_dropped;
        }
        Ok(EngineOutcome {
            counters,
            wall: None,
        })
    }
}
