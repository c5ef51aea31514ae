//! What the process engine reads from a running agent, the way an operator would: its member
//! list (`GET /api/v0/web/peers?members=all`) and its metrics (`GET /metrics`), over one
//! HTTP/1.1 connection (hyper), bounded in time and size.
//!
//! Owns the two requests and the parsing of their answers into a [`Snapshot`]; nothing about
//! scenarios or checks.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::Request;
use hyper_util::rt::TokioIo;

use crate::observe::{MemberView, NodeState, Status};

/// Largest answer read (a member list of thousands of members is well under it).
const BODY_BYTES_MAX: usize = 8 * 1024 * 1024;

/// One agent at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Every member it knows, itself and tombstones included, sorted by name.
    pub members: Vec<MemberView>,
    /// Its own entry's state and incarnation.
    pub state: NodeState,
    pub incarnation: u64,
    /// `cluster_node_lamport_time`.
    pub lamport: u64,
    /// `cluster_transport_tx_packets_total` + `cluster_transport_streams_opened_total`.
    pub messages_sent: u64,
    /// `cluster_transport_tx_bytes_total`.
    pub bytes_sent: u64,
    /// `agent_scrape_targets` / `agent_scrape_targets_owned` of the sim's scrape component.
    pub targets: Option<u32>,
    pub owned: Option<u32>,
}

/// One member as `?members=all` lists it.
#[derive(Debug, serde::Deserialize)]
struct ApiMember {
    name: String,
    addr: String,
    #[serde(rename = "isSelf")]
    is_self: bool,
    state: String,
    status: Option<String>,
    incarnation: Option<u64>,
    lamport: Option<u64>,
}

/// Reads `addr`'s member list, then its metrics, within `timeout`.
pub async fn snapshot(addr: SocketAddr, timeout: Duration) -> Result<Snapshot, String> {
    tokio::time::timeout(timeout, async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let conn = tokio::spawn(conn);
        let peers = get(&mut send, addr, "/api/v0/web/peers?members=all").await?;
        let metrics = get(&mut send, addr, "/metrics").await?;
        drop(send);
        conn.abort();
        parse(&peers, &metrics, component_label())
    })
    .await
    .map_err(|_| format!("no answer within {} ms", timeout.as_millis()))?
}

fn component_label() -> &'static str {
    super::agent::SCRAPE_COMPONENT
}

async fn get(
    send: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    addr: SocketAddr,
    path: &str,
) -> Result<String, String> {
    let req = Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = send
        .send_request(req)
        .await
        .map_err(|e| format!("GET {path}: {e}"))?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), BODY_BYTES_MAX)
        .collect()
        .await
        .map_err(|e| format!("GET {path}: body: {e}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!("GET {path}: {status}"));
    }
    String::from_utf8(body.to_vec()).map_err(|_| format!("GET {path}: not UTF-8"))
}

/// Builds a snapshot from the two answers.
pub fn parse(peers: &str, metrics: &str, component: &str) -> Result<Snapshot, String> {
    let list: Vec<ApiMember> =
        serde_json::from_str(peers).map_err(|e| format!("peers answer: {e}"))?;
    let mut members = Vec::with_capacity(list.len());
    let mut me = None;
    for m in list {
        let state = node_state(&m.state)?;
        let status = match m.status.as_deref() {
            Some("alive") => Status::Alive,
            Some("suspect") => Status::Suspect,
            Some("dead") => Status::Dead,
            Some("left") => Status::Left,
            other => {
                return Err(format!(
                    "peers answer: {}: status {other:?} (an agent without ?members=all?)",
                    m.name
                ))
            }
        };
        if m.is_self {
            me = Some((state, m.incarnation.unwrap_or(0)));
        }
        members.push(MemberView {
            name: m.name,
            addr: m.addr,
            status,
            state,
            incarnation: m.incarnation.unwrap_or(0),
            lamport: m.lamport.unwrap_or(0),
        });
    }
    members.sort_by(|a, b| a.name.cmp(&b.name));
    let (state, incarnation) = me.ok_or("peers answer: no member isSelf")?;
    let sample = |name: &str| sample(metrics, name);
    let with_component =
        |name: &str| sample(&format!("{name}{{component_id=\"{component}\"}}")).map(|v| v as u32);
    Ok(Snapshot {
        members,
        state,
        incarnation,
        lamport: sample("cluster_node_lamport_time")
            .ok_or("metrics: no cluster_node_lamport_time")? as u64,
        messages_sent: (sample("cluster_transport_tx_packets_total").unwrap_or(0.0)
            + sample("cluster_transport_streams_opened_total").unwrap_or(0.0))
            as u64,
        bytes_sent: sample("cluster_transport_tx_bytes_total").unwrap_or(0.0) as u64,
        targets: with_component("agent_scrape_targets"),
        owned: with_component("agent_scrape_targets_owned"),
    })
}

fn node_state(s: &str) -> Result<NodeState, String> {
    match s {
        "viewer" => Ok(NodeState::Viewer),
        "participant" => Ok(NodeState::Participant),
        "terminating" => Ok(NodeState::Terminating),
        other => Err(format!("peers answer: unknown state {other:?}")),
    }
}

/// The value of the series written exactly `series` (name and labels) in Prometheus text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let rest = l.strip_prefix(series)?;
        rest.strip_prefix(' ')?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEERS: &str = r#"[
      {"name":"node-2","addr":"10.0.0.3:7946","isSelf":false,"state":"participant","status":"dead","incarnation":1,"lamport":4},
      {"name":"node-1","addr":"10.0.0.2:7946","isSelf":true,"state":"participant","status":"alive","incarnation":2,"lamport":7}
    ]"#;
    const METRICS: &str = "# HELP cluster_node_lamport_time x\n\
        cluster_node_lamport_time 9\n\
        cluster_transport_tx_packets_total 10\n\
        cluster_transport_tx_bytes_total 2048\n\
        cluster_transport_streams_opened_total 3\n\
        agent_scrape_targets{component_id=\"prometheus.scrape.sim\"} 100\n\
        agent_scrape_targets_owned{component_id=\"prometheus.scrape.sim\"} 37\n";

    #[test]
    fn a_snapshot_reads_members_self_and_counters() {
        let s = parse(PEERS, METRICS, "prometheus.scrape.sim").unwrap();
        assert_eq!(s.members[0].name, "node-1", "sorted by name");
        assert_eq!(s.members[1].status, Status::Dead);
        assert_eq!(
            (s.state, s.incarnation, s.lamport),
            (NodeState::Participant, 2, 9)
        );
        assert_eq!((s.messages_sent, s.bytes_sent), (13, 2048));
        assert_eq!((s.targets, s.owned), (Some(100), Some(37)));
    }

    #[test]
    fn an_answer_without_statuses_is_refused() {
        let plain = r#"[{"name":"node-1","addr":"a","isSelf":true,"state":"participant"}]"#;
        let e = parse(plain, METRICS, "prometheus.scrape.sim").unwrap_err();
        assert!(e.contains("members=all"), "{e}");
    }
}
