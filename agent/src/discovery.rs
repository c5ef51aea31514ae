//! Targets and `discovery.file`: a [`Target`] is a label set (`__address__`, `__scheme__`,
//! `__metrics_path__`, `__meta_*`, user labels), and [`FileDiscovery`] turns Prometheus file_sd
//! files (JSON or YAML: a list of `{targets: [...], labels: {...}}`) into targets, re-reading
//! them every `refresh_interval`.
//!
//! Like Prometheus' file_sd: a file that cannot be read or parsed keeps its last good targets
//! and the error is reported; a file that no longer exists (or no longer matches the glob)
//! contributes nothing. Every target gets `__meta_filepath`. This module decides nothing about
//! ownership: the clustering glue filters targets before they reach the scraper.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::config::FileDiscoveryConfig;

/// Largest file_sd file read; a larger one is an error and keeps its last good targets.
pub const FILE_SIZE_MAX_BYTES: u64 = 16 * 1024 * 1024;

/// A scrape target as a label set. Labels starting with `__` are internal: they steer the
/// scrape (`__address__`, `__scheme__`, `__metrics_path__`, `__param_NAME`) or carry discovery
/// metadata (`__meta_*`) and never reach stored series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize)]
#[serde(transparent)]
pub struct Target(BTreeMap<String, String>);

impl Target {
    /// A target with only `__address__`.
    pub fn from_address(address: &str) -> Target {
        Target::from_labels([("__address__", address)])
    }

    pub fn from_labels<K: Into<String>, V: Into<String>>(
        labels: impl IntoIterator<Item = (K, V)>,
    ) -> Target {
        Target(
            labels
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), value.into());
    }

    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// The label set, to change (relabeling) and wrap again with [`Target::from_map`].
    pub fn into_labels(self) -> BTreeMap<String, String> {
        self.0
    }

    pub fn from_map(labels: BTreeMap<String, String>) -> Target {
        Target(labels)
    }

    /// `__address__`, or `""` when missing.
    pub fn address(&self) -> &str {
        self.get("__address__").unwrap_or("")
    }

    /// The labels that identify the target for sharding: all but `__meta_*`, sorted by name
    /// (DESIGN.md "Target key"). Discovery metadata may differ between nodes; these may not.
    pub fn non_meta_labels(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .filter(|(k, _)| !k.starts_with("__meta_"))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The target's shard key (Alloy >= 1.2: xxhash64 over the sorted non-`__meta_` labels),
    /// the input to ownership lookups in `cluster::shard`.
    pub fn shard_key(&self) -> u64 {
        let pairs: Vec<(&str, &str)> = self
            .0
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        cluster::shard::target_key(&pairs)
    }
}

/// One problem with one file during a refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryError {
    pub path: PathBuf,
    pub message: String,
}

impl std::fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

/// The file_sd reader. Synchronous and clock-free: [`FileDiscovery::refresh`] does one pass;
/// [`FileDiscovery::spawn`] runs it on an interval.
#[derive(Debug)]
pub struct FileDiscovery {
    config: FileDiscoveryConfig,
    /// Last good targets per file, so a broken file keeps what it had.
    last_good: BTreeMap<PathBuf, Vec<Target>>,
    errors: Vec<DiscoveryError>,
}

impl FileDiscovery {
    pub fn new(config: FileDiscoveryConfig) -> FileDiscovery {
        FileDiscovery {
            config,
            last_good: BTreeMap::new(),
            errors: Vec::new(),
        }
    }

    /// Re-reads every file the patterns match and returns all targets, in file order.
    pub fn refresh(&mut self) -> Vec<Target> {
        self.errors.clear();
        let mut seen: BTreeMap<PathBuf, Vec<Target>> = BTreeMap::new();
        for pattern in &self.config.files {
            let paths = match expand_pattern(pattern) {
                Ok(p) => p,
                Err(message) => {
                    self.errors.push(DiscoveryError {
                        path: PathBuf::from(pattern),
                        message,
                    });
                    // Keep the last good targets of every file this pattern matched before.
                    for (path, targets) in &self.last_good {
                        if matches_pattern(pattern, path) {
                            seen.insert(path.clone(), targets.clone());
                        }
                    }
                    continue;
                }
            };
            for path in paths {
                if seen.contains_key(&path) {
                    continue;
                }
                match read_file(&path) {
                    Ok(targets) => {
                        seen.insert(path, targets);
                    }
                    Err(message) => {
                        tracing::warn!(path = %path.display(), %message, "discovery.file: keeping last good targets");
                        if let Some(old) = self.last_good.get(&path) {
                            seen.insert(path.clone(), old.clone());
                        }
                        self.errors.push(DiscoveryError { path, message });
                    }
                }
            }
        }
        self.last_good = seen;
        self.targets()
    }

    /// The targets of the last refresh.
    pub fn targets(&self) -> Vec<Target> {
        self.last_good.values().flatten().cloned().collect()
    }

    /// The problems found by the last refresh (empty when all files were good).
    pub fn errors(&self) -> &[DiscoveryError] {
        &self.errors
    }

    /// Refreshes now and then every `refresh_interval` on the current tokio runtime. The
    /// returned handle publishes target lists (only when they change) and the last errors;
    /// dropping it stops the task.
    pub fn spawn(config: FileDiscoveryConfig) -> DiscoveryHandle {
        let interval = config.refresh_interval.max(Duration::from_millis(10));
        let mut discovery = FileDiscovery::new(config);
        let first = discovery.refresh();
        let errors = Arc::new(Mutex::new(discovery.errors.clone()));
        let (tx, rx) = watch::channel(first);
        let task_errors = errors.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let targets = discovery.refresh();
                *task_errors.lock().unwrap() = discovery.errors.clone();
                tx.send_if_modified(|current| {
                    if *current != targets {
                        *current = targets;
                        true
                    } else {
                        false
                    }
                });
                if tx.is_closed() {
                    return;
                }
            }
        });
        DiscoveryHandle {
            targets: rx,
            errors,
            task,
        }
    }
}

/// A running `discovery.file` component.
#[derive(Debug)]
pub struct DiscoveryHandle {
    targets: watch::Receiver<Vec<Target>>,
    errors: Arc<Mutex<Vec<DiscoveryError>>>,
    task: tokio::task::JoinHandle<()>,
}

impl DiscoveryHandle {
    /// A handle over a discovery task: it publishes on `targets`' sender and keeps `errors`;
    /// dropping the handle aborts `task`.
    pub fn from_parts(
        targets: watch::Receiver<Vec<Target>>,
        errors: Arc<Mutex<Vec<DiscoveryError>>>,
        task: tokio::task::JoinHandle<()>,
    ) -> DiscoveryHandle {
        DiscoveryHandle {
            targets,
            errors,
            task,
        }
    }

    /// The exported `targets`; `changed()` on it wakes on every new list.
    pub fn targets(&self) -> watch::Receiver<Vec<Target>> {
        self.targets.clone()
    }

    /// Errors of the most recent refresh.
    pub fn errors(&self) -> Vec<DiscoveryError> {
        self.errors.lock().unwrap().clone()
    }
}

impl Drop for DiscoveryHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Group {
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

fn read_file(path: &Path) -> Result<Vec<Target>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if meta.len() > FILE_SIZE_MAX_BYTES {
        return Err(format!(
            "file is {} bytes; the limit is {FILE_SIZE_MAX_BYTES}",
            meta.len()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    parse_file_sd(&text, ext, &path.display().to_string())
}

/// Parses file_sd content (`ext` is `json`, `yml` or `yaml`) into targets carrying
/// `__meta_filepath = filepath`.
pub fn parse_file_sd(text: &str, ext: &str, filepath: &str) -> Result<Vec<Target>, String> {
    let groups: Vec<Group> = match ext {
        "json" => serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?,
        "yml" | "yaml" => {
            if text.trim().is_empty() {
                Vec::new()
            } else {
                serde_yaml::from_str(text).map_err(|e| format!("invalid YAML: {e}"))?
            }
        }
        other => {
            return Err(format!(
                "unsupported extension {other:?}; expected .json, .yml or .yaml"
            ))
        }
    };
    let mut out = Vec::new();
    for (i, group) in groups.into_iter().enumerate() {
        for name in group.labels.keys() {
            if !is_valid_label_name(name) {
                return Err(format!(
                    "group {i}: invalid label name {name:?}; expected [a-zA-Z_][a-zA-Z0-9_]*"
                ));
            }
        }
        for address in group.targets {
            if address.is_empty() || address.contains('/') {
                return Err(format!(
                    "group {i}: invalid target {address:?}; expected host:port"
                ));
            }
            let mut t = Target(group.labels.clone());
            t.insert("__address__", address);
            t.insert("__meta_filepath", filepath);
            out.push(t);
        }
    }
    Ok(out)
}

/// Prometheus label name rule.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Expands a path whose last component may hold `*` and `?` wildcards. Wildcards elsewhere are
/// not supported (reported as an error). Returns existing files only, sorted.
fn expand_pattern(pattern: &str) -> Result<Vec<PathBuf>, String> {
    let path = Path::new(pattern);
    let file_name = path.file_name().and_then(|f| f.to_str()).unwrap_or("");
    let dir = path.parent().unwrap_or(Path::new(""));
    if dir.to_str().is_some_and(|d| d.contains(['*', '?'])) {
        return Err("wildcards are only supported in the file name, not in directories".into());
    }
    if !file_name.contains(['*', '?']) {
        return Ok(if path.is_file() {
            vec![path.to_path_buf()]
        } else {
            Vec::new()
        });
    }
    let dir_to_read = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let entries = match std::fs::read_dir(dir_to_read) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot list {}: {e}", dir_to_read.display())),
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| wildcard_match(file_name, n))
        })
        .map(|e| dir.join(e.file_name()))
        .collect();
    out.sort();
    Ok(out)
}

fn matches_pattern(pattern: &str, path: &Path) -> bool {
    let p = Path::new(pattern);
    match (
        p.file_name().and_then(|f| f.to_str()),
        path.file_name().and_then(|f| f.to_str()),
    ) {
        (Some(pat), Some(name)) => p.parent() == path.parent() && wildcard_match(pat, name),
        _ => false,
    }
}

/// `*` matches any run of characters, `?` any one character.
fn wildcard_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut star_ni) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            star_ni = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            star_ni += 1;
            ni = star_ni;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(files: Vec<String>) -> FileDiscoveryConfig {
        FileDiscoveryConfig {
            name: "t".into(),
            files,
            refresh_interval: Duration::from_secs(300),
        }
    }

    #[test]
    fn json_and_yaml_groups_become_targets_with_filepath() {
        let json =
            r#"[{"targets": ["a:1", "b:2"], "labels": {"env": "prod"}}, {"targets": ["c:3"]}]"#;
        let t = parse_file_sd(json, "json", "/x.json").unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].get("env"), Some("prod"));
        assert_eq!(t[0].address(), "a:1");
        assert_eq!(t[2].get("__meta_filepath"), Some("/x.json"));
        let yaml = "- targets: ['a:1']\n  labels:\n    env: dev\n";
        let t = parse_file_sd(yaml, "yaml", "/x.yaml").unwrap();
        assert_eq!(t[0].get("env"), Some("dev"));
    }

    #[test]
    fn shard_key_ignores_meta_labels() {
        let a = Target::from_labels([("__address__", "h:1"), ("__meta_filepath", "/a.json")]);
        let b = Target::from_labels([("__address__", "h:1"), ("__meta_filepath", "/b.json")]);
        let c = Target::from_labels([("__address__", "h:2")]);
        assert_eq!(a.shard_key(), b.shard_key());
        assert_ne!(a.shard_key(), c.shard_key());
    }

    #[test]
    fn invalid_label_names_are_rejected() {
        let err = parse_file_sd(
            r#"[{"targets": ["a:1"], "labels": {"1x": "v"}}]"#,
            "json",
            "f",
        )
        .unwrap_err();
        assert!(err.contains("invalid label name"), "{err}");
    }

    #[test]
    fn a_broken_file_keeps_its_last_good_targets_and_reports_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        std::fs::write(&path, r#"[{"targets": ["a:1"]}]"#).unwrap();
        let mut d = FileDiscovery::new(config(vec![path.display().to_string()]));
        assert_eq!(d.refresh().len(), 1);
        assert!(d.errors().is_empty());
        std::fs::write(&path, "[{not json").unwrap();
        let t = d.refresh();
        assert_eq!(t.len(), 1, "last good list is kept");
        assert_eq!(d.errors().len(), 1);
        assert!(d.errors()[0].message.contains("invalid JSON"));
        std::fs::write(&path, r#"[{"targets": ["a:1", "b:2"]}]"#).unwrap();
        assert_eq!(d.refresh().len(), 2);
        assert!(d.errors().is_empty());
        std::fs::remove_file(&path).unwrap();
        assert!(d.refresh().is_empty(), "a deleted file contributes nothing");
    }

    #[test]
    fn globs_match_file_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.json"), r#"[{"targets": ["a:1"]}]"#).unwrap();
        std::fs::write(dir.path().join("b.yml"), "- targets: ['b:1']\n").unwrap();
        std::fs::write(dir.path().join("c.json"), r#"[{"targets": ["c:1"]}]"#).unwrap();
        let pattern = dir.path().join("*.json").display().to_string();
        let mut d = FileDiscovery::new(config(vec![pattern]));
        let addrs: Vec<String> = d
            .refresh()
            .iter()
            .map(|t| t.address().to_string())
            .collect();
        assert_eq!(addrs, vec!["a:1", "c:1"]);
        assert!(wildcard_match("t?-*.yaml", "t1-prod.yaml"));
        assert!(!wildcard_match("*.json", "x.yaml"));
    }

    #[tokio::test]
    async fn spawned_discovery_publishes_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        std::fs::write(&path, r#"[{"targets": ["a:1"]}]"#).unwrap();
        let mut cfg = config(vec![path.display().to_string()]);
        cfg.refresh_interval = Duration::from_millis(20);
        let handle = FileDiscovery::spawn(cfg);
        let mut rx = handle.targets();
        assert_eq!(rx.borrow_and_update().len(), 1);
        std::fs::write(&path, r#"[{"targets": ["a:1", "b:1"]}]"#).unwrap();
        tokio::time::timeout(Duration::from_secs(5), rx.changed())
            .await
            .expect("discovery noticed the change")
            .unwrap();
        assert_eq!(rx.borrow().len(), 2);
    }
}
