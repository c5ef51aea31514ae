//! Client errors: actionable messages that name the (redacted) URL and never
//! contain a secret, plus a [`ErrorKind`] for callers' retry decisions.

use std::error::Error as StdError;
use std::fmt;

use super::proxy::ProxyError;
use super::settings::TlsSettings;

/// What kind of failure happened, for callers that classify errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Settings or a file they name are invalid (construction, or a credential
    /// file that became unreadable).
    Config,
    /// The request itself is unusable (bad URL, unsupported scheme).
    InvalidRequest,
    /// The whole exchange did not finish within the timeout.
    Timeout,
    /// TCP connection to the target (or proxy) failed.
    Connect,
    /// The proxy refused or broke the CONNECT tunnel.
    Proxy,
    /// TLS handshake or certificate verification failed.
    Tls,
    /// The server answered with an unwanted status (see `Response::error_for_status`).
    Status,
    /// More than 10 redirects, or a redirect without a usable Location.
    Redirect,
    /// The response body exceeded the limit.
    BodyTooLarge,
    /// HTTP protocol error (malformed response, connection closed mid-response).
    Protocol,
    /// Other I/O failure.
    Io,
}

/// An error of [`super::HttpClient`].
#[derive(Debug, Clone)]
pub struct ClientError {
    kind: ErrorKind,
    url: Option<String>,
    status: Option<http::StatusCode>,
    message: String,
}

impl ClientError {
    pub(super) fn new(kind: ErrorKind, message: impl Into<String>) -> ClientError {
        ClientError {
            kind,
            url: None,
            status: None,
            message: message.into(),
        }
    }

    pub(super) fn with_url(mut self, url: &str) -> ClientError {
        self.url = Some(url.to_owned());
        self
    }

    pub(super) fn status(url: &str, status: http::StatusCode) -> ClientError {
        ClientError {
            kind: ErrorKind::Status,
            url: Some(url.to_owned()),
            status: Some(status),
            message: format!("server returned HTTP status {status}"),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The redacted URL the error is about, if any.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// The HTTP status for `ErrorKind::Status` errors.
    pub fn http_status(&self) -> Option<http::StatusCode> {
        self.status
    }

    /// A hint for retry policies: transient network failures, timeouts, 429 and 5xx.
    pub fn is_transient(&self) -> bool {
        match self.kind {
            ErrorKind::Timeout | ErrorKind::Connect | ErrorKind::Protocol | ErrorKind::Io => true,
            ErrorKind::Status => self
                .status
                .is_some_and(|s| s.is_server_error() || s == http::StatusCode::TOO_MANY_REQUESTS),
            _ => false,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.url {
            Some(url) => write!(f, "{url}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl StdError for ClientError {}

/// Removes userinfo and the values of secret-looking query parameters.
pub(super) fn redact_url(uri: &http::Uri) -> String {
    let mut out = String::new();
    if let Some(s) = uri.scheme_str() {
        out.push_str(s);
        out.push_str("://");
    }
    if let Some(a) = uri.authority() {
        let a = a.as_str();
        out.push_str(a.rsplit_once('@').map_or(a, |(_, host)| host));
    }
    out.push_str(uri.path());
    if let Some(q) = uri.query() {
        out.push('?');
        let parts: Vec<String> = q
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if is_secret_param(k) => format!("{k}=xxxxx"),
                _ => kv.to_owned(),
            })
            .collect();
        out.push_str(&parts.join("&"));
    }
    out
}

fn is_secret_param(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "token",
        "secret",
        "pass",
        "key",
        "auth",
        "sig",
        "credential",
    ]
    .iter()
    .any(|w| k.contains(w))
}

/// What the TLS settings were, to give a hint that fits the failure.
pub(super) struct TlsContext {
    pub ca_field: Option<&'static str>,
    pub client_cert: bool,
    pub min_version: Option<&'static str>,
}

impl TlsContext {
    pub fn of(tls: &TlsSettings) -> TlsContext {
        TlsContext {
            ca_field: if tls.ca_file.is_some() {
                Some("tls_config.ca_file")
            } else if tls.ca_pem.is_some() {
                Some("tls_config.ca_pem")
            } else {
                None
            },
            client_cert: tls.has_client_cert(),
            min_version: tls.min_version.map(|v| v.as_str()),
        }
    }
}

fn find_in_chain<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<T>() {
            return Some(t);
        }
        // io::Error::source() skips the wrapped error itself; look inside.
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                if let Some(t) = inner.downcast_ref::<T>() {
                    return Some(t);
                }
                if let Some(found) = find_in_chain::<T>(inner) {
                    return Some(found);
                }
            }
        }
        cur = e.source();
    }
    None
}

fn innermost_message(err: &(dyn StdError + 'static)) -> String {
    let mut cur: &(dyn StdError + 'static) = err;
    loop {
        if let Some(io) = cur.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                cur = inner;
                continue;
            }
            return io.to_string();
        }
        match cur.source() {
            Some(next) => cur = next,
            None => return cur.to_string(),
        }
    }
}

fn tls_hint(e: &rustls::Error, ctx: &TlsContext) -> String {
    use rustls::{AlertDescription as A, CertificateError as C, Error as E};
    match e {
        E::InvalidCertificate(C::UnknownIssuer) => match ctx.ca_field {
            Some(f) => format!(" (is {f} the CA that signed the server certificate?)"),
            None => " (the server certificate is not signed by a system CA: set tls_config.ca_file to the CA that signed it)".to_owned(),
        },
        E::InvalidCertificate(C::NotValidForName) | E::InvalidCertificate(C::NotValidForNameContext { .. }) => {
            " (the certificate does not name this host: set tls_config.server_name to a name it is valid for)".to_owned()
        }
        E::InvalidCertificate(C::Expired) | E::InvalidCertificate(C::ExpiredContext { .. }) => {
            " (the server certificate has expired)".to_owned()
        }
        E::AlertReceived(A::CertificateRequired) => {
            " (the server requires a client certificate: set tls_config.cert_file and key_file)".to_owned()
        }
        E::AlertReceived(A::HandshakeFailure) if !ctx.client_cert => {
            " (the server may require a client certificate: set tls_config.cert_file and key_file)".to_owned()
        }
        E::AlertReceived(A::BadCertificate | A::UnknownCA | A::CertificateUnknown | A::AccessDenied)
            if ctx.client_cert =>
        {
            " (the server rejected the client certificate in tls_config.cert_file)".to_owned()
        }
        E::AlertReceived(A::ProtocolVersion) | E::PeerIncompatible(_) => match ctx.min_version {
            Some(v) => format!(" (the server does not support tls_config.min_version {v} or later)"),
            None => " (the server supports no TLS version or cipher that rustls offers: TLS 1.2+ only)".to_owned(),
        },
        _ => String::new(),
    }
}

/// Classifies an error of the hyper-util client into a [`ClientError`].
pub(super) fn classify(err: &(dyn StdError + 'static), url: &str, ctx: &TlsContext) -> ClientError {
    if let Some(t) = find_in_chain::<rustls::Error>(err) {
        return ClientError::new(
            ErrorKind::Tls,
            format!("TLS handshake failed: {t}{}", tls_hint(t, ctx)),
        )
        .with_url(url);
    }
    // h2 keeps only the text of I/O errors, so a TLS alert received after the
    // handshake (TLS 1.3 client-certificate rejection) arrives as text.
    let inner = innermost_message(err);
    if inner.starts_with("received fatal alert: ")
        || inner.starts_with("invalid peer certificate: ")
    {
        let hint = if inner.contains("CertificateRequired") {
            tls_hint(
                &rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired),
                ctx,
            )
        } else if inner.starts_with("received fatal alert: ") && ctx.client_cert {
            " (the server rejected the client certificate in tls_config.cert_file)".to_owned()
        } else {
            String::new()
        };
        return ClientError::new(ErrorKind::Tls, format!("TLS failed: {inner}{hint}"))
            .with_url(url);
    }
    if let Some(p) = find_in_chain::<ProxyError>(err) {
        return ClientError::new(p.kind(), p.to_string()).with_url(url);
    }
    let is_connect = err
        .downcast_ref::<hyper_util::client::legacy::Error>()
        .is_some_and(|e| e.is_connect());
    if is_connect {
        return ClientError::new(
            ErrorKind::Connect,
            format!("connection failed: {}", innermost_message(err)),
        )
        .with_url(url);
    }
    if let Some(h) = find_in_chain::<hyper::Error>(err) {
        let msg = if h.is_incomplete_message() {
            "connection closed before the response was complete".to_owned()
        } else {
            format!("HTTP error: {}", innermost_message(err))
        };
        return ClientError::new(ErrorKind::Protocol, msg).with_url(url);
    }
    ClientError::new(ErrorKind::Io, innermost_message(err)).with_url(url)
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redact_url_drops_userinfo_and_secret_query_values() {
        let u: http::Uri = "https://user:pw@example.com:8443/m?token=abc&module=x"
            .parse()
            .unwrap();
        assert_eq!(
            redact_url(&u),
            "https://example.com:8443/m?token=xxxxx&module=x"
        );
    }
}
