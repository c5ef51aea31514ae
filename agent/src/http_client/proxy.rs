//! The TCP connector under TLS: direct connections, or through an HTTP proxy
//! (absolute-form requests for http:// targets, CONNECT tunnels for https://).

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderValue, Uri};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::{Intercept, Matcher};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower_service::Service;

use super::error::{redact_url, ClientError, ErrorKind};
use super::settings::ClientSettings;

type BoxError = Box<dyn StdError + Send + Sync>;

/// Which requests go through which proxy.
pub(super) struct ProxyRules {
    matcher: Matcher,
}

impl ProxyRules {
    pub(super) fn from_settings(
        s: &ClientSettings,
    ) -> Result<Option<Arc<ProxyRules>>, ClientError> {
        let matcher = if s.proxy_from_environment {
            Matcher::from_env()
        } else if let Some(url) = &s.proxy_url {
            let uri: Uri = url.parse().map_err(|e| {
                ClientError::new(ErrorKind::Config, format!("proxy_url: invalid URL: {e}"))
            })?;
            if uri.scheme_str() != Some("http") {
                return Err(ClientError::new(
                    ErrorKind::Config,
                    format!(
                        "proxy_url {}: only http:// proxies are supported (https:// targets are still tunneled with CONNECT)",
                        redact_url(&uri)
                    ),
                ));
            }
            Matcher::builder()
                .all(url.clone())
                .no(s.no_proxy.clone().unwrap_or_default())
                .build()
        } else {
            return Ok(None);
        };
        Ok(Some(Arc::new(ProxyRules { matcher })))
    }

    /// The proxy for `dst`, if one applies (and it is an http:// proxy).
    pub(super) fn intercept(&self, dst: &Uri) -> Option<Intercept> {
        self.matcher
            .intercept(dst)
            .filter(|i| i.uri().scheme_str() == Some("http"))
    }
}

/// Failures talking to the proxy itself.
#[derive(Debug)]
pub(super) enum ProxyError {
    Connect {
        proxy: String,
        message: String,
    },
    Io {
        proxy: String,
        error: std::io::Error,
    },
    AuthRequired {
        proxy: String,
    },
    Refused {
        proxy: String,
        status: u16,
    },
    Malformed {
        proxy: String,
    },
}

impl ProxyError {
    pub(super) fn kind(&self) -> ErrorKind {
        match self {
            ProxyError::Connect { .. } => ErrorKind::Connect,
            _ => ErrorKind::Proxy,
        }
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::Connect { proxy, message } => {
                write!(f, "cannot connect to proxy {proxy}: {message}")
            }
            ProxyError::Io { proxy, error } => {
                write!(f, "CONNECT tunnel through proxy {proxy} failed: {error}")
            }
            ProxyError::AuthRequired { proxy } => write!(
                f,
                "proxy {proxy} requires authentication (407): put user:password in proxy_url"
            ),
            ProxyError::Refused { proxy, status } => {
                write!(
                    f,
                    "proxy {proxy} refused the CONNECT tunnel with status {status}"
                )
            }
            ProxyError::Malformed { proxy } => {
                write!(f, "proxy {proxy} sent a malformed CONNECT response")
            }
        }
    }
}

impl StdError for ProxyError {}

/// A TCP stream that remembers whether it leads to a proxy, so hyper sends
/// absolute-form request targets on it.
pub(super) struct Stream {
    io: TokioIo<TcpStream>,
    proxied: bool,
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.proxied)
    }
}

impl hyper::rt::Read for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

/// Connects directly or through the proxy that applies to the destination.
#[derive(Clone)]
pub(super) struct Connector {
    http: HttpConnector,
    proxy: Option<Arc<ProxyRules>>,
}

impl Connector {
    pub(super) fn new(proxy: Option<Arc<ProxyRules>>) -> Connector {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_keepalive(Some(std::time::Duration::from_secs(30)));
        Connector { http, proxy }
    }
}

impl Service<Uri> for Connector {
    type Response = Stream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let intercept = self.proxy.as_ref().and_then(|p| p.intercept(&dst));
        let mut http = self.http.clone();
        Box::pin(async move {
            let Some(intercept) = intercept else {
                return Ok(Stream {
                    io: http.call(dst).await?,
                    proxied: false,
                });
            };
            let proxy_uri = intercept.uri().clone();
            let proxy = redact_url(&proxy_uri);
            let io = http
                .call(proxy_uri)
                .await
                .map_err(|e| ProxyError::Connect {
                    proxy: proxy.clone(),
                    message: e.source().map_or_else(|| e.to_string(), |s| s.to_string()),
                })?;
            if dst.scheme_str() == Some("https") {
                let io = tunnel(io, &dst, intercept.basic_auth(), &proxy).await?;
                Ok(Stream { io, proxied: false })
            } else {
                Ok(Stream { io, proxied: true })
            }
        })
    }
}

/// Opens a CONNECT tunnel to `dst` through an established proxy connection.
async fn tunnel(
    io: TokioIo<TcpStream>,
    dst: &Uri,
    auth: Option<&HeaderValue>,
    proxy: &str,
) -> Result<TokioIo<TcpStream>, ProxyError> {
    let mut tcp = io.into_inner();
    let host = dst.host().unwrap_or_default();
    let target = format!("{host}:{}", dst.port_u16().unwrap_or(443));
    let mut head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n").into_bytes();
    if let Some(a) = auth {
        head.extend_from_slice(b"Proxy-Authorization: ");
        head.extend_from_slice(a.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    let io_err = |error| ProxyError::Io {
        proxy: proxy.to_owned(),
        error,
    };
    tcp.write_all(&head).await.map_err(io_err)?;

    // The proxy sends nothing after its response head until we speak TLS.
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = tcp.read(&mut chunk).await.map_err(io_err)?;
        if n == 0 {
            return Err(io_err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "proxy closed the connection before answering CONNECT",
            )));
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        if buf.len() > 16 * 1024 {
            return Err(ProxyError::Malformed {
                proxy: proxy.to_owned(),
            });
        }
    }
    let status = std::str::from_utf8(&buf)
        .ok()
        .and_then(|s| s.split_whitespace().nth(1))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| ProxyError::Malformed {
            proxy: proxy.to_owned(),
        })?;
    match status {
        200..=299 => Ok(TokioIo::new(tcp)),
        407 => Err(ProxyError::AuthRequired {
            proxy: proxy.to_owned(),
        }),
        status => Err(ProxyError::Refused {
            proxy: proxy.to_owned(),
            status,
        }),
    }
}
