//! Checks a parsed file and turns it into the [`Config`] model: known blocks and attributes,
//! value types, required attributes, duplicate names, and references between components
//! (which may appear in any order in the file). Every error carries `file:line:col`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::error::{ConfigError, Pos};
use super::fields::{Cx, Fields};
use super::model::*;
use super::rules;
use super::syntax::{Block, Body, Expr, ExprKind, Stmt};
use crate::discovery::Target;

pub(super) const KIND_SCRAPE: &str = "prometheus.scrape";
pub(super) const KIND_FILE: &str = "discovery.file";
pub(super) const KIND_DISCOVERY_RELABEL: &str = "discovery.relabel";
pub(super) const KIND_METRIC_RELABEL: &str = "prometheus.relabel";
pub(super) const KIND_REMOTE_WRITE: &str = "prometheus.remote_write";
pub(super) const KIND_KUBERNETES: &str = "discovery.kubernetes";
pub(super) const KIND_PODMONITORS: &str = "prometheus.operator.podmonitors";
pub(super) const KIND_SERVICEMONITORS: &str = "prometheus.operator.servicemonitors";
pub(super) const KIND_PYROSCOPE_SCRAPE: &str = "pyroscope.scrape";
pub(super) const KIND_PYROSCOPE_WRITE: &str = "pyroscope.write";
const KINDS: [&str; 10] = [
    KIND_SCRAPE,
    KIND_FILE,
    KIND_KUBERNETES,
    KIND_DISCOVERY_RELABEL,
    KIND_METRIC_RELABEL,
    KIND_REMOTE_WRITE,
    KIND_PODMONITORS,
    KIND_SERVICEMONITORS,
    KIND_PYROSCOPE_SCRAPE,
    KIND_PYROSCOPE_WRITE,
];

/// What a reference points at, once checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Export {
    Targets,
    Receiver,
    Rules,
    /// A `pyroscope.write` receiver (profiles).
    Profiles,
}

impl Export {
    fn describe(self) -> &'static str {
        match self {
            Export::Targets => "list of targets",
            Export::Receiver => "receiver",
            Export::Rules => "list of relabel rules",
            Export::Profiles => "profile receiver",
        }
    }
}

/// The exports of each component kind.
fn exports(kind: &str) -> &'static [(&'static str, Export)] {
    match kind {
        KIND_FILE | KIND_KUBERNETES => &[("targets", Export::Targets)],
        KIND_DISCOVERY_RELABEL => &[("output", Export::Targets), ("rules", Export::Rules)],
        KIND_METRIC_RELABEL => &[("receiver", Export::Receiver), ("rules", Export::Rules)],
        KIND_REMOTE_WRITE => &[("receiver", Export::Receiver)],
        KIND_PYROSCOPE_WRITE => &[("receiver", Export::Profiles)],
        _ => &[],
    }
}

pub fn evaluate(body: &Body, file: &str) -> Result<Config, ConfigError> {
    let (config, mut errors) = evaluate_all(body, file, &BTreeSet::new());
    match errors.is_empty() {
        true => Ok(config),
        false => Err(errors.swap_remove(0)),
    }
}

/// Checks every component and returns what could be built with every error (each
/// component's first one): the errors of pass 1 (unknown, unlabeled or duplicate blocks),
/// then those of each component, then loops. The top-level statements whose index is in
/// `skip` are declared (references to them resolve) but not checked: they already failed.
pub fn evaluate_all(body: &Body, file: &str, skip: &BTreeSet<usize>) -> (Config, Vec<ConfigError>) {
    let cx = Cx { file };
    let mut errors = Vec::new();
    // Pass 1: which components exist, so references may point forwards.
    let mut declared: HashMap<(String, String), Pos> = HashMap::new();
    let mut blocks = Vec::new();
    for (index, stmt) in body.stmts.iter().enumerate() {
        let block = match stmt {
            Stmt::Attr(a) => {
                errors.push(cx.err(
                    a.pos,
                    format!(
                        "unexpected attribute `{}` at top level; expected a component block ({})",
                        a.name,
                        KINDS.join(", ")
                    ),
                ));
                continue;
            }
            Stmt::Block(b) => b,
        };
        if !KINDS.contains(&block.name.as_str()) {
            errors.push(cx.err(
                block.pos,
                format!(
                    "unknown component `{}`; expected one of: {}",
                    block.name,
                    KINDS.join(", ")
                ),
            ));
            continue;
        }
        let Some((label, label_pos)) = &block.label else {
            errors.push(cx.err(
                block.pos,
                format!(
                    "component `{}` needs a label; expected `{} \"NAME\" {{ ... }}`",
                    block.name, block.name
                ),
            ));
            continue;
        };
        if !is_identifier(label) {
            errors.push(cx.err(
                *label_pos,
                format!("invalid component label {label:?}; expected letters, digits and underscores, not starting with a digit"),
            ));
            continue;
        }
        let key = (block.name.clone(), label.clone());
        if let Some(first) = declared.get(&key) {
            errors.push(cx.err(
                block.pos,
                format!(
                    "duplicate component `{}.{label}`; first defined at {file}:{}:{}",
                    block.name, first.line, first.col
                ),
            ));
            continue;
        }
        declared.insert(key, block.pos);
        if !skip.contains(&index) {
            blocks.push((block, label.clone()));
        }
    }

    let cx = RefCx { cx, declared };
    let mut config = Config::default();
    for (block, name) in blocks {
        let result = match block.name.as_str() {
            KIND_SCRAPE => cx.scrape(block, &name).map(|c| config.scrapes.push(c)),
            KIND_FILE => cx
                .file(block, &name)
                .map(|c| config.file_discoveries.push(c)),
            KIND_DISCOVERY_RELABEL => cx
                .discovery_relabel(block, &name)
                .map(|c| config.discovery_relabels.push(c)),
            KIND_METRIC_RELABEL => cx
                .metric_relabel(block, &name)
                .map(|c| config.metric_relabels.push(c)),
            KIND_REMOTE_WRITE => cx
                .remote_write(block, &name)
                .map(|c| config.remote_writes.push(c)),
            KIND_KUBERNETES => cx
                .kubernetes(block, &name)
                .map(|c| config.kubernetes_discoveries.push(c)),
            KIND_PODMONITORS => cx
                .operator(block, &name, MonitorKind::PodMonitors)
                .map(|c| config.operators.push(c)),
            KIND_SERVICEMONITORS => cx
                .operator(block, &name, MonitorKind::ServiceMonitors)
                .map(|c| config.operators.push(c)),
            KIND_PYROSCOPE_SCRAPE => cx
                .pyroscope_scrape(block, &name)
                .map(|c| config.profile_scrapes.push(c)),
            KIND_PYROSCOPE_WRITE => cx
                .pyroscope_write(block, &name)
                .map(|c| config.profile_writes.push(c)),
            _ => unreachable!("checked in pass 1"),
        };
        if let Err(e) = result {
            errors.push(e);
        }
    }
    if let Err(e) = check_cycles(&cx, &config) {
        errors.push(e);
    }
    (config, errors)
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
}

pub(super) struct RefCx<'a> {
    pub cx: Cx<'a>,
    pub declared: HashMap<(String, String), Pos>,
}

impl RefCx<'_> {
    /// Checks a reference `KIND.NAME.EXPORT` to a `want` and returns the kind and name.
    pub(super) fn reference(
        &self,
        e: &Expr,
        want: Export,
    ) -> Result<(&'static str, String), ConfigError> {
        let cx = &self.cx;
        let ExprKind::Ref(path) = &e.kind else {
            return Err(cx.type_err(e, &format!("reference to a {}", want.describe())));
        };
        let joined = path.join(".");
        let kind = KINDS.iter().copied().find(|k| {
            let parts: Vec<&str> = k.split('.').collect();
            path.len() >= parts.len() + 2 && path[..parts.len()] == parts[..]
        });
        let Some(kind) = kind else {
            return Err(cx.err(
                e.pos,
                format!(
                    "unknown reference `{joined}`; expected a component export such as `{}`",
                    example(want)
                ),
            ));
        };
        let depth = kind.split('.').count();
        if path.len() != depth + 2 {
            return Err(cx.err(
                e.pos,
                format!("malformed reference `{joined}`; expected `{kind}.NAME.EXPORT`"),
            ));
        }
        let (name, export) = (&path[depth], &path[depth + 1]);
        if !self
            .declared
            .contains_key(&(kind.to_string(), name.clone()))
        {
            let mut known: Vec<String> = self
                .declared
                .keys()
                .filter(|(k, _)| k == kind)
                .map(|(k, n)| format!("{k}.{n}"))
                .collect();
            known.sort();
            let hint = if known.is_empty() {
                format!("no {kind} component is defined")
            } else {
                format!("defined: {}", known.join(", "))
            };
            return Err(cx.err(
                e.pos,
                format!(
                    "reference `{joined}` points at `{kind}.{name}`, which does not exist ({hint})"
                ),
            ));
        }
        let exported = exports(kind);
        if exported.is_empty() {
            return Err(cx.err(
                e.pos,
                format!("`{kind}` exports nothing; `{joined}` cannot be used"),
            ));
        }
        let Some((_, got)) = exported.iter().find(|(n, _)| n == export) else {
            let names: Vec<String> = exported.iter().map(|(n, _)| format!("`{n}`")).collect();
            return Err(cx.err(
                e.pos,
                format!(
                    "`{kind}` has no export `{export}`; expected {}",
                    names.join(" or ")
                ),
            ));
        };
        if *got != want {
            return Err(cx.err(
                e.pos,
                format!(
                    "expected a {}, got `{joined}`, which is a {}",
                    want.describe(),
                    got.describe()
                ),
            ));
        }
        Ok((kind, name.clone()))
    }

    /// A list of targets: target objects, a reference to a targets export, or
    /// `concat(...)` of those.
    pub(super) fn targets(&self, e: &Expr) -> Result<Vec<TargetsSource>, ConfigError> {
        let cx = &self.cx;
        match &e.kind {
            ExprKind::Ref(_) => {
                let (kind, name) = self.reference(e, Export::Targets)?;
                Ok(vec![match kind {
                    KIND_FILE => TargetsSource::DiscoveryFile(name),
                    KIND_KUBERNETES => TargetsSource::DiscoveryKubernetes(name),
                    _ => TargetsSource::DiscoveryRelabel(name),
                }])
            }
            // The only call `functions.rs` leaves in place: concat of component exports.
            ExprKind::Call(path, args)
                if matches!(path.join(".").as_str(), "concat" | "array.concat") =>
            {
                let mut out = Vec::new();
                for a in args {
                    out.extend(self.targets(a)?);
                }
                Ok(out)
            }
            ExprKind::List(items) => {
                let mut out = Vec::new();
                for item in items {
                    if !matches!(item.kind, ExprKind::Object(_)) {
                        return Err(cx.type_err(
                            item,
                            "target object like {\"__address__\" = \"host:port\"}",
                        ));
                    }
                    let labels = cx.labels(item)?;
                    out.push(TargetsSource::Static(Target::from_labels(labels)));
                }
                Ok(out)
            }
            _ => Err(cx.type_err(
                e,
                "list of target objects or a reference like discovery.file.NAME.targets",
            )),
        }
    }

    /// `forward_to = [receiver, ...]`.
    pub(super) fn receivers(&self, e: &Expr) -> Result<Vec<Receiver>, ConfigError> {
        let ExprKind::List(items) = &e.kind else {
            return Err(self.cx.type_err(
                e,
                "list of receivers like [prometheus.remote_write.NAME.receiver]",
            ));
        };
        let mut out = Vec::new();
        for item in items {
            let (kind, name) = self.reference(item, Export::Receiver)?;
            out.push(if kind == KIND_REMOTE_WRITE {
                Receiver::RemoteWrite(name)
            } else {
                Receiver::Relabel(name)
            });
        }
        Ok(out)
    }

    fn file(&self, block: &Block, name: &str) -> Result<FileDiscoveryConfig, ConfigError> {
        let cx = &self.cx;
        let what = format!("{KIND_FILE} \"{name}\"");
        let f = Fields::new(cx, &block.body, &what, &["files", "refresh_interval"], &[])?;
        let files_expr = f.required(cx, block, &what, "files")?;
        let files = cx.string_list(files_expr)?;
        if let ExprKind::List(items) = &files_expr.kind {
            for (file, item) in files.iter().zip(items) {
                let ok = [".json", ".yml", ".yaml"]
                    .iter()
                    .any(|ext| file.ends_with(ext));
                if !ok {
                    return Err(cx.err(
                        item.pos,
                        format!(
                            "invalid file {file:?}; expected a path ending in .json, .yml or .yaml"
                        ),
                    ));
                }
            }
        }
        let refresh_interval = match f.get("refresh_interval") {
            Some(e) => cx.positive_duration(e)?,
            None => FILE_REFRESH_INTERVAL_DEFAULT,
        };
        Ok(FileDiscoveryConfig {
            name: name.to_string(),
            files,
            refresh_interval,
        })
    }

    fn discovery_relabel(
        &self,
        block: &Block,
        name: &str,
    ) -> Result<DiscoveryRelabelConfig, ConfigError> {
        let cx = &self.cx;
        let what = format!("{KIND_DISCOVERY_RELABEL} \"{name}\"");
        let f = Fields::new(cx, &block.body, &what, &["targets"], &["rule"])?;
        let targets = self.targets(f.required(cx, block, &what, "targets")?)?;
        Ok(DiscoveryRelabelConfig {
            name: name.to_string(),
            targets,
            rules: rules::rule_blocks(cx, &f.blocks, &what)?,
        })
    }

    fn metric_relabel(
        &self,
        block: &Block,
        name: &str,
    ) -> Result<MetricRelabelConfig, ConfigError> {
        let cx = &self.cx;
        let what = format!("{KIND_METRIC_RELABEL} \"{name}\"");
        let f = Fields::new(
            cx,
            &block.body,
            &what,
            &["forward_to", "max_cache_size"],
            &["rule"],
        )?;
        let forward_to = self.receivers(f.required(cx, block, &what, "forward_to")?)?;
        let max_cache_size = match f.get("max_cache_size") {
            Some(e) => cx.count(e, 1)?,
            None => RELABEL_CACHE_SIZE_DEFAULT,
        };
        Ok(MetricRelabelConfig {
            name: name.to_string(),
            forward_to,
            rules: rules::rule_blocks(cx, &f.blocks, &what)?,
            max_cache_size,
        })
    }
}

/// Refuses a component that feeds itself: a `discovery.relabel` whose targets come (through
/// others) from its own output, or a `prometheus.relabel` that forwards (through others) to
/// itself. The error names the loop.
fn check_cycles(cx: &RefCx, config: &Config) -> Result<(), ConfigError> {
    let target_edges: BTreeMap<&str, Vec<&str>> = config
        .discovery_relabels
        .iter()
        .map(|d| {
            let next = d
                .targets
                .iter()
                .filter_map(|t| match t {
                    TargetsSource::DiscoveryRelabel(n) => Some(n.as_str()),
                    _ => None,
                })
                .collect();
            (d.name.as_str(), next)
        })
        .collect();
    let receiver_edges: BTreeMap<&str, Vec<&str>> = config
        .metric_relabels
        .iter()
        .map(|m| {
            let next = m
                .forward_to
                .iter()
                .filter_map(|r| match r {
                    Receiver::Relabel(n) => Some(n.as_str()),
                    _ => None,
                })
                .collect();
            (m.name.as_str(), next)
        })
        .collect();
    for (kind, edges) in [
        (KIND_DISCOVERY_RELABEL, &target_edges),
        (KIND_METRIC_RELABEL, &receiver_edges),
    ] {
        if let Some(cycle) = find_cycle(edges) {
            let pos = cx
                .declared
                .get(&(kind.to_string(), cycle[0].to_string()))
                .copied()
                .unwrap_or_default();
            let path: Vec<String> = cycle.iter().map(|n| format!("{kind}.{n}")).collect();
            return Err(cx.cx.err(
                pos,
                format!("components form a loop: {}", path.join(" -> ")),
            ));
        }
    }
    Ok(())
}

/// A loop in a graph of names, as the path that closes it (first name repeated last).
fn find_cycle<'a>(edges: &BTreeMap<&'a str, Vec<&'a str>>) -> Option<Vec<&'a str>> {
    fn visit<'a>(
        node: &'a str,
        edges: &BTreeMap<&'a str, Vec<&'a str>>,
        stack: &mut Vec<&'a str>,
        done: &mut std::collections::BTreeSet<&'a str>,
    ) -> Option<Vec<&'a str>> {
        if let Some(i) = stack.iter().position(|n| *n == node) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(node);
            return Some(cycle);
        }
        if !done.insert(node) {
            return None;
        }
        stack.push(node);
        for next in edges.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, edges, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        None
    }
    let mut done = std::collections::BTreeSet::new();
    for node in edges.keys() {
        if let Some(c) = visit(node, edges, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

fn example(want: Export) -> &'static str {
    match want {
        Export::Targets => "discovery.file.NAME.targets",
        Export::Receiver => "prometheus.remote_write.NAME.receiver",
        Export::Rules => "discovery.relabel.NAME.rules",
        Export::Profiles => "pyroscope.write.NAME.receiver",
    }
}
