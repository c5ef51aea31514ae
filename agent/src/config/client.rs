//! The HTTP client settings that Alloy puts on every component that talks HTTP
//! (`prometheus.scrape`, `prometheus.remote_write`'s `endpoint`): `bearer_token`,
//! `bearer_token_file`, `basic_auth {}`, `authorization {}`, `tls_config {}`, `proxy_url`,
//! `no_proxy`, `proxy_from_environment`, `follow_redirects`, `enable_http2`, and extra
//! headers, into [`ClientSettings`]. Secrets become [`Secret`]s here and are never printed.
//! Whether the settings fit together is [`ClientSettings::validate`]'s rule; this file points
//! its errors at the attribute they are about.

use std::collections::BTreeMap;

use super::error::{ConfigError, Pos};
use super::fields::{Cx, Fields};
use super::syntax::{Block, Expr, ExprKind};
use crate::http_client::{
    Authorization, BasicAuth, ClientSettings, Secret, TlsSettings, TlsVersion,
};

/// Client attributes allowed beside a component's own.
pub(super) const CLIENT_ATTRS: &[&str] = &[
    "bearer_token",
    "bearer_token_file",
    "proxy_url",
    "no_proxy",
    "proxy_from_environment",
    "follow_redirects",
    "enable_http2",
];

/// Client blocks allowed beside a component's own.
pub(super) const CLIENT_BLOCKS: &[&str] = &["basic_auth", "authorization", "tls_config", "oauth2"];

/// How a component spells its extra headers.
#[derive(Clone, Copy)]
pub(super) enum Headers {
    /// `prometheus.scrape`: `http_headers = { "Name" = ["value", ...] }`.
    ListValued(&'static str),
    /// `endpoint`: `headers = { "Name" = "value" }`.
    Plain(&'static str),
}

/// Reads the client settings of a block whose fields are `f`.
pub(super) fn client_settings(
    cx: &Cx,
    block: &Block,
    f: &Fields,
    what: &str,
    headers: Headers,
) -> Result<ClientSettings, ConfigError> {
    let mut c = ClientSettings::default();
    if let Some(e) = f.get("bearer_token") {
        c.bearer_token = Some(secret(cx, e)?);
    }
    if let Some(e) = f.get("bearer_token_file") {
        c.bearer_token_file = Some(path(cx, e)?);
    }
    if let Some(e) = f.get("proxy_url") {
        c.proxy_url = Some(cx.string(e)?).filter(|s| !s.is_empty());
    }
    if let Some(e) = f.get("no_proxy") {
        c.no_proxy = Some(cx.string(e)?).filter(|s| !s.is_empty());
    }
    if let Some(e) = f.get("proxy_from_environment") {
        c.proxy_from_environment = cx.bool(e)?;
    }
    if let Some(e) = f.get("follow_redirects") {
        c.follow_redirects = cx.bool(e)?;
    }
    if let Some(e) = f.get("enable_http2") {
        c.enable_http2 = cx.bool(e)?;
    }
    match headers {
        Headers::Plain(name) => {
            if let Some(e) = f.get(name) {
                c.headers = cx
                    .string_map(e, "header names to string values")?
                    .into_iter()
                    .map(|(k, v)| (k, Secret::new(v)))
                    .collect();
                check_header_names(cx, e, &c.headers)?;
            }
        }
        Headers::ListValued(name) => {
            if let Some(e) = f.get(name) {
                let ExprKind::Object(fields) = &e.kind else {
                    return Err(cx.type_err(e, "object of header names to lists of strings"));
                };
                for (k, _, v) in fields {
                    let values = cx.string_list(v)?;
                    c.headers.insert(k.clone(), Secret::new(values.join(", ")));
                }
                check_header_names(cx, e, &c.headers)?;
            }
        }
    }
    if let Some(b) = f.single_block(cx, "oauth2", what)? {
        return Err(cx.err(
            b.pos,
            format!("oauth2 in {what} is not supported yet; use bearer_token_file with a token your identity provider issues, or authorization {{ credentials_file = ... }}"),
        ));
    }
    if let Some(b) = f.single_block(cx, "basic_auth", what)? {
        let bwhat = format!("basic_auth block of {what}");
        let bf = Fields::new(
            cx,
            &b.body,
            &bwhat,
            &["username", "password", "password_file"],
            &[],
        )?;
        c.basic_auth = Some(BasicAuth {
            username: bf
                .get("username")
                .map(|e| cx.string(e))
                .transpose()?
                .unwrap_or_default(),
            password: bf.get("password").map(|e| secret(cx, e)).transpose()?,
            password_file: bf.get("password_file").map(|e| path(cx, e)).transpose()?,
        });
    }
    if let Some(b) = f.single_block(cx, "authorization", what)? {
        let awhat = format!("authorization block of {what}");
        let af = Fields::new(
            cx,
            &b.body,
            &awhat,
            &["type", "credentials", "credentials_file"],
            &[],
        )?;
        let mut auth = Authorization::default();
        if let Some(e) = af.get("type") {
            auth.type_ = cx.string(e)?;
        }
        auth.credentials = af.get("credentials").map(|e| secret(cx, e)).transpose()?;
        auth.credentials_file = af
            .get("credentials_file")
            .map(|e| path(cx, e))
            .transpose()?;
        c.authorization = Some(auth);
    }
    if let Some(b) = f.single_block(cx, "tls_config", what)? {
        c.tls = tls_config(cx, b, what)?;
    }
    c.validate().map_err(|err| {
        let pos = position_of(f, err.field).unwrap_or(block.pos);
        cx.err(pos, format!("{what}: {err}"))
    })?;
    Ok(c)
}

fn tls_config(cx: &Cx, b: &Block, parent: &str) -> Result<TlsSettings, ConfigError> {
    let what = format!("tls_config block of {parent}");
    let tf = Fields::new(
        cx,
        &b.body,
        &what,
        &[
            "ca_pem",
            "ca_file",
            "cert_pem",
            "cert_file",
            "key_pem",
            "key_file",
            "server_name",
            "insecure_skip_verify",
            "min_version",
        ],
        &[],
    )?;
    let opt = |name: &str| -> Result<Option<String>, ConfigError> {
        tf.get(name)
            .map(|e| cx.string(e))
            .transpose()
            .map(|s| s.filter(|s| !s.is_empty()))
    };
    let mut t = TlsSettings {
        ca_pem: opt("ca_pem")?,
        ca_file: opt("ca_file")?,
        cert_pem: opt("cert_pem")?,
        cert_file: opt("cert_file")?,
        key_pem: opt("key_pem")?.map(Secret::new),
        key_file: opt("key_file")?,
        server_name: opt("server_name")?,
        ..TlsSettings::default()
    };
    if let Some(e) = tf.get("insecure_skip_verify") {
        t.insecure_skip_verify = cx.bool(e)?;
    }
    if let Some(e) = tf.get("min_version") {
        let v = cx.string(e)?;
        let (version, note) = TlsVersion::parse(&v).map_err(|m| cx.err(e.pos, m.to_string()))?;
        if let Some(note) = note {
            tracing::warn!("{}:{}:{}: {note}", cx.file, e.pos.line, e.pos.col);
        }
        t.min_version = Some(version);
    }
    Ok(t)
}

/// Where the attribute a validation error names (`bearer_token`, `basic_auth.password`)
/// was written: the attribute, else its block, else nothing.
fn position_of(f: &Fields, field: &str) -> Option<Pos> {
    let Some((block, attr)) = field.split_once('.') else {
        return f.get(field).map(|e| e.pos);
    };
    let b = f.blocks.iter().find(|b| b.name == block)?;
    let inner = b.body.stmts.iter().find_map(|s| match s {
        super::syntax::Stmt::Attr(a) if a.name == attr => Some(a.pos),
        _ => None,
    });
    Some(inner.unwrap_or(b.pos))
}

fn secret(cx: &Cx, e: &Expr) -> Result<Secret, ConfigError> {
    Ok(Secret::new(cx.string(e)?))
}

fn path(cx: &Cx, e: &Expr) -> Result<String, ConfigError> {
    let p = cx.string(e)?;
    if p.is_empty() {
        return Err(cx.err(e.pos, "expected a file path, got an empty string"));
    }
    Ok(p)
}

fn check_header_names(
    cx: &Cx,
    e: &Expr,
    headers: &BTreeMap<String, Secret>,
) -> Result<(), ConfigError> {
    for name in headers.keys() {
        if hyper::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(cx.err(e.pos, format!("invalid HTTP header name {name:?}")));
        }
    }
    Ok(())
}
