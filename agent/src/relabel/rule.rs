//! Relabel actions, user-written rule specs, and their validation into
//! checked [`Rule`]s, following Prometheus' `relabel.Config` validation.

use std::fmt;
use std::sync::OnceLock;

use serde::Serialize;

use super::pattern::Regex;

/// What a relabel rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Replace,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
}

impl Action {
    /// Every action, in the order Prometheus documents them.
    pub const ALL: [Action; 11] = [
        Action::Replace,
        Action::Keep,
        Action::Drop,
        Action::KeepEqual,
        Action::DropEqual,
        Action::HashMod,
        Action::LabelMap,
        Action::LabelDrop,
        Action::LabelKeep,
        Action::Lowercase,
        Action::Uppercase,
    ];

    /// Parses an action name exactly as written in configs (lowercase, as
    /// Alloy requires; Prometheus' YAML loader also lowercases first).
    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// The config spelling of the action.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::KeepEqual => "keepequal",
            Action::DropEqual => "dropequal",
            Action::HashMod => "hashmod",
            Action::LabelMap => "labelmap",
            Action::LabelDrop => "labeldrop",
            Action::LabelKeep => "labelkeep",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Default separator between joined source label values.
pub const DEFAULT_SEPARATOR: &str = ";";
/// Default regex (matches anything, capturing it as group 1).
pub const DEFAULT_REGEX: &str = "(.*)";
/// Default replacement (the first capture group).
pub const DEFAULT_REPLACEMENT: &str = "$1";

/// What a user wrote (all optional fields as Option), defaults applied by
/// [`Rule::new`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSpec {
    pub source_labels: Option<Vec<String>>,
    pub separator: Option<String>,
    pub regex: Option<String>,
    pub modulus: Option<u64>,
    pub target_label: Option<String>,
    pub replacement: Option<String>,
    pub action: Option<String>,
}

/// A checked rule. `PartialEq`/`Serialize` treat the regex as its source text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    pub source_labels: Vec<String>,
    pub separator: String,
    pub regex: Regex,
    pub modulus: u64,
    pub target_label: String,
    pub replacement: String,
    pub action: Action,
}

/// Why a [`RuleSpec`] was rejected. `field` names the offending attribute
/// (e.g. `"modulus"`) so a caller can point at it; `Display` gives the
/// reason without any location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub field: &'static str,
    pub message: String,
}

impl RuleError {
    fn new(field: &'static str, message: impl Into<String>) -> RuleError {
        RuleError {
            field,
            message: message.into(),
        }
    }
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RuleError {}

impl Rule {
    /// Applies defaults and validates like Prometheus' relabel config
    /// loader. See the module tests for the accepted/rejected shapes.
    pub fn new(spec: RuleSpec) -> Result<Rule, RuleError> {
        let action = match spec.action.as_deref() {
            None => Action::Replace,
            Some(s) => Action::parse(s).ok_or_else(|| {
                let names: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
                RuleError::new(
                    "action",
                    format!("unknown action {s:?}; expected one of {}", names.join(", ")),
                )
            })?,
        };
        let regex_text = spec
            .regex
            .clone()
            .unwrap_or_else(|| DEFAULT_REGEX.to_string());
        let regex = Regex::new(&regex_text).map_err(|e| {
            RuleError::new(
                "regex",
                format!("invalid regular expression {regex_text:?}: {e}"),
            )
        })?;
        let rule = Rule {
            source_labels: spec.source_labels.clone().unwrap_or_default(),
            separator: spec
                .separator
                .clone()
                .unwrap_or_else(|| DEFAULT_SEPARATOR.to_string()),
            regex,
            modulus: spec.modulus.unwrap_or(0),
            target_label: spec.target_label.clone().unwrap_or_default(),
            replacement: spec
                .replacement
                .clone()
                .unwrap_or_else(|| DEFAULT_REPLACEMENT.to_string()),
            action,
        };
        rule.validate(&spec)?;
        Ok(rule)
    }

    fn validate(&self, spec: &RuleSpec) -> Result<(), RuleError> {
        use Action::*;
        let a = self.action;
        let target = self.target_label.as_str();
        if a == HashMod && self.modulus == 0 {
            return Err(RuleError::new(
                "modulus",
                format!("`modulus` is required for action \"{a}\" and must be greater than 0"),
            ));
        }
        let needs_target = matches!(
            a,
            Replace | HashMod | Lowercase | Uppercase | KeepEqual | DropEqual
        );
        if needs_target && target.is_empty() {
            return Err(RuleError::new(
                "target_label",
                format!("`target_label` is required for action \"{a}\""),
            ));
        }
        if a == Replace && !target.contains('$') && !is_valid_label_name(target) {
            return Err(RuleError::new(
                "target_label",
                format!(
                    "{target:?} is not a valid `target_label` for action \"{a}\": expected a label name ([a-zA-Z_][a-zA-Z0-9_]*)"
                ),
            ));
        }
        if a == Replace && target.contains('$') && !is_relabel_target(target) {
            return Err(RuleError::new(
                "target_label",
                format!(
                    "{target:?} is not a valid `target_label` for action \"{a}\": expected a label name that may contain $1, ${{1}}, $name or ${{name}} references"
                ),
            ));
        }
        let single_target = matches!(a, Lowercase | Uppercase | KeepEqual | DropEqual);
        if (single_target || a == HashMod) && !is_valid_label_name(target) {
            return Err(RuleError::new(
                "target_label",
                format!(
                    "{target:?} is not a valid `target_label` for action \"{a}\": expected a label name ([a-zA-Z_][a-zA-Z0-9_]*)"
                ),
            ));
        }
        if single_target && self.replacement != DEFAULT_REPLACEMENT {
            return Err(RuleError::new(
                "replacement",
                format!("`replacement` cannot be set for action \"{a}\""),
            ));
        }
        if a == LabelMap && !is_relabel_target(&self.replacement) {
            return Err(RuleError::new(
                "replacement",
                format!(
                    "{:?} is not a valid `replacement` for action \"{a}\": expected a label name that may contain $1, ${{1}}, $name or ${{name}} references",
                    self.replacement
                ),
            ));
        }
        if matches!(a, KeepEqual | DropEqual) {
            let extra = [
                ("regex", self.regex.as_str() != DEFAULT_REGEX),
                ("modulus", self.modulus != 0),
                ("separator", self.separator != DEFAULT_SEPARATOR),
            ];
            if let Some((field, _)) = extra.iter().find(|(_, set)| *set) {
                return Err(RuleError::new(
                    field,
                    format!(
                        "`{field}` cannot be set for action \"{a}\": it uses only `source_labels` and `target_label`"
                    ),
                ));
            }
        }
        if matches!(a, LabelDrop | LabelKeep) {
            let extra = [
                ("source_labels", spec.source_labels.is_some()),
                ("target_label", !target.is_empty()),
                ("modulus", self.modulus != 0),
                ("separator", self.separator != DEFAULT_SEPARATOR),
                ("replacement", self.replacement != DEFAULT_REPLACEMENT),
            ];
            if let Some((field, _)) = extra.iter().find(|(_, set)| *set) {
                return Err(RuleError::new(
                    field,
                    format!("`{field}` cannot be set for action \"{a}\": it uses only `regex`"),
                ));
            }
        }
        Ok(())
    }
}

/// Prometheus (pre-UTF-8) label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub(super) fn is_valid_label_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A label name that may contain `$ref` / `${ref}` template references
/// (Prometheus' `relabelTarget` pattern, with ASCII `\w`).
fn is_relabel_target(s: &str) -> bool {
    static TARGET: OnceLock<regex::Regex> = OnceLock::new();
    TARGET
        .get_or_init(|| {
            regex::Regex::new(
                r"^(?:(?:[a-zA-Z_]|\$(?:\{[0-9A-Za-z_]+\}|[0-9A-Za-z_]+))+[0-9A-Za-z_]*)+$",
            )
            .expect("static regex")
        })
        .is_match(s)
}
