//! `rule { ... }` blocks (in `discovery.relabel` and `prometheus.relabel`) into checked
//! [`Rule`]s. The attribute names and defaults are Prometheus' `relabel_config`'s
//! (`source_labels separator regex modulus target_label replacement action`); the rules
//! themselves are [`crate::relabel`]'s. A rule error points at the attribute it is about.

use super::error::ConfigError;
use super::fields::{Cx, Fields};
use super::syntax::{Block, ExprKind};
use crate::relabel::{Action, Rule, RuleSpec};

const RULE_ATTRS: &[&str] = &[
    "source_labels",
    "separator",
    "regex",
    "modulus",
    "target_label",
    "replacement",
    "action",
];

/// Every `rule` block of a component, in order.
pub(super) fn rule_blocks(
    cx: &Cx,
    blocks: &[&Block],
    parent: &str,
) -> Result<Vec<Rule>, ConfigError> {
    let mut out = Vec::new();
    for b in blocks.iter().filter(|b| b.name == "rule") {
        out.push(rule_block(cx, b, parent)?);
    }
    Ok(out)
}

fn rule_block(cx: &Cx, block: &Block, parent: &str) -> Result<Rule, ConfigError> {
    let what = format!("rule block of {parent}");
    let f = Fields::new(cx, &block.body, &what, RULE_ATTRS, &[])?;
    let mut spec = RuleSpec::default();
    if let Some(e) = f.get("source_labels") {
        spec.source_labels = Some(cx.string_list(e)?);
    }
    if let Some(e) = f.get("separator") {
        spec.separator = Some(cx.string(e)?);
    }
    if let Some(e) = f.get("regex") {
        spec.regex = Some(cx.string(e)?);
    }
    if let Some(e) = f.get("modulus") {
        match e.kind {
            ExprKind::Num(n) if n.fract() == 0.0 && n >= 0.0 && n <= u64::MAX as f64 => {
                spec.modulus = Some(n as u64)
            }
            _ => return Err(cx.type_err(e, "whole number >= 0")),
        }
    }
    if let Some(e) = f.get("target_label") {
        spec.target_label = Some(cx.string(e)?);
    }
    if let Some(e) = f.get("replacement") {
        spec.replacement = Some(cx.string(e)?);
    }
    if let Some(e) = f.get("action") {
        let action = cx.string(e)?;
        if Action::parse(&action.to_lowercase()).is_none() {
            let names: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
            return Err(cx.err(
                e.pos,
                format!(
                    "unknown relabel action {action:?}; expected one of: {}",
                    names.join(", ")
                ),
            ));
        }
        spec.action = Some(action.to_lowercase());
    }
    Rule::new(spec).map_err(|err| {
        let pos = f.get(err.field).map(|e| e.pos).unwrap_or(block.pos);
        cx.err(pos, format!("invalid rule in {parent}: {err}"))
    })
}
