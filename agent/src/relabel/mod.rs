//! Prometheus relabeling: rule validation and rule application.
//!
//! This module owns the `discovery.relabel` and `prometheus.relabel` components
//! (`components.rs`) and, below them, turning a user-written [`RuleSpec`] into a checked
//! [`Rule`] (defaults, Prometheus' validation rules, anchored RE2-compatible
//! regexes) and applying a list of rules to a label set with Prometheus'
//! exact semantics ([`process`]).
//!
//! It must not do I/O and does not parse configuration syntax: callers
//! build `RuleSpec`s from their own config format and attach source
//! locations to [`RuleError`]s (which carry the offending field name).

mod components;
mod pattern;
mod process;
mod rule;

#[cfg(test)]
mod tests;

pub use self::components::{relabel_targets, MetricRelabel, MetricRelabelMetrics};
pub use self::pattern::Regex;
pub use self::process::process;
pub use self::rule::{
    Action, Rule, RuleError, RuleSpec, DEFAULT_REGEX, DEFAULT_REPLACEMENT, DEFAULT_SEPARATOR,
};
