//! The process engine's agents: where the `agent` binary is, the command line and config file
//! a scenario gives each node, and one node's process through its life (spawn in its network
//! namespace, SIGKILL, SIGTERM, SIGHUP, exit).
//!
//! Owns processes and their files (config, storage, log), nothing about the network or about
//! observations.

use std::fmt::Write as _;
use std::fs::File;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use cluster::shard::target_key;

use crate::engines::common;
use crate::scenario::{ProtocolOverrides, Scenario};

/// The port every agent listens on, in its own namespace.
pub const PORT: u16 = 7946;

/// Environment variable naming the agent binary, when it is not next to `sim`.
pub const AGENT_ENV: &str = "SIM_AGENT_BIN";

/// The address every simulated target has (nothing listens there: a scrape fails at once);
/// targets differ by their `sim_target` label.
const TARGET_ADDRESS: &str = "127.0.0.1:9";

/// The id of the scrape component in every agent's config (`agent_scrape_targets*` label).
pub const SCRAPE_COMPONENT: &str = "prometheus.scrape.sim";

/// The `agent` binary: `$SIM_AGENT_BIN`, else next to the running executable (`target/release/
/// sim` has `target/release/agent`; a test binary in `target/release/deps/` looks one folder up).
pub fn locate_agent() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(AGENT_ENV) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("{AGENT_ENV}={}: no such file", p.display()))
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate sim itself: {e}"))?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    let candidates = [dir.join("agent"), dir.join("../agent")];
    candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        format!(
            "the process engine runs the agent binary, expected at {} (next to sim): build it with `cargo build --release -p agent` (or `cargo build --release`), or name it with {AGENT_ENV}",
            candidates[0].display()
        )
    })
}

/// The shard key the agent gives simulated target `i` (its labels' key, as for any scrape
/// target), so that ownership computed from a view matches what the agent scrapes.
pub fn agent_target_key(i: u32) -> u64 {
    let name = format!("target-{i}");
    target_key(&[
        ("__address__", TARGET_ADDRESS),
        ("sim_target", name.as_str()),
    ])
}

/// The agent config of a node that lists `count` targets: one clustered scrape component.
pub fn config_text(count: u32) -> String {
    let mut s = format!(
        "// Written by sim's process engine: {count} targets sharded over the cluster.\n\
         prometheus.scrape \"sim\" {{\n  targets = [\n"
    );
    for i in 0..count {
        let _ = writeln!(
            s,
            "    {{__address__ = \"{TARGET_ADDRESS}\", sim_target = \"target-{i}\"}},"
        );
    }
    s.push_str(
        "  ]\n  forward_to = []\n  scrape_interval = \"1h\"\n  clustering {\n    enabled = true\n  }\n}\n",
    );
    s
}

/// A duration as an agent flag value.
fn flag_duration(d: Duration) -> String {
    if d.is_zero() {
        "0".to_string()
    } else if d.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}ns", d.as_nanos())
    }
}

/// The protocol flags every agent of the run gets: the whole config the other engines run
/// (core defaults with the scenario's overrides), so that a change of defaults on either side
/// cannot make the engines run different protocols.
pub fn protocol_flags(scenario: &Scenario) -> Vec<String> {
    // Every override the scenario format has must reach the agent: a new field here fails to
    // compile until it is mapped to a flag below.
    let ProtocolOverrides {
        probe_interval: _,
        probe_timeout: _,
        indirect_checks: _,
        suspicion_mult: _,
        suspicion_max_timeout_mult: _,
        retransmit_mult: _,
        gossip_interval: _,
        gossip_nodes: _,
        gossip_to_the_dead: _,
        push_pull_interval: _,
        awareness_max_multiplier: _,
        tombstone_ttl: _,
        join_peers_max: _,
        rejoin_interval: _,
        suspicion_unit: _,
        verifiers: _,
    } = &scenario.cluster.protocol;
    let c = common::protocol_config(scenario);
    let join_max = if c.join_peers_max >= u32::MAX as usize {
        0
    } else {
        c.join_peers_max
    };
    vec![
        format!(
            "--cluster.probe-interval={}",
            flag_duration(c.probe_interval)
        ),
        format!("--cluster.probe-timeout={}", flag_duration(c.probe_timeout)),
        format!("--cluster.indirect-checks={}", c.indirect_checks),
        format!("--cluster.suspicion-mult={}", c.suspicion_mult),
        format!(
            "--cluster.suspicion-max-timeout-mult={}",
            c.suspicion_max_timeout_mult
        ),
        format!("--cluster.retransmit-mult={}", c.retransmit_mult),
        format!(
            "--cluster.gossip-interval={}",
            flag_duration(c.gossip_interval)
        ),
        format!("--cluster.gossip-nodes={}", c.gossip_nodes),
        format!(
            "--cluster.gossip-to-the-dead={}",
            flag_duration(c.gossip_to_the_dead)
        ),
        format!(
            "--cluster.push-pull-interval={}",
            flag_duration(c.push_pull_interval)
        ),
        format!(
            "--cluster.awareness-max-multiplier={}",
            c.awareness_max_multiplier
        ),
        format!("--cluster.tombstone-ttl={}", flag_duration(c.tombstone_ttl)),
        format!(
            "--cluster.suspicion-unit={}",
            flag_duration(c.suspicion_unit)
        ),
        format!("--cluster.verifiers={}", c.verifiers),
        format!("--cluster.max-join-peers={join_max}"),
        format!(
            "--cluster.rejoin-interval={}",
            flag_duration(c.rejoin_interval.unwrap_or(Duration::ZERO))
        ),
        format!(
            "--cluster.leave-timeout={}",
            flag_duration(common::LEAVE_TIMEOUT)
        ),
    ]
}

/// One node: its files, and its process while it runs.
pub struct AgentProc {
    pub name: String,
    /// `ip:port` it listens on and advertises.
    pub addr: String,
    /// `/run/netns/<name>` of its namespace.
    netns_path: PathBuf,
    dir: PathBuf,
    child: Option<Child>,
    /// Processes started before this one (0 for the first).
    pub restarts: u32,
    /// Processes started in all.
    pub started: u32,
    /// It was told to leave (SIGTERM): its exit is expected.
    pub leaving: bool,
    /// Targets its config file lists.
    pub config_targets: u32,
}

impl AgentProc {
    pub fn new(name: &str, addr: String, netns: &str, run_dir: &Path, targets: u32) -> Self {
        AgentProc {
            name: name.to_string(),
            addr,
            netns_path: Path::new("/run/netns").join(netns),
            dir: run_dir.join(name),
            child: None,
            restarts: 0,
            started: 0,
            leaving: false,
            config_targets: targets,
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("agent.log")
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("agent.alloy")
    }

    /// Writes its config file listing `count` targets.
    pub fn write_config(&mut self, count: u32) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        let path = self.config_path();
        // Written aside and renamed: a reload never reads half a file.
        let tmp = self.dir.join("agent.alloy.tmp");
        std::fs::write(&tmp, config_text(count))
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        self.config_targets = count;
        Ok(())
    }

    /// Starts a process (the first, or a restart: same name, address, storage and config).
    pub fn spawn(&mut self, agent: &Path, flags: &[String], join: &[String]) -> Result<(), String> {
        if self.child.is_some() {
            return Err(format!("{}: already running", self.name));
        }
        if self.started > 0 {
            self.restarts += 1;
        }
        self.leaving = false;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| format!("cannot open {}: {e}", self.log_path().display()))?;
        use std::io::Write as _;
        let _ = writeln!(
            &log,
            "----- sim: process {} of {} -----",
            self.started + 1,
            self.name
        );
        let netns = File::open(&self.netns_path)
            .map_err(|e| format!("cannot open {}: {e}", self.netns_path.display()))?;
        let mut cmd = Command::new(agent);
        cmd.arg("run")
            .arg(self.config_path())
            .arg(format!("--server.http.listen-addr={}", self.addr))
            .arg(format!(
                "--storage.path={}",
                self.dir.join("data").display()
            ))
            .arg("--cluster.enabled")
            .arg(format!("--cluster.node-name={}", self.name))
            .arg(format!("--cluster.advertise-address={}", self.addr))
            .arg(format!("--cluster.join-addresses={}", join.join(",")))
            .args(flags)
            .env("AGENT_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            // Its own process group: a Ctrl-C at the terminal reaches sim, which stops it.
            .process_group(0);
        let fd = std::os::fd::AsRawFd::as_raw_fd(&netns);
        // SAFETY: between fork and exec the closure makes two async-signal-safe system calls on
        // a descriptor the parent keeps open until `spawn` returns.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // Dies with the thread that started it: no agent outlives a killed sim.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("{}: cannot start {}: {e}", self.name, agent.display()))?;
        drop(netns);
        self.child = Some(child);
        self.started += 1;
        Ok(())
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends `signal` to the running process.
    pub fn signal(&self, signal: i32) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on our own child, which we have not reaped.
            unsafe { libc::kill(pid as i32, signal) };
        }
    }

    /// SIGKILL, then reap it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.leaving = false;
    }

    /// The exit status if the process has ended (it is then no longer running).
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(status)
    }

    /// The last `n` lines of its log, for error messages.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_become_flag_values_the_agent_reads() {
        assert_eq!(flag_duration(Duration::ZERO), "0");
        assert_eq!(flag_duration(Duration::from_secs(2)), "2000ms");
        assert_eq!(flag_duration(Duration::from_micros(1500)), "1500000ns");
    }

    #[test]
    fn every_config_target_has_its_own_key() {
        let text = config_text(3);
        assert!(text.contains("sim_target = \"target-2\""), "{text}");
        assert!(!text.contains("target-3"), "{text}");
        let mut keys: Vec<u64> = (0..1000).map(agent_target_key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), 1000);
    }
}
