//! The agent's configuration file: the subset of the Alloy (River) syntax for the components
//! we support — `prometheus.scrape`, `discovery.file`, `discovery.relabel`,
//! `prometheus.relabel`, `prometheus.remote_write`, `discovery.kubernetes`,
//! `prometheus.operator.*`, `pyroscope.scrape`, `pyroscope.write` — with the standard library functions
//! (`sys.env`, `constants.*`, `concat`, `format`, ...), and the checked model they become. Loading is all-or-nothing: a file with any error yields a
//! [`ConfigError`] naming `file:line:col` and what was expected, so a reload can keep the old
//! config running. This module starts nothing; the agent builds components from [`Config`].
//!
//! ```text
//! discovery.file "nodes" { files = ["/etc/agent/targets/*.json"] }
//! prometheus.scrape "default" {
//!   targets    = discovery.file.nodes.targets
//!   forward_to = [prometheus.remote_write.main.receiver]
//!   clustering { enabled = true }
//! }
//! prometheus.remote_write "main" {
//!   endpoint { url = "http://prometheus:9090/api/v1/write" }
//! }
//! ```

mod client;
mod components;
mod duration;
mod error;
mod eval;
mod fields;
pub mod format;
mod functions;
mod kubernetes;
mod lexer;
mod model;
mod pyroscope;
mod rules;
mod syntax;

use std::path::Path;

pub use duration::{format_duration, parse_bytes, parse_duration};
pub use error::{ConfigError, Pos};
pub use functions::{Environment, ProcessEnvironment};
pub use model::*;
pub use pyroscope::{
    default_profile_types, ProfileEndpointConfig, ProfileScrapeConfig, ProfileType,
    ProfileWriteConfig,
};

/// Largest configuration file read.
pub const CONFIG_SIZE_MAX_BYTES: u64 = 16 * 1024 * 1024;

impl Config {
    /// Reads and checks a configuration file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let io_err = |e: std::io::Error| ConfigError::Io {
            file: file.clone(),
            message: format!("cannot read config file: {e}"),
        };
        let len = std::fs::metadata(path).map_err(io_err)?.len();
        if len > CONFIG_SIZE_MAX_BYTES {
            return Err(ConfigError::Io {
                file,
                message: format!(
                    "config file is {len} bytes; the limit is {CONFIG_SIZE_MAX_BYTES}"
                ),
            });
        }
        let src = std::fs::read_to_string(path).map_err(io_err)?;
        Config::from_str(&src, &file)
    }

    /// Parses and checks configuration text; `filename` is used in error messages.
    #[allow(clippy::should_implement_trait)] // takes a file name, unlike FromStr
    pub fn from_str(src: &str, filename: &str) -> Result<Config, ConfigError> {
        Config::from_str_in(src, filename, &functions::ProcessEnvironment)
    }

    /// [`Config::from_str`] with `sys.env` and `constants.hostname` read from `env`.
    pub fn from_str_in(
        src: &str,
        filename: &str,
        env: &dyn Environment,
    ) -> Result<Config, ConfigError> {
        let mut body = syntax::parse(src, filename)?;
        functions::fold_body(&mut body, filename, env)?;
        eval::evaluate(&body, filename)
    }

    /// Every error of configuration text, for `agent validate`: lexical and syntax errors
    /// (parsing goes on after each), or, when the syntax is sound, every function error and
    /// each component's first error. Sorted by position. On success, the configuration and
    /// where each component is defined (`prometheus.scrape.NAME` -> its block's position).
    pub fn diagnose(
        src: &str,
        filename: &str,
        env: &dyn Environment,
    ) -> Result<(Config, std::collections::BTreeMap<String, Pos>), Vec<ConfigError>> {
        let (mut body, errors) = syntax::parse_recovering(src, filename);
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut errors = Vec::new();
        let mut failed = std::collections::BTreeSet::new();
        for (index, stmt) in body.stmts.iter_mut().enumerate() {
            let before = errors.len();
            let mut one = syntax::Body {
                stmts: vec![stmt.clone()],
            };
            functions::fold_body_collecting(&mut one, filename, env, &mut errors);
            *stmt = one.stmts.remove(0);
            if errors.len() > before {
                failed.insert(index);
            }
        }
        let (config, eval_errors) = eval::evaluate_all(&body, filename, &failed);
        errors.extend(eval_errors);
        if !errors.is_empty() {
            errors.sort_by_key(|e| e.pos());
            return Err(errors);
        }
        let positions = body
            .stmts
            .iter()
            .filter_map(|stmt| match stmt {
                syntax::Stmt::Block(b) => {
                    let (label, _) = b.label.as_ref()?;
                    Some((format!("{}.{label}", b.name), b.pos))
                }
                syntax::Stmt::Attr(_) => None,
            })
            .collect();
        Ok((config, positions))
    }

    /// A stable hash of what the configuration means, for the configuration-drift alert
    /// (nodes of one cluster should report the same value). Comments, whitespace, attribute
    /// order and component order do not change it; any setting does. It is xxhash64 (seed 0)
    /// of a canonical JSON rendering, so it is the same on every platform and run. Secrets
    /// enter that rendering only as a hash of their value (see `http_client::Secret`).
    pub fn config_hash(&self) -> u64 {
        let mut canonical = self.clone();
        canonical.scrapes.sort_by(|a, b| a.name.cmp(&b.name));
        canonical
            .file_discoveries
            .sort_by(|a, b| a.name.cmp(&b.name));
        canonical.remote_writes.sort_by(|a, b| a.name.cmp(&b.name));
        canonical
            .discovery_relabels
            .sort_by(|a, b| a.name.cmp(&b.name));
        canonical
            .metric_relabels
            .sort_by(|a, b| a.name.cmp(&b.name));
        canonical
            .profile_scrapes
            .sort_by(|a, b| a.name.cmp(&b.name));
        canonical.profile_writes.sort_by(|a, b| a.name.cmp(&b.name));
        let bytes = serde_json::to_vec(&canonical).expect("config serializes");
        xxhash_rust::xxh64::xxh64(&bytes, 0)
    }

    /// [`Config::config_hash`] as 16 lowercase hex digits.
    pub fn config_hash_hex(&self) -> String {
        format!("{:016x}", self.config_hash())
    }

    pub fn scrape(&self, name: &str) -> Option<&ScrapeConfig> {
        self.scrapes.iter().find(|c| c.name == name)
    }

    pub fn file_discovery(&self, name: &str) -> Option<&FileDiscoveryConfig> {
        self.file_discoveries.iter().find(|c| c.name == name)
    }

    pub fn remote_write(&self, name: &str) -> Option<&RemoteWriteConfig> {
        self.remote_writes.iter().find(|c| c.name == name)
    }
}
