//! The checking vocabulary shared by every component's evaluator: [`Cx`] turns expressions
//! into typed values (strings, bools, counts, durations, string maps, labels) with errors at
//! `file:line:col`, and [`Fields`] checks a block's attributes and nested blocks against what
//! it allows. Knows no component.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::duration::parse_duration;
use super::error::{ConfigError, Pos};
use super::syntax::{Attr, Block, Body, Expr, ExprKind, Stmt};
use crate::discovery::is_valid_label_name;

pub(super) struct Cx<'a> {
    pub file: &'a str,
}

impl Cx<'_> {
    pub fn err(&self, pos: Pos, msg: impl Into<String>) -> ConfigError {
        ConfigError::at(self.file, pos, msg)
    }

    pub fn type_err(&self, e: &Expr, expected: &str) -> ConfigError {
        let got = match &e.kind {
            ExprKind::Ref(path) => format!("reference `{}`", path.join(".")),
            k => k.type_name().to_string(),
        };
        self.err(e.pos, format!("expected {expected}, got {got}"))
    }

    pub fn string(&self, e: &Expr) -> Result<String, ConfigError> {
        match &e.kind {
            ExprKind::Str(s) => Ok(s.clone()),
            _ => Err(self.type_err(e, "string")),
        }
    }

    pub fn bool(&self, e: &Expr) -> Result<bool, ConfigError> {
        match e.kind {
            ExprKind::Bool(b) => Ok(b),
            _ => Err(self.type_err(e, "bool")),
        }
    }

    pub fn count(&self, e: &Expr, min: u64) -> Result<usize, ConfigError> {
        match e.kind {
            ExprKind::Num(n) if n.fract() == 0.0 && n >= min as f64 && n <= 1e12 => Ok(n as usize),
            ExprKind::Num(n) => {
                Err(self.err(e.pos, format!("expected a whole number >= {min}, got {n}")))
            }
            _ => Err(self.type_err(e, "number")),
        }
    }

    pub fn duration(&self, e: &Expr) -> Result<Duration, ConfigError> {
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

    pub fn positive_duration(&self, e: &Expr) -> Result<Duration, ConfigError> {
        let d = self.duration(e)?;
        if d.is_zero() {
            return Err(self.err(e.pos, "expected a duration greater than zero"));
        }
        Ok(d)
    }

    pub fn string_list(&self, e: &Expr) -> Result<Vec<String>, ConfigError> {
        match &e.kind {
            ExprKind::List(items) => items.iter().map(|i| self.string(i)).collect(),
            _ => Err(self.type_err(e, "list of strings")),
        }
    }

    /// An object whose values are all strings, e.g. labels or headers.
    pub fn string_map(
        &self,
        e: &Expr,
        what: &str,
    ) -> Result<BTreeMap<String, String>, ConfigError> {
        let ExprKind::Object(fields) = &e.kind else {
            return Err(self.type_err(e, &format!("object of {what}")));
        };
        let mut out = BTreeMap::new();
        for (k, _, v) in fields {
            out.insert(k.clone(), self.string(v)?);
        }
        Ok(out)
    }

    pub fn labels(&self, e: &Expr) -> Result<BTreeMap<String, String>, ConfigError> {
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
pub(super) struct Fields<'a> {
    pub attrs: HashMap<&'a str, &'a Attr>,
    pub blocks: Vec<&'a Block>,
}

impl<'a> Fields<'a> {
    pub fn new(
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

    pub fn get(&self, name: &str) -> Option<&'a Expr> {
        self.attrs.get(name).map(|a| &a.value)
    }

    pub fn required(
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
    pub fn single_block(
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
