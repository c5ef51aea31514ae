//! Outbound HTTP client of the agent, configured with Alloy's client settings.
//!
//! This module owns every outbound HTTP request the agent makes: scrapes,
//! `remote_write`, and later the kubernetes and pyroscope clients. It applies
//! one component's [`ClientSettings`]: TLS via rustls (custom CA, client
//! certificates, `server_name`, `min_version`, `insecure_skip_verify`),
//! authentication (basic, bearer, `authorization`), extra headers, HTTP
//! proxies (absolute-form for `http://`, CONNECT tunnels for `https://`,
//! `no_proxy`), redirects, the HTTP/2 toggle, and rotation of the certificate
//! and credential files without a restart.
//!
//! What it must not do: parse configuration files (the config parser fills in
//! the plain-data [`ClientSettings`]), and decide retry policy (errors carry a
//! [`ErrorKind`] so callers can classify them; the module never retries).

mod auth;
mod client;
mod error;
mod proxy;
mod secret;
mod settings;
mod tls;

pub use self::client::{HttpClient, Response};
pub use self::error::{ClientError, ErrorKind};

/// The `User-Agent` of every request the agent makes.
pub const USER_AGENT: &str = concat!("agent/", env!("CARGO_PKG_VERSION"));

/// `url` as it may be shown (logs, metrics labels, errors): without `user:password@` and
/// with the values of secret-looking query parameters masked. Text that is not a URL is
/// shown up to its first `@`-free form.
pub fn redact_url(url: &str) -> String {
    match url.parse::<http::Uri>() {
        Ok(uri) => self::error::redact_url(&uri),
        Err(_) => match url.split_once("://") {
            Some((scheme, rest)) => {
                let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
                format!("{scheme}://{rest}")
            }
            None => url.rsplit_once('@').map_or(url, |(_, h)| h).to_string(),
        },
    }
}
pub use self::secret::Secret;
pub use self::settings::{
    Authorization, BasicAuth, ClientSettings, SettingsError, TlsSettings, TlsVersion,
};
