//! The client settings model (plain data; the config parser fills it in) and
//! its validation, following the rules of Prometheus' common HTTP config.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::secret::Secret;

/// Settings of one component's HTTP client (Alloy's `http_client_config`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientSettings {
    pub tls: TlsSettings,
    pub basic_auth: Option<BasicAuth>,
    pub bearer_token: Option<Secret>,
    pub bearer_token_file: Option<String>,
    pub authorization: Option<Authorization>,
    /// Extra request headers (Alloy `http_headers`; values are secrets).
    pub headers: BTreeMap<String, Secret>,
    pub proxy_url: Option<String>,
    /// Comma list of IPs, CIDRs and domains that bypass the proxy
    /// ("example.com" and ".example.com" both match subdomains).
    pub no_proxy: Option<String>,
    /// Use HTTP_PROXY / HTTPS_PROXY / NO_PROXY from the environment.
    pub proxy_from_environment: bool,
    pub follow_redirects: bool,
    pub enable_http2: bool,
}

impl Default for ClientSettings {
    fn default() -> ClientSettings {
        ClientSettings {
            tls: TlsSettings::default(),
            basic_auth: None,
            bearer_token: None,
            bearer_token_file: None,
            authorization: None,
            headers: BTreeMap::new(),
            proxy_url: None,
            no_proxy: None,
            proxy_from_environment: false,
            follow_redirects: true,
            enable_http2: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct BasicAuth {
    pub username: String,
    pub password: Option<Secret>,
    pub password_file: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Authorization {
    /// The scheme, "Bearer" by default.
    #[serde(rename = "type")]
    pub type_: String,
    pub credentials: Option<Secret>,
    pub credentials_file: Option<String>,
}

impl Default for Authorization {
    fn default() -> Authorization {
        Authorization {
            type_: "Bearer".to_owned(),
            credentials: None,
            credentials_file: None,
        }
    }
}

/// Alloy's `tls_config` block.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct TlsSettings {
    pub ca_pem: Option<String>,
    pub ca_file: Option<String>,
    pub cert_pem: Option<String>,
    pub cert_file: Option<String>,
    pub key_pem: Option<Secret>,
    pub key_file: Option<String>,
    pub server_name: Option<String>,
    pub insecure_skip_verify: bool,
    pub min_version: Option<TlsVersion>,
}

impl TlsSettings {
    /// Whether a client certificate (mTLS) is configured.
    pub fn has_client_cert(&self) -> bool {
        self.cert_pem.is_some() || self.cert_file.is_some()
    }

    /// The files of this block that are watched for rotation.
    pub(super) fn files(&self) -> Vec<(&'static str, &str)> {
        let mut out = Vec::new();
        if let Some(f) = &self.ca_file {
            out.push(("ca_file", f.as_str()));
        }
        if let Some(f) = &self.cert_file {
            out.push(("cert_file", f.as_str()));
        }
        if let Some(f) = &self.key_file {
            out.push(("key_file", f.as_str()));
        }
        out
    }
}

/// Minimum TLS version. rustls implements only TLS 1.2 and 1.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum TlsVersion {
    #[serde(rename = "TLS12")]
    Tls12,
    #[serde(rename = "TLS13")]
    Tls13,
}

impl TlsVersion {
    /// Parses Alloy's names "TLS10", "TLS11", "TLS12", "TLS13". rustls supports
    /// only TLS 1.2 and later, so "TLS10" and "TLS11" are accepted as TLS 1.2
    /// (the lowest version rustls can speak, which still honours "at least
    /// 1.0/1.1"); the second value is then a note the caller may log.
    pub fn parse(s: &str) -> Result<(TlsVersion, Option<String>), SettingsError> {
        match s {
            "TLS12" => Ok((TlsVersion::Tls12, None)),
            "TLS13" => Ok((TlsVersion::Tls13, None)),
            "TLS10" | "TLS11" => Ok((
                TlsVersion::Tls12,
                Some(format!(
                    "min_version {s}: rustls supports only TLS 1.2 and 1.3, so TLS 1.2 is the effective minimum"
                )),
            )),
            other => Err(SettingsError::new(
                "tls_config.min_version",
                format!("unknown TLS version {other:?} (expected one of TLS10, TLS11, TLS12, TLS13)"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "TLS12",
            TlsVersion::Tls13 => "TLS13",
        }
    }
}

/// A validation error naming the offending field (dotted, Alloy names), so the
/// caller can point at the field's position in the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    pub field: &'static str,
    pub message: String,
}

impl SettingsError {
    pub fn new(field: &'static str, message: impl Into<String>) -> SettingsError {
        SettingsError {
            field,
            message: message.into(),
        }
    }
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for SettingsError {}

/// Headers the client sets itself or that change the connection; they cannot
/// be set through `http_headers` (as Prometheus' reserved headers).
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "host",
    "content-encoding",
    "content-length",
    "content-type",
    "user-agent",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "www-authenticate",
    "accept-encoding",
    "x-prometheus-remote-write-version",
    "x-prometheus-remote-read-version",
    "x-prometheus-scrape-timeout-seconds",
    "transfer-encoding",
    "te",
    "upgrade",
];

fn set<T>(v: &Option<T>) -> bool {
    v.is_some()
}

impl ClientSettings {
    /// Checks the combination rules; the first violation is returned.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let bearer = set(&self.bearer_token);
        let bearer_file = set(&self.bearer_token_file);
        if bearer && bearer_file {
            return Err(SettingsError::new(
                "bearer_token_file",
                "at most one of bearer_token and bearer_token_file must be configured",
            ));
        }
        if let Some(b) = &self.basic_auth {
            if bearer || bearer_file {
                let other = if bearer {
                    "bearer_token"
                } else {
                    "bearer_token_file"
                };
                return Err(SettingsError::new(
                    "basic_auth",
                    format!("at most one of basic_auth, bearer_token and bearer_token_file must be configured (both basic_auth and {other} are set)"),
                ));
            }
            if b.password.is_some() && b.password_file.is_some() {
                return Err(SettingsError::new(
                    "basic_auth.password_file",
                    "at most one of basic_auth password and password_file must be configured",
                ));
            }
        }
        if let Some(a) = &self.authorization {
            if bearer || bearer_file {
                let other = if bearer {
                    "bearer_token"
                } else {
                    "bearer_token_file"
                };
                return Err(SettingsError::new(
                    "authorization",
                    format!("authorization is not compatible with bearer_token and bearer_token_file ({other} is set)"),
                ));
            }
            if self.basic_auth.is_some() {
                return Err(SettingsError::new(
                    "authorization",
                    "at most one of basic_auth and authorization must be configured (both are set)",
                ));
            }
            if a.credentials.is_some() && a.credentials_file.is_some() {
                return Err(SettingsError::new(
                    "authorization.credentials_file",
                    "at most one of authorization credentials and credentials_file must be configured",
                ));
            }
            if a.type_.trim().eq_ignore_ascii_case("basic") {
                return Err(SettingsError::new(
                    "authorization.type",
                    "authorization type cannot be \"Basic\", use basic_auth instead",
                ));
            }
            if a.type_
                .trim()
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(SettingsError::new(
                    "authorization.type",
                    "must be a single word",
                ));
            }
        }
        self.validate_proxy()?;
        for (name, value) in &self.headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(SettingsError::new(
                    "http_headers",
                    format!("invalid header name {name:?}"),
                ));
            }
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(SettingsError::new(
                    "http_headers",
                    format!("header {name:?} is reserved and cannot be set in http_headers"),
                ));
            }
            if http::HeaderValue::from_str(value.expose()).is_err() {
                return Err(SettingsError::new(
                    "http_headers",
                    format!("value of header {name:?} contains invalid characters"),
                ));
            }
        }
        self.tls.validate()
    }

    fn validate_proxy(&self) -> Result<(), SettingsError> {
        if self.proxy_from_environment && self.proxy_url.is_some() {
            return Err(SettingsError::new(
                "proxy_from_environment",
                "if proxy_from_environment is set, proxy_url must not be set",
            ));
        }
        if self.proxy_from_environment && self.no_proxy.is_some() {
            return Err(SettingsError::new(
                "no_proxy",
                "if proxy_from_environment is set, no_proxy must not be set (NO_PROXY is read from the environment)",
            ));
        }
        if self.no_proxy.is_some() && self.proxy_url.is_none() {
            return Err(SettingsError::new(
                "no_proxy",
                "if no_proxy is set, proxy_url must also be set",
            ));
        }
        if let Some(p) = &self.proxy_url {
            let uri: http::Uri = p
                .parse()
                .map_err(|e| SettingsError::new("proxy_url", format!("invalid URL: {e}")))?;
            match uri.scheme_str() {
                Some("http") | Some("https") => {}
                _ => {
                    return Err(SettingsError::new(
                        "proxy_url",
                        "must be an http:// or https:// URL",
                    ))
                }
            }
            if uri.host().is_none_or(str::is_empty) {
                return Err(SettingsError::new("proxy_url", "must have a host"));
            }
        }
        Ok(())
    }
}

impl TlsSettings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.ca_pem.is_some() && self.ca_file.is_some() {
            return Err(SettingsError::new(
                "tls_config.ca_file",
                "at most one of ca_pem and ca_file must be configured",
            ));
        }
        if self.cert_pem.is_some() && self.cert_file.is_some() {
            return Err(SettingsError::new(
                "tls_config.cert_file",
                "at most one of cert_pem and cert_file must be configured",
            ));
        }
        if self.key_pem.is_some() && self.key_file.is_some() {
            return Err(SettingsError::new(
                "tls_config.key_file",
                "at most one of key_pem and key_file must be configured",
            ));
        }
        let cert = self.has_client_cert();
        let key = self.key_pem.is_some() || self.key_file.is_some();
        if cert && !key {
            return Err(SettingsError::new(
                "tls_config.key_file",
                "a client certificate is configured without a key: set key_pem or key_file",
            ));
        }
        if key && !cert {
            return Err(SettingsError::new(
                "tls_config.cert_file",
                "a client key is configured without a certificate: set cert_pem or cert_file",
            ));
        }
        if let Some(name) = &self.server_name {
            if rustls_pki_types::ServerName::try_from(name.as_str()).is_err() {
                return Err(SettingsError::new(
                    "tls_config.server_name",
                    format!("{name:?} is not a valid DNS name or IP address"),
                ));
            }
        }
        Ok(())
    }
}
