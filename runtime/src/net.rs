//! The one seam between the driver and the network: connect and listen over TCP.
//!
//! Exactly two implementations: [`TokioNet`] (real sockets, production) and [`TurmoilNet`]
//! (turmoil's simulated TCP, the testbed). Everything above this trait — HTTP/2, timeouts,
//! per-peer queues — is the same code in both worlds.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};

/// A TCP-like network.
pub trait Network: Clone + Send + Sync + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    type Listener: Send + 'static;

    fn bind(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Listener>> + Send;
    fn accept(
        &self,
        listener: &mut Self::Listener,
    ) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;
    /// Connect to `addr` ("host:port"; the host may be a name the network resolves).
    fn connect(&self, addr: &str) -> impl Future<Output = io::Result<Self::Stream>> + Send;
    fn local_addr(&self, listener: &Self::Listener) -> io::Result<SocketAddr>;
}

/// TCP keep-alive on every real connection: a peer host that vanished is found by the kernel
/// (probes after 60 s idle, every 10 s, 3 tries) without any bytes of ours on the wire; the
/// protocol itself sends nothing over idle connections.
fn keepalive(s: &tokio::net::TcpStream) {
    let ka = socket2::TcpKeepalive::new()
        .with_time(std::time::Duration::from_secs(60))
        .with_interval(std::time::Duration::from_secs(10))
        .with_retries(3);
    let _ = socket2::SockRef::from(s).set_tcp_keepalive(&ka);
}

/// Real TCP through tokio.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioNet;

impl Network for TokioNet {
    type Stream = tokio::net::TcpStream;
    type Listener = tokio::net::TcpListener;

    async fn bind(&self, addr: SocketAddr) -> io::Result<Self::Listener> {
        tokio::net::TcpListener::bind(addr).await
    }

    async fn accept(&self, l: &mut Self::Listener) -> io::Result<(Self::Stream, SocketAddr)> {
        let (s, a) = l.accept().await?;
        let _ = s.set_nodelay(true);
        keepalive(&s);
        Ok((s, a))
    }

    async fn connect(&self, addr: &str) -> io::Result<Self::Stream> {
        let s = tokio::net::TcpStream::connect(addr).await?;
        let _ = s.set_nodelay(true);
        keepalive(&s);
        Ok(s)
    }

    fn local_addr(&self, l: &Self::Listener) -> io::Result<SocketAddr> {
        l.local_addr()
    }
}

/// turmoil's simulated TCP. Only usable inside a turmoil simulation host.
#[derive(Debug, Clone, Copy, Default)]
pub struct TurmoilNet;

impl Network for TurmoilNet {
    type Stream = turmoil::net::TcpStream;
    type Listener = turmoil::net::TcpListener;

    async fn bind(&self, addr: SocketAddr) -> io::Result<Self::Listener> {
        turmoil::net::TcpListener::bind(addr).await
    }

    async fn accept(&self, l: &mut Self::Listener) -> io::Result<(Self::Stream, SocketAddr)> {
        l.accept().await
    }

    async fn connect(&self, addr: &str) -> io::Result<Self::Stream> {
        turmoil::net::TcpStream::connect(addr).await
    }

    fn local_addr(&self, l: &Self::Listener) -> io::Result<SocketAddr> {
        l.local_addr()
    }
}
