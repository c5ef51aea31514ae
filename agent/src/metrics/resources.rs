//! The process and machine series of the resources dashboard, read from `/proc` at scrape
//! time: `process_*` (the Prometheus client convention) and Alloy's
//! `agent_resources_process_*` and `agent_resources_machine_{rx,tx}_bytes_total` (every
//! network interface of the machine, or of the container's network namespace, loopback
//! included, as gopsutil counts them). On a system without `/proc` nothing is exported.
//!
//! The Go runtime series the public dashboards also chart (`go_goroutines`, `go_gc_*`,
//! `go_memstats_*`) have no meaning for a Rust process and are not exported (see
//! operations/README.md).

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;

use super::{counter, gauge};

/// What `/proc/self/stat` says about this process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcSelf {
    pub rss_bytes: u64,
    pub virtual_bytes: u64,
    pub cpu_seconds: f64,
    pub start_time_seconds: u64,
}

/// Encodes every resources series.
pub fn encode(e: &mut DescriptorEncoder) -> std::fmt::Result {
    if let Some(p) = read_proc_self() {
        for prefix in ["process", "agent_resources_process"] {
            gauge(
                e,
                &[],
                &format!("{prefix}_resident_memory_bytes"),
                "Resident memory size in bytes.",
                p.rss_bytes as i64,
            )?;
            gauge(
                e,
                &[],
                &format!("{prefix}_virtual_memory_bytes"),
                "Virtual memory size in bytes.",
                p.virtual_bytes as i64,
            )?;
            float_counter(
                e,
                &format!("{prefix}_cpu_seconds"),
                "Total user and system CPU time spent in seconds.",
                p.cpu_seconds,
            )?;
            gauge(
                e,
                &[],
                &format!("{prefix}_start_time_seconds"),
                "Start time of the process since unix epoch in seconds.",
                p.start_time_seconds as i64,
            )?;
        }
    }
    if let Ok(dev) = std::fs::read_to_string("/proc/net/dev") {
        let (rx, tx) = net_dev_totals(&dev);
        counter(
            e,
            &[],
            "agent_resources_machine_rx_bytes",
            "Total bytes, host-wide, received across all network interfaces.",
            rx,
        )?;
        counter(
            e,
            &[],
            "agent_resources_machine_tx_bytes",
            "Total bytes, host-wide, sent across all network interfaces.",
            tx,
        )?;
    }
    Ok(())
}

/// A counter with a fractional value; `name` without `_total`.
fn float_counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: f64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

pub fn read_proc_self() -> Option<ProcSelf> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_stat(&stat, clock_ticks(), page_size(), boot_time()?)
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).max(1) as f64
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).max(1) as u64
}

fn boot_time() -> Option<u64> {
    std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
}

/// `/proc/PID/stat`: fields after the parenthesised command name (which may hold spaces);
/// utime is field 14, stime 15, starttime 22, vsize 23, rss 24 (pages).
fn parse_stat(stat: &str, ticks: f64, page: u64, btime: u64) -> Option<ProcSelf> {
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| f.get(n - 3).copied();
    let utime: f64 = field(14)?.parse().ok()?;
    let stime: f64 = field(15)?.parse().ok()?;
    let start_ticks: f64 = field(22)?.parse().ok()?;
    let vsize: u64 = field(23)?.parse().ok()?;
    let rss_pages: u64 = field(24)?.parse().ok()?;
    Some(ProcSelf {
        rss_bytes: rss_pages * page,
        virtual_bytes: vsize,
        cpu_seconds: (utime + stime) / ticks,
        start_time_seconds: btime + (start_ticks / ticks) as u64,
    })
}

/// Received and sent bytes summed over the interfaces of `/proc/net/dev`.
fn net_dev_totals(dev: &str) -> (u64, u64) {
    let mut rx = 0u64;
    let mut tx = 0u64;
    for line in dev.lines().skip(2) {
        let Some((_, counters)) = line.split_once(':') else {
            continue;
        };
        let f: Vec<u64> = counters
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        if f.len() >= 16 {
            rx = rx.saturating_add(f[0]);
            tx = tx.saturating_add(f[8]);
        }
    }
    (rx, tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_after_a_command_name_with_spaces() {
        // pid (comm) state ppid ... with utime=250 stime=50 starttime=1000 vsize rss=300.
        let stat = "42 (my agent (x)) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 5 0 1000 123456789 300 18446744073709551615";
        let p = parse_stat(stat, 100.0, 4096, 1_700_000_000).unwrap();
        assert_eq!(p.cpu_seconds, 3.0);
        assert_eq!(p.rss_bytes, 300 * 4096);
        assert_eq!(p.virtual_bytes, 123_456_789);
        assert_eq!(p.start_time_seconds, 1_700_000_010);
    }

    #[test]
    fn net_dev_sums_every_interface() {
        let dev = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo: 1000 10 0 0 0 0 0 0 1000 10 0 0 0 0 0 0\n  eth0: 5000 50 0 0 0 0 0 0 7000 70 0 0 0 0 0 0\n";
        assert_eq!(net_dev_totals(dev), (6000, 8000));
    }

    #[test]
    fn this_process_is_read() {
        let p = read_proc_self().expect("Linux /proc");
        assert!(p.rss_bytes > 0 && p.virtual_bytes >= p.rss_bytes);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(p.start_time_seconds <= now + 1 && p.start_time_seconds + 86_400 * 365 > now);
    }
}
