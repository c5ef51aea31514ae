//! The process engine's network: one network namespace per node, each with a veth into a
//! bridge in the host namespace and an address on the bridge's /24; an nftables table in every
//! namespace drops what a partition or packet loss must drop; `tc netem` delays packets when
//! the kernel has it.
//!
//! Owns creating, changing and removing these resources (iproute2 and nftables commands), and
//! nothing about agents. Every name carries a run-unique tag (`<pid>-<run>` in hex), so parallel
//! runs never collide; a [`Testbed`] removes what it created when dropped (normal end, error,
//! panic, Ctrl-C); resources left by a run whose process died (SIGKILL) are swept by the next
//! run, which finds their pid gone.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use crate::observe::Reachability;
use crate::scenario::LatencyRange;

/// Prefix of every namespace this engine creates: `simp-<tag>-<node>`.
const NETNS_PREFIX: &str = "simp-";
/// Prefix of the bridge and host-side veth names: `sp<tag>b`, `sp<tag>v<index>`.
const LINK_PREFIX: &str = "sp";
/// The nftables table every namespace gets.
const TABLE: &str = "inet simp";
/// Serialises address allocation between runs in this process (the file lock does it between
/// processes).
static ALLOCATION: Mutex<()> = Mutex::new(());
static RUNS: AtomicU32 = AtomicU32::new(0);

/// Runs a command, returning its stdout or an error naming the command and its stderr.
pub fn run_cmd(args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    use std::io::Write as _;
    let shown = args.join(" ");
    let mut resolved: Vec<std::ffi::OsString> = args[1..].iter().map(Into::into).collect();
    // `ip netns exec NS PROGRAM ...`: PROGRAM is looked up like the others.
    if args.len() > 4 && args[1] == "netns" && args[2] == "exec" {
        resolved[3] = tool(args[4]).into_os_string();
    }
    let mut child = Command::new(tool(args[0]))
        .args(&resolved)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `{shown}`: {e}"))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|e| format!("`{shown}`: cannot write its input: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("`{shown}`: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{shown}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `name` as found on PATH, else in /usr/sbin or /sbin (where Debian puts iproute2 and
/// nftables, off a non-root PATH).
fn tool(name: &str) -> std::path::PathBuf {
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()));
    if !on_path {
        for dir in ["/usr/sbin", "/sbin"] {
            let p = std::path::Path::new(dir).join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    name.into()
}

/// What the engine needs from the machine, checked before anything is created. The error
/// names what is missing and how to get it.
pub fn preflight() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(
            "the process engine needs root (it creates network namespaces, a bridge and nftables rules): run sim as root".into(),
        );
    }
    run_cmd(&["ip", "-V"], None).map_err(|e| {
        format!("iproute2 (`ip`) is needed to build the network ({e}): apt-get install iproute2")
    })?;
    run_cmd(&["nft", "--version"], None).map_err(|e| {
        format!(
            "nftables (`nft`) is needed for partitions and packet loss ({e}): apt-get install nftables"
        )
    })?;
    if !std::path::Path::new("/run/netns").exists() {
        // `ip netns add` creates it; a read-only /run is the one case this catches early.
        std::fs::create_dir_all("/run/netns")
            .map_err(|e| format!("cannot create /run/netns for network namespaces: {e}"))?;
    }
    Ok(())
}

/// One node's place on the network.
#[derive(Debug, Clone)]
pub struct NodeNet {
    pub name: String,
    pub netns: String,
    pub ip: Ipv4Addr,
}

/// The bridge, the namespaces and their rules, for one run. Removed on drop.
#[derive(Debug)]
pub struct Testbed {
    pub tag: String,
    bridge: Option<String>,
    /// The bridge's address: the observer's source address, never dropped by the rules.
    pub host_ip: Ipv4Addr,
    /// In the order given to [`Testbed::create`].
    pub nodes: Vec<NodeNet>,
    /// Namespaces created so far (removed on drop).
    created: Vec<String>,
    /// Whether `tc netem` works in this kernel (probed in the first namespace).
    pub netem: bool,
}

impl Testbed {
    /// Builds the network for `names` (at most 200 nodes: one /24).
    pub fn create(names: &[String]) -> Result<Testbed, String> {
        assert!(names.len() <= 200, "one /24 per run");
        let pid = std::process::id();
        let run = RUNS.fetch_add(1, Ordering::Relaxed) % 0x1000;
        let tag = format!("{pid:x}-{run:x}");
        let mut bed = Testbed {
            bridge: None,
            host_ip: Ipv4Addr::UNSPECIFIED,
            nodes: Vec::new(),
            created: Vec::new(),
            netem: false,
            tag,
        };
        {
            // One allocation at a time on this machine: the subnet is chosen by looking at the
            // addresses in use, which the bridge then takes.
            let _in_process = ALLOCATION.lock().unwrap_or_else(|e| e.into_inner());
            let _lock = FileLock::acquire()?;
            sweep_stale();
            let subnet = free_subnet()?;
            let bridge = format!("{LINK_PREFIX}{}b", bed.tag);
            run_cmd(&["ip", "link", "add", &bridge, "type", "bridge"], None)?;
            bed.bridge = Some(bridge.clone());
            // Bridged frames skip the host's iptables (br_netfilter would otherwise apply the
            // host's FORWARD policy to node-to-node traffic); refused on old kernels: harmless.
            let _ = run_cmd(
                &[
                    "ip",
                    "link",
                    "set",
                    &bridge,
                    "type",
                    "bridge",
                    "nf_call_iptables",
                    "0",
                    "nf_call_ip6tables",
                    "0",
                    "nf_call_arptables",
                    "0",
                ],
                None,
            );
            bed.host_ip = Ipv4Addr::new(subnet[0], subnet[1], subnet[2], 1);
            let cidr = format!("{}/24", bed.host_ip);
            run_cmd(&["ip", "addr", "add", &cidr, "dev", &bridge], None)?;
            run_cmd(&["ip", "link", "set", &bridge, "up"], None)?;
            for (i, name) in names.iter().enumerate() {
                let ip = Ipv4Addr::new(subnet[0], subnet[1], subnet[2], 2 + i as u8);
                bed.nodes.push(NodeNet {
                    name: name.clone(),
                    netns: format!("{NETNS_PREFIX}{}-{name}", bed.tag),
                    ip,
                });
            }
        }
        for i in 0..bed.nodes.len() {
            bed.add_namespace(i)?;
        }
        bed.netem = bed.probe_netem();
        Ok(bed)
    }

    fn add_namespace(&mut self, i: usize) -> Result<(), String> {
        let node = self.nodes[i].clone();
        let bridge = self.bridge.clone().expect("bridge first");
        let ns = node.netns.as_str();
        run_cmd(&["ip", "netns", "add", ns], None)?;
        self.created.push(ns.to_string());
        let veth = format!("{LINK_PREFIX}{}v{i:x}", self.tag);
        run_cmd(
            &[
                "ip", "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", ns,
            ],
            None,
        )?;
        run_cmd(&["ip", "link", "set", &veth, "master", &bridge], None)?;
        run_cmd(&["ip", "link", "set", &veth, "up"], None)?;
        let cidr = format!("{}/24", node.ip);
        run_cmd(&["ip", "-n", ns, "addr", "add", &cidr, "dev", "eth0"], None)?;
        run_cmd(&["ip", "-n", ns, "link", "set", "eth0", "up"], None)?;
        run_cmd(&["ip", "-n", ns, "link", "set", "lo", "up"], None)?;
        let table = format!(
            "table {TABLE} {{\n  counter dropped {{}}\n  chain input {{\n    type filter hook input priority filter; policy accept;\n  }}\n}}\n"
        );
        run_cmd(&["ip", "netns", "exec", ns, "nft", "-f", "-"], Some(&table))?;
        Ok(())
    }

    /// Whether the kernel has `tc netem` (tried on the first namespace's loopback).
    fn probe_netem(&self) -> bool {
        let Some(first) = self.nodes.first() else {
            return false;
        };
        let ns = first.netns.as_str();
        let ok = run_cmd(
            &[
                "ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "lo", "root", "netem",
                "delay", "1ms",
            ],
            None,
        )
        .is_ok();
        if ok {
            let _ = run_cmd(
                &[
                    "ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", "lo", "root",
                ],
                None,
            );
        }
        ok
    }

    pub fn node(&self, name: &str) -> Option<&NodeNet> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Puts `reachability` and `loss` in force: in every namespace, packets from nodes it
    /// cannot reach are dropped, then packets from the other nodes with probability `loss`.
    /// The observer (the bridge's address) is never dropped. One atomic nft transaction per
    /// namespace.
    pub fn set_rules(
        &self,
        reachability: &Reachability,
        loss: f64,
        off: &std::collections::BTreeSet<String>,
    ) -> Result<(), String> {
        let subnet = format!(
            "{}/24",
            Ipv4Addr::from(u32::from(self.host_ip) & 0xffff_ff00)
        );
        for node in &self.nodes {
            let blocked: Vec<String> = self
                .nodes
                .iter()
                .filter(|o| !reachability.can_reach(&node.name, &o.name) || off.contains(&o.name))
                .map(|o| o.ip.to_string())
                .collect();
            let mut script = format!("flush chain {TABLE} input\n");
            if off.contains(&node.name) {
                // A host without power: nothing comes in, so nothing answers (no RST).
                script.push_str(&format!(
                    "add rule {TABLE} input ip saddr {subnet} counter name \"dropped\" drop\n"
                ));
            }
            if !blocked.is_empty() {
                script.push_str(&format!(
                    "add rule {TABLE} input ip saddr {{ {} }} counter name \"dropped\" drop\n",
                    blocked.join(", ")
                ));
            }
            let per_million = (loss.clamp(0.0, 1.0) * 1_000_000.0).round() as u64;
            if per_million > 0 {
                script.push_str(&format!(
                    "add rule {TABLE} input ip saddr {subnet} ip saddr != {} numgen random mod 1000000 < {per_million} counter name \"dropped\" drop\n",
                    self.host_ip
                ));
            }
            run_cmd(
                &["ip", "netns", "exec", &node.netns, "nft", "-f", "-"],
                Some(&script),
            )?;
        }
        Ok(())
    }

    /// Delays every packet a node sends by a uniform draw from `range` (`tc netem`), or
    /// removes the delay when `range` is zero. Only when [`Testbed::netem`].
    pub fn set_latency(&self, range: LatencyRange) -> Result<(), String> {
        let (min, max) = (range.min.as_micros() as u64, range.max.as_micros() as u64);
        for node in &self.nodes {
            let ns = node.netns.as_str();
            if max == 0 {
                let _ = run_cmd(
                    &[
                        "ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", "eth0", "root",
                    ],
                    None,
                );
                continue;
            }
            let delay = format!("{}us", (min + max) / 2);
            let jitter = format!("{}us", (max - min) / 2);
            // netem draws uniformly in delay +- jitter when no distribution is named.
            run_cmd(
                &[
                    "ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", "eth0", "root",
                    "netem", "delay", &delay, &jitter,
                ],
                None,
            )?;
        }
        Ok(())
    }

    /// Packets the rules dropped so far, all namespaces together.
    pub fn dropped_packets(&self) -> u64 {
        let mut total = 0;
        for node in &self.nodes {
            let Ok(text) = run_cmd(
                &[
                    "ip",
                    "netns",
                    "exec",
                    &node.netns,
                    "nft",
                    "list",
                    "counter",
                    "inet",
                    "simp",
                    "dropped",
                ],
                None,
            ) else {
                continue;
            };
            total += text
                .split_whitespace()
                .skip_while(|w| *w != "packets")
                .nth(1)
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
        }
        total
    }

    /// Removes every namespace (with its veth, rules and qdiscs) and the bridge. Returns what
    /// could not be removed.
    pub fn remove(&mut self) -> Result<(), String> {
        let mut errors = Vec::new();
        // The host-side veths first: deleting one end removes the pair at once, where a
        // deleted namespace lets the kernel take its veths down later (a check right after
        // the run would still find them).
        for i in 0..self.created.len() {
            let veth = format!("{LINK_PREFIX}{}v{i:x}", self.tag);
            let _ = run_cmd(&["ip", "link", "del", &veth], None);
        }
        for ns in std::mem::take(&mut self.created) {
            if let Err(e) = run_cmd(&["ip", "netns", "del", &ns], None) {
                errors.push(e);
            }
        }
        if let Some(bridge) = self.bridge.take() {
            if let Err(e) = run_cmd(&["ip", "link", "del", &bridge], None) {
                errors.push(e);
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            eprintln!("sim: process engine: could not remove everything: {e}");
        }
    }
}

/// An exclusive lock between processes (flock on a file in the temp dir), released on drop.
struct FileLock(std::fs::File);

impl FileLock {
    fn acquire() -> Result<FileLock, String> {
        use std::os::fd::AsRawFd;
        let path = std::env::temp_dir().join("sim-process-engine.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("cannot open the lock file {}: {e}", path.display()))?;
        // SAFETY: flock on a descriptor we own; blocks until the lock is ours.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(format!(
                "cannot lock {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            ));
        }
        Ok(FileLock(file))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: unlocking a descriptor we own.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// The pid in a tag `<pid hex>-<run hex>`, if it is one.
pub(super) fn tag_pid(tag: &str) -> Option<u32> {
    let (pid, run) = tag.split_once('-')?;
    u32::from_str_radix(run, 16).ok()?;
    u32::from_str_radix(pid, 16).ok()
}

pub(super) fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes namespaces and bridges left by runs whose process is gone (killed before its
/// clean-up could run).
fn sweep_stale() {
    if let Ok(list) = run_cmd(&["ip", "netns", "list"], None) {
        for ns in list.lines().filter_map(|l| l.split_whitespace().next()) {
            let Some(rest) = ns.strip_prefix(NETNS_PREFIX) else {
                continue;
            };
            let mut parts = rest.splitn(3, '-');
            let (Some(pid), Some(run)) = (parts.next(), parts.next()) else {
                continue;
            };
            if tag_pid(&format!("{pid}-{run}")).is_some_and(|p| !pid_alive(p)) {
                let _ = run_cmd(&["ip", "netns", "del", ns], None);
            }
        }
    }
    if let Ok(list) = run_cmd(&["ip", "-o", "link", "show", "type", "bridge"], None) {
        for line in list.lines() {
            let Some(name) = line.split(':').nth(1).map(str::trim) else {
                continue;
            };
            let stale = name
                .strip_prefix(LINK_PREFIX)
                .and_then(|t| t.strip_suffix('b'))
                .and_then(tag_pid)
                .is_some_and(|p| !pid_alive(p));
            if stale {
                let _ = run_cmd(&["ip", "link", "del", name], None);
            }
        }
    }
}

/// A /24 no interface address and no route of /24 or longer uses: 10.213.0.0/16 first, then
/// 172.29.0.0/16.
fn free_subnet() -> Result<[u8; 3], String> {
    let mut used: Vec<(u32, u32)> = Vec::new(); // (network, prefix length >= 24)
    let addrs = run_cmd(&["ip", "-4", "-o", "addr", "show"], None)?;
    for line in addrs.lines() {
        let mut words = line.split_whitespace();
        if let Some(cidr) = words.by_ref().skip_while(|w| *w != "inet").nth(1) {
            if let Some(p) = parse_prefix(cidr) {
                used.push((p.0, 32)); // the address itself
                if p.1 >= 24 {
                    used.push(p);
                }
            }
        }
    }
    let routes = run_cmd(&["ip", "-4", "route", "show", "table", "all"], None)?;
    for line in routes.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        let first = if matches!(first, "local" | "broadcast" | "unicast") {
            line.split_whitespace().nth(1).unwrap_or("")
        } else {
            first
        };
        if let Some(p) = parse_prefix(first) {
            if p.1 >= 24 {
                used.push(p);
            }
        }
    }
    for (a, b) in [(10u8, 213u8), (172, 29)] {
        for c in 0..=255u8 {
            let net = u32::from(Ipv4Addr::new(a, b, c, 0));
            // Every entry is /24 or longer: it lies inside exactly one /24.
            let taken = used.iter().any(|&(n, _)| n & 0xffff_ff00 == net);
            if !taken {
                return Ok([a, b, c]);
            }
        }
    }
    Err("no free /24 in 10.213.0.0/16 or 172.29.0.0/16 for the test network".into())
}

/// `a.b.c.d/len` or a bare address (`/32`).
fn parse_prefix(s: &str) -> Option<(u32, u32)> {
    let (ip, len) = match s.split_once('/') {
        Some((ip, len)) => (ip, len.parse::<u32>().ok()?),
        None => (s, 32),
    };
    let ip: Ipv4Addr = ip.parse().ok()?;
    (len <= 32).then_some((u32::from(ip), len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_name_their_pid() {
        assert_eq!(tag_pid("3f2a1-0"), Some(0x3f2a1));
        assert_eq!(tag_pid("3f2a1-1b"), Some(0x3f2a1));
        assert_eq!(tag_pid("bridge"), None);
        assert_eq!(tag_pid("zz-1"), None);
    }

    #[test]
    fn prefixes_parse() {
        assert_eq!(
            parse_prefix("10.213.4.0/24"),
            Some((u32::from(Ipv4Addr::new(10, 213, 4, 0)), 24))
        );
        assert_eq!(
            parse_prefix("10.0.0.1"),
            Some((u32::from(Ipv4Addr::new(10, 0, 0, 1)), 32))
        );
        assert_eq!(parse_prefix("default"), None);
    }
}
