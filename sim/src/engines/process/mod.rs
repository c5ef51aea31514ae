//! The `process` engine: every node is a real `agent run` process in its own network
//! namespace, on a bridge, in real time; the scenario's faults are applied to the kernel's
//! network and to the processes, and the agents are observed through their HTTP API the way an
//! operator would. It is how the testbed checks that what the simulators predict is what the
//! binary does.
//!
//! - Network ([`net`]): a namespace per node with a veth into a bridge and its own address;
//!   `partition`/`heal` and `loss` are nftables drops in each namespace (node-to-node traffic
//!   only), `latency` is `tc netem` when the kernel has it.
//! - Processes ([`agent`]): `crash` is SIGKILL, `restart` SIGKILL then a new process with the
//!   same name, address and storage, `leave` SIGTERM (the agent's graceful shutdown), `join` a
//!   new process, `targets` rewrites the node's config file and sends SIGHUP. Protocol timings
//!   come from the scenario file (the same config the other engines run, as flags).
//! - Observation ([`poll`]): every `OBSERVATION_INTERVAL_MS` of wall time, every running agent's
//!   `/api/v0/web/peers?members=all` and `/metrics`, concurrently, into the same observation
//!   model, checkers and report as the other engines. Ownership is computed from each view as
//!   the agent computes it (same algorithm, same target keys), and checked against the agent's
//!   own count of the targets it scrapes.
//!
//! Time 0 is when the initial agents are spawned; an event or observation runs at its instant
//! of wall time, late if the machine is slow (the lag is reported). After an event that starts
//! or stops a process the engine waits until it took effect (the new agent answers, the leaving
//! one is terminating, the reloaded one lists its new targets) before the observation of that
//! instant, as the turmoil engine steps once: otherwise a join would look converged at once.
//!
//! Not deterministic (real scheduling, real sockets): report.json carries a `process` section
//! with wall-clock figures. Needs root, iproute2 and nftables; everything it creates is removed
//! at the end, on error, on panic and on Ctrl-C.

mod agent;
mod net;
mod poll;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::time::Instant;

use super::common::{self, LiveNode, OwnershipCache};
use crate::engine::{Engine, EngineError, EngineKind, EngineOutcome};
use crate::observe::{
    Counters, EventRecord, NodeObservation, NodeState, Observation, ObservationSink, Reachability,
    View, WallFigures, OBSERVATION_INTERVAL_MS,
};
use crate::scenario::{Action, Event, Scenario};

pub use agent::{locate_agent, AGENT_ENV};

/// Largest cluster this engine runs (processes on one machine; 2 cores hold ~20 agents well).
pub const NODES_MAX: usize = 24;

/// Without `tc netem`, latencies up to this are not applied (a veth adds microseconds; protocol
/// timings are in seconds); larger ones are refused.
pub const LATENCY_WITHOUT_NETEM_MAX: Duration = Duration::from_millis(10);

/// How long a started agent has to answer its API.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one observation of one agent may take before its previous one is reused.
const POLL_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a leaving agent has to be seen terminating, and a reloaded one its new targets.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a leaving agent may take to exit before it is killed: the agent's own bound
/// (leave timeout or remote_write flush, whichever is longer, plus 2 s) and a margin.
const LEAVE_EXIT_TIMEOUT: Duration = Duration::from_secs(20);
/// Pause between attempts while waiting for an agent.
const RETRY_PAUSE: Duration = Duration::from_millis(25);

/// Real agents in network namespaces, real time.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEngine;

impl Engine for ProcessEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Process
    }

    /// The seed is recorded in the report but decides nothing: agents seed themselves, and
    /// real processes on a real network do not repeat a run anyway.
    fn run(
        &self,
        scenario: &Scenario,
        _seed: u64,
        sink: &mut dyn ObservationSink,
    ) -> Result<EngineOutcome, EngineError> {
        let nodes = scenario.all_nodes();
        if nodes.len() > NODES_MAX {
            return Err(EngineError::Unsupported(format!(
                "{} nodes: the process engine runs at most {NODES_MAX} agents on one machine; use --engine turmoil or fast",
                nodes.len()
            )));
        }
        common::protocol_config(scenario)
            .validate()
            .map_err(|e| EngineError::Unsupported(e.to_string()))?;
        net::preflight().map_err(EngineError::Unsupported)?;
        let agent_bin = locate_agent().map_err(EngineError::Unsupported)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| EngineError::Failed(format!("tokio runtime: {e}")))?;
        rt.block_on(async {
            // Signals first: a Ctrl-C from here on stops the run and cleans up.
            let stop = Stop::install()?;
            let mut run = Run::setup(scenario, agent_bin, stop)?;
            let result = run.go(sink).await;
            let finished = run.finish(matches!(result, Err(EngineError::Failed(_))));
            match (result, finished) {
                (Ok(outcome), Ok(())) => Ok(outcome),
                (Ok(_), Err(e)) => Err(EngineError::Failed(e)),
                (Err(EngineError::Failed(why)), _) => Err(EngineError::Failed(format!(
                    "{why}\n(agent logs kept in {})",
                    run.dir.display()
                ))),
                (Err(e), _) => Err(e),
            }
        })
    }
}

/// SIGINT and SIGTERM, listened to while the engine runs.
struct Stop {
    int: Signal,
    term: Signal,
}

impl Stop {
    fn install() -> Result<Stop, EngineError> {
        let listen = |kind| {
            signal(kind).map_err(|e| EngineError::Failed(format!("cannot listen for signals: {e}")))
        };
        Ok(Stop {
            int: listen(SignalKind::interrupt())?,
            term: listen(SignalKind::terminate())?,
        })
    }

    /// Waits until `until`, or fails with `Interrupted` when a signal comes first.
    async fn until(&mut self, until: Instant) -> Result<(), EngineError> {
        let interrupted = |name: &str| {
            EngineError::Interrupted(format!(
                "{name}: the agents were stopped and their namespaces and bridge removed"
            ))
        };
        tokio::select! {
            biased;
            _ = self.int.recv() => Err(interrupted("SIGINT")),
            _ = self.term.recv() => Err(interrupted("SIGTERM")),
            _ = tokio::time::sleep_until(until) => Ok(()),
        }
    }
}

/// One node across its processes.
struct Proc {
    agent: agent::AgentProc,
    join: Vec<String>,
    /// Its last observation while its current process runs (reused when a poll is late).
    last: Option<NodeObservation>,
    /// Counters of the current process as last read, and of the processes before it.
    current: (u64, u64),
    banked: (u64, u64),
    /// When a leaving process is killed if it has not exited.
    leave_deadline: Option<Instant>,
    /// The last observations' ownership facts, for the check against the agent's own count.
    history: VecDeque<OwnedFacts>,
}

/// What the owned-count check compares, per observation of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OwnedFacts {
    /// Participants fingerprint and count, config targets, own state, process.
    key: (u128, usize, u32, NodeState, u32),
    model: u32,
    agent: Option<u32>,
}

impl Proc {
    fn bank(&mut self) {
        self.banked.0 += self.current.0;
        self.banked.1 += self.current.1;
        self.current = (0, 0);
        self.last = None;
        self.history.clear();
        self.leave_deadline = None;
    }

    fn socket(&self) -> SocketAddr {
        self.agent.addr.parse().expect("an ip:port we built")
    }
}

struct Run<'a> {
    scenario: &'a Scenario,
    agent_bin: PathBuf,
    flags: Vec<String>,
    dir: PathBuf,
    procs: BTreeMap<String, Proc>,
    reachability: Reachability,
    loss: f64,
    /// Nodes whose host lost power (`power_off`): their namespace drops everything, so
    /// nothing answers at their address, not even a refusal, until they restart.
    off: BTreeSet<String>,
    cache: OwnershipCache,
    stop: Stop,
    t0: Instant,
    figures: WallFigures,
    observation_lags: Vec<u64>,
    // Declared last: dropped after the agents (whose `Drop` kills them).
    bed: net::Testbed,
}

impl<'a> Run<'a> {
    fn setup(
        scenario: &'a Scenario,
        agent_bin: PathBuf,
        stop: Stop,
    ) -> Result<Run<'a>, EngineError> {
        let names = scenario.all_nodes();
        let bed = net::Testbed::create(&names).map_err(EngineError::Unsupported)?;
        let latency = latency_plan(scenario, bed.netem).map_err(EngineError::Unsupported)?;
        sweep_stale_dirs();
        let dir = std::env::temp_dir().join(format!("{RUN_DIR_PREFIX}{}", bed.tag));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| EngineError::Failed(format!("cannot create {}: {e}", dir.display())))?;
        let addr = |name: &str| {
            let ip = bed.node(name).expect("every node has an address").ip;
            format!("{ip}:{}", agent::PORT)
        };
        let mut procs = BTreeMap::new();
        for node in &bed.nodes {
            let join = scenario
                .join_peers(&node.name)
                .iter()
                .map(|n| addr(n))
                .collect();
            let a = agent::AgentProc::new(
                &node.name,
                addr(&node.name),
                &node.netns,
                &dir,
                scenario.targets.count,
            );
            procs.insert(
                node.name.clone(),
                Proc {
                    agent: a,
                    join,
                    last: None,
                    current: (0, 0),
                    banked: (0, 0),
                    leave_deadline: None,
                    history: VecDeque::new(),
                },
            );
        }
        let run = Run {
            scenario,
            agent_bin,
            flags: agent::protocol_flags(scenario),
            dir,
            procs,
            reachability: Reachability::Full,
            loss: scenario.network.loss,
            off: BTreeSet::new(),
            cache: OwnershipCache::with_target_key(agent::agent_target_key),
            stop,
            t0: Instant::now(),
            figures: WallFigures {
                latency,
                ..WallFigures::default()
            },
            observation_lags: Vec::new(),
            bed,
        };
        run.bed
            .set_rules(&run.reachability, run.loss, &run.off)
            .map_err(EngineError::Failed)?;
        if run.bed.netem {
            run.bed
                .set_latency(scenario.network.latency)
                .map_err(EngineError::Failed)?;
        }
        Ok(run)
    }

    async fn go(&mut self, sink: &mut dyn ObservationSink) -> Result<EngineOutcome, EngineError> {
        let mut counters = Counters::default();
        self.t0 = Instant::now();
        let initial = self.scenario.initial_nodes();
        for name in &initial {
            self.start(name)?;
        }
        for name in &initial {
            self.wait_answer(name).await?;
        }
        self.figures.startup_ms = self.t0.elapsed().as_millis() as u64;
        let end_ms = self.scenario.duration_ms();
        let mut events = self.scenario.events.iter().peekable();
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
            let due = self.t0 + Duration::from_millis(t_ms);
            self.stop.until(due).await?;
            self.check_exits()?;
            while let Some(e) = events.next_if(|e| e.at.as_millis() as u64 == t_ms) {
                let lag = due.elapsed().as_millis() as u64;
                self.figures.event_lag_max_ms = self.figures.event_lag_max_ms.max(lag);
                let started = Instant::now();
                self.apply(e).await?;
                let settle = started.elapsed().as_millis() as u64;
                self.figures.event_settle_max_ms = self.figures.event_settle_max_ms.max(settle);
                counters.faults.count(&e.action);
                sink.event(&EventRecord::from_scenario(e));
            }
            if t_ms == next_obs_ms {
                let obs = self.observe(t_ms).await;
                self.observation_lags.push(due.elapsed().as_millis() as u64);
                sink.observe(&obs);
                next_obs_ms += OBSERVATION_INTERVAL_MS;
            }
        }
        self.figures.wall_ms = self.t0.elapsed().as_millis() as u64;
        let mut lags = std::mem::take(&mut self.observation_lags);
        lags.sort_unstable();
        self.figures.observation_lag_p50_ms = lags.get(lags.len() / 2).copied().unwrap_or(0);
        self.figures.observation_lag_max_ms = lags.last().copied().unwrap_or(0);
        for p in self.procs.values_mut() {
            p.agent.kill();
            p.bank();
            counters.messages_sent += p.banked.0;
            counters.bytes_sent += p.banked.1;
            self.figures.processes_started += u64::from(p.agent.started);
        }
        counters.faults.dropped_messages = self.bed.dropped_packets();
        Ok(EngineOutcome {
            counters,
            wall: Some(self.figures.clone()),
        })
    }

    /// Stops every agent and removes the network; the run folder (config files, storage, logs)
    /// too unless `keep_logs` (a run the engine failed keeps it, for the agents' logs).
    fn finish(&mut self, keep_logs: bool) -> Result<(), String> {
        for p in self.procs.values_mut() {
            p.agent.kill();
        }
        let removed = self.bed.remove();
        if !keep_logs {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        removed.map_err(|e| format!("the run ended but its network was not fully removed: {e}"))
    }

    fn proc(&mut self, name: &str) -> &mut Proc {
        self.procs.get_mut(name).expect("a validated node name")
    }

    /// Starts `name`'s agent (its config file written first if it has none yet).
    fn start(&mut self, name: &str) -> Result<(), EngineError> {
        let (bin, flags) = (self.agent_bin.clone(), self.flags.clone());
        let p = self.proc(name);
        if p.agent.started == 0 {
            let targets = p.agent.config_targets;
            p.agent.write_config(targets).map_err(EngineError::Failed)?;
        }
        let join = p.join.clone();
        p.agent
            .spawn(&bin, &flags, &join)
            .map_err(EngineError::Failed)
    }

    /// Waits until `name`'s agent answers its API.
    async fn wait_answer(&mut self, name: &str) -> Result<(), EngineError> {
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        loop {
            self.check_exits()?;
            let addr = self.proc(name).socket();
            let error = match poll::snapshot(addr, POLL_TIMEOUT).await {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                let p = self.proc(name);
                return Err(EngineError::Failed(format!(
                    "{name}'s agent did not answer on {} within {} s (last: {error}); its last log lines:\n{}",
                    p.agent.addr,
                    ANSWER_TIMEOUT.as_secs(),
                    p.agent.log_tail(20)
                )));
            }
            self.stop.until(Instant::now() + RETRY_PAUSE).await?;
        }
    }

    /// Waits until `name`'s agent shows what `done` wants (`what`), or has exited; an agent
    /// that does not within `SETTLE_TIMEOUT` did not do what the event asked, and fails the run.
    async fn settle(
        &mut self,
        name: &str,
        what: &str,
        done: impl Fn(&poll::Snapshot) -> bool,
    ) -> Result<(), EngineError> {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        while Instant::now() < deadline {
            self.check_exits()?;
            let p = self.proc(name);
            if !p.agent.running() {
                return Ok(());
            }
            let addr = p.socket();
            if poll::snapshot(addr, POLL_TIMEOUT)
                .await
                .is_ok_and(|s| done(&s))
            {
                return Ok(());
            }
            self.stop.until(Instant::now() + RETRY_PAUSE).await?;
        }
        let p = self.proc(name);
        Err(EngineError::Failed(format!(
            "{name}'s agent did not {what} within {} s; its last log lines:\n{}",
            SETTLE_TIMEOUT.as_secs(),
            p.agent.log_tail(20)
        )))
    }

    /// Notices agents that exited: after a leave (SIGTERM) an agent must exit 0 within its
    /// bound; any other exit, or a leave that overstays, fails the run (with the agent's log).
    fn check_exits(&mut self) -> Result<(), EngineError> {
        let now = Instant::now();
        for (name, p) in self.procs.iter_mut() {
            let failure = if let Some(status) = p.agent.try_exit() {
                let failure = match (p.agent.leaving, status.success()) {
                    (true, true) => None,
                    (true, false) => Some(format!("{name}'s agent exited with {status} after SIGTERM (a graceful leave exits 0)")),
                    (false, _) => Some(format!("{name}'s agent exited unexpectedly ({status})")),
                };
                p.bank();
                failure
            } else if p.leave_deadline.is_some_and(|d| now >= d) {
                p.agent.kill();
                p.bank();
                Some(format!(
                    "{name}'s agent was still running {} s after SIGTERM (a graceful leave is bounded)",
                    LEAVE_EXIT_TIMEOUT.as_secs()
                ))
            } else {
                None
            };
            if let Some(why) = failure {
                return Err(EngineError::Failed(format!(
                    "{why}; its last log lines:\n{}",
                    p.agent.log_tail(20)
                )));
            }
        }
        Ok(())
    }

    async fn apply(&mut self, e: &Event) -> Result<(), EngineError> {
        match &e.action {
            Action::Partition(_) | Action::Heal => {
                self.reachability = self
                    .reachability
                    .after(&e.action)
                    .expect("partition or heal");
                self.bed
                    .set_rules(&self.reachability, self.loss, &self.off)
                    .map_err(EngineError::Failed)?;
            }
            Action::Loss(p) => {
                self.loss = *p;
                self.bed
                    .set_rules(&self.reachability, self.loss, &self.off)
                    .map_err(EngineError::Failed)?;
            }
            Action::Latency(r) => {
                // Without netem, `latency_plan` accepted only latencies small enough to skip.
                if self.bed.netem {
                    self.bed.set_latency(*r).map_err(EngineError::Failed)?;
                }
            }
            Action::Crash(name) => {
                let p = self.proc(name);
                p.agent.kill();
                p.bank();
            }
            Action::PowerOff(name) => {
                let p = self.proc(name);
                p.agent.kill();
                p.bank();
                self.off.insert(name.clone());
                self.bed
                    .set_rules(&self.reachability, self.loss, &self.off)
                    .map_err(EngineError::Failed)?;
            }
            Action::Stall { node, duration } => {
                // A starved process: stopped, continued `duration` later.
                let p = self.proc(node);
                if let Some(pid) = p.agent.pid() {
                    p.agent.signal(libc::SIGSTOP);
                    let d = *duration;
                    tokio::spawn(async move {
                        tokio::time::sleep(d).await;
                        // SAFETY: kill(2) on our own child (not reaped while it is stopped:
                        // the engine only reaps what it killed or what exited).
                        unsafe { libc::kill(pid as i32, libc::SIGCONT) };
                    });
                }
            }
            Action::Restart(name) => {
                let p = self.proc(name);
                p.agent.kill();
                p.bank();
                if self.off.remove(name) {
                    self.bed
                        .set_rules(&self.reachability, self.loss, &self.off)
                        .map_err(EngineError::Failed)?;
                }
                self.start(name)?;
                self.wait_answer(name).await?;
            }
            Action::Join(name) => {
                self.start(name)?;
                self.wait_answer(name).await?;
            }
            Action::Leave(name) => {
                let p = self.proc(name);
                if p.agent.running() {
                    p.agent.signal(libc::SIGTERM);
                    p.agent.leaving = true;
                    p.leave_deadline = Some(Instant::now() + LEAVE_EXIT_TIMEOUT);
                    self.settle(name, "turn terminating after SIGTERM", |s| {
                        s.state == NodeState::Terminating
                    })
                    .await?;
                }
            }
            Action::Targets { nodes, count } => {
                for name in nodes {
                    let p = self.proc(name);
                    p.agent.write_config(*count).map_err(EngineError::Failed)?;
                    if p.agent.running() {
                        p.agent.signal(libc::SIGHUP);
                    }
                }
                for name in nodes {
                    let count = *count;
                    let what = format!(
                        "list {count} targets after its config was rewritten and SIGHUP sent"
                    );
                    self.settle(name, &what, move |s| s.targets == Some(count))
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Every node now: running agents polled concurrently.
    async fn observe(&mut self, at_ms: u64) -> Observation {
        let mut polls = tokio::task::JoinSet::new();
        for (name, p) in &self.procs {
            if p.agent.running() {
                let (name, addr) = (name.clone(), p.socket());
                polls.spawn(async move { (name, poll::snapshot(addr, POLL_TIMEOUT).await) });
            }
        }
        let mut answers = BTreeMap::new();
        while let Some(done) = polls.join_next().await {
            if let Ok((name, answer)) = done {
                answers.insert(name, answer);
            }
        }
        let mut nodes = Vec::with_capacity(self.procs.len());
        for (name, p) in self.procs.iter_mut() {
            let answer = answers.remove(name);
            let obs = match answer {
                _ if !p.agent.running() => {
                    p.last = None;
                    NodeObservation::down(name.clone(), p.agent.restarts, p.agent.config_targets)
                }
                Some(Ok(snap)) => {
                    let obs = live_observation(name, p, snap, &mut self.cache, &mut self.figures);
                    p.last = Some(obs.clone());
                    obs
                }
                _ => match &p.last {
                    Some(last) => {
                        self.figures.stale_node_observations += 1;
                        p.history.clear();
                        last.clone()
                    }
                    None => NodeObservation::down(
                        name.clone(),
                        p.agent.restarts,
                        p.agent.config_targets,
                    ),
                },
            };
            nodes.push(obs);
        }
        Observation {
            at_ms,
            nodes,
            reachability: self.reachability.clone(),
        }
    }
}

/// A running agent's answer as an observation; also checks, once its view has held still
/// around an observation, that the agent scrapes as many targets as its view gives it.
fn live_observation(
    name: &str,
    p: &mut Proc,
    snap: poll::Snapshot,
    cache: &mut OwnershipCache,
    figures: &mut WallFigures,
) -> NodeObservation {
    p.current = (snap.messages_sent, snap.bytes_sent);
    // An unchanged member list is the same shared view (checkers skip it).
    let view = match &p.last {
        Some(last) if *last.members == snap.members[..] => last.members.clone(),
        _ => View::from(snap.members),
    };
    let config_targets = snap.targets.unwrap_or(p.agent.config_targets);
    let obs = LiveNode {
        name,
        restarts: p.agent.restarts,
        state: snap.state,
        incarnation: snap.incarnation,
        lamport: snap.lamport,
        view,
        config_targets,
    }
    .observe(cache);
    let facts = OwnedFacts {
        key: (
            obs.members.participants_fingerprint(),
            obs.members.participant_count(),
            config_targets,
            obs.state,
            obs.restarts,
        ),
        model: obs.owned_targets.len() as u32,
        agent: snap.owned,
    };
    p.history.push_back(facts);
    if p.history.len() > 3 {
        p.history.pop_front();
    }
    // The middle of three observations with the same view: the agent's count, read just after
    // its member list, cannot belong to another view.
    if p.history.len() == 3 && p.history.iter().all(|f| f.key == facts.key) {
        if let Some(agent) = p.history[1].agent {
            figures.owned_checks += 1;
            if agent != p.history[1].model {
                figures.owned_mismatches += 1;
            }
        }
    }
    obs
}

/// Run folders are `<temp>/sim-process-<tag>`.
const RUN_DIR_PREFIX: &str = "sim-process-";

/// Removes the run folders of runs whose process is gone (killed before cleaning up).
fn sweep_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let stale = name
            .to_str()
            .and_then(|n| n.strip_prefix(RUN_DIR_PREFIX))
            .and_then(net::tag_pid)
            .is_some_and(|pid| !net::pid_alive(pid));
        if stale && entry.path().is_dir() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// How the scenario's latencies will be applied: `tc netem`, or not at all when the kernel has
/// no netem and they are small; an error when they are not.
fn latency_plan(scenario: &Scenario, netem: bool) -> Result<String, String> {
    let largest = scenario
        .events
        .iter()
        .filter_map(|e| match &e.action {
            Action::Latency(r) => Some(r.max),
            _ => None,
        })
        .chain([scenario.network.latency.max])
        .max()
        .unwrap_or_default();
    if netem {
        return Ok("tc netem".to_string());
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    if largest <= LATENCY_WITHOUT_NETEM_MAX {
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            eprintln!(
                "sim: process engine: this kernel has no tc netem (CONFIG_NET_SCH_NETEM): latencies up to {} ms are not applied (report.json process.latency)",
                ms(LATENCY_WITHOUT_NETEM_MAX)
            )
        });
        return Ok(format!(
            "not applied: no tc netem in this kernel; the scenario asks at most {} ms, under the {} ms run without it",
            ms(largest),
            ms(LATENCY_WITHOUT_NETEM_MAX)
        ));
    }
    Err(format!(
        "{}: latency up to {} ms needs tc netem, which this kernel lacks (CONFIG_NET_SCH_NETEM); the process engine runs without it only up to {} ms",
        scenario.file,
        ms(largest),
        ms(LATENCY_WITHOUT_NETEM_MAX)
    ))
}
