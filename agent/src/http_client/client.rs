//! [`HttpClient`]: one pooled hyper client per component, with the settings
//! applied to every request, redirects, limits, and TLS rotation.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::{
    DefaultServerNameResolver, FixedServerNameResolver, HttpsConnector, ResolveServerName,
};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_pki_types::ServerName;

use super::auth::AuthSource;
use super::error::{classify, redact_url, ClientError, ErrorKind, TlsContext};
use super::proxy::{Connector, ProxyRules};
use super::settings::ClientSettings;
use super::tls::{self, Stamp};

type Legacy = Client<HttpsConnector<Connector>, Full<Bytes>>;

/// Redirects followed at most (as Go's net/http).
const MAX_REDIRECTS: usize = 10;
/// Idle pooled connections are closed after this long.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// TLS files are checked for changes at most this often.
const TLS_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// A response whose body was read completely (within the limit).
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The redacted URL that produced this response (after redirects).
    pub url: String,
}

impl Response {
    /// Turns a non-2xx status into a `ErrorKind::Status` error. The error
    /// names the URL and status only, never the body (it may echo secrets).
    pub fn error_for_status(self) -> Result<Response, ClientError> {
        if self.status.is_success() {
            Ok(self)
        } else {
            Err(ClientError::status(&self.url, self.status))
        }
    }
}

/// The outbound HTTP client of one component; cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

struct Inner {
    settings: ClientSettings,
    user_agent: HeaderValue,
    auth: AuthSource,
    extra_headers: HeaderMap,
    proxy: Option<Arc<ProxyRules>>,
    tls_ctx: TlsContext,
    transport: Mutex<Transport>,
}

struct Transport {
    client: Legacy,
    stamps: Vec<Stamp>,
    checked: Instant,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

fn build_transport(
    s: &ClientSettings,
    proxy: Option<Arc<ProxyRules>>,
) -> Result<Legacy, ClientError> {
    let mut config = tls::build_client_config(&s.tls)?;
    // Offer http/1.1 explicitly, and h2 first when enabled; hyper picks the
    // protocol from what the server selected.
    config.alpn_protocols = if s.enable_http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    let resolver: Arc<dyn ResolveServerName + Send + Sync> = match &s.tls.server_name {
        Some(name) => {
            let sn = ServerName::try_from(name.clone()).map_err(|_| {
                ClientError::new(
                    ErrorKind::Config,
                    format!("tls_config.server_name: {name:?} is not a valid name"),
                )
            })?;
            Arc::new(FixedServerNameResolver::new(sn))
        }
        None => Arc::new(DefaultServerNameResolver::default()),
    };
    let https = HttpsConnector::new(Connector::new(proxy), config, false, resolver);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(https))
}

impl HttpClient {
    /// Validates the settings and reads every file they name once, so that a
    /// bad setting fails here with an error naming the field or file.
    pub fn new(settings: &ClientSettings, user_agent: &str) -> Result<HttpClient, ClientError> {
        settings
            .validate()
            .map_err(|e| ClientError::new(ErrorKind::Config, e.to_string()))?;
        let user_agent = HeaderValue::from_str(user_agent).map_err(|_| {
            ClientError::new(ErrorKind::Config, "user agent contains invalid characters")
        })?;
        let auth = AuthSource::from_settings(settings);
        auth.header()?;
        let mut extra_headers = HeaderMap::new();
        for (name, value) in &settings.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                ClientError::new(
                    ErrorKind::Config,
                    format!("http_headers: invalid header name {name:?}"),
                )
            })?;
            let mut value = HeaderValue::from_str(value.expose()).map_err(|_| {
                ClientError::new(
                    ErrorKind::Config,
                    format!("http_headers: invalid value for header {name}"),
                )
            })?;
            value.set_sensitive(true);
            extra_headers.insert(name, value);
        }
        let proxy = ProxyRules::from_settings(settings)?;
        let client = build_transport(settings, proxy.clone())?;
        let transport = Transport {
            client,
            stamps: tls::stamps(&settings.tls),
            checked: Instant::now(),
        };
        Ok(HttpClient {
            inner: Arc::new(Inner {
                settings: settings.clone(),
                user_agent,
                auth,
                extra_headers,
                proxy,
                tls_ctx: TlsContext::of(&settings.tls),
                transport: Mutex::new(transport),
            }),
        })
    }

    pub fn settings(&self) -> &ClientSettings {
        &self.inner.settings
    }

    /// The pooled client, rebuilt first if a TLS file changed (checked at most
    /// once per second). New connections use the new certificates; a changed
    /// file that is invalid keeps the previous config, with a warning.
    fn current_client(&self) -> Legacy {
        let inner = &*self.inner;
        let mut t = inner.transport.lock().unwrap_or_else(|p| p.into_inner());
        if !t.stamps.is_empty() && t.checked.elapsed() >= TLS_CHECK_INTERVAL {
            t.checked = Instant::now();
            let now = tls::stamps(&inner.settings.tls);
            if now != t.stamps {
                match build_transport(&inner.settings, inner.proxy.clone()) {
                    Ok(client) => {
                        tracing::info!("http_client: TLS files changed, new connections use the new certificates");
                        t.client = client;
                    }
                    Err(e) => tracing::warn!(
                        "http_client: a TLS file changed but cannot be used, keeping the previous TLS config: {e}"
                    ),
                }
                t.stamps = now;
            }
        }
        t.client.clone()
    }

    /// Sends one request with the settings applied, following redirects when
    /// enabled (at most 10, GET/HEAD only, credentials dropped when the host
    /// changes). `timeout` bounds the whole exchange including reading the
    /// body, which may be at most `body_limit_bytes` long. Any status is
    /// returned as a `Response`; see `Response::error_for_status`.
    pub async fn send(
        &self,
        req: Request<Bytes>,
        timeout: Duration,
        body_limit_bytes: u64,
    ) -> Result<Response, ClientError> {
        let url = redact_url(req.uri());
        match tokio::time::timeout(timeout, self.exchange(req, body_limit_bytes)).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::new(
                ErrorKind::Timeout,
                format!("request timed out after {timeout:?}"),
            )
            .with_url(&url)),
        }
    }

    async fn exchange(&self, req: Request<Bytes>, limit: u64) -> Result<Response, ClientError> {
        let inner = &*self.inner;
        let (parts, body) = req.into_parts();
        let mut uri = parts.uri;
        check_target(&uri)?;
        let original = uri.clone();
        let client = self.current_client();
        let mut redirects = 0;
        loop {
            let url = redact_url(&uri);
            let trusted = same_site(&original, &uri);
            let mut headers = parts.headers.clone();
            if !trusted {
                for h in [
                    header::AUTHORIZATION,
                    header::COOKIE,
                    header::WWW_AUTHENTICATE,
                    header::PROXY_AUTHORIZATION,
                ] {
                    headers.remove(h);
                }
            }
            for (name, value) in &inner.extra_headers {
                headers.insert(name.clone(), value.clone());
            }
            if trusted && !headers.contains_key(header::AUTHORIZATION) {
                if let Some(v) = inner.auth.header().map_err(|e| e.with_url(&url))? {
                    headers.insert(header::AUTHORIZATION, v);
                }
            }
            if !headers.contains_key(header::USER_AGENT) {
                headers.insert(header::USER_AGENT, inner.user_agent.clone());
            }
            if uri.scheme_str() == Some("http") {
                // Plain http through a proxy: credentials go on each request.
                if let Some(auth) = inner
                    .proxy
                    .as_ref()
                    .and_then(|p| p.intercept(&uri))
                    .and_then(|i| i.basic_auth().cloned())
                {
                    headers.insert(header::PROXY_AUTHORIZATION, auth);
                }
            }
            let mut request = Request::new(Full::new(body.clone()));
            *request.method_mut() = parts.method.clone();
            *request.uri_mut() = uri.clone();
            *request.headers_mut() = headers;

            let resp = client
                .request(request)
                .await
                .map_err(|e| classify(&e, &url, &inner.tls_ctx))?;
            let status = resp.status();
            if inner.settings.follow_redirects
                && is_redirect(status)
                && (parts.method == Method::GET || parts.method == Method::HEAD)
            {
                if let Some(loc) = resp.headers().get(header::LOCATION) {
                    if redirects >= MAX_REDIRECTS {
                        return Err(ClientError::new(
                            ErrorKind::Redirect,
                            format!("stopped after {MAX_REDIRECTS} redirects"),
                        )
                        .with_url(&url));
                    }
                    uri = loc
                        .to_str()
                        .ok()
                        .and_then(|l| resolve_location(&uri, l))
                        .ok_or_else(|| {
                            ClientError::new(
                                ErrorKind::Redirect,
                                format!("redirect ({status}) with an invalid Location header"),
                            )
                            .with_url(&url)
                        })?;
                    redirects += 1;
                    continue;
                }
            }
            let (head, incoming) = resp.into_parts();
            let body = read_limited(incoming, &head.headers, limit, &url, &inner.tls_ctx).await?;
            return Ok(Response {
                status,
                headers: head.headers,
                body,
                url,
            });
        }
    }
}

fn check_target(uri: &Uri) -> Result<(), ClientError> {
    let url = redact_url(uri);
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => {
            return Err(ClientError::new(
                ErrorKind::InvalidRequest,
                "URL scheme must be http or https",
            )
            .with_url(&url))
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(ClientError::new(ErrorKind::InvalidRequest, "URL has no host").with_url(&url));
    }
    Ok(())
}

fn is_redirect(s: StatusCode) -> bool {
    matches!(s.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// Whether credentials for `initial` may go to `dest`: same host, or a
/// subdomain of it (ports ignored), as Go's redirect rule.
fn same_site(initial: &Uri, dest: &Uri) -> bool {
    let (Some(i), Some(d)) = (initial.host(), dest.host()) else {
        return false;
    };
    let (i, d) = (i.to_ascii_lowercase(), d.to_ascii_lowercase());
    i == d || d.ends_with(&format!(".{i}"))
}

/// Resolves a Location header against the URL that returned it.
fn resolve_location(base: &Uri, loc: &str) -> Option<Uri> {
    let scheme = base.scheme_str()?;
    let authority = base.authority()?.as_str();
    let has_scheme = loc.split_once(':').is_some_and(|(sch, _)| {
        !sch.is_empty()
            && sch
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
    });
    let text = if has_scheme {
        loc.to_owned()
    } else if loc.starts_with("//") {
        format!("{scheme}:{loc}")
    } else if loc.starts_with('/') {
        format!("{scheme}://{authority}{loc}")
    } else {
        let path = base.path();
        let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
        let dir = if dir.is_empty() { "/" } else { dir };
        format!("{scheme}://{authority}{dir}{loc}")
    };
    let uri: Uri = text.parse().ok()?;
    check_target(&uri).ok()?;
    Some(uri)
}

async fn read_limited(
    mut body: hyper::body::Incoming,
    headers: &HeaderMap,
    limit: u64,
    url: &str,
    ctx: &TlsContext,
) -> Result<Bytes, ClientError> {
    let too_large = || {
        ClientError::new(
            ErrorKind::BodyTooLarge,
            format!("response body exceeds the limit of {limit} bytes"),
        )
        .with_url(url)
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0).min(1 << 20) as usize);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| classify(&e, url, ctx))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() as u64 + data.len() as u64 > limit {
                return Err(too_large());
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::{resolve_location, same_site};

    #[test]
    fn location_resolution_handles_absolute_rooted_and_relative_forms() {
        let base: http::Uri = "http://h:1/a/b?x=1".parse().unwrap();
        assert_eq!(resolve_location(&base, "/c").unwrap(), "http://h:1/c");
        assert_eq!(resolve_location(&base, "c").unwrap(), "http://h:1/a/c");
        assert_eq!(resolve_location(&base, "//o:2/d").unwrap(), "http://o:2/d");
        assert_eq!(
            resolve_location(&base, "https://o/e").unwrap(),
            "https://o/e"
        );
        assert!(resolve_location(&base, "ftp://o/e").is_none());
    }

    #[test]
    fn credentials_follow_only_same_host_or_subdomain() {
        let a: http::Uri = "http://example.com:1/".parse().unwrap();
        assert!(same_site(&a, &"http://example.com:2/".parse().unwrap()));
        assert!(same_site(&a, &"http://api.example.com/".parse().unwrap()));
        assert!(!same_site(&a, &"http://evil.com/".parse().unwrap()));
        assert!(!same_site(&a, &"http://notexample.com/".parse().unwrap()));
    }
}
