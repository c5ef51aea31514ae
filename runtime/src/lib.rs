//! The async driver and HTTP/2 transport for the clustering core.
//!
//! One code path for production and simulation: [`driver`] runs a [`cluster::Node`] on tokio
//! time, [`transport`] and [`server`] carry its messages over HTTP/2 on the node's own HTTP
//! listener, and [`net`] is the only seam that differs (tokio TCP or turmoil TCP).
//! Everything here is bounded: command queues, per-peer queues, body sizes, and a timeout on
//! every request.

pub mod driver;
pub mod limits;
pub mod net;
pub mod server;
pub mod tls;
pub mod transport;

pub use driver::{
    start, static_resolver, ClusterHandle, ClusterView, JoinStatus, NodeOptions, Resolver,
};
pub use limits::ServerStats;
pub use net::{Network, TokioNet, TurmoilNet};
pub use tls::{ClusterTls, ConnInfo, TlsFiles, TlsStats};
pub use transport::{Faults, TransportOptions, TransportStats, MESSAGE_PATH, STREAM_PATH};
