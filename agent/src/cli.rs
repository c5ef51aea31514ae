//! The command line: `agent run [CONFIG_FILE]` with Grafana Agent's flag names and defaults,
//! `agent validate CONFIG_FILE` and `agent fmt [-w|-t] [CONFIG_FILE]`.
//!
//! This module parses and checks flags; it starts nothing. Every value is checked here, so a
//! bad flag fails before anything runs, with clap's message naming the flag and the value
//! (exit status 2). Defaults of the protocol timings come from `cluster::Config::default()`
//! (a unit test keeps the strings below in step with it).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand};

use crate::resolve::{parse_join_addresses, split_host_port, JoinEntry};

#[derive(Debug, Parser)]
#[command(
    name = "agent",
    version,
    about = "Telemetry agent: scrapes the Prometheus targets it owns, clustered over HTTP/2 on its own listener.",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once
pub enum Command {
    /// Run the agent: serve HTTP (cluster transport, API, clustering page, /metrics), join
    /// the cluster, and run the configuration file.
    #[command(
        long_about = "Run the agent.\n\n\
        One HTTP listener (--server.http.listen-addr) serves the cluster transport (HTTP/2, \
        h2c), the peers API (/api/v0/web/peers), the clustering page (/ and /clustering), \
        /metrics, /-/ready and /-/healthy. Without --cluster.enabled the agent is a cluster \
        of one node. The node starts as a viewer, becomes a participant once its \
        configuration is loaded (and --cluster.wait-for-size is met), and on SIGTERM or \
        SIGINT becomes terminating, leaves the cluster and exits 0.",
        after_help = "Durations are written like 60s, 1m30s, 500ms; 0 disables where noted."
    )]
    Run(RunArgs),

    /// Check a configuration file as `agent run` would, without running anything.
    #[command(
        long_about = "Check a configuration file as `agent run` would load it, without running \
        anything: no listener is opened, no cluster joined, no component started, nothing \
        written. Every error is printed with its file:line:col (syntax errors, or, when the \
        syntax is sound, the first error of each component and every function error), and \
        the files the components name (certificates, keys, passwords) are read.\n\n\
        Exit status: 0 when the file is valid, 1 when it is not."
    )]
    Validate(ValidateArgs),

    /// Rewrite a configuration file in the canonical format (that of `alloy fmt`).
    #[command(
        long_about = "Rewrite a configuration file in the canonical format (that of `alloy fmt`): \
        tabs, one space around `=`, `=` and end-of-line comments aligned on consecutive \
        lines, a blank line before each block. Comments and the meaning of the file are kept; \
        formatting twice changes nothing.\n\n\
        Without -w the result goes to standard output. Without a file (or with -), standard \
        input is read.\n\n\
        Exit status: 0 on success; 1 on a syntax error (printed with file:line:col, the file is \
        left as it is), or with -t when the file is not formatted."
    )]
    Fmt(FmtArgs),
}

/// Arguments of `agent validate`.
#[derive(Debug, Clone, Args)]
pub struct ValidateArgs {
    /// Configuration file (Alloy syntax).
    #[arg(value_name = "CONFIG_FILE")]
    pub config_file: PathBuf,
}

/// Arguments of `agent fmt`.
#[derive(Debug, Clone, Args)]
pub struct FmtArgs {
    /// Configuration file; `-` or none reads standard input.
    #[arg(value_name = "CONFIG_FILE")]
    pub config_file: Option<PathBuf>,

    /// Write the result to the file instead of standard output (left untouched when it is
    /// already formatted).
    #[arg(short = 'w', long = "write", conflicts_with = "test")]
    pub write: bool,

    /// Write nothing; exit 1 (naming the file) when it is not formatted.
    #[arg(short = 't', long = "test")]
    pub test: bool,
}

/// Flags of `agent run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Configuration file (Alloy syntax). Without one the agent runs no components.
    #[arg(value_name = "CONFIG_FILE")]
    pub config_file: Option<PathBuf>,

    /// Address the HTTP server listens on (cluster transport, API, UI, metrics).
    #[arg(
        long = "server.http.listen-addr",
        value_name = "ADDR",
        default_value = "127.0.0.1:12345",
        value_parser = parse_listen_addr
    )]
    pub listen_addr: ListenAddr,

    /// Directory for the agent's data: each prometheus.remote_write component keeps its
    /// write-ahead log under it (prometheus.remote_write.NAME/wal). One agent per directory.
    #[arg(
        long = "storage.path",
        value_name = "DIR",
        default_value = "data-agent/"
    )]
    pub storage_path: PathBuf,

    /// Enable clustering. Without it the agent is a cluster of one node.
    #[arg(
        long = "cluster.enabled",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value = "false",
        action = ArgAction::Set,
        value_parser = parse_bool
    )]
    pub cluster_enabled: bool,

    /// Name of this node in the cluster; must be unique in the cluster [default: hostname].
    #[arg(long = "cluster.node-name", value_name = "NAME", value_parser = parse_node_name)]
    pub node_name: Option<String>,

    /// Address (IP or name, optional port) peers use to reach this node. Default: the first
    /// usable address of --cluster.advertise-interfaces, else the listen address when it is a
    /// concrete IP. The port defaults to the listener's.
    #[arg(long = "cluster.advertise-address", value_name = "ADDR", value_parser = parse_advertise)]
    pub advertise_address: Option<String>,

    /// Interfaces, in order, whose first usable address is advertised when
    /// --cluster.advertise-address is not given.
    #[arg(
        long = "cluster.advertise-interfaces",
        value_name = "NAMES",
        default_value = crate::advertise::DEFAULT_INTERFACES,
        value_parser = parse_interfaces
    )]
    pub advertise_interfaces: Interfaces,

    /// Comma-separated addresses to join: IP[:port], [IPv6][:port] or host[:port] (A/AAAA
    /// lookup; a name without port and without A/AAAA records is looked up as SRV). The port
    /// defaults to the listener's. Empty, or only this node itself: start a new cluster.
    #[arg(
        long = "cluster.join-addresses",
        value_name = "ADDRS",
        default_value = "",
        hide_default_value = true,
        value_parser = parse_join
    )]
    pub join_addresses: JoinAddresses,

    /// How often to look up the join addresses again and rejoin through them; this merges
    /// clusters that formed separately (parallel start, partition). 0 disables.
    #[arg(
        long = "cluster.rejoin-interval",
        value_name = "DURATION",
        default_value = "60s",
        value_parser = parse_duration_flag
    )]
    pub rejoin_interval: Duration,

    /// Peers contacted per join attempt, picked at random from the resolved join addresses.
    /// 0 means all.
    #[arg(long = "cluster.max-join-peers", value_name = "N", default_value_t = 5)]
    pub max_join_peers: usize,

    /// Name of the cluster. Nodes refuse traffic from nodes with another cluster name.
    #[arg(long = "cluster.name", value_name = "NAME", default_value = "", value_parser = parse_cluster_name)]
    pub cluster_name: String,

    /// Stay a viewer (own no work) until the cluster has at least this many nodes. 0 disables.
    #[arg(long = "cluster.wait-for-size", value_name = "N", default_value_t = 0)]
    pub wait_for_size: usize,

    /// Stop waiting for --cluster.wait-for-size after this long and take work anyway. 0 waits
    /// without limit.
    #[arg(
        long = "cluster.wait-timeout",
        value_name = "DURATION",
        default_value = "0",
        value_parser = parse_duration_flag
    )]
    pub wait_timeout: Duration,

    /// How often this node probes one peer (crash detection speed vs traffic).
    #[arg(
        long = "cluster.probe-interval",
        value_name = "DURATION",
        default_value = "2s",
        value_parser = parse_nonzero_duration,
        help_heading = "Advanced clustering (protocol timings; defaults suit most clusters)",
        hide_short_help = true
    )]
    pub probe_interval: Duration,

    /// How long a probe waits for a direct answer before asking other peers.
    /// Must be below --cluster.probe-interval.
    #[arg(
        long = "cluster.probe-timeout",
        value_name = "DURATION",
        default_value = "500ms",
        value_parser = parse_nonzero_duration,
        help_heading = "Advanced clustering (protocol timings; defaults suit most clusters)",
        hide_short_help = true
    )]
    pub probe_timeout: Duration,

    /// How often queued membership news is gossiped to a few peers.
    #[arg(
        long = "cluster.gossip-interval",
        value_name = "DURATION",
        default_value = "200ms",
        value_parser = parse_nonzero_duration,
        help_heading = "Advanced clustering (protocol timings; defaults suit most clusters)",
        hide_short_help = true
    )]
    pub gossip_interval: Duration,

    /// How often this node exchanges its full state with one random peer. 0
    /// disables (joins still exchange full state).
    #[arg(
        long = "cluster.push-pull-interval",
        value_name = "DURATION",
        default_value = "60s",
        value_parser = parse_duration_flag,
        help_heading = "Advanced clustering (protocol timings; defaults suit most clusters)",
        hide_short_help = true
    )]
    pub push_pull_interval: Duration,

    /// On shutdown, the longest time spent announcing terminating and left before
    /// exiting.
    #[arg(
        long = "cluster.leave-timeout",
        value_name = "DURATION",
        default_value = "5s",
        value_parser = parse_nonzero_duration,
        help_heading = "Advanced clustering (protocol timings; defaults suit most clusters)",
        hide_short_help = true
    )]
    pub leave_timeout: Duration,

    /// Protocol knobs the simulator's process engine sets from a scenario file (`sim
    /// --engine process`), so that real agents run the timings the scenario asks for. Hidden:
    /// the defaults (`cluster::Config::default()`) suit every real cluster. Unset keeps the
    /// default.
    #[command(flatten)]
    pub protocol: ProtocolFlags,

    /// Speak TLS on the cluster listener and to every peer (HTTP/2 over TLS, ALPN h2), with
    /// mutual authentication: peers must present a certificate signed by --cluster.tls-ca-path
    /// to use the cluster transport. /metrics, the page and the API are served over TLS too
    /// and need no client certificate.
    #[arg(long = "cluster.enable-tls", help_heading = "Cluster TLS", requires_all = ["tls_ca_path", "tls_cert_path", "tls_key_path"])]
    pub enable_tls: bool,

    /// PEM file with the CA that signs the cluster's node certificates.
    #[arg(
        long = "cluster.tls-ca-path",
        value_name = "FILE",
        help_heading = "Cluster TLS"
    )]
    pub tls_ca_path: Option<PathBuf>,

    /// PEM file with this node's certificate (used as server and as client). Re-read when it
    /// changes.
    #[arg(
        long = "cluster.tls-cert-path",
        value_name = "FILE",
        help_heading = "Cluster TLS"
    )]
    pub tls_cert_path: Option<PathBuf>,

    /// PEM file with this node's private key. Re-read when it changes.
    #[arg(
        long = "cluster.tls-key-path",
        value_name = "FILE",
        help_heading = "Cluster TLS"
    )]
    pub tls_key_path: Option<PathBuf>,

    /// The name peers' certificates must hold; by default the host of the address dialled.
    #[arg(
        long = "cluster.tls-server-name",
        value_name = "NAME",
        help_heading = "Cluster TLS"
    )]
    pub tls_server_name: Option<String>,

    /// Bind node names to certificates: a peer may only send messages as a node name its
    /// certificate holds (a DNS subject alternative name or the common name), so the holder
    /// of node-a's certificate cannot speak as node-b.
    #[arg(
        long = "cluster.tls-bind-node-name",
        help_heading = "Cluster TLS",
        requires = "enable_tls"
    )]
    pub tls_bind_node_name: bool,
}

/// Hidden protocol flags (see [`RunArgs::protocol`]); each names the `cluster::Config` field
/// it sets.
#[derive(Debug, Clone, Default, Args)]
pub struct ProtocolFlags {
    /// `indirect_checks`: members asked to probe a peer that did not answer directly.
    #[arg(long = "cluster.indirect-checks", value_name = "N", hide = true)]
    pub indirect_checks: Option<usize>,
    /// `suspicion_mult`: suspicion timeout multiplier.
    #[arg(long = "cluster.suspicion-mult", value_name = "N", hide = true)]
    pub suspicion_mult: Option<u32>,
    /// `suspicion_max_timeout_mult`: largest suspicion timeout, as a multiple of the least.
    #[arg(
        long = "cluster.suspicion-max-timeout-mult",
        value_name = "N",
        hide = true
    )]
    pub suspicion_max_timeout_mult: Option<u32>,
    /// `retransmit_mult`: how many times each update is gossiped (times log10 of the size).
    #[arg(long = "cluster.retransmit-mult", value_name = "N", hide = true)]
    pub retransmit_mult: Option<u32>,
    /// `gossip_nodes`: members gossiped to per round.
    #[arg(long = "cluster.gossip-nodes", value_name = "N", hide = true)]
    pub gossip_nodes: Option<usize>,
    /// `gossip_to_the_dead`: how long dead members still receive gossip.
    #[arg(long = "cluster.gossip-to-the-dead", value_name = "DURATION", hide = true, value_parser = parse_duration_flag)]
    pub gossip_to_the_dead: Option<Duration>,
    /// `awareness_max_multiplier`: Lifeguard's largest slow-down of probing when unhealthy.
    #[arg(
        long = "cluster.awareness-max-multiplier",
        value_name = "N",
        hide = true
    )]
    pub awareness_max_multiplier: Option<u32>,
    /// `tombstone_ttl`: how long dead and left members are remembered.
    #[arg(long = "cluster.tombstone-ttl", value_name = "DURATION", hide = true, value_parser = parse_nonzero_duration)]
    pub tombstone_ttl: Option<Duration>,
    /// `suspicion_unit`: the unit of the suspicion timeout.
    #[arg(long = "cluster.suspicion-unit", value_name = "DURATION", hide = true, value_parser = parse_nonzero_duration)]
    pub suspicion_unit: Option<Duration>,
    /// `verifiers`: members that check a suspicion someone else raised at once.
    #[arg(long = "cluster.verifiers", value_name = "N", hide = true)]
    pub verifiers: Option<usize>,
}

impl ProtocolFlags {
    /// Copies the flags that were given onto `config`.
    pub fn apply(&self, config: &mut cluster::Config) {
        if let Some(v) = self.indirect_checks {
            config.indirect_checks = v;
        }
        if let Some(v) = self.suspicion_unit {
            config.suspicion_unit = v;
        }
        if let Some(v) = self.verifiers {
            config.verifiers = v;
        }
        if let Some(v) = self.suspicion_mult {
            config.suspicion_mult = v;
        }
        if let Some(v) = self.suspicion_max_timeout_mult {
            config.suspicion_max_timeout_mult = v;
        }
        if let Some(v) = self.retransmit_mult {
            config.retransmit_mult = v;
        }
        if let Some(v) = self.gossip_nodes {
            config.gossip_nodes = v;
        }
        if let Some(v) = self.gossip_to_the_dead {
            config.gossip_to_the_dead = v;
        }
        if let Some(v) = self.awareness_max_multiplier {
            config.awareness_max_multiplier = v;
        }
        if let Some(v) = self.tombstone_ttl {
            config.tombstone_ttl = v;
        }
    }
}

/// `--server.http.listen-addr`: an IP or a host name, and a port. `:port` means every
/// interface (as in Go).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddr {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::resolve::host_port(&self.host, self.port))
    }
}

impl ListenAddr {
    /// The socket address when the host is an IP (no lookup needed).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.host
            .parse()
            .ok()
            .map(|ip| SocketAddr::new(ip, self.port))
    }
}

/// `--cluster.advertise-interfaces`, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interfaces(pub Vec<String>);

/// `--cluster.join-addresses`, checked but unresolved.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JoinAddresses(pub Vec<JoinEntry>);

fn parse_listen_addr(s: &str) -> Result<ListenAddr, String> {
    let s = s.trim();
    if let Some(port) = s.strip_prefix(':') {
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("port {port:?} is not a number between 0 and 65535"))?;
        return Ok(ListenAddr {
            host: "0.0.0.0".into(),
            port,
        });
    }
    // Port 0 (any free port) is allowed here, unlike in peer addresses.
    let (host, port) = match s.rsplit_once(':') {
        Some((h, "0")) if !h.is_empty() => {
            let (h, _) = split_host_port(&format!("{h}:1"))?;
            (h, Some(0))
        }
        _ => split_host_port(s)?,
    };
    let Some(port) = port else {
        return Err("expected host:port, for example 127.0.0.1:12345 or :12345".into());
    };
    Ok(ListenAddr { host, port })
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "t" | "yes" => Ok(true),
        "false" | "0" | "f" | "no" => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

/// Names end up in the wire format (at most 255 bytes) and on the page.
fn parse_node_name(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > 255 {
        return Err(format!(
            "is {} bytes long; at most 255 are allowed",
            s.len()
        ));
    }
    if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("must not contain spaces or control characters".into());
    }
    Ok(s.to_string())
}

fn parse_cluster_name(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Ok(String::new());
    }
    parse_node_name(s)
}

fn parse_advertise(s: &str) -> Result<String, String> {
    split_host_port(s)?;
    Ok(s.trim().to_string())
}

fn parse_interfaces(s: &str) -> Result<Interfaces, String> {
    let v: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(String::from)
        .collect();
    if v.is_empty() {
        return Err("expected a comma-separated list of interface names, such as eth0,en0".into());
    }
    Ok(Interfaces(v))
}

fn parse_join(s: &str) -> Result<JoinAddresses, String> {
    parse_join_addresses(s).map(JoinAddresses)
}

fn parse_duration_flag(s: &str) -> Result<Duration, String> {
    crate::config::parse_duration(s.trim())
        .ok_or_else(|| "expected a duration such as 60s, 1m30s, 500ms or 0".to_string())
}

fn parse_nonzero_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration_flag(s)?;
    if d.is_zero() {
        return Err("must be above zero".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<RunArgs, clap::Error> {
        let mut full = vec!["agent", "run"];
        full.extend_from_slice(args);
        Cli::try_parse_from(full).map(|c| match c.command {
            Command::Run(r) => r,
            other => panic!("not run: {other:?}"),
        })
    }

    #[test]
    fn defaults_are_grafana_agents() {
        let r = parse(&[]).unwrap();
        assert_eq!(r.listen_addr.to_string(), "127.0.0.1:12345");
        assert!(!r.cluster_enabled);
        assert_eq!(r.node_name, None);
        assert_eq!(r.advertise_interfaces.0, vec!["eth0", "en0"]);
        assert!(r.join_addresses.0.is_empty());
        assert_eq!(r.rejoin_interval, Duration::from_secs(60));
        assert_eq!(r.max_join_peers, 5);
        assert_eq!(r.cluster_name, "");
        assert_eq!(r.wait_for_size, 0);
        assert_eq!(r.wait_timeout, Duration::ZERO);
        assert_eq!(r.config_file, None);
    }

    #[test]
    fn advanced_defaults_match_the_core_config() {
        let r = parse(&[]).unwrap();
        let c = cluster::Config::default();
        assert_eq!(r.probe_interval, c.probe_interval);
        assert_eq!(r.probe_timeout, c.probe_timeout);
        assert_eq!(r.gossip_interval, c.gossip_interval);
        assert_eq!(r.push_pull_interval, c.push_pull_interval);
        assert_eq!(r.max_join_peers, c.join_peers_max);
    }

    #[test]
    fn flags_parse_in_both_go_and_gnu_styles() {
        let r = parse(&[
            "cfg.alloy",
            "--cluster.enabled",
            "--server.http.listen-addr=:8080",
            "--cluster.node-name",
            "n1",
            "--cluster.join-addresses=10.0.0.1,agent:80",
            "--cluster.rejoin-interval=0",
            "--cluster.wait-timeout=1m30s",
        ])
        .unwrap();
        assert!(r.cluster_enabled);
        assert_eq!(r.listen_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(r.node_name.as_deref(), Some("n1"));
        assert_eq!(r.join_addresses.0.len(), 2);
        assert_eq!(r.rejoin_interval, Duration::ZERO);
        assert_eq!(r.wait_timeout, Duration::from_secs(90));
        assert_eq!(r.config_file, Some(PathBuf::from("cfg.alloy")));
        assert!(!parse(&["--cluster.enabled=false"]).unwrap().cluster_enabled);
    }

    /// The hidden protocol flags set their `cluster::Config` field; unset ones keep the
    /// default, and none of them shows in `--help`.
    #[test]
    fn hidden_protocol_flags_set_the_core_config() {
        let r = parse(&[
            "--cluster.indirect-checks=2",
            "--cluster.suspicion-mult=3",
            "--cluster.suspicion-max-timeout-mult=2",
            "--cluster.retransmit-mult=5",
            "--cluster.gossip-nodes=4",
            "--cluster.gossip-to-the-dead=15s",
            "--cluster.awareness-max-multiplier=3",
            "--cluster.tombstone-ttl=2m",
            "--cluster.suspicion-unit=800ms",
            "--cluster.verifiers=5",
        ])
        .unwrap();
        let mut c = cluster::Config::default();
        r.protocol.apply(&mut c);
        assert_eq!(c.indirect_checks, 2);
        assert_eq!(c.suspicion_mult, 3);
        assert_eq!(c.suspicion_max_timeout_mult, 2);
        assert_eq!(c.retransmit_mult, 5);
        assert_eq!(c.gossip_nodes, 4);
        assert_eq!(c.gossip_to_the_dead, Duration::from_secs(15));
        assert_eq!(c.awareness_max_multiplier, 3);
        assert_eq!(c.tombstone_ttl, Duration::from_secs(120));
        assert_eq!(c.suspicion_unit, Duration::from_millis(800));
        assert_eq!(c.verifiers, 5);
        let mut d = cluster::Config::default();
        parse(&["--cluster.gossip-nodes=4"])
            .unwrap()
            .protocol
            .apply(&mut d);
        assert_eq!(d.suspicion_mult, cluster::Config::default().suspicion_mult);
        let e = parse(&["--cluster.tombstone-ttl=0"]).unwrap_err();
        assert!(e.to_string().contains("--cluster.tombstone-ttl"), "{e}");
        let mut cmd = Cli::command();
        let help = cmd
            .find_subcommand_mut("run")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(!help.contains("suspicion-mult"), "{help}");
    }

    /// Flag errors name the flag and the bad value, and exit with status 2.
    #[test]
    fn flag_errors_name_the_flag_and_the_value() {
        for (args, flag, value) in [
            (
                &["--server.http.listen-addr=nonsense"][..],
                "--server.http.listen-addr",
                "nonsense",
            ),
            (
                &["--cluster.join-addresses=10.0.0.1:99999"][..],
                "--cluster.join-addresses",
                "10.0.0.1:99999",
            ),
            (
                &["--cluster.rejoin-interval=soon"][..],
                "--cluster.rejoin-interval",
                "soon",
            ),
            (
                &["--cluster.max-join-peers=many"][..],
                "--cluster.max-join-peers",
                "many",
            ),
            (
                &["--cluster.enabled=maybe"][..],
                "--cluster.enabled",
                "maybe",
            ),
            (
                &["--cluster.probe-interval=0"][..],
                "--cluster.probe-interval",
                "0",
            ),
        ] {
            let e = parse(args).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(flag) && msg.contains(value), "{args:?}: {msg}");
            assert_eq!(e.exit_code(), 2);
        }
    }

    #[test]
    fn validate_and_fmt_take_their_arguments() {
        let c = Cli::try_parse_from(["agent", "validate", "c.alloy"]).unwrap();
        assert!(
            matches!(c.command, Command::Validate(ValidateArgs { config_file }) if config_file == PathBuf::from("c.alloy"))
        );
        let c = Cli::try_parse_from(["agent", "fmt", "-w", "c.alloy"]).unwrap();
        let Command::Fmt(f) = c.command else { panic!() };
        assert!(f.write && !f.test);
        assert_eq!(f.config_file, Some(PathBuf::from("c.alloy")));
        let e = Cli::try_parse_from(["agent", "fmt", "-w", "-t", "c.alloy"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            Cli::try_parse_from(["agent", "validate"]).is_err(),
            "a file is required"
        );
    }

    #[test]
    fn help_of_validate_and_fmt() {
        let mut cmd = Cli::command();
        for name in ["validate", "fmt"] {
            let sub = cmd.find_subcommand_mut(name).unwrap();
            let help = sub.render_long_help().to_string();
            insta::assert_snapshot!(format!("{name}_help"), help);
        }
    }

    #[test]
    fn help_documents_every_flag() {
        let mut cmd = Cli::command();
        let run = cmd.find_subcommand_mut("run").unwrap();
        let help = run.render_long_help().to_string();
        insta::assert_snapshot!("run_help", help);
    }
}
