//! The address this node advertises to its peers (`--cluster.advertise-address`).
//!
//! Given explicitly, it is used as is (the listener's port is added when it has none).
//! Otherwise it is the first usable address of `--cluster.advertise-interfaces` (default
//! `eth0,en0`), interfaces in the order given, IPv4 before IPv6, with the listener's port.
//! "Usable" means a peer can reach the listener there: not unspecified, not link-local, and,
//! when the listener is bound to one concrete IP, that very IP (an interface address the
//! listener does not accept would make every peer fail to connect). When no interface has a
//! usable address and the listener is bound to a concrete IP, that IP is advertised.
//! This module only chooses; it reads interfaces through `if-addrs` and opens no socket.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::resolve::{host_port, split_host_port};

/// Default of `--cluster.advertise-interfaces` (Grafana Agent's).
pub const DEFAULT_INTERFACES: &str = "eth0,en0";

/// Where the advertised address came from (logged at start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag,
    Interface(String),
    ListenAddress,
}

/// The chosen address and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertise {
    /// `ip:port` (or `host:port` when given by name).
    pub addr: String,
    pub source: Source,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag => f.write_str("--cluster.advertise-address"),
            Source::Interface(name) => write!(f, "interface {name}"),
            Source::ListenAddress => f.write_str("--server.http.listen-addr"),
        }
    }
}

/// One address of one local interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceAddr {
    pub interface: String,
    pub ip: IpAddr,
}

/// Every address of every local interface, in the order the OS lists them.
pub fn local_interfaces() -> Vec<InterfaceAddr> {
    match if_addrs::get_if_addrs() {
        Ok(list) => list
            .into_iter()
            .map(|i| InterfaceAddr {
                ip: i.ip(),
                interface: i.name,
            })
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list network interfaces");
            Vec::new()
        }
    }
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// Whether a peer that connects to `ip` reaches a listener bound to `listen`.
fn reaches_listener(ip: &IpAddr, listen: &SocketAddr) -> bool {
    match listen.ip() {
        IpAddr::V4(l) if l.is_unspecified() => ip.is_ipv4(),
        // A `[::]` listener is dual-stack on Linux and macOS by default.
        IpAddr::V6(l) if l.is_unspecified() => true,
        l => l == *ip,
    }
}

/// Why no address could be chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertiseError(pub String);

impl fmt::Display for AdvertiseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AdvertiseError {}

/// Choose the advertised address. `flag` is `--cluster.advertise-address`, `interfaces` the
/// names of `--cluster.advertise-interfaces`, `local` what [`local_interfaces`] returned and
/// `listen` the bound listener address.
pub fn choose(
    flag: Option<&str>,
    interfaces: &[String],
    local: &[InterfaceAddr],
    listen: SocketAddr,
) -> Result<Advertise, AdvertiseError> {
    if let Some(given) = flag {
        let (host, port) = split_host_port(given)
            .map_err(|e| AdvertiseError(format!("--cluster.advertise-address: {e}")))?;
        if host.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified()) {
            return Err(AdvertiseError(format!(
                "--cluster.advertise-address {given:?}: peers cannot connect to an unspecified \
                 address; give this node's reachable IP or name"
            )));
        }
        return Ok(Advertise {
            addr: host_port(&host, port.unwrap_or(listen.port())),
            source: Source::Flag,
        });
    }
    for name in interfaces {
        let mut candidates: Vec<&InterfaceAddr> = local
            .iter()
            .filter(|a| a.interface == *name)
            .filter(|a| !a.ip.is_unspecified() && !is_link_local(&a.ip))
            .filter(|a| reaches_listener(&a.ip, &listen))
            .collect();
        candidates.sort_by_key(|a| a.ip.is_ipv6());
        if let Some(a) = candidates.first() {
            return Ok(Advertise {
                addr: SocketAddr::new(a.ip, listen.port()).to_string(),
                source: Source::Interface(name.clone()),
            });
        }
    }
    if !listen.ip().is_unspecified() {
        return Ok(Advertise {
            addr: listen.to_string(),
            source: Source::ListenAddress,
        });
    }
    let found: Vec<String> = local
        .iter()
        .map(|a| format!("{} {}", a.interface, a.ip))
        .collect();
    Err(AdvertiseError(format!(
        "cannot choose an address to advertise to peers: none of the interfaces {:?} \
         (--cluster.advertise-interfaces) has a usable address (this host has: {}), and \
         --server.http.listen-addr {listen} is not a concrete IP; set \
         --cluster.advertise-address",
        interfaces.join(","),
        if found.is_empty() {
            "none".to_string()
        } else {
            found.join(", ")
        }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: &str, ip: &str) -> InterfaceAddr {
        InterfaceAddr {
            interface: i.into(),
            ip: ip.parse().unwrap(),
        }
    }

    fn names(s: &str) -> Vec<String> {
        s.split(',').map(String::from).collect()
    }

    fn host() -> Vec<InterfaceAddr> {
        vec![
            addr("lo", "127.0.0.1"),
            addr("lo", "::1"),
            addr("eth0", "fe80::1"),
            addr("eth0", "fd00::2"),
            addr("eth0", "192.0.2.2"),
            addr("en0", "198.51.100.7"),
        ]
    }

    #[test]
    fn first_interface_ipv4_first_with_the_listener_port() {
        let a = choose(
            None,
            &names("eth0,en0"),
            &host(),
            "0.0.0.0:12345".parse().unwrap(),
        );
        assert_eq!(
            a.unwrap(),
            Advertise {
                addr: "192.0.2.2:12345".into(),
                source: Source::Interface("eth0".into())
            }
        );
        let a = choose(
            None,
            &names("wlan0,en0"),
            &host(),
            "[::]:80".parse().unwrap(),
        );
        assert_eq!(a.unwrap().addr, "198.51.100.7:80");
    }

    #[test]
    fn link_local_addresses_are_skipped() {
        let local = vec![addr("eth0", "fe80::1"), addr("eth0", "169.254.1.1")];
        let e = choose(None, &names("eth0"), &local, "0.0.0.0:1".parse().unwrap()).unwrap_err();
        assert!(e.0.contains("--cluster.advertise-address"), "{e}");
    }

    #[test]
    fn a_concrete_listener_ip_is_advertised_when_interfaces_cannot_reach_it() {
        // Listening on loopback: eth0's address would not reach the listener.
        let a = choose(
            None,
            &names("eth0,en0"),
            &host(),
            "127.0.0.1:7000".parse().unwrap(),
        );
        assert_eq!(
            a.unwrap(),
            Advertise {
                addr: "127.0.0.1:7000".into(),
                source: Source::ListenAddress
            }
        );
        // Listening on eth0's own address: the interface matches.
        let a = choose(
            None,
            &names("eth0"),
            &host(),
            "192.0.2.2:7000".parse().unwrap(),
        );
        assert_eq!(a.unwrap().source, Source::Interface("eth0".into()));
    }

    #[test]
    fn the_lo_interface_can_be_named() {
        let a = choose(None, &names("lo"), &host(), "0.0.0.0:9".parse().unwrap());
        assert_eq!(a.unwrap().addr, "127.0.0.1:9");
    }

    #[test]
    fn the_flag_wins_and_gets_the_listener_port_when_it_has_none() {
        let listen = "0.0.0.0:12345".parse().unwrap();
        let a = choose(Some("10.1.2.3"), &names("eth0"), &host(), listen).unwrap();
        assert_eq!(a.addr, "10.1.2.3:12345");
        assert_eq!(a.source, Source::Flag);
        let a = choose(Some("agent-0.agent:80"), &names("eth0"), &host(), listen).unwrap();
        assert_eq!(a.addr, "agent-0.agent:80");
        let a = choose(Some("::1"), &names("eth0"), &host(), listen).unwrap();
        assert_eq!(a.addr, "[::1]:12345");
        let e = choose(Some("0.0.0.0:1"), &names("eth0"), &host(), listen).unwrap_err();
        assert!(e.0.contains("unspecified"), "{e}");
    }

    #[test]
    fn nothing_usable_and_an_unspecified_listener_is_an_error_naming_the_flags() {
        let e = choose(None, &names("eth9"), &host(), "0.0.0.0:1".parse().unwrap()).unwrap_err();
        assert!(e.0.contains("eth9") && e.0.contains("lo 127.0.0.1"), "{e}");
    }
}
