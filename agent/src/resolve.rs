//! Join-address resolution for `--cluster.join-addresses`.
//!
//! Each comma-separated entry is `IP[:port]`, `[IPv6][:port]` or `host[:port]`; a missing port
//! is the HTTP listener's. IPs are used as given. Host names are looked up as A/AAAA records
//! (the system resolver, `tokio::net::lookup_host`); a name without an explicit port that has
//! no A/AAAA record is then looked up as an SRV record (`hickory-resolver`, reading
//! `/etc/resolv.conf`), whose targets and ports are used. Lookups happen again at every
//! (re)join, so a headless service that changed since start is followed.
//!
//! Tests point a [`Dns`] at a local DNS responder ([`Dns::with_nameserver`]); then every lookup,
//! A/AAAA included, goes to that server, so no test query leaves the machine.
//!
//! Addresses that are this node itself (its advertised address, or its listener port on a
//! local IP) are dropped, so a seed node may list itself or a DNS name that includes it.
//! This module only turns names into addresses; it never contacts a peer.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;
use rand::seq::SliceRandom;
use tokio::sync::OnceCell;

/// A lookup that takes longer than this counts as failed for this attempt.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// SRV records followed per name; more are ignored.
const SRV_TARGETS_MAX: usize = 64;
/// Entries accepted in `--cluster.join-addresses`.
pub const JOIN_ENTRIES_MAX: usize = 256;

/// One entry of `--cluster.join-addresses`, checked for syntax but not resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinEntry {
    /// The entry as the user wrote it.
    pub raw: String,
    pub host: String,
    pub port: Option<u16>,
}

impl JoinEntry {
    fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

/// Split `host[:port]`, `IP[:port]` or `[IPv6][:port]`. A bare IPv6 address has no port.
pub fn split_host_port(s: &str) -> Result<(String, Option<u16>), String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty address".into());
    }
    if let Some(rest) = s.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err(format!("{s:?}: missing ']' after the IPv6 address"));
        };
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{s:?}: {host:?} is not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            p => Some(parse_port(
                s,
                p.strip_prefix(':')
                    .ok_or_else(|| format!("{s:?}: expected ':port' after ']'"))?,
            )?),
        };
        return Ok((host.to_string(), port));
    }
    if s.parse::<std::net::Ipv6Addr>().is_ok() {
        return Ok((s.to_string(), None));
    }
    match s.rsplit_once(':') {
        Some((host, port)) => {
            if host.is_empty() {
                return Err(format!("{s:?}: missing host before ':'"));
            }
            if host.contains(':') {
                return Err(format!(
                    "{s:?}: write IPv6 addresses with a port as [address]:port"
                ));
            }
            check_host(s, host)?;
            Ok((host.to_string(), Some(parse_port(s, port)?)))
        }
        None => {
            check_host(s, s)?;
            Ok((s.to_string(), None))
        }
    }
}

fn parse_port(whole: &str, p: &str) -> Result<u16, String> {
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!(
            "{whole:?}: port {p:?} is not a number between 1 and 65535"
        )),
        Ok(n) => Ok(n),
    }
}

fn check_host(whole: &str, host: &str) -> Result<(), String> {
    let ok = host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{whole:?}: {host:?} is neither an IP address nor a host name"
        ))
    }
}

/// Parse the comma list of `--cluster.join-addresses`. Empty entries are skipped.
pub fn parse_join_addresses(s: &str) -> Result<Vec<JoinEntry>, String> {
    let mut out = Vec::new();
    for raw in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (host, port) = split_host_port(raw)?;
        out.push(JoinEntry {
            raw: raw.to_string(),
            host,
            port,
        });
    }
    if out.len() > JOIN_ENTRIES_MAX {
        return Err(format!(
            "{} entries; at most {JOIN_ENTRIES_MAX} are accepted",
            out.len()
        ));
    }
    Ok(out)
}

/// Format an address the way nodes advertise themselves (`ip:port`, `[v6]:port`).
pub fn host_port(host: &str, port: u16) -> String {
    match host.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port).to_string(),
        Err(_) => format!("{host}:{port}"),
    }
}

/// What counts as "this node" when filtering join addresses.
#[derive(Debug, Clone)]
pub struct SelfAddrs {
    pub advertise: String,
    pub listen: SocketAddr,
    /// Every IP of every local interface.
    pub local_ips: Vec<IpAddr>,
}

impl SelfAddrs {
    fn is_self(&self, addr: &SocketAddr) -> bool {
        if addr.to_string() == self.advertise || *addr == self.listen {
            return true;
        }
        if addr.port() != self.listen.port() {
            return false;
        }
        let ip = addr.ip();
        if self.listen.ip().is_unspecified() {
            ip.is_loopback() || ip.is_unspecified() || self.local_ips.contains(&ip)
        } else {
            ip == self.listen.ip()
        }
    }
}

/// The outcome of resolving every entry once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// Peer addresses to contact, deduplicated, self removed, shuffled.
    pub addrs: Vec<String>,
    /// Entries that resolved (at least partly) to this node.
    pub self_entries: Vec<String>,
    /// Entries that did not resolve, with why.
    pub errors: Vec<(String, String)>,
}

impl Resolution {
    /// Whether the user pointed this node at peers other than itself (resolvable or not):
    /// when it then sees no peer, it is alone by accident, not a seed by design.
    pub fn expects_peers(&self) -> bool {
        !self.addrs.is_empty() || !self.errors.is_empty()
    }
}

/// Resolves join entries; owns the (lazily built) SRV resolver.
#[derive(Clone)]
pub struct Dns {
    /// Name server for SRV lookups; `None` reads the system configuration.
    nameserver: Option<SocketAddr>,
    srv: Arc<OnceCell<Result<TokioResolver, String>>>,
}

impl Default for Dns {
    fn default() -> Self {
        Dns::system()
    }
}

impl Dns {
    /// SRV lookups through the name servers of `/etc/resolv.conf`.
    pub fn system() -> Self {
        Dns {
            nameserver: None,
            srv: Arc::new(OnceCell::new()),
        }
    }

    /// SRV lookups through one name server (used by tests with a local DNS responder).
    pub fn with_nameserver(addr: SocketAddr) -> Self {
        Dns {
            nameserver: Some(addr),
            srv: Arc::new(OnceCell::new()),
        }
    }

    async fn srv_resolver(&self) -> Result<&TokioResolver, String> {
        let r = self
            .srv
            .get_or_init(|| async {
                let builder = match self.nameserver {
                    None => TokioResolver::builder_tokio()
                        .map_err(|e| format!("cannot read the DNS configuration: {e}"))?,
                    Some(addr) => {
                        let mut udp = ConnectionConfig::udp();
                        udp.port = addr.port();
                        let ns = NameServerConfig::new(addr.ip(), true, vec![udp]);
                        TokioResolver::builder_with_config(
                            ResolverConfig::from_name_servers(vec![ns]),
                            TokioRuntimeProvider::default(),
                        )
                    }
                };
                builder
                    .build()
                    .map_err(|e| format!("cannot build the DNS resolver: {e}"))
            })
            .await;
        r.as_ref().map_err(|e| e.clone())
    }

    /// A/AAAA records of `host`, with `port`, IPv4 first.
    async fn lookup_addrs(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        if self.nameserver.is_none() {
            return lookup_host(host, port).await;
        }
        let resolver = self.srv_resolver().await?;
        let lookup = tokio::time::timeout(LOOKUP_TIMEOUT, resolver.lookup_ip(host))
            .await
            .map_err(|_| format!("lookup timed out after {LOOKUP_TIMEOUT:?}"))?
            .map_err(|e| e.to_string())?;
        let mut v: Vec<SocketAddr> = lookup.iter().map(|ip| SocketAddr::new(ip, port)).collect();
        v.sort_by_key(|a| a.is_ipv6());
        v.dedup();
        Ok(v)
    }

    /// SRV records of `name`: (target, port), lowest priority first.
    async fn lookup_srv(&self, name: &str) -> Result<Vec<(String, u16)>, String> {
        let resolver = self.srv_resolver().await?;
        let lookup = tokio::time::timeout(LOOKUP_TIMEOUT, resolver.srv_lookup(name))
            .await
            .map_err(|_| format!("SRV lookup timed out after {LOOKUP_TIMEOUT:?}"))?
            .map_err(|e| format!("SRV lookup failed: {e}"))?;
        let mut records: Vec<(u16, String, u16)> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(srv) => Some((
                    srv.priority,
                    srv.target.to_utf8().trim_end_matches('.').to_string(),
                    srv.port,
                )),
                _ => None,
            })
            .collect();
        records.sort();
        records.truncate(SRV_TARGETS_MAX);
        Ok(records.into_iter().map(|(_, t, p)| (t, p)).collect())
    }

    /// Resolve every entry. `default_port` is the listener's port.
    pub async fn resolve(
        &self,
        entries: &[JoinEntry],
        default_port: u16,
        me: &SelfAddrs,
    ) -> Resolution {
        let mut res = Resolution::default();
        let mut seen = BTreeSet::new();
        for e in entries {
            let found = match e.ip() {
                Some(ip) => Ok(vec![SocketAddr::new(ip, e.port.unwrap_or(default_port))]),
                None => self.resolve_name(e, default_port).await,
            };
            match found {
                Ok(addrs) => {
                    let mut was_self = false;
                    for a in addrs {
                        if me.is_self(&a) {
                            was_self = true;
                        } else if seen.insert(a) {
                            res.addrs.push(a.to_string());
                        }
                    }
                    if was_self {
                        res.self_entries.push(e.raw.clone());
                    }
                }
                Err(why) => res.errors.push((e.raw.clone(), why)),
            }
        }
        // Nodes that list the same peers should not all join through the same first few
        // (only --cluster.max-join-peers of them are contacted).
        res.addrs.shuffle(&mut rand::thread_rng());
        res
    }

    async fn resolve_name(
        &self,
        e: &JoinEntry,
        default_port: u16,
    ) -> Result<Vec<SocketAddr>, String> {
        let port = e.port.unwrap_or(default_port);
        let a_err = match self.lookup_addrs(&e.host, port).await {
            Ok(addrs) if !addrs.is_empty() => return Ok(addrs),
            Ok(_) => "no A/AAAA records".to_string(),
            Err(why) => why,
        };
        if e.port.is_some() {
            return Err(format!("A/AAAA lookup of {:?}: {a_err}", e.host));
        }
        let targets = self
            .lookup_srv(&e.host)
            .await
            .map_err(|srv_err| format!("A/AAAA lookup: {a_err}; {srv_err}"))?;
        if targets.is_empty() {
            return Err(format!("A/AAAA lookup: {a_err}; no SRV records"));
        }
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for (target, port) in targets {
            match self.lookup_addrs(&target, port).await {
                Ok(addrs) => out.extend(addrs),
                Err(why) => errors.push(format!("SRV target {target}: {why}")),
            }
        }
        if out.is_empty() {
            return Err(errors.join("; "));
        }
        Ok(out)
    }
}

async fn lookup_host(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    match tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((host, port))).await {
        Err(_) => Err(format!("lookup timed out after {LOOKUP_TIMEOUT:?}")),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(it)) => {
            let mut v: Vec<SocketAddr> = it.collect();
            // IPv4 first: most agents listen on an IPv4 address.
            v.sort_by_key(|a| a.is_ipv6());
            v.dedup();
            Ok(v)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me(port: u16) -> SelfAddrs {
        SelfAddrs {
            advertise: format!("127.0.0.1:{port}"),
            listen: format!("127.0.0.1:{port}").parse().unwrap(),
            local_ips: vec!["127.0.0.1".parse().unwrap()],
        }
    }

    #[test]
    fn entries_parse_with_and_without_ports() {
        let v = parse_join_addresses(
            " 10.0.0.1, 10.0.0.2:9000,[::1]:80, ::1 ,agent-0.agent:12345,agent,,",
        )
        .unwrap();
        let got: Vec<(String, Option<u16>)> = v.into_iter().map(|e| (e.host, e.port)).collect();
        assert_eq!(
            got,
            vec![
                ("10.0.0.1".into(), None),
                ("10.0.0.2".into(), Some(9000)),
                ("::1".into(), Some(80)),
                ("::1".into(), None),
                ("agent-0.agent".into(), Some(12345)),
                ("agent".into(), None),
            ]
        );
        assert!(parse_join_addresses("").unwrap().is_empty());
    }

    #[test]
    fn bad_entries_name_the_entry_and_the_problem() {
        let e = parse_join_addresses("10.0.0.1:99999").unwrap_err();
        assert!(e.contains("10.0.0.1:99999") && e.contains("port"), "{e}");
        let e = parse_join_addresses("ok:1,bad host:1").unwrap_err();
        assert!(e.contains("bad host"), "{e}");
        let e = parse_join_addresses("[::1:80").unwrap_err();
        assert!(e.contains("]"), "{e}");
        let e = parse_join_addresses(":80").unwrap_err();
        assert!(e.contains("missing host"), "{e}");
    }

    #[tokio::test]
    async fn ips_get_the_default_port_and_self_is_dropped() {
        let entries = parse_join_addresses("127.0.0.1:7001,127.0.0.1,127.0.0.2:7001").unwrap();
        let r = Dns::system().resolve(&entries, 7001, &me(7001)).await;
        assert_eq!(r.addrs, vec!["127.0.0.2:7001".to_string()]);
        assert_eq!(r.self_entries, vec!["127.0.0.1:7001", "127.0.0.1"]);
        assert!(r.expects_peers());
        let only_self = parse_join_addresses("127.0.0.1:7001").unwrap();
        let r = Dns::system().resolve(&only_self, 7001, &me(7001)).await;
        assert!(
            !r.expects_peers(),
            "a seed that lists itself expects no peers"
        );
    }

    #[tokio::test]
    async fn localhost_resolves_through_a_records() {
        let entries = parse_join_addresses("localhost:7002").unwrap();
        let r = Dns::system().resolve(&entries, 7001, &me(7001)).await;
        assert!(r.addrs.contains(&"127.0.0.1:7002".to_string()), "{r:?}");
        // localhost at our own port is ourselves.
        let entries = parse_join_addresses("localhost").unwrap();
        let r = Dns::system().resolve(&entries, 7001, &me(7001)).await;
        assert_eq!(r.self_entries, vec!["localhost"]);
    }

    /// A DNS responder on loopback: `peer.test` has an A record (127.0.0.1), `_agent._tcp.test`
    /// an SRV record pointing at `peer.test:7003`; every other name has no records.
    async fn local_dns() -> Dns {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let ns = sock.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            loop {
                let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                    return;
                };
                if let Some(answer) = dns_answer(&buf[..n]) {
                    let _ = sock.send_to(&answer, from).await;
                }
            }
        });
        Dns::with_nameserver(ns)
    }

    #[tokio::test]
    async fn unresolvable_names_are_reported_not_fatal() {
        let dns = local_dns().await;
        let entries = parse_join_addresses("no-such-host.test:7001,no-srv.test").unwrap();
        let r = dns.resolve(&entries, 7001, &me(7001)).await;
        assert!(r.addrs.is_empty());
        assert_eq!(r.errors.len(), 2, "{r:?}");
        assert!(r.errors[0].1.contains("A/AAAA"), "{:?}", r.errors);
        assert!(r.errors[1].1.contains("SRV"), "{:?}", r.errors);
        assert!(
            r.expects_peers(),
            "an unresolvable peer list still means peers are expected"
        );
    }

    #[tokio::test]
    async fn names_resolve_through_a_records_with_the_default_port() {
        let dns = local_dns().await;
        let entries = parse_join_addresses("peer.test").unwrap();
        let r = dns.resolve(&entries, 7005, &me(7001)).await;
        assert_eq!(r.addrs, vec!["127.0.0.1:7005".to_string()], "{r:?}");
    }

    /// A name without A/AAAA records and without a port is looked up as SRV; the SRV targets
    /// and ports are used.
    #[tokio::test]
    async fn names_without_a_records_fall_back_to_srv() {
        let dns = local_dns().await;
        let entries = parse_join_addresses("_agent._tcp.test").unwrap();
        let r = dns.resolve(&entries, 7001, &me(7001)).await;
        assert!(r.errors.is_empty(), "{r:?}");
        assert_eq!(r.addrs, vec!["127.0.0.1:7003".to_string()], "{r:?}");
    }

    fn encode_name(out: &mut Vec<u8>, name: &str) {
        for label in name.trim_end_matches('.').split('.') {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
    }

    fn dns_answer(query: &[u8]) -> Option<Vec<u8>> {
        if query.len() < 12 {
            return None;
        }
        let mut labels = Vec::new();
        let mut i = 12;
        while i < query.len() && query[i] != 0 {
            let len = query[i] as usize;
            labels.push(String::from_utf8_lossy(query.get(i + 1..i + 1 + len)?).to_lowercase());
            i += 1 + len;
        }
        let qend = i + 5;
        if qend > query.len() {
            return None;
        }
        let name = labels.join(".");
        let qtype = u16::from_be_bytes([query[i + 1], query[i + 2]]);
        let (rtype, rdata): (u16, Vec<u8>) = match (name.as_str(), qtype) {
            ("peer.test", 1) => (1, vec![127, 0, 0, 1]),
            ("_agent._tcp.test", 33) => {
                let mut r = vec![0, 0, 0, 0];
                r.extend_from_slice(&7003u16.to_be_bytes());
                encode_name(&mut r, "peer.test");
                (33, r)
            }
            _ => (0, Vec::new()),
        };
        let mut out = Vec::new();
        out.extend_from_slice(&query[..2]); // id
        out.extend_from_slice(&[0x81, 0x80]); // response, recursion desired + available
        out.extend_from_slice(&[0, 1, 0, u8::from(rtype != 0), 0, 0, 0, 0]);
        out.extend_from_slice(&query[12..qend]);
        if rtype != 0 {
            out.extend_from_slice(&[0xc0, 0x0c]); // name: pointer to the question
            out.extend_from_slice(&rtype.to_be_bytes());
            out.extend_from_slice(&[0, 1]); // IN
            out.extend_from_slice(&60u32.to_be_bytes()); // ttl
            out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            out.extend_from_slice(&rdata);
        }
        Some(out)
    }
}
