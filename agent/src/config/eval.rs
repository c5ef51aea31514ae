//! Checks a parsed file and turns it into the [`Config`] model: known blocks and attributes,
//! value types, required attributes, duplicate names, and references between components
//! (which may appear in any order in the file). Every error carries `file:line:col`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::duration::{format_duration, parse_bytes, parse_duration};
use super::error::{ConfigError, Pos};
use super::model::*;
use super::syntax::{Attr, Block, Body, Expr, ExprKind, Stmt};
use crate::discovery::{is_valid_label_name, Target};

const KIND_SCRAPE: &str = "prometheus.scrape";
const KIND_FILE: &str = "discovery.file";
const KIND_REMOTE_WRITE: &str = "prometheus.remote_write";
const KINDS: [&str; 3] = [KIND_SCRAPE, KIND_FILE, KIND_REMOTE_WRITE];

/// What a reference points at, once checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Export {
    Targets,
    Receiver,
}

impl Export {
    fn describe(self) -> &'static str {
        match self {
            Export::Targets => "list of targets",
            Export::Receiver => "receiver",
        }
    }
}

pub fn evaluate(body: &Body, file: &str) -> Result<Config, ConfigError> {
    let cx = Cx { file };
    // Pass 1: which components exist, so references may point forwards.
    let mut declared: HashMap<(String, String), Pos> = HashMap::new();
    let mut blocks = Vec::new();
    for stmt in &body.stmts {
        let block = match stmt {
            Stmt::Attr(a) => {
                return Err(cx.err(
                    a.pos,
                    format!(
                        "unexpected attribute `{}` at top level; expected a component block ({})",
                        a.name,
                        KINDS.join(", ")
                    ),
                ))
            }
            Stmt::Block(b) => b,
        };
        if !KINDS.contains(&block.name.as_str()) {
            return Err(cx.err(
                block.pos,
                format!(
                    "unknown component `{}`; expected one of: {}",
                    block.name,
                    KINDS.join(", ")
                ),
            ));
        }
        let Some((label, label_pos)) = &block.label else {
            return Err(cx.err(
                block.pos,
                format!(
                    "component `{}` needs a label; expected `{} \"NAME\" {{ ... }}`",
                    block.name, block.name
                ),
            ));
        };
        if !is_identifier(label) {
            return Err(cx.err(
                *label_pos,
                format!("invalid component label {label:?}; expected letters, digits and underscores, not starting with a digit"),
            ));
        }
        let key = (block.name.clone(), label.clone());
        if let Some(first) = declared.get(&key) {
            return Err(cx.err(
                block.pos,
                format!(
                    "duplicate component `{}.{label}`; first defined at {file}:{}:{}",
                    block.name, first.line, first.col
                ),
            ));
        }
        declared.insert(key, block.pos);
        blocks.push((block, label.clone()));
    }

    let cx = RefCx { cx, declared };
    let mut config = Config {
        scrapes: Vec::new(),
        file_discoveries: Vec::new(),
        remote_writes: Vec::new(),
    };
    for (block, name) in blocks {
        match block.name.as_str() {
            KIND_SCRAPE => config.scrapes.push(cx.scrape(block, &name)?),
            KIND_FILE => config.file_discoveries.push(cx.file(block, &name)?),
            KIND_REMOTE_WRITE => config.remote_writes.push(cx.remote_write(block, &name)?),
            _ => unreachable!("checked in pass 1"),
        }
    }
    Ok(config)
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
}

struct Cx<'a> {
    file: &'a str,
}

impl Cx<'_> {
    fn err(&self, pos: Pos, msg: impl Into<String>) -> ConfigError {
        ConfigError::at(self.file, pos, msg)
    }

    fn type_err(&self, e: &Expr, expected: &str) -> ConfigError {
        let got = match &e.kind {
            ExprKind::Ref(path) => format!("reference `{}`", path.join(".")),
            k => k.type_name().to_string(),
        };
        self.err(e.pos, format!("expected {expected}, got {got}"))
    }

    fn string(&self, e: &Expr) -> Result<String, ConfigError> {
        match &e.kind {
            ExprKind::Str(s) => Ok(s.clone()),
            _ => Err(self.type_err(e, "string")),
        }
    }

    fn bool(&self, e: &Expr) -> Result<bool, ConfigError> {
        match e.kind {
            ExprKind::Bool(b) => Ok(b),
            _ => Err(self.type_err(e, "bool")),
        }
    }

    fn count(&self, e: &Expr, min: u64) -> Result<usize, ConfigError> {
        match e.kind {
            ExprKind::Num(n) if n.fract() == 0.0 && n >= min as f64 && n <= 1e12 => Ok(n as usize),
            ExprKind::Num(n) => {
                Err(self.err(e.pos, format!("expected a whole number >= {min}, got {n}")))
            }
            _ => Err(self.type_err(e, "number")),
        }
    }

    fn duration(&self, e: &Expr) -> Result<Duration, ConfigError> {
        let s = match &e.kind {
            ExprKind::Str(s) => s,
            _ => return Err(self.type_err(e, "duration string like \"15s\"")),
        };
        parse_duration(s).ok_or_else(|| {
            self.err(
                e.pos,
                format!("invalid duration {s:?}; expected a duration like \"15s\", \"1m30s\" or \"500ms\""),
            )
        })
    }

    fn positive_duration(&self, e: &Expr) -> Result<Duration, ConfigError> {
        let d = self.duration(e)?;
        if d.is_zero() {
            return Err(self.err(e.pos, "expected a duration greater than zero"));
        }
        Ok(d)
    }

    fn string_list(&self, e: &Expr) -> Result<Vec<String>, ConfigError> {
        match &e.kind {
            ExprKind::List(items) => items.iter().map(|i| self.string(i)).collect(),
            _ => Err(self.type_err(e, "list of strings")),
        }
    }

    /// An object whose values are all strings, e.g. labels or headers.
    fn string_map(&self, e: &Expr, what: &str) -> Result<BTreeMap<String, String>, ConfigError> {
        let ExprKind::Object(fields) = &e.kind else {
            return Err(self.type_err(e, &format!("object of {what}")));
        };
        let mut out = BTreeMap::new();
        for (k, _, v) in fields {
            out.insert(k.clone(), self.string(v)?);
        }
        Ok(out)
    }

    fn labels(&self, e: &Expr) -> Result<BTreeMap<String, String>, ConfigError> {
        let map = self.string_map(e, "label names to string values")?;
        if let ExprKind::Object(fields) = &e.kind {
            for (k, pos, _) in fields {
                if !is_valid_label_name(k) {
                    return Err(self.err(
                        *pos,
                        format!("invalid label name {k:?}; expected [a-zA-Z_][a-zA-Z0-9_]*"),
                    ));
                }
            }
        }
        Ok(map)
    }
}

/// The attributes and nested blocks of one block, checked against what it allows.
struct Fields<'a> {
    attrs: HashMap<&'a str, &'a Attr>,
    blocks: Vec<&'a Block>,
}

impl<'a> Fields<'a> {
    fn new(
        cx: &Cx,
        body: &'a Body,
        what: &str,
        allowed_attrs: &[&str],
        allowed_blocks: &[&str],
    ) -> Result<Fields<'a>, ConfigError> {
        let mut attrs: HashMap<&str, &Attr> = HashMap::new();
        let mut blocks = Vec::new();
        for stmt in &body.stmts {
            match stmt {
                Stmt::Attr(a) => {
                    if !allowed_attrs.contains(&a.name.as_str()) {
                        return Err(cx.err(
                            a.pos,
                            format!(
                                "unknown attribute `{}` in {what}; expected one of: {}",
                                a.name,
                                allowed_attrs.join(", ")
                            ),
                        ));
                    }
                    if let Some(first) = attrs.get(a.name.as_str()) {
                        return Err(cx.err(
                            a.pos,
                            format!(
                                "attribute `{}` is set twice in {what}; first set at {}:{}:{}",
                                a.name, cx.file, first.pos.line, first.pos.col
                            ),
                        ));
                    }
                    attrs.insert(a.name.as_str(), a);
                }
                Stmt::Block(b) => {
                    if !allowed_blocks.contains(&b.name.as_str()) {
                        let expected = if allowed_blocks.is_empty() {
                            "no nested blocks".to_string()
                        } else {
                            format!("one of: {}", allowed_blocks.join(", "))
                        };
                        return Err(cx.err(
                            b.pos,
                            format!("unknown block `{}` in {what}; expected {expected}", b.name),
                        ));
                    }
                    if let Some((_, pos)) = &b.label {
                        return Err(cx.err(
                            *pos,
                            format!(
                                "block `{}` takes no label; expected `{} {{ ... }}`",
                                b.name, b.name
                            ),
                        ));
                    }
                    blocks.push(b);
                }
            }
        }
        Ok(Fields { attrs, blocks })
    }

    fn get(&self, name: &str) -> Option<&'a Expr> {
        self.attrs.get(name).map(|a| &a.value)
    }

    fn required(
        &self,
        cx: &Cx,
        block: &Block,
        what: &str,
        name: &str,
    ) -> Result<&'a Expr, ConfigError> {
        self.get(name).ok_or_else(|| {
            cx.err(
                block.pos,
                format!("missing required attribute `{name}` in {what}"),
            )
        })
    }

    /// At most one nested block called `name`.
    fn single_block(
        &self,
        cx: &Cx,
        name: &str,
        what: &str,
    ) -> Result<Option<&'a Block>, ConfigError> {
        let mut found = self.blocks.iter().filter(|b| b.name == name);
        let first = found.next().copied();
        if let Some(second) = found.next() {
            return Err(cx.err(
                second.pos,
                format!("block `{name}` appears twice in {what}; expected at most one"),
            ));
        }
        Ok(first)
    }
}

struct RefCx<'a> {
    cx: Cx<'a>,
    declared: HashMap<(String, String), Pos>,
}

impl RefCx<'_> {
    /// Checks a reference `KIND.NAME.EXPORT` and returns the component name.
    fn reference(&self, e: &Expr, want: Export) -> Result<String, ConfigError> {
        let cx = &self.cx;
        let ExprKind::Ref(path) = &e.kind else {
            return Err(cx.type_err(e, &format!("reference to a {}", want.describe())));
        };
        let joined = path.join(".");
        let kind = KINDS.iter().find(|k| {
            let parts: Vec<&str> = k.split('.').collect();
            path.len() >= 2 && path[0] == parts[0] && path[1] == parts[1]
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
        if path.len() != 4 {
            return Err(cx.err(
                e.pos,
                format!("malformed reference `{joined}`; expected `{kind}.NAME.EXPORT`"),
            ));
        }
        let (name, export) = (&path[2], &path[3]);
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
        let exported = match *kind {
            KIND_FILE => Some(("targets", Export::Targets)),
            KIND_REMOTE_WRITE => Some(("receiver", Export::Receiver)),
            _ => None,
        };
        match exported {
            Some((export_name, got)) if export_name == export => {
                if got != want {
                    return Err(cx.err(
                        e.pos,
                        format!(
                            "expected a {}, got `{joined}`, which is a {}",
                            want.describe(),
                            got.describe()
                        ),
                    ));
                }
                Ok(name.clone())
            }
            Some((export_name, _)) => Err(cx.err(
                e.pos,
                format!("`{kind}` has no export `{export}`; expected `{export_name}`"),
            )),
            None => Err(cx.err(
                e.pos,
                format!("`{kind}` exports nothing; `{joined}` cannot be used"),
            )),
        }
    }

    fn scrape(&self, block: &Block, name: &str) -> Result<ScrapeConfig, ConfigError> {
        let cx = &self.cx;
        let what = format!("{KIND_SCRAPE} \"{name}\"");
        let f = Fields::new(
            cx,
            &block.body,
            &what,
            &[
                "targets",
                "forward_to",
                "job_name",
                "scrape_interval",
                "scrape_timeout",
                "metrics_path",
                "scheme",
                "honor_labels",
                "honor_timestamps",
                "body_size_limit",
            ],
            &["clustering"],
        )?;
        let mut c = ScrapeConfig::with_defaults(name);

        let targets = f.required(cx, block, &what, "targets")?;
        c.targets = match &targets.kind {
            ExprKind::Ref(_) => vec![TargetsSource::DiscoveryFile(
                self.reference(targets, Export::Targets)?,
            )],
            ExprKind::List(items) => {
                let mut out = Vec::new();
                for item in items {
                    if !matches!(item.kind, ExprKind::Object(_)) {
                        return Err(cx.type_err(
                            item,
                            "target object like {\"__address__\" = \"host:port\"}",
                        ));
                    }
                    let labels = cx.string_map(item, "label names to string values")?;
                    if let ExprKind::Object(fields) = &item.kind {
                        for (k, pos, _) in fields {
                            if !is_valid_label_name(k) {
                                return Err(cx.err(
                                    *pos,
                                    format!(
                                        "invalid label name {k:?}; expected [a-zA-Z_][a-zA-Z0-9_]*"
                                    ),
                                ));
                            }
                        }
                    }
                    if labels.get("__address__").is_none_or(|a| a.is_empty()) {
                        return Err(cx.err(
                            item.pos,
                            "target has no \"__address__\"; expected {\"__address__\" = \"host:port\", ...}",
                        ));
                    }
                    out.push(TargetsSource::Static(Target::from_labels(labels)));
                }
                out
            }
            _ => {
                return Err(cx.type_err(
                    targets,
                    "list of target objects or a reference like discovery.file.NAME.targets",
                ))
            }
        };

        let forward_to = f.required(cx, block, &what, "forward_to")?;
        let ExprKind::List(items) = &forward_to.kind else {
            return Err(cx.type_err(
                forward_to,
                "list of receivers like [prometheus.remote_write.NAME.receiver]",
            ));
        };
        for item in items {
            c.forward_to.push(self.reference(item, Export::Receiver)?);
        }

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
        if c.scrape_timeout > c.scrape_interval {
            let pos = f
                .get("scrape_timeout")
                .or(f.get("scrape_interval"))
                .map(|e| e.pos)
                .unwrap_or(block.pos);
            return Err(cx.err(
                pos,
                format!(
                    "scrape_timeout ({}) is greater than scrape_interval ({}); expected scrape_timeout <= scrape_interval",
                    format_duration(c.scrape_timeout),
                    format_duration(c.scrape_interval)
                ),
            ));
        }
        if let Some(e) = f.get("metrics_path") {
            c.metrics_path = cx.string(e)?;
            if !c.metrics_path.starts_with('/') {
                return Err(cx.err(
                    e.pos,
                    format!(
                        "invalid metrics_path {:?}; expected a path starting with \"/\"",
                        c.metrics_path
                    ),
                ));
            }
        }
        if let Some(e) = f.get("scheme") {
            c.scheme = cx.string(e)?;
            if c.scheme != "http" {
                return Err(cx.err(
                    e.pos,
                    format!(
                        "unsupported scheme {:?}; expected \"http\" (TLS is not supported yet)",
                        c.scheme
                    ),
                ));
            }
        }
        if let Some(e) = f.get("honor_labels") {
            c.honor_labels = cx.bool(e)?;
        }
        if let Some(e) = f.get("honor_timestamps") {
            c.honor_timestamps = cx.bool(e)?;
        }
        if let Some(e) = f.get("body_size_limit") {
            let s = cx.string(e)?;
            c.body_size_limit_bytes = parse_bytes(&s).filter(|b| *b > 0).ok_or_else(|| {
                cx.err(
                    e.pos,
                    format!("invalid size {s:?}; expected a size like \"64MiB\""),
                )
            })?;
        }
        if let Some(b) = f.single_block(cx, "clustering", &what)? {
            let inner_what = format!("clustering block of {what}");
            let cf = Fields::new(cx, &b.body, &inner_what, &["enabled"], &[])?;
            let enabled = cf.required(cx, b, &inner_what, "enabled")?;
            c.clustering_enabled = cx.bool(enabled)?;
        }
        Ok(c)
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

    fn remote_write(&self, block: &Block, name: &str) -> Result<RemoteWriteConfig, ConfigError> {
        let cx = &self.cx;
        let what = format!("{KIND_REMOTE_WRITE} \"{name}\"");
        let f = Fields::new(cx, &block.body, &what, &["external_labels"], &["endpoint"])?;
        let external_labels = match f.get("external_labels") {
            Some(e) => cx.labels(e)?,
            None => BTreeMap::new(),
        };
        let mut endpoints = Vec::new();
        for b in &f.blocks {
            endpoints.push(self.endpoint(b, &what)?);
        }
        if endpoints.is_empty() {
            return Err(cx.err(
                block.pos,
                format!("{what} has no endpoint; expected `endpoint {{ url = \"http://host:9090/api/v1/write\" }}`"),
            ));
        }
        Ok(RemoteWriteConfig {
            name: name.to_string(),
            endpoints,
            external_labels,
        })
    }

    fn endpoint(&self, block: &Block, parent: &str) -> Result<EndpointConfig, ConfigError> {
        let cx = &self.cx;
        let what = format!("endpoint block of {parent}");
        let f = Fields::new(
            cx,
            &block.body,
            &what,
            &["url", "name", "remote_timeout", "headers"],
            &["queue_config"],
        )?;
        let url_expr = f.required(cx, block, &what, "url")?;
        let url = cx.string(url_expr)?;
        let valid = url
            .parse::<hyper::Uri>()
            .ok()
            .filter(|u| u.scheme_str() == Some("http") && u.authority().is_some());
        if valid.is_none() {
            return Err(cx.err(
                url_expr.pos,
                format!("invalid url {url:?}; expected an http:// URL such as \"http://localhost:9090/api/v1/write\" (TLS is not supported yet)"),
            ));
        }
        let mut e = EndpointConfig::with_defaults(&url);
        if let Some(x) = f.get("name") {
            e.name = cx.string(x)?;
        }
        if let Some(x) = f.get("remote_timeout") {
            e.remote_timeout = cx.positive_duration(x)?;
        }
        if let Some(x) = f.get("headers") {
            e.headers = cx.string_map(x, "header names to string values")?;
        }
        if let Some(q) = f.single_block(cx, "queue_config", &what)? {
            let qwhat = format!("queue_config block of {parent}");
            let qf = Fields::new(
                cx,
                &q.body,
                &qwhat,
                &[
                    "capacity",
                    "max_samples_per_send",
                    "batch_send_deadline",
                    "min_backoff",
                    "max_backoff",
                    "retry_on_http_429",
                ],
                &[],
            )?;
            let queue = &mut e.queue;
            if let Some(x) = qf.get("capacity") {
                queue.capacity = cx.count(x, 1)?;
            }
            if let Some(x) = qf.get("max_samples_per_send") {
                queue.max_samples_per_send = cx.count(x, 1)?;
            }
            if let Some(x) = qf.get("batch_send_deadline") {
                queue.batch_send_deadline = cx.positive_duration(x)?;
            }
            if let Some(x) = qf.get("min_backoff") {
                queue.min_backoff = cx.positive_duration(x)?;
            }
            if let Some(x) = qf.get("max_backoff") {
                queue.max_backoff = cx.positive_duration(x)?;
            }
            if let Some(x) = qf.get("retry_on_http_429") {
                queue.retry_on_http_429 = cx.bool(x)?;
            }
            if queue.min_backoff > queue.max_backoff {
                return Err(cx.err(
                    q.pos,
                    "min_backoff is greater than max_backoff; expected min_backoff <= max_backoff",
                ));
            }
        }
        Ok(e)
    }
}

fn example(want: Export) -> &'static str {
    match want {
        Export::Targets => "discovery.file.NAME.targets",
        Export::Receiver => "prometheus.remote_write.NAME.receiver",
    }
}
