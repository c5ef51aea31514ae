//! `agent run`: the node's life from flags to exit.
//!
//! 1. Check the configuration file (a bad file fails here, before the cluster is touched).
//! 2. Bind the HTTP listener, choose the advertised address, start the cluster node as a
//!    viewer, start the components ([`Pipeline`]: remote_write, discovery, scrape; clustered
//!    scrape components own nothing while viewer) and serve HTTP. Without `--cluster.enabled`
//!    the same code runs a cluster of one (no joins, transport paths closed).
//! 3. Join through `--cluster.join-addresses` (resolved again at each rejoin). Nothing
//!    reachable: run alone, say so (log, page, `cluster_node_alone`), retry at the rejoin
//!    interval. A name conflict is fatal: exit non-zero naming the holder and its address.
//! 4. Become participant once the configuration is loaded, the first join attempt has an
//!    outcome (joined, or nothing reachable), and the cluster has `--cluster.wait-for-size`
//!    nodes (or `--cluster.wait-timeout` passed).
//!    `/-/reload` and SIGHUP reload the configuration; a bad file keeps the running one.
//! 5. On SIGTERM/SIGINT: stop scraping (targets move, no staleness markers), become
//!    terminating, give peers a moment to see it while remote_write drains (bounded), leave
//!    (bounded by `--cluster.leave-timeout`) and return `Ok` (exit 0). A second signal exits
//!    at once.
//!
//! This module owns the sequence; the HTTP handlers, metrics and protocol live elsewhere.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use cluster::NodeState;
use runtime::{ClusterView, JoinStatus, Network, NodeOptions, TokioNet};
use tokio::signal::unix::{signal, SignalKind};
use tokio::time::Instant;

use crate::advertise::{self, Advertise, Source};
use crate::cli::RunArgs;
use crate::config::Config;
use crate::http::{self, Http};
use crate::pipeline::{Pipeline, SHUTDOWN_FLUSH_TIMEOUT};
use crate::resolve::{Dns, SelfAddrs};
use crate::status::{self, sha256_hex, JoinReport, Phase, Status};

/// Why the agent stopped with an error (exit status 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunError(pub String);

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RunError {}

fn err(msg: impl Into<String>) -> RunError {
    RunError(msg.into())
}

/// The machine's host name (default of `--cluster.node-name`).
pub fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success
    // (and the last byte stays 0 when it truncates).
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).trim().to_string();
    (!name.is_empty()).then_some(name)
}

/// Reads and checks the configuration file; returns its sha256 and what it means. Without a
/// file, the hash of the empty configuration and no components.
fn load_config(path: Option<&Path>) -> Result<(String, Config), String> {
    let Some(path) = path else {
        let empty = Config::from_str("", "(no config file)").map_err(|e| e.to_string())?;
        return Ok((sha256_hex(b""), empty));
    };
    let shown = path.display().to_string();
    let len = std::fs::metadata(path)
        .map_err(|e| format!("cannot read config file {shown}: {e}"))?
        .len();
    if len > crate::config::CONFIG_SIZE_MAX_BYTES {
        return Err(format!(
            "config file {shown} is {len} bytes; the limit is {}",
            crate::config::CONFIG_SIZE_MAX_BYTES
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read config file {shown}: {e}"))?;
    let src = std::str::from_utf8(&bytes)
        .map_err(|e| format!("config file {shown} is not UTF-8: {e}"))?;
    let config = Config::from_str(src, &shown).map_err(|e| e.to_string())?;
    crate::pipeline::check_clients(&config).map_err(|e| format!("{shown}: {e}"))?;
    Ok((sha256_hex(&bytes), config))
}

/// Reload the configuration file (`/-/reload`, SIGHUP): a good file updates the components
/// and the hash in `status`; a bad one keeps the running configuration and says why.
fn reload_into(status: &Status, pipeline: &Pipeline) -> Result<String, String> {
    if status.phase() == Phase::Terminating {
        return Err("shutting down; configuration not reloaded".into());
    }
    let path = status.config_status().path;
    let result = load_config(path.as_deref());
    let mut cfg = status.config.lock().expect("config lock");
    match result {
        Ok((hash, config)) => {
            let changed = cfg.sha256.as_deref() != Some(hash.as_str());
            cfg.sha256 = Some(hash.clone());
            cfg.last_load_ok = true;
            cfg.last_error = None;
            drop(cfg);
            if changed {
                pipeline.apply(config);
            }
            tracing::info!(sha256 = %hash, changed, "configuration loaded");
            Ok(format!("configuration loaded (sha256 {hash})\n"))
        }
        Err(e) => {
            cfg.last_load_ok = false;
            cfg.load_failures += 1;
            cfg.last_error = Some(e.clone());
            tracing::error!(error = %e, "configuration not loaded; the previous one stays active");
            Err(e)
        }
    }
}

async fn bind(args: &RunArgs) -> Result<(tokio::net::TcpListener, SocketAddr), RunError> {
    let flag = &args.listen_addr;
    let addr = match flag.socket_addr() {
        Some(a) => a,
        None => tokio::net::lookup_host((flag.host.as_str(), flag.port))
            .await
            .ok()
            .and_then(|mut it| it.next())
            .ok_or_else(|| {
                err(format!(
                    "--server.http.listen-addr {flag}: cannot resolve host {:?}",
                    flag.host
                ))
            })?,
    };
    let listener = TokioNet.bind(addr).await.map_err(|e| {
        err(format!(
            "cannot listen on --server.http.listen-addr {flag}: {e}"
        ))
    })?;
    let local = TokioNet
        .local_addr(&listener)
        .map_err(|e| err(format!("listener address: {e}")))?;
    Ok((listener, local))
}

fn cluster_config(args: &RunArgs) -> Result<cluster::Config, RunError> {
    let mut config = cluster::Config {
        cluster_name: args.cluster_name.clone(),
        probe_interval: args.probe_interval,
        probe_timeout: args.probe_timeout,
        gossip_interval: args.gossip_interval,
        push_pull_interval: args.push_pull_interval,
        join_peers_max: if args.max_join_peers == 0 {
            usize::MAX
        } else {
            args.max_join_peers
        },
        ..cluster::Config::default()
    };
    args.protocol.apply(&mut config);
    config.validate().map_err(|e| {
        let flag = match e.field {
            "probe_timeout" => "--cluster.probe-timeout (must be below --cluster.probe-interval)",
            "probe_interval" => "--cluster.probe-interval",
            "gossip_interval" => "--cluster.gossip-interval",
            "cluster_name" => "--cluster.name",
            "join_peers_max" => "--cluster.max-join-peers",
            "suspicion_mult" => "--cluster.suspicion-mult",
            "suspicion_max_timeout_mult" => "--cluster.suspicion-max-timeout-mult",
            "retransmit_mult" => "--cluster.retransmit-mult",
            "awareness_max_multiplier" => "--cluster.awareness-max-multiplier",
            "suspicion_unit" => "--cluster.suspicion-unit",
            other => other,
        };
        err(format!("{flag}: {}", e.reason))
    })?;
    Ok(config)
}

/// Run the agent until a signal (Ok) or a fatal error.
pub async fn run(args: RunArgs) -> Result<(), RunError> {
    let clustering = args.cluster_enabled;

    // 1. The configuration file, before anything touches the cluster.
    let (first_hash, first_config) = load_config(args.config_file.as_deref()).map_err(err)?;

    // 2. Listener, advertised address, node.
    let node_name = match &args.node_name {
        Some(n) => n.clone(),
        None => hostname()
            .ok_or_else(|| err("cannot determine the host name; set --cluster.node-name"))?,
    };
    let (listener, listen) = bind(&args).await?;
    let local = advertise::local_interfaces();
    let advertised = match advertise::choose(
        args.advertise_address.as_deref(),
        &args.advertise_interfaces.0,
        &local,
        listen,
    ) {
        Ok(a) => a,
        // A cluster of one is never contacted; its address is only shown.
        Err(_) if !clustering => Advertise {
            addr: listen.to_string(),
            source: Source::ListenAddress,
        },
        Err(e) => return Err(err(e.to_string())),
    };
    if clustering && advertised.source == Source::ListenAddress {
        tracing::info!(
            advertise = %advertised.addr,
            interfaces = %args.advertise_interfaces.0.join(","),
            "advertising the listen address: no address of --cluster.advertise-interfaces reaches the listener; set --cluster.advertise-address to override"
        );
    }
    let config = cluster_config(&args)?;
    let rejoin_interval =
        (clustering && !args.rejoin_interval.is_zero()).then_some(args.rejoin_interval);
    let join_report = Arc::new(JoinReport::default());
    let mut opts = NodeOptions::new(&node_name, &advertised.addr, config);
    opts.seed = random_seed();
    opts.rejoin_interval = rejoin_interval;
    opts.join = if clustering {
        join_resolver(&args, &advertised, listen, &local, join_report.clone())
    } else {
        runtime::static_resolver(Vec::new())
    };
    let cluster_tls = if args.enable_tls {
        let files = runtime::TlsFiles {
            ca: args.tls_ca_path.clone().unwrap_or_default(),
            cert: args.tls_cert_path.clone().unwrap_or_default(),
            key: args.tls_key_path.clone().unwrap_or_default(),
            server_name: args.tls_server_name.clone(),
            bind_node_name: args.tls_bind_node_name,
        };
        Some(runtime::ClusterTls::load(files).map_err(|e| err(format!("cluster TLS: {e}")))?)
    } else {
        None
    };
    if let Some(tls) = cluster_tls.as_ref().filter(|t| t.binds_node_name()) {
        let names = tls.own_names();
        if !names.iter().any(|n| *n == node_name) {
            tracing::warn!(node = %node_name, certificate_names = ?names, "this node's certificate does not hold its node name: peers with --cluster.tls-bind-node-name will refuse its messages");
        }
    }
    opts.transport.tls = cluster_tls.clone();
    let (handle, mut driver) = runtime::start(TokioNet, opts)
        .map_err(|e| err(format!("cannot start the cluster node: {e}")))?;
    let status = Arc::new(Status::new(
        handle.clone(),
        clustering,
        args.cluster_name.clone(),
        args.join_addresses
            .0
            .iter()
            .map(|e| e.raw.clone())
            .collect(),
        rejoin_interval,
        join_report,
        args.config_file.clone(),
    ));
    if let Some(tls) = &cluster_tls {
        let _ = status.tls.set(tls.stats.clone());
    }
    if clustering {
        status
            .minimum_size
            .store(args.wait_for_size as u64, Ordering::Relaxed);
    }
    {
        let mut cfg = status.config.lock().expect("config lock");
        cfg.sha256 = Some(first_hash);
        cfg.last_load_ok = true;
    }
    // The components. Clustered scrape components take work once this node is a
    // participant (the pipeline follows the cluster view).
    let pipeline = Pipeline::start(first_config, &node_name, &args.storage_path).map_err(|e| {
        err(format!(
            "{e} (--storage.path {})",
            args.storage_path.display()
        ))
    })?;
    tokio::spawn(pipeline.clone().run(handle.watch()));
    let mut registry = crate::metrics::registry(status.clone());
    crate::metrics::register_pipeline(&mut registry, pipeline.clone(), status.clone());
    let (reload_status, reload_pipeline) = (status.clone(), pipeline.clone());
    let http = Arc::new(Http {
        status: status.clone(),
        registry,
        reload: Box::new(move || reload_into(&reload_status, &reload_pipeline)),
        reload_budget: std::sync::Mutex::new((0.0, None)),
    });
    tokio::spawn(runtime::server::serve_tls(
        TokioNet,
        listener,
        http::router(http),
        cluster_tls.clone(),
        status.server.clone(),
    ));
    tracing::info!(
        node = %node_name,
        listen = %listen,
        advertise = %advertised.addr,
        advertise_from = %advertised.source,
        clustering,
        cluster_name = %args.cluster_name,
        join = %status.join_addresses.join(","),
        rejoin_interval = ?rejoin_interval,
        "agent started as a viewer; clustering page at {}://{listen}/clustering",
        if cluster_tls.is_some() { "https" } else { "http" }
    );

    // 3 and 4: watch the cluster until a signal.
    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| err(format!("SIGTERM: {e}")))?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| err(format!("SIGINT: {e}")))?;
    let mut sighup = signal(SignalKind::hangup()).map_err(|e| err(format!("SIGHUP: {e}")))?;
    let want = if clustering { args.wait_for_size } else { 0 };
    if !clustering && args.wait_for_size > 1 {
        tracing::warn!("--cluster.wait-for-size is ignored without --cluster.enabled");
    }
    let wait_deadline =
        (want > 1 && !args.wait_timeout.is_zero()).then(|| Instant::now() + args.wait_timeout);
    let mut views = handle.watch();
    let mut logged = Logged::default();
    let mut participant = false;
    let mut logged_wait = None;
    let signal_name = loop {
        let view = views.borrow_and_update().clone();
        if let JoinStatus::Rejected { by, reason } = &view.join {
            return Err(err(format!(
                "the cluster refused this node (answer from {by}): {reason}"
            )));
        }
        logged.update(&status, &view);
        if !participant {
            let have = status::size_for_wait(&view);
            let timed_out = wait_deadline.is_some_and(|d| Instant::now() >= d);
            if !first_join_settled(&status, &view) {
                // A node about to join would take every target for a moment and hand them
                // back right after (duplicate scrapes); wait for the first attempt's outcome.
                status.set_phase(Phase::Joining);
            } else if have >= want || timed_out {
                if have < want {
                    tracing::warn!(
                        have,
                        want,
                        "--cluster.wait-timeout passed before the cluster reached --cluster.wait-for-size; taking work anyway"
                    );
                }
                // Ready before the cluster hears of it: whoever sees this node as a participant
                // (peers API, other nodes) must also find `/-/ready` answering 200.
                status.set_phase(Phase::Participant);
                handle
                    .set_state(NodeState::Participant)
                    .await
                    .map_err(|e| err(format!("cannot become a participant: {e}")))?;
                participant = true;
                tracing::info!(
                    members = have,
                    "configuration loaded; this node is now a participant"
                );
            } else {
                let phase = Phase::WaitingForSize {
                    have,
                    want,
                    timeout: wait_deadline.map(|d| d.saturating_duration_since(Instant::now())),
                };
                if logged_wait != Some(have) {
                    tracing::info!(have, want, "waiting for the cluster to reach --cluster.wait-for-size before taking work");
                    logged_wait = Some(have);
                }
                status.set_phase(phase);
            }
        }
        let tick = if participant {
            Duration::from_secs(3600)
        } else if status.phase() == Phase::Joining {
            // The resolution that settles the first join may not change the view.
            Duration::from_millis(100)
        } else {
            Duration::from_secs(1)
        };
        tokio::select! {
            _ = sigterm.recv() => break "SIGTERM",
            _ = sigint.recv() => break "SIGINT",
            _ = sighup.recv() => {
                tracing::info!("SIGHUP: reloading the configuration file");
                // Both outcomes are logged by reload_into.
                let _ = reload_into(&status, &pipeline);
            }
            changed = views.changed() => {
                if changed.is_err() {
                    return Err(err("the cluster node stopped unexpectedly"));
                }
            }
            r = &mut driver => {
                return Err(err(format!("the cluster node stopped unexpectedly: {r:?}")));
            }
            _ = tokio::time::sleep(tick) => {}
        }
    };

    // 5. Shut down: stop scraping (a hand-over: no staleness markers), terminating, a moment
    //    for peers to see it while remote_write drains, leave. Scraping stops before peers
    //    hear of it, so the new owners' samples come after ours (no overlap, which a
    //    Prometheus receiver would reject as out of order); they scrape moved targets at once.
    status.set_phase(Phase::Terminating);
    pipeline.stop_scraping();
    let leave_timeout = args.leave_timeout;
    let has_peers = status::live_count(&handle.view()) > 1;
    tracing::info!(signal = signal_name, timeout = ?leave_timeout, "shutting down: scraping stopped; announcing terminating, flushing remote_write, then leaving the cluster");
    let leave = async {
        let _ = handle.set_state(NodeState::Terminating).await;
        if has_peers {
            // Peers stop giving this node new work when they see it terminating; let that
            // spread before the "left" news removes it from their views.
            let grace = (leave_timeout / 4).min(Duration::from_secs(1));
            tokio::time::sleep(grace).await;
            handle.leave(leave_timeout - grace).await;
        } else {
            // Nobody to tell: announcing would only wait for the timeout.
            handle.leave(Duration::ZERO).await;
        }
    };
    let shutdown = async { tokio::join!(leave, pipeline.flush(SHUTDOWN_FLUSH_TIMEOUT)) };
    let bound = leave_timeout.max(SHUTDOWN_FLUSH_TIMEOUT) + Duration::from_secs(2);
    tokio::select! {
        _ = tokio::time::timeout(bound, shutdown) => {
            tracing::info!("left the cluster; exiting");
            Ok(())
        }
        _ = sigterm.recv() => Err(err("second SIGTERM during shutdown; exiting without finishing the leave")),
        _ = sigint.recv() => Err(err("second SIGINT during shutdown; exiting without finishing the leave")),
    }
}

/// Whether the first join attempt has an outcome: joined, alone (nothing reachable; retried
/// at the rejoin interval) or seed (no peers to join). Always true without clustering.
fn first_join_settled(status: &Status, view: &ClusterView) -> bool {
    if !status.clustering || status.join_addresses.is_empty() {
        return true;
    }
    if status.join_report.resolutions.load(Ordering::Relaxed) == 0 {
        return false;
    }
    let expects_peers = status.join_report.expects_peers.load(Ordering::Relaxed);
    match view.join {
        JoinStatus::Joining => false,
        JoinStatus::Seed => !expects_peers,
        JoinStatus::Joined { .. } | JoinStatus::Alone { .. } | JoinStatus::Rejected { .. } => true,
    }
}

fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32)
}

fn join_resolver(
    args: &RunArgs,
    advertised: &Advertise,
    listen: SocketAddr,
    local: &[advertise::InterfaceAddr],
    report: Arc<JoinReport>,
) -> runtime::Resolver {
    let dns = Dns::system();
    let entries = Arc::new(args.join_addresses.0.clone());
    let me = Arc::new(SelfAddrs {
        advertise: advertised.addr.clone(),
        listen,
        local_ips: local.iter().map(|a| a.ip).collect(),
    });
    Arc::new(move || {
        let (dns, entries, me, report) = (dns.clone(), entries.clone(), me.clone(), report.clone());
        Box::pin(async move {
            let r = dns.resolve(&entries, me.listen.port(), &me).await;
            for (entry, why) in &r.errors {
                tracing::warn!(entry = %entry, error = %why, "cannot resolve a --cluster.join-addresses entry");
            }
            tracing::debug!(addrs = ?r.addrs, self_entries = ?r.self_entries, "join addresses resolved");
            report.record(r.expects_peers(), r.errors);
            r.addrs
        })
    })
}

/// A node counts as alone (for the log) only after this long: right after start, and
/// between a resolution and the join it triggers, a node briefly sees no peer.
const ALONE_LOG_AFTER: Duration = Duration::from_secs(2);

/// What has been logged already, so that each transition is logged once. (The runtime logs
/// joins and join failures itself.)
#[derive(Default)]
struct Logged {
    seed: bool,
    alone_since: Option<Instant>,
    alone_logged: bool,
    live: usize,
}

impl Logged {
    fn update(&mut self, status: &Status, view: &ClusterView) {
        let live = status::live_count(view);
        let resolved = status.join_report.resolutions.load(Ordering::Relaxed) > 0;
        if status.clustering
            && resolved
            && !self.seed
            && view.join == JoinStatus::Seed
            && !status.join_report.expects_peers.load(Ordering::Relaxed)
        {
            tracing::info!(
                "no peer to join (no --cluster.join-addresses, or only this node): this node is the seed of a new cluster"
            );
            self.seed = true;
        }
        if resolved && status.alone(view) {
            let since = *self.alone_since.get_or_insert_with(Instant::now);
            if !self.alone_logged && since.elapsed() >= ALONE_LOG_AFTER {
                tracing::warn!("{}", status.join_summary(view));
                self.alone_logged = true;
            }
        } else {
            if self.alone_logged {
                tracing::info!(members = live, "no longer alone: peers reached");
            }
            self.alone_since = None;
            self.alone_logged = false;
        }
        if live != self.live && self.live != 0 {
            tracing::info!(members = live, "cluster membership changed");
        }
        self.live = live;
    }
}
