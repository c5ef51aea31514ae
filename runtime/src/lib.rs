//! The async driver and HTTP/2 transport for the clustering core.
//!
//! One code path for production and simulation: [`driver`] runs a [`cluster::Node`] on tokio
//! time, [`transport`] and [`server`] carry its messages over HTTP/2 on the node's own HTTP
//! listener, and [`net`] is the only seam that differs (tokio TCP or turmoil TCP).
//! Everything here is bounded: command queues, per-peer queues, body sizes, and a timeout on
//! every request.

/// `AsyncWrite` for a read-side wrapper `$t<S>` whose stream is `self.inner`: writes go
/// straight through.
macro_rules! delegate_async_write {
    ($t:ident) => {
        impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for $t<S> {
            fn poll_write(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
            }

            fn poll_flush(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.inner).poll_flush(cx)
            }

            fn poll_shutdown(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
            }
        }
    };
}

pub mod compress;
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
