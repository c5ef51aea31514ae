//! What the running agent knows about itself, shared by the lifecycle ([`crate::run`]), the
//! HTTP handlers ([`crate::http`]) and the metrics collector ([`crate::metrics`]).
//!
//! It owns the lifecycle phase (and so readiness), the configuration file's status (hash for
//! the drift alert), and the join situation (whether this node believes it is alone although
//! it was given peers). It holds the cluster handle but drives nothing itself.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster::{NodeState, Status as MemberStatus};
use runtime::{ClusterHandle, ClusterView, JoinStatus};
use sha2::{Digest, Sha256};

/// Where the node is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Viewer: the configuration file is being read.
    LoadingConfig,
    /// Viewer: the first attempt to join `--cluster.join-addresses` is under way (taking
    /// work before it would mean taking every target and handing most back at once).
    Joining,
    /// Viewer: waiting until the cluster has `want` nodes (`--cluster.wait-for-size`).
    WaitingForSize {
        have: usize,
        want: usize,
        /// Left of `--cluster.wait-timeout`, if any.
        timeout: Option<Duration>,
    },
    /// Participant: owns work.
    Participant,
    /// Terminating: shutting down.
    Terminating,
}

impl Phase {
    /// `Ok` when ready for work (`/-/ready` 200), else why not.
    pub fn readiness(&self) -> Result<(), String> {
        match self {
            Phase::Participant => Ok(()),
            Phase::LoadingConfig => Err("not ready: loading the configuration file".into()),
            Phase::Joining => {
                Err("not ready: joining the cluster (--cluster.join-addresses)".into())
            }
            Phase::WaitingForSize {
                have,
                want,
                timeout,
            } => Err(format!(
                "not ready: waiting for the cluster to reach {want} nodes \
                 (--cluster.wait-for-size); it has {have}{}",
                match timeout {
                    Some(t) => format!(
                        "; taking work anyway in {}s (--cluster.wait-timeout)",
                        t.as_secs()
                    ),
                    None => String::new(),
                }
            )),
            Phase::Terminating => Err("not ready: shutting down".into()),
        }
    }
}

/// The configuration file as last loaded.
#[derive(Debug, Clone, Default)]
pub struct ConfigStatus {
    pub path: Option<PathBuf>,
    /// sha256 of the file's bytes, hex (`agent_config_hash{sha256}`); `None` before the first
    /// successful load. Without a file, the hash of the empty configuration.
    pub sha256: Option<String>,
    pub last_load_ok: bool,
    pub load_failures: u64,
    pub last_error: Option<String>,
}

/// sha256 of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the last resolution of `--cluster.join-addresses` found.
#[derive(Debug, Default)]
pub struct JoinReport {
    /// Resolutions done so far.
    pub resolutions: AtomicU64,
    /// Whether it pointed at peers other than this node (resolvable or not).
    pub expects_peers: AtomicBool,
    /// Entries that did not resolve, with why.
    pub errors: Mutex<Vec<(String, String)>>,
}

impl JoinReport {
    pub fn record(&self, expects_peers: bool, errors: Vec<(String, String)>) {
        self.expects_peers.store(expects_peers, Ordering::Relaxed);
        *self.errors.lock().expect("join report lock") = errors;
        self.resolutions.fetch_add(1, Ordering::Relaxed);
    }
}

/// The agent's shared status.
pub struct Status {
    pub handle: ClusterHandle,
    /// `--cluster.enabled`.
    pub clustering: bool,
    /// `--cluster.name`.
    pub cluster_name: String,
    /// `--cluster.join-addresses` as given.
    pub join_addresses: Vec<String>,
    /// `--cluster.rejoin-interval` (`None`: disabled).
    pub rejoin_interval: Option<Duration>,
    /// Written by the join resolver at every (re)join.
    pub join_report: Arc<JoinReport>,
    pub phase: Mutex<Phase>,
    pub config: Mutex<ConfigStatus>,
    /// Cluster TLS counters, with `--cluster.enable-tls`.
    pub tls: std::sync::OnceLock<Arc<runtime::TlsStats>>,
    /// What the listener refused (connections, rate-limited messages).
    pub server: Arc<runtime::ServerStats>,
    /// `--cluster.wait-for-size` with clustering, else 0 (`cluster_minimum_size`).
    pub minimum_size: AtomicU64,
}

impl std::fmt::Debug for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Status")
            .field("clustering", &self.clustering)
            .field("phase", &self.phase())
            .finish_non_exhaustive()
    }
}

impl Status {
    pub fn new(
        handle: ClusterHandle,
        clustering: bool,
        cluster_name: String,
        join_addresses: Vec<String>,
        rejoin_interval: Option<Duration>,
        join_report: Arc<JoinReport>,
        config_path: Option<PathBuf>,
    ) -> Self {
        Status {
            handle,
            clustering,
            cluster_name,
            join_addresses,
            rejoin_interval,
            join_report,
            phase: Mutex::new(Phase::LoadingConfig),
            config: Mutex::new(ConfigStatus {
                path: config_path,
                ..ConfigStatus::default()
            }),
            tls: std::sync::OnceLock::new(),
            server: Arc::default(),
            minimum_size: AtomicU64::new(0),
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase.lock().expect("phase lock").clone()
    }

    pub fn set_phase(&self, p: Phase) {
        *self.phase.lock().expect("phase lock") = p;
    }

    pub fn config_status(&self) -> ConfigStatus {
        self.config.lock().expect("config lock").clone()
    }

    /// Whether this node was given peers but sees none: the "clustering enabled, peers never
    /// met" situation (agent#6581) that must be visible.
    pub fn alone(&self, view: &ClusterView) -> bool {
        self.clustering
            && self.join_report.expects_peers.load(Ordering::Relaxed)
            && live_count(view) <= 1
            && !view.leaving
    }

    /// A sentence for the page and the logs explaining the join situation.
    pub fn join_summary(&self, view: &ClusterView) -> String {
        if !self.clustering {
            return "clustering is disabled (--cluster.enabled): this node is a cluster of one"
                .into();
        }
        let retry = match self.rejoin_interval {
            Some(d) => format!(
                "retrying every {}s (--cluster.rejoin-interval)",
                d.as_secs()
            ),
            None => "not retrying (--cluster.rejoin-interval=0)".into(),
        };
        if self.alone(view) {
            let mut why: Vec<String> = self
                .join_report
                .errors
                .lock()
                .expect("resolve errors lock")
                .iter()
                .map(|(a, e)| format!("{a}: {e}"))
                .collect();
            if let JoinStatus::Alone { errors } = &view.join {
                why.extend(errors.iter().map(|(a, e)| format!("{a}: {e}")));
            }
            return format!(
                "this node is alone although join addresses were given ({}); it runs as a \
                 cluster of one, {retry}{}",
                self.join_addresses.join(","),
                if why.is_empty() {
                    String::new()
                } else {
                    format!(". Last errors: {}", why.join("; "))
                }
            );
        }
        match &view.join {
            JoinStatus::Seed => "seed node: started a new cluster".into(),
            JoinStatus::Joining => "joining".into(),
            JoinStatus::Joined { via } => format!("joined through {via}"),
            JoinStatus::Alone { .. } => format!("no peer reachable at the last join, {retry}"),
            JoinStatus::Rejected { by, reason } => format!("refused by {by}: {reason}"),
        }
    }
}

/// Members that are alive or suspect and not terminating, self included: the cluster size
/// `--cluster.wait-for-size` waits for.
pub fn size_for_wait(view: &ClusterView) -> usize {
    view.members
        .iter()
        .filter(|m| matches!(m.status, MemberStatus::Alive | MemberStatus::Suspect))
        .filter(|m| m.state != NodeState::Terminating)
        .count()
}

/// Members that are alive or suspect, self included.
pub fn live_count(view: &ClusterView) -> usize {
    view.members
        .iter()
        .filter(|m| matches!(m.status, MemberStatus::Alive | MemberStatus::Suspect))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_explains_itself() {
        assert!(Phase::Participant.readiness().is_ok());
        let e = Phase::WaitingForSize {
            have: 2,
            want: 3,
            timeout: Some(Duration::from_secs(9)),
        }
        .readiness()
        .unwrap_err();
        assert!(
            e.contains("3 nodes") && e.contains("has 2") && e.contains("9s"),
            "{e}"
        );
        assert!(Phase::Terminating.readiness().is_err());
        assert!(Phase::LoadingConfig.readiness().is_err());
        assert!(Phase::Joining.readiness().is_err());
    }

    #[test]
    fn sha256_is_the_usual_hex() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
