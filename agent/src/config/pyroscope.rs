//! `pyroscope.scrape` and `pyroscope.write`: what their blocks mean (Alloy's arguments and
//! defaults) and their evaluators. Target lists, receiver references and client settings are
//! read with the same vocabulary as `prometheus.scrape` (`eval`, `client`, the clustering
//! block reader of `components`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::client::{client_settings, Headers, CLIENT_ATTRS, CLIENT_BLOCKS};
use super::components::clustering_block;
use super::duration::format_duration;
use super::error::ConfigError;
use super::eval::{Export, RefCx, KIND_PYROSCOPE_SCRAPE, KIND_PYROSCOPE_WRITE};
use super::fields::Fields;
use super::model::TargetsSource;
use super::syntax::{Block, ExprKind};
use crate::http_client::ClientSettings;

/// Alloy's `pyroscope.scrape` defaults.
pub const PROFILE_SCRAPE_INTERVAL_DEFAULT: Duration = Duration::from_secs(15);
pub const PROFILE_SCRAPE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
/// Alloy's `pyroscope.write` endpoint defaults.
pub const PROFILE_REMOTE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
pub const PROFILE_MIN_BACKOFF_DEFAULT: Duration = Duration::from_millis(500);
pub const PROFILE_MAX_BACKOFF_DEFAULT: Duration = Duration::from_secs(300);
pub const PROFILE_MAX_BACKOFF_RETRIES_DEFAULT: usize = 10;

/// One profile type of `profiling_config`: `profile.NAME { enabled path delta }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfileType {
    /// The profile name (`__name__` of the pushed series): `memory`, `process_cpu`, ...
    pub name: String,
    pub enabled: bool,
    pub path: String,
    /// Scrape with `?seconds=N` (the target collects for N seconds, e.g. CPU profiles).
    pub delta: bool,
}

/// The standard profile types with Alloy's defaults (the first five enabled).
pub fn default_profile_types() -> Vec<ProfileType> {
    [
        ("memory", true, "/debug/pprof/allocs", false),
        ("block", true, "/debug/pprof/block", false),
        ("goroutine", true, "/debug/pprof/goroutine", false),
        ("mutex", true, "/debug/pprof/mutex", false),
        ("process_cpu", true, "/debug/pprof/profile", true),
        ("fgprof", false, "/debug/fgprof", true),
        (
            "godeltaprof_memory",
            false,
            "/debug/pprof/delta_heap",
            false,
        ),
        (
            "godeltaprof_mutex",
            false,
            "/debug/pprof/delta_mutex",
            false,
        ),
        (
            "godeltaprof_block",
            false,
            "/debug/pprof/delta_block",
            false,
        ),
    ]
    .into_iter()
    .map(|(name, enabled, path, delta)| ProfileType {
        name: name.into(),
        enabled,
        path: path.into(),
        delta,
    })
    .collect()
}

/// `pyroscope.scrape "NAME" { ... }`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProfileScrapeConfig {
    pub name: String,
    pub targets: Vec<TargetsSource>,
    /// `pyroscope.write` components (by name) that get the profiles.
    pub forward_to: Vec<String>,
    /// Default: the component id, `pyroscope.scrape.NAME`.
    pub job_name: String,
    pub scrape_interval: Duration,
    pub scrape_timeout: Duration,
    /// `seconds` of the delta (`?seconds=`) profiles; default `scrape_interval` - 1s.
    pub delta_profiling_duration: Duration,
    pub scheme: String,
    pub params: BTreeMap<String, Vec<String>>,
    /// Every profile type, standard ones first, then `profile.custom` blocks.
    pub profiles: Vec<ProfileType>,
    pub path_prefix: String,
    pub clustering_enabled: bool,
    pub client: ClientSettings,
}

impl ProfileScrapeConfig {
    /// `pyroscope.scrape.NAME`.
    pub fn id(&self) -> String {
        format!("{KIND_PYROSCOPE_SCRAPE}.{}", self.name)
    }
}

/// `pyroscope.write "NAME" { endpoint { ... } external_labels = {...} }`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProfileWriteConfig {
    pub name: String,
    pub endpoints: Vec<ProfileEndpointConfig>,
    pub external_labels: BTreeMap<String, String>,
}

/// One `endpoint` of `pyroscope.write`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProfileEndpointConfig {
    /// The Pyroscope server's base URL (the push path is appended).
    pub url: String,
    /// Default: the URL without credentials.
    pub name: String,
    pub remote_timeout: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Retries before a push is given up; 0 retries without limit.
    pub max_backoff_retries: usize,
    pub retry_on_http_429: bool,
    pub client: ClientSettings,
}

const PROFILE_FIELDS: [&str; 3] = ["enabled", "path", "delta"];

impl RefCx<'_> {
    pub(super) fn pyroscope_scrape(
        &self,
        block: &Block,
        name: &str,
    ) -> Result<ProfileScrapeConfig, ConfigError> {
        let cx = &self.cx;
        let what = format!("{KIND_PYROSCOPE_SCRAPE} \"{name}\"");
        let attrs: Vec<&str> = [
            "targets",
            "forward_to",
            "job_name",
            "scrape_interval",
            "scrape_timeout",
            "delta_profiling_duration",
            "scheme",
            "params",
            "http_headers",
        ]
        .into_iter()
        .chain(CLIENT_ATTRS.iter().copied())
        .collect();
        let blocks: Vec<&str> = ["clustering", "profiling_config"]
            .into_iter()
            .chain(CLIENT_BLOCKS.iter().copied())
            .collect();
        let f = Fields::new(cx, &block.body, &what, &attrs, &blocks)?;
        let targets_expr = f.required(cx, block, &what, "targets")?;
        let targets = self.targets(targets_expr)?;
        if let ExprKind::List(items) = &targets_expr.kind {
            for (t, item) in targets.iter().zip(items) {
                if matches!(t, TargetsSource::Static(t) if t.address().is_empty()) {
                    return Err(cx.err(
                        item.pos,
                        "target has no \"__address__\"; expected {\"__address__\" = \"host:port\", ...}",
                    ));
                }
            }
        }
        let forward_expr = f.required(cx, block, &what, "forward_to")?;
        let ExprKind::List(items) = &forward_expr.kind else {
            return Err(cx.type_err(
                forward_expr,
                "list of profile receivers like [pyroscope.write.NAME.receiver]",
            ));
        };
        let mut forward_to = Vec::new();
        for item in items {
            forward_to.push(self.reference(item, Export::Profiles)?.1);
        }
        let mut c = ProfileScrapeConfig {
            name: name.to_string(),
            targets,
            forward_to,
            job_name: format!("{KIND_PYROSCOPE_SCRAPE}.{name}"),
            scrape_interval: PROFILE_SCRAPE_INTERVAL_DEFAULT,
            scrape_timeout: PROFILE_SCRAPE_TIMEOUT_DEFAULT,
            delta_profiling_duration: Duration::ZERO,
            scheme: "http".into(),
            params: BTreeMap::new(),
            profiles: default_profile_types(),
            path_prefix: String::new(),
            clustering_enabled: false,
            client: ClientSettings::default(),
        };
        if let Some(e) = f.get("job_name") {
            c.job_name = cx.string(e)?;
            if c.job_name.is_empty() {
                return Err(cx.err(e.pos, "expected a non-empty job_name"));
            }
        }
        if let Some(e) = f.get("scrape_interval") {
            c.scrape_interval = cx.positive_duration(e)?;
        }
        if let Some(e) = f.get("scrape_timeout") {
            c.scrape_timeout = cx.positive_duration(e)?;
        }
        if let Some(e) = f.get("scheme") {
            c.scheme = cx.string(e)?;
            if c.scheme != "http" && c.scheme != "https" {
                return Err(cx.err(
                    e.pos,
                    format!(
                        "unsupported scheme {:?}; expected \"http\" or \"https\"",
                        c.scheme
                    ),
                ));
            }
        }
        if let Some(e) = f.get("params") {
            let ExprKind::Object(fields) = &e.kind else {
                return Err(cx.type_err(e, "object of parameter names to lists of strings"));
            };
            for (k, _, v) in fields {
                c.params.insert(k.clone(), cx.string_list(v)?);
            }
        }
        if let Some(b) = f.single_block(cx, "profiling_config", &what)? {
            self.profiling_config(b, &what, &mut c)?;
        }
        let delta_enabled = c.profiles.iter().any(|p| p.enabled && p.delta);
        match f.get("delta_profiling_duration") {
            Some(e) => c.delta_profiling_duration = cx.positive_duration(e)?,
            None => {
                c.delta_profiling_duration =
                    c.scrape_interval.saturating_sub(Duration::from_secs(1))
            }
        }
        if delta_enabled {
            // Alloy's rules: the target collects for `seconds` (whole seconds, at least 1)
            // and must answer before the next scrape.
            let pos = f
                .get("delta_profiling_duration")
                .or(f.get("scrape_interval"))
                .map(|e| e.pos)
                .unwrap_or(block.pos);
            if c.scrape_interval < Duration::from_secs(2) {
                return Err(cx.err(pos, format!("scrape_interval ({}) must be at least 2s when a profile type uses delta (process_cpu does by default)", format_duration(c.scrape_interval))));
            }
            if c.delta_profiling_duration <= Duration::from_secs(1)
                || c.delta_profiling_duration + Duration::from_secs(1) > c.scrape_interval
            {
                return Err(cx.err(pos, format!("delta_profiling_duration ({}) must be over 1s and at least 1s below scrape_interval ({})", format_duration(c.delta_profiling_duration), format_duration(c.scrape_interval))));
            }
        }
        c.client = client_settings(cx, block, &f, &what, Headers::ListValued("http_headers"))?;
        c.clustering_enabled = clustering_block(cx, &f, &what)?;
        Ok(c)
    }

    /// `profiling_config { path_prefix  profile.NAME { ... }  profile.custom "NAME" { ... } }`.
    fn profiling_config(
        &self,
        b: &Block,
        parent: &str,
        c: &mut ProfileScrapeConfig,
    ) -> Result<(), ConfigError> {
        let cx = &self.cx;
        let what = format!("profiling_config block of {parent}");
        let mut seen: BTreeMap<String, ()> = BTreeMap::new();
        for stmt in &b.body.stmts {
            match stmt {
                super::syntax::Stmt::Attr(a) if a.name == "path_prefix" => {
                    c.path_prefix = cx.string(&a.value)?;
                }
                super::syntax::Stmt::Attr(a) => {
                    return Err(cx.err(
                        a.pos,
                        format!(
                            "unknown attribute `{}` in {what}; expected path_prefix",
                            a.name
                        ),
                    ))
                }
                super::syntax::Stmt::Block(pb) => {
                    let Some(kind) = pb.name.strip_prefix("profile.") else {
                        return Err(cx.err(pb.pos, format!("unknown block `{}` in {what}; expected profile.memory, profile.block, profile.goroutine, profile.mutex, profile.process_cpu, profile.fgprof, profile.godeltaprof_memory, profile.godeltaprof_mutex, profile.godeltaprof_block or profile.custom \"NAME\"", pb.name)));
                    };
                    let custom = kind == "custom";
                    let name = match (&pb.label, custom) {
                        (Some((l, _)), true) => l.clone(),
                        (None, true) => {
                            return Err(cx.err(
                                pb.pos,
                                "profile.custom needs a label: profile.custom \"NAME\" { enabled = true  path = \"/debug/...\" }",
                            ))
                        }
                        (Some((_, pos)), false) => {
                            return Err(cx.err(*pos, format!("block `{}` takes no label", pb.name)))
                        }
                        (None, false) => kind.to_string(),
                    };
                    if seen.insert(name.clone(), ()).is_some() {
                        return Err(cx.err(
                            pb.pos,
                            format!("profile {name:?} is configured twice in {what}"),
                        ));
                    }
                    let pwhat = format!("{} block of {parent}", pb.name);
                    let pf = Fields::new(cx, &pb.body, &pwhat, &PROFILE_FIELDS, &[])?;
                    let index = match c.profiles.iter().position(|p| p.name == name) {
                        Some(i) if !custom => i,
                        Some(_) => {
                            return Err(cx.err(pb.pos, format!("profile.custom {name:?} has the name of a standard profile type; use profile.{name}")))
                        }
                        None if custom => {
                            let enabled = cx.bool(pf.required(cx, pb, &pwhat, "enabled")?)?;
                            let path = cx.string(pf.required(cx, pb, &pwhat, "path")?)?;
                            c.profiles.push(ProfileType { name: name.clone(), enabled, path, delta: false });
                            c.profiles.len() - 1
                        }
                        None => {
                            return Err(cx.err(pb.pos, format!("unknown profile type `{}` in {what}", pb.name)))
                        }
                    };
                    let p = &mut c.profiles[index];
                    if let Some(e) = pf.get("enabled") {
                        p.enabled = cx.bool(e)?;
                    }
                    if let Some(e) = pf.get("path") {
                        p.path = cx.string(e)?;
                        if !p.path.starts_with('/') {
                            return Err(cx.err(
                                e.pos,
                                format!(
                                    "invalid path {:?}; expected a path starting with \"/\"",
                                    p.path
                                ),
                            ));
                        }
                    }
                    if let Some(e) = pf.get("delta") {
                        p.delta = cx.bool(e)?;
                    }
                }
            }
        }
        Ok(())
    }

    pub(super) fn pyroscope_write(
        &self,
        block: &Block,
        name: &str,
    ) -> Result<ProfileWriteConfig, ConfigError> {
        let cx = &self.cx;
        let what = format!("{KIND_PYROSCOPE_WRITE} \"{name}\"");
        let f = Fields::new(cx, &block.body, &what, &["external_labels"], &["endpoint"])?;
        let external_labels = match f.get("external_labels") {
            Some(e) => cx.labels(e)?,
            None => BTreeMap::new(),
        };
        let mut endpoints = Vec::new();
        for b in f.blocks.iter().filter(|b| b.name == "endpoint") {
            let ewhat = format!("endpoint block of {what}");
            let attrs: Vec<&str> = [
                "url",
                "name",
                "remote_timeout",
                "headers",
                "min_backoff_period",
                "max_backoff_period",
                "max_backoff_retries",
                "retry_on_http_429",
            ]
            .into_iter()
            .chain(CLIENT_ATTRS.iter().copied())
            .collect();
            let ef = Fields::new(cx, &b.body, &ewhat, &attrs, CLIENT_BLOCKS)?;
            let url_expr = ef.required(cx, b, &ewhat, "url")?;
            let url = cx.string(url_expr)?;
            let valid = url.parse::<hyper::Uri>().ok().filter(|u| {
                matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some()
            });
            if valid.is_none() {
                return Err(cx.err(url_expr.pos, format!("invalid url {url:?}; expected the http:// or https:// URL of a Pyroscope server such as \"http://pyroscope:4040\"")));
            }
            let mut e = ProfileEndpointConfig {
                name: crate::http_client::redact_url(&url),
                url,
                remote_timeout: PROFILE_REMOTE_TIMEOUT_DEFAULT,
                min_backoff: PROFILE_MIN_BACKOFF_DEFAULT,
                max_backoff: PROFILE_MAX_BACKOFF_DEFAULT,
                max_backoff_retries: PROFILE_MAX_BACKOFF_RETRIES_DEFAULT,
                retry_on_http_429: true,
                client: ClientSettings::default(),
            };
            if let Some(x) = ef.get("name") {
                e.name = cx.string(x)?;
            }
            if let Some(x) = ef.get("remote_timeout") {
                e.remote_timeout = cx.positive_duration(x)?;
            }
            if let Some(x) = ef.get("min_backoff_period") {
                e.min_backoff = cx.positive_duration(x)?;
            }
            if let Some(x) = ef.get("max_backoff_period") {
                e.max_backoff = cx.positive_duration(x)?;
            }
            if e.min_backoff > e.max_backoff {
                return Err(cx.err(b.pos, "min_backoff_period is greater than max_backoff_period; expected min_backoff_period <= max_backoff_period"));
            }
            if let Some(x) = ef.get("max_backoff_retries") {
                e.max_backoff_retries = cx.count(x, 0)?;
            }
            if let Some(x) = ef.get("retry_on_http_429") {
                e.retry_on_http_429 = cx.bool(x)?;
            }
            e.client = client_settings(cx, b, &ef, &ewhat, Headers::Plain("headers"))?;
            endpoints.push(e);
        }
        if endpoints.is_empty() {
            return Err(cx.err(block.pos, format!("{what} has no endpoint; expected `endpoint {{ url = \"http://pyroscope:4040\" }}`")));
        }
        Ok(ProfileWriteConfig {
            name: name.to_string(),
            endpoints,
            external_labels,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn load(src: &str) -> Result<Config, String> {
        Config::from_str(src, "p.alloy").map_err(|e| e.to_string())
    }

    #[test]
    fn a_scrape_and_write_pair_is_read_with_alloys_defaults() {
        let c = load(
            r#"
pyroscope.scrape "go" {
  targets    = [{"__address__" = "127.0.0.1:9090", "service_name" = "prometheus"}]
  forward_to = [pyroscope.write.main.receiver]
  scrape_interval = "5s"
  profiling_config {
    profile.goroutine { enabled = false }
    profile.custom "heap" {
      enabled = true
      path    = "/debug/pprof/heap"
    }
  }
  clustering { enabled = true }
}
pyroscope.write "main" {
  endpoint {
    url = "http://pyroscope:4040"
    headers = {"X-Scope-OrgID" = "t"}
  }
  external_labels = {env = "test"}
}
"#,
        )
        .unwrap();
        let s = &c.profile_scrapes[0];
        assert_eq!(s.job_name, "pyroscope.scrape.go");
        assert_eq!(s.forward_to, ["main"]);
        assert!(s.clustering_enabled);
        assert_eq!(
            s.delta_profiling_duration,
            std::time::Duration::from_secs(4)
        );
        let enabled: Vec<&str> = s
            .profiles
            .iter()
            .filter(|p| p.enabled)
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(enabled, ["memory", "block", "mutex", "process_cpu", "heap"]);
        let w = &c.profile_writes[0];
        assert_eq!(w.endpoints[0].max_backoff_retries, 10);
        assert_eq!(w.external_labels["env"], "test");
    }

    #[test]
    fn mistakes_are_named_with_their_position() {
        for (src, want) in [
            (
                "pyroscope.scrape \"a\" {\n  targets = []\n  forward_to = [prometheus.remote_write.x.receiver]\n}\nprometheus.remote_write \"x\" {\n  endpoint { url = \"http://h:9090/api/v1/write\" }\n}\n",
                "p.alloy:3:17: expected a profile receiver, got `prometheus.remote_write.x.receiver`, which is a receiver",
            ),
            (
                "pyroscope.scrape \"a\" {\n  targets = []\n  forward_to = []\n  scrape_interval = \"1s\"\n}\n",
                "p.alloy:4:21: scrape_interval (1s) must be at least 2s when a profile type uses delta (process_cpu does by default)",
            ),
            (
                "pyroscope.scrape \"a\" {\n  targets = []\n  forward_to = []\n  profiling_config {\n    profile.heap { enabled = true }\n  }\n}\n",
                "p.alloy:5:5: unknown profile type `profile.heap` in profiling_config block of pyroscope.scrape \"a\"",
            ),
            (
                "pyroscope.write \"w\" { }\n",
                "p.alloy:1:1: pyroscope.write \"w\" has no endpoint; expected `endpoint { url = \"http://pyroscope:4040\" }`",
            ),
        ] {
            assert_eq!(load(src).unwrap_err(), want);
        }
    }
}
