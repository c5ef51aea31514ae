//! The async driver: one task owns a [`cluster::Node`] and runs it against real (or turmoil)
//! time and the HTTP/2 transport.
//!
//! The task is the only owner of the node, so the core needs no locks. HTTP handlers and the
//! application talk to it through a bounded command queue ([`ClusterHandle`]); it publishes a
//! [`ClusterView`] on a watch channel and events on a broadcast channel. It also runs the
//! periodic rejoin that repairs split brains after parallel starts.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cluster::{
    Config, ConfigError, Event, Instant, MemberView, Node, NodeState, Status, TransmitKind,
    Unreachable,
};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::net::Network;
use crate::transport::{Faults, Peers, TransportOptions, TransportStats};

/// Commands handled in one turn of the driver loop before its timers run; bounded so a flood
/// of packets cannot starve the timers.
const COMMANDS_PER_TURN_MAX: usize = 1024;

/// Resolves the join addresses again at each (re)join: DNS names may point elsewhere by now.
pub type Resolver =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Vec<String>> + Send>> + Send + Sync>;

/// A resolver that always returns the same addresses.
pub fn static_resolver(addrs: Vec<String>) -> Resolver {
    Arc::new(move || {
        let a = addrs.clone();
        Box::pin(async move { a })
    })
}

/// Everything needed to run one node.
#[derive(Clone)]
pub struct NodeOptions {
    pub name: String,
    /// Address peers use to reach this node ("host:port").
    pub advertise_addr: String,
    pub config: Config,
    pub seed: u64,
    /// Join addresses, resolved at each (re)join.
    pub join: Resolver,
    /// Rejoin every this long (Alloy `--cluster.rejoin-interval`, 60 s); `None` disables.
    /// Copied into `config.rejoin_interval`; the core schedules joins, the driver re-resolves
    /// the join addresses at the same interval.
    pub rejoin_interval: Option<Duration>,
    pub transport: TransportOptions,
    /// Commands queued from HTTP handlers and the application; more get 503.
    pub command_queue_len: usize,
}

impl NodeOptions {
    pub fn new(name: &str, advertise_addr: &str, config: Config) -> Self {
        NodeOptions {
            name: name.to_string(),
            advertise_addr: advertise_addr.to_string(),
            config,
            seed: 0,
            join: static_resolver(Vec::new()),
            rejoin_interval: Some(Duration::from_secs(60)),
            transport: TransportOptions::default(),
            command_queue_len: 4096,
        }
    }
}

/// How the node's last join went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinStatus {
    /// No join addresses: this node started the cluster.
    Seed,
    Joining,
    Joined {
        via: String,
    },
    /// Nothing reachable: running alone, retrying at the rejoin interval.
    Alone {
        errors: Vec<(String, String)>,
    },
    /// Refused by the cluster (name conflict): fatal.
    Rejected {
        by: String,
        reason: String,
    },
}

/// A snapshot of what the node knows, published after every change.
#[derive(Debug, Clone)]
pub struct ClusterView {
    pub name: String,
    pub addr: String,
    pub state: NodeState,
    /// Every member, self and tombstones included, sorted by name.
    pub members: Vec<MemberView>,
    pub lamport: u64,
    pub health_score: u32,
    pub stats: cluster::Stats,
    pub join: JoinStatus,
    pub view_version: u64,
    pub leaving: bool,
}

impl ClusterView {
    /// Alive or suspect members (self included) with their node state: the sharding input.
    pub fn live(&self) -> Vec<(String, NodeState)> {
        self.members
            .iter()
            .filter(|m| matches!(m.status, Status::Alive | Status::Suspect))
            .map(|m| (m.name.clone(), m.state))
            .collect()
    }

    /// Live members in the participant state.
    pub fn participants(&self) -> Vec<String> {
        self.live()
            .into_iter()
            .filter(|(_, s)| *s == NodeState::Participant)
            .map(|(n, _)| n)
            .collect()
    }
}

/// Where the HTTP handler waits for the node's answer to a packet, to send it back in the
/// response instead of as a request of its own (see [`crate::server`]).
pub(crate) type Reply = oneshot::Sender<Bytes>;

pub(crate) enum Cmd {
    /// A packet from a peer, and where to put the node's answer to its sender, if the sender
    /// takes answers in the response.
    Packet(Bytes, Option<Reply>),
    PushPull(Bytes, oneshot::Sender<Result<Vec<u8>, String>>),
    PushPullDone {
        to: String,
        result: Result<Bytes, crate::transport::SendError>,
    },
    /// The transport's evidence about a peer's address.
    Unreachable {
        addr: String,
        why: Unreachable,
    },
    /// Stop handling anything for this long (a starved event loop; simulations only).
    Stall(Duration),
    SetState(NodeState, oneshot::Sender<Result<(), String>>),
    Join(Vec<String>),
    SetSeeds(Vec<String>),
    Leave(Duration, oneshot::Sender<()>),
}

/// Hands a packet from a peer to the node, counted as received; false (counted as failed)
/// when the node's queue is full. Every packet comes this way: in a request (the server) or
/// in the response to one of ours (the transport).
pub(crate) fn enqueue_packet(
    cmds: &mpsc::Sender<Cmd>,
    stats: &TransportStats,
    bytes: Bytes,
    reply: Option<Reply>,
) -> bool {
    let len = bytes.len() as u64;
    if cmds.try_send(Cmd::Packet(bytes, reply)).is_err() {
        stats.rx_packets_failed.fetch_add(1, Ordering::Relaxed);
        return false;
    }
    stats.rx_queue_len.fetch_add(1, Ordering::Relaxed);
    stats.rx_packets.fetch_add(1, Ordering::Relaxed);
    stats.rx_bytes.fetch_add(len, Ordering::Relaxed);
    true
}

/// The application's and the HTTP server's handle on a running node. Cheap to clone.
#[derive(Clone)]
pub struct ClusterHandle {
    pub(crate) cmds: mpsc::Sender<Cmd>,
    view: watch::Receiver<Arc<ClusterView>>,
    events: broadcast::Sender<Event>,
    pub stats: Arc<TransportStats>,
    pub faults: Arc<Faults>,
    pub(crate) packet_bytes_max: usize,
    pub(crate) push_pull_bytes_max: usize,
    pub(crate) push_pull_timeout: Duration,
}

impl ClusterHandle {
    /// The latest published view.
    pub fn view(&self) -> Arc<ClusterView> {
        self.view.borrow().clone()
    }

    /// A receiver that wakes on every new view.
    pub fn watch(&self) -> watch::Receiver<Arc<ClusterView>> {
        self.view.clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Move the node to `state` (viewer -> participant -> terminating).
    pub async fn set_state(&self, state: NodeState) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(Cmd::SetState(state, tx))
            .await
            .map_err(|_| "node stopped".to_string())?;
        rx.await.map_err(|_| "node stopped".to_string())?
    }

    /// Join these addresses now (in addition to the periodic rejoin).
    pub async fn join(&self, addrs: Vec<String>) {
        let _ = self.cmds.send(Cmd::Join(addrs)).await;
    }

    /// Starve the node's event loop for `d`: it handles no message and no timer meanwhile (what
    /// arrives waits in its queue), as a CPU-starved process does. For simulations.
    #[doc(hidden)]
    pub async fn stall(&self, d: Duration) {
        let _ = self.cmds.send(Cmd::Stall(d)).await;
    }

    /// Become terminating, announce `left`, and wait (at most `timeout`) until that news has
    /// been gossiped out. The driver task ends afterwards.
    pub async fn leave(&self, timeout: Duration) {
        let _ = self.set_state(NodeState::Terminating).await;
        let (tx, rx) = oneshot::channel();
        if self.cmds.send(Cmd::Leave(timeout, tx)).await.is_ok() {
            let _ = tokio::time::timeout(timeout + Duration::from_secs(1), rx).await;
        }
    }
}

/// Start a node's driver task. The caller serves HTTP (see [`crate::server`]) with the handle.
pub fn start<N: Network>(
    net: N,
    opts: NodeOptions,
) -> Result<(ClusterHandle, tokio::task::JoinHandle<()>), ConfigError> {
    let epoch = tokio::time::Instant::now();
    let mut opts = opts;
    opts.config.rejoin_interval = opts.rejoin_interval;
    let node = Node::new(
        opts.config.clone(),
        &opts.name,
        &opts.advertise_addr,
        opts.seed,
        Instant::ZERO,
    )?;
    let stats = Arc::new(TransportStats::default());
    let faults = Arc::new(Faults::new(opts.seed ^ 0xfa17));
    let (cmd_tx, cmd_rx) = mpsc::channel(opts.command_queue_len);
    // Evidence about peers goes to the node through its command queue; when the queue is
    // full it is dropped (the probe cycle still covers every member).
    let evidence_tx = cmd_tx.clone();
    let report: crate::transport::Reporter = Box::new(move |addr: &str, why: Unreachable| {
        let _ = evidence_tx.try_send(Cmd::Unreachable {
            addr: addr.to_string(),
            why,
        });
    });
    // Answers that came back in the response to one of our requests are packets like any
    // other; when the queue is full they are dropped (and counted), as the server drops.
    let deliver_tx = cmd_tx.clone();
    let deliver_stats = stats.clone();
    let deliver: crate::transport::Deliver = Box::new(move |bytes: Bytes| {
        if enqueue_packet(&deliver_tx, &deliver_stats, bytes, None) {
            deliver_stats.rx_answers.fetch_add(1, Ordering::Relaxed);
        }
    });
    let peers = Peers::new(
        net,
        opts.transport.clone(),
        stats.clone(),
        faults.clone(),
        report,
        deliver,
        opts.config.packet_bytes_max,
    );
    let (events_tx, _) = broadcast::channel(256);
    let view = Arc::new(snapshot(&node, JoinStatus::Seed));
    let (view_tx, view_rx) = watch::channel(view);
    let handle = ClusterHandle {
        cmds: cmd_tx.clone(),
        view: view_rx,
        events: events_tx.clone(),
        stats,
        faults,
        packet_bytes_max: opts.config.packet_bytes_max,
        push_pull_bytes_max: opts.config.push_pull_bytes_max,
        push_pull_timeout: opts.transport.push_pull_timeout,
    };
    let driver = Driver {
        node,
        epoch,
        peers,
        cmd_tx,
        cmd_rx,
        view_tx,
        events_tx,
        join_status: JoinStatus::Seed,
        opts,
        published_version: u64::MAX,
        leave: None,
    };
    let task = tokio::spawn(driver.run());
    Ok((handle, task))
}

fn snapshot(node: &Node, join: JoinStatus) -> ClusterView {
    ClusterView {
        name: node.name().to_string(),
        addr: node.addr().to_string(),
        state: node.state(),
        members: node.members(),
        lamport: node.lamport_time(),
        health_score: node.health_score(),
        stats: node.stats().clone(),
        join,
        view_version: node.view_version(),
        leaving: node.is_leaving(),
    }
}

struct Driver<N: Network> {
    node: Node,
    epoch: tokio::time::Instant,
    peers: Arc<Peers<N>>,
    cmd_tx: mpsc::Sender<Cmd>,
    cmd_rx: mpsc::Receiver<Cmd>,
    view_tx: watch::Sender<Arc<ClusterView>>,
    events_tx: broadcast::Sender<Event>,
    join_status: JoinStatus,
    opts: NodeOptions,
    published_version: u64,
    leave: Option<(tokio::time::Instant, oneshot::Sender<()>)>,
}

impl<N: Network> Driver<N> {
    fn now(&self) -> Instant {
        Instant::from_elapsed(self.epoch.elapsed())
    }

    fn to_tokio(&self, t: Instant) -> tokio::time::Instant {
        self.epoch + t.elapsed_since_epoch()
    }

    async fn run(mut self) {
        // Resolve and join at once; the core rejoins on its own schedule, and the addresses are
        // resolved again at the rejoin interval (DNS answers change as replicas come and go).
        self.spawn_resolve(true);
        let mut next_rejoin = self
            .opts
            .rejoin_interval
            .map(|d| tokio::time::Instant::now() + d / 2);
        let mut next_publish = tokio::time::Instant::now();
        loop {
            self.flush();
            let now_t = tokio::time::Instant::now();
            if now_t >= next_publish || self.node.view_version() != self.published_version {
                self.publish();
                next_publish = now_t + Duration::from_secs(1);
            }
            if let Some((deadline, _)) = &self.leave {
                if self.node.broadcasts_pending() == 0 || now_t >= *deadline {
                    if let Some((_, done)) = self.leave.take() {
                        self.publish();
                        let _ = done.send(());
                    }
                    return;
                }
            }
            let mut wake = next_publish;
            if let Some(t) = self.node.poll_timeout() {
                wake = wake.min(self.to_tokio(t));
            }
            if let Some(t) = next_rejoin {
                wake = wake.min(t);
            }
            tokio::select! {
                biased;
                cmd = self.cmd_rx.recv() => match cmd {
                    Some(Cmd::Stall(d)) => tokio::time::sleep(d).await,
                    Some(cmd) => self.command(cmd),
                    None => return,
                },
                _ = tokio::time::sleep_until(wake) => {}
            }
            // Whatever else has arrived is handled before the timers: after a stall, an ack
            // waiting in the queue must count before its probe is judged failed.
            for _ in 0..COMMANDS_PER_TURN_MAX {
                match self.cmd_rx.try_recv() {
                    Ok(Cmd::Stall(d)) => tokio::time::sleep(d).await,
                    Ok(cmd) => self.command(cmd),
                    Err(_) => break,
                }
            }
            let now = self.now();
            if self.node.poll_timeout().is_some_and(|t| t <= now) {
                self.node.handle_timeout(now);
            }
            if let Some(t) = next_rejoin {
                if tokio::time::Instant::now() >= t && self.leave.is_none() {
                    self.spawn_resolve(false);
                    next_rejoin = self.opts.rejoin_interval.map(|d| t + d);
                }
            }
        }
    }

    fn spawn_resolve(&self, join_now: bool) {
        let resolver = self.opts.join.clone();
        let tx = self.cmd_tx.clone();
        tokio::spawn(async move {
            let addrs = resolver().await;
            let cmd = if join_now {
                Cmd::Join(addrs)
            } else {
                Cmd::SetSeeds(addrs)
            };
            let _ = tx.send(cmd).await;
        });
    }

    fn command(&mut self, cmd: Cmd) {
        let now = self.now();
        match cmd {
            Cmd::Packet(bytes, reply) => {
                self.peers
                    .stats
                    .rx_queue_len
                    .fetch_sub(1, Ordering::Relaxed);
                // The answer goes back to the envelope's sender (as the core addresses it).
                let reply = reply.and_then(|r| {
                    let env = cluster::wire::decode_envelope(&bytes).ok()?;
                    Some((env.sender_addr, r))
                });
                if let Err(e) = self.node.handle_packet(now, &bytes) {
                    self.peers
                        .stats
                        .rx_packets_failed
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %e, "bad packet");
                }
                if let Some((to, reply)) = reply {
                    self.answer_in_response(&to, reply);
                }
            }
            Cmd::PushPull(bytes, reply) => {
                let r = self
                    .node
                    .handle_push_pull(now, &bytes)
                    .map_err(|e| e.to_string());
                let _ = reply.send(r);
            }
            Cmd::PushPullDone { to, result } => match result {
                Ok(bytes) => {
                    if let Err(e) = self.node.handle_push_pull_response(now, &to, &bytes) {
                        tracing::warn!(peer = %to, error = %e, "bad push/pull answer");
                    }
                }
                // The transport reported what the failure says about the peer already.
                Err(e) => self.node.handle_push_pull_failed(now, &to, &e.msg),
            },
            Cmd::Unreachable { addr, why } => self.node.handle_unreachable(now, &addr, why),
            Cmd::Stall(_) => {}
            Cmd::SetState(state, reply) => {
                let _ = reply.send(self.node.set_state(state));
            }
            Cmd::Join(addrs) => {
                if self.node.is_leaving() {
                    return;
                }
                let contacted = self.node.join(now, &addrs);
                if contacted > 0 {
                    if !matches!(self.join_status, JoinStatus::Joined { .. }) {
                        self.join_status = JoinStatus::Joining;
                    }
                } else if addrs.iter().all(|a| *a == self.opts.advertise_addr) {
                    self.join_status = JoinStatus::Seed;
                } else {
                    self.join_status = JoinStatus::Alone {
                        errors: vec![("join addresses".into(), "none resolved".into())],
                    };
                    tracing::warn!("no join address resolved; running as a cluster of one and retrying at the rejoin interval");
                }
            }
            Cmd::SetSeeds(addrs) => self.node.set_seeds(now, &addrs),
            Cmd::Leave(timeout, done) => {
                self.node.leave();
                self.leave = Some((tokio::time::Instant::now() + timeout, done));
            }
        }
    }

    /// Sends what the node has to send; the first packet to `to` (the answer to the packet
    /// just handled: an ack, a join answer) goes to `reply`, i.e. in the HTTP response to
    /// the request that brought the packet. If that handler stopped waiting, it goes as a
    /// request of its own.
    fn answer_in_response(&mut self, to: &str, reply: Reply) {
        let mut reply = Some(reply);
        while let Some(t) = self.node.poll_transmit() {
            if matches!(t.kind, TransmitKind::Packet) && t.to == to {
                if let Some(r) = reply.take() {
                    let len = t.payload.len() as u64;
                    match r.send(Bytes::from(t.payload)) {
                        Ok(()) => {
                            let st = &self.peers.stats;
                            st.tx_packets.fetch_add(1, Ordering::Relaxed);
                            st.tx_bytes.fetch_add(len, Ordering::Relaxed);
                            st.tx_answers.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(payload) => self.send_packet(&t.to, payload),
                    }
                    continue;
                }
            }
            self.transmit(t);
        }
    }

    fn send_packet(&mut self, to: &str, payload: Bytes) {
        if !self.peers.send_packet(to, payload) {
            self.node.handle_packet_failed(to);
        }
    }

    fn transmit(&mut self, t: cluster::Transmit) {
        match t.kind {
            TransmitKind::Packet => self.send_packet(&t.to, Bytes::from(t.payload)),
            TransmitKind::PushPull { .. } => {
                let peers = self.peers.clone();
                let tx = self.cmd_tx.clone();
                let max = self.opts.config.push_pull_bytes_max;
                tokio::spawn(async move {
                    let result = peers.push_pull(&t.to, t.payload, max).await;
                    let _ = tx.send(Cmd::PushPullDone { to: t.to, result }).await;
                });
            }
        }
    }

    fn flush(&mut self) {
        while let Some(t) = self.node.poll_transmit() {
            self.transmit(t);
        }
        while let Some(e) = self.node.poll_event() {
            match &e {
                Event::Joined { via } => {
                    // Rejoins happen every rejoin interval; only a change of state is news.
                    if matches!(self.join_status, JoinStatus::Joined { .. }) {
                        tracing::debug!(via = %via, "rejoined");
                    } else {
                        tracing::info!(via = %via, members = self.node.live_count(), "joined the cluster");
                    }
                    self.join_status = JoinStatus::Joined { via: via.clone() };
                }
                Event::JoinFailed { errors } => {
                    if self.node.live_count() == 1 {
                        if matches!(self.join_status, JoinStatus::Alone { .. }) {
                            tracing::debug!(errors = ?errors, "still alone; retrying");
                        } else {
                            tracing::warn!(
                                errors = ?errors,
                                "could not reach any join address; this node is running as a cluster of one and keeps retrying (backing off up to the rejoin interval)"
                            );
                        }
                        self.join_status = JoinStatus::Alone {
                            errors: errors.clone(),
                        };
                    }
                }
                Event::JoinRejected { by, rejection } => {
                    tracing::error!(by = %by, "join refused: {rejection}");
                    self.join_status = JoinStatus::Rejected {
                        by: by.clone(),
                        reason: rejection.to_string(),
                    };
                }
                Event::RefusedJoin { rejection, from } => {
                    tracing::warn!(from = %from, "refused a join: {rejection}");
                }
                Event::MembershipChanged => {}
            }
            let _ = self.events_tx.send(e);
        }
    }

    fn publish(&mut self) {
        self.published_version = self.node.view_version();
        let view = Arc::new(snapshot(&self.node, self.join_status.clone()));
        self.view_tx.send_replace(view);
    }
}
