//! Applying checked rules to a label set, with Prometheus' semantics.

use std::collections::BTreeMap;

use md5::{Digest, Md5};

use super::rule::{is_valid_label_name, Action, Rule};

type Labels = BTreeMap<String, String>;

/// Applies `rules` in order to `labels`. Returns `false` when a
/// keep/drop/keepequal/dropequal rule drops the set (the map is then left
/// in an unspecified state). Labels whose value is empty are removed at the
/// end, as Prometheus' `labels.Builder` never yields empty values.
pub fn process(labels: &mut BTreeMap<String, String>, rules: &[Rule]) -> bool {
    for rule in rules {
        if !apply(labels, rule) {
            return false;
        }
    }
    labels.retain(|_, v| !v.is_empty());
    true
}

/// Setting an empty value deletes the label (`labels.Builder.Set`).
fn set(labels: &mut Labels, name: &str, value: String) {
    if value.is_empty() {
        labels.remove(name);
    } else {
        labels.insert(name.to_string(), value);
    }
}

fn get<'a>(labels: &'a Labels, name: &str) -> &'a str {
    labels.get(name).map_or("", String::as_str)
}

fn apply(labels: &mut Labels, rule: &Rule) -> bool {
    let value = rule
        .source_labels
        .iter()
        .map(|n| get(labels, n))
        .collect::<Vec<_>>()
        .join(&rule.separator);
    match rule.action {
        Action::Keep => return rule.regex.is_match(&value),
        Action::Drop => return !rule.regex.is_match(&value),
        Action::KeepEqual => return get(labels, &rule.target_label) == value,
        Action::DropEqual => return get(labels, &rule.target_label) != value,
        Action::Replace => {
            let templates = [rule.target_label.as_str(), rule.replacement.as_str()];
            if let Some(expanded) = rule.regex.match_expand(&value, &templates) {
                let (target, replacement) = (&expanded[0], &expanded[1]);
                // An expanded name that is not a label name leaves the set as is;
                // an empty replacement deletes the (expanded) target label.
                if is_valid_label_name(target) {
                    set(labels, target, replacement.clone());
                }
            }
        }
        Action::Lowercase => set(labels, &rule.target_label, go_to_lower(&value)),
        Action::Uppercase => set(labels, &rule.target_label, go_to_upper(&value)),
        Action::HashMod => {
            let digest = Md5::digest(value.as_bytes());
            let mut tail = [0u8; 8];
            tail.copy_from_slice(&digest[8..16]);
            let n = u64::from_be_bytes(tail) % rule.modulus;
            set(labels, &rule.target_label, n.to_string());
        }
        Action::LabelMap => {
            // Every rule sees the label set as it was when the rule started.
            let snapshot: Vec<(String, String)> =
                labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            for (name, v) in snapshot {
                if let Some(expanded) = rule.regex.match_expand(&name, &[&rule.replacement]) {
                    set(labels, &expanded[0], v);
                }
            }
        }
        Action::LabelDrop => labels.retain(|name, _| !rule.regex.is_match(name)),
        Action::LabelKeep => labels.retain(|name, _| rule.regex.is_match(name)),
    }
    true
}

/// Go's `strings.ToLower`: per-character simple case mapping.
fn go_to_lower(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut it = c.to_lowercase();
            match (it.next(), it.next()) {
                (Some(l), None) => l,
                // Only U+0130 has a multi-character full lowercase; its simple
                // mapping is plain `i`.
                _ if c == '\u{130}' => 'i',
                _ => c,
            }
        })
        .collect()
}

/// Go's `strings.ToUpper`: per-character simple case mapping. Where Rust's
/// full mapping is several characters (SpecialCasing), the simple mapping
/// is either the character itself or, for Greek with ypogegrammeni, the
/// matching prosgegrammeni (titlecase) form.
fn go_to_upper(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut it = c.to_uppercase();
            match (it.next(), it.next()) {
                (Some(u), None) => u,
                _ => match c {
                    '\u{1F80}'..='\u{1F87}' | '\u{1F90}'..='\u{1F97}' | '\u{1FA0}'..='\u{1FA7}' => {
                        char::from_u32(c as u32 + 8).unwrap_or(c)
                    }
                    '\u{1FB3}' => '\u{1FBC}',
                    '\u{1FC3}' => '\u{1FCC}',
                    '\u{1FF3}' => '\u{1FFC}',
                    _ => c,
                },
            }
        })
        .collect()
}

#[cfg(test)]
pub(super) fn lower_for_test(s: &str) -> String {
    go_to_lower(s)
}

#[cfg(test)]
pub(super) fn upper_for_test(s: &str) -> String {
    go_to_upper(s)
}
