//! Relabel regular expressions with Go RE2 semantics on top of the `regex`
//! crate, and Go's `Regexp.Expand` template language.
//!
//! Prometheus compiles a rule's regex as `^(?:` + text + `)$` with no flags.
//! The `regex` crate is RE2-like but differs in a few places that matter
//! here; [`translate`] rewrites the user's text so that the compiled program
//! matches what Go would match:
//! * Perl classes (`\d \w \s` and negations) and `\b \B` are ASCII-only in Go,
//!   Unicode-aware in the `regex` crate.
//! * Go takes `[` inside a bracket expression literally (except `[:name:]`);
//!   the `regex` crate starts a nested class. Likewise `&&` / `~~` are set
//!   operators in the `regex` crate and plain characters in Go.
//! * Go takes a `{` that does not start a valid repetition literally.
//! * Go supports `\Q...\E` literal text.

use std::sync::OnceLock;

use serde::{Serialize, Serializer};

/// A compiled, fully anchored relabel regex that remembers its source text.
///
/// Equality and serialization use the source text only.
#[derive(Debug, Clone)]
pub struct Regex {
    source: String,
    compiled: regex::Regex,
}

impl Regex {
    /// Compiles `source` anchored at both ends, as Prometheus does.
    pub fn new(source: &str) -> Result<Regex, regex::Error> {
        let anchored = format!("^(?:{})$", translate(source));
        let compiled = regex::Regex::new(&anchored)?;
        Ok(Regex {
            source: source.to_string(),
            compiled,
        })
    }

    /// The text the user wrote (without the added anchors).
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the whole of `s` matches.
    pub fn is_match(&self, s: &str) -> bool {
        self.compiled.is_match(s)
    }

    /// Matches the whole of `s` and expands `template` (Go `Expand` rules)
    /// against the captures; `None` when there is no match.
    pub fn match_expand(&self, s: &str, templates: &[&str]) -> Option<Vec<String>> {
        let caps = self.compiled.captures(s)?;
        Some(
            templates
                .iter()
                .map(|t| expand(t, &caps, &self.compiled))
                .collect(),
        )
    }
}

impl PartialEq for Regex {
    fn eq(&self, other: &Regex) -> bool {
        self.source == other.source
    }
}

impl Eq for Regex {}

impl Serialize for Regex {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

const WORD: &str = "0-9A-Za-z_";
const SPACE: &str = "\\t\\n\\f\\r ";
const DIGIT: &str = "0-9";

/// Rewrites Go RE2 syntax into equivalent `regex` crate syntax (see module
/// docs). Invalid input is passed through so the `regex` crate reports it.
pub(crate) fn translate(src: &str) -> String {
    let chars: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len() + 8);
    let mut i = 0;
    let mut in_class = false;
    // Index in `chars` where the current class body starts (after `[` / `[^`).
    let mut class_start = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && i + 1 < chars.len() {
            let e = chars[i + 1];
            i += 2;
            match (e, in_class) {
                ('d', false) => out.push_str("[0-9]"),
                ('D', false) => out.push_str("[^0-9]"),
                ('w', false) => out.push_str("[0-9A-Za-z_]"),
                ('W', false) => out.push_str("[^0-9A-Za-z_]"),
                ('s', false) => out.push_str("[\\t\\n\\f\\r ]"),
                ('S', false) => out.push_str("[^\\t\\n\\f\\r ]"),
                ('b', false) => out.push_str("(?-u:\\b)"),
                ('B', false) => out.push_str("(?-u:\\B)"),
                ('d', true) => out.push_str(DIGIT),
                ('w', true) => out.push_str(WORD),
                ('s', true) => out.push_str(SPACE),
                ('D', true) => out.push_str("[^0-9]"),
                ('W', true) => out.push_str("[^0-9A-Za-z_]"),
                ('S', true) => out.push_str("[^\\t\\n\\f\\r ]"),
                ('Q', false) => {
                    let mut lit = String::new();
                    while i < chars.len() {
                        if chars[i] == '\\' && chars.get(i + 1) == Some(&'E') {
                            i += 2;
                            break;
                        }
                        lit.push(chars[i]);
                        i += 1;
                    }
                    out.push_str(&regex::escape(&lit));
                }
                ('p' | 'P' | 'x', _) if chars.get(i) == Some(&'{') => {
                    out.push('\\');
                    out.push(e);
                    while i < chars.len() {
                        out.push(chars[i]);
                        i += 1;
                        if chars[i - 1] == '}' {
                            break;
                        }
                    }
                }
                _ => {
                    out.push('\\');
                    out.push(e);
                }
            }
            continue;
        }
        if in_class {
            match c {
                ']' if i > class_start => {
                    in_class = false;
                    out.push(']');
                }
                ']' => out.push_str("\\]"),
                '[' if chars.get(i + 1) == Some(&':') => {
                    // POSIX class `[:alpha:]`: copy through the closing `:]`.
                    let rest: String = chars[i..].iter().collect();
                    match rest.find(":]") {
                        Some(end) if end > 1 => {
                            out.push_str(&rest[..end + 2]);
                            i += rest[..end + 2].chars().count();
                            continue;
                        }
                        _ => out.push_str("\\["),
                    }
                }
                '[' => out.push_str("\\["),
                '&' => out.push_str("\\&"),
                '~' => out.push_str("\\~"),
                '-' if out.ends_with('-') && !out.ends_with("\\-") => out.push_str("\\-"),
                _ => out.push(c),
            }
            i += 1;
            continue;
        }
        match c {
            '[' => {
                in_class = true;
                out.push('[');
                i += 1;
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                class_start = i;
            }
            '{' => {
                let len = repetition_len(&chars[i..]);
                if len > 0 {
                    out.extend(&chars[i..i + len]);
                    i += len;
                } else {
                    out.push_str("\\{");
                    i += 1;
                }
            }
            '}' => {
                out.push_str("\\}");
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Length of a Go repetition operator `{n}`, `{n,}` or `{n,m}` at the start
/// of `s`, or 0 when `s` does not start with one (Go then reads `{` literally).
fn repetition_len(s: &[char]) -> usize {
    let mut i = 1;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < s.len() && s[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if digits(&mut i) == 0 {
        return 0;
    }
    if s.get(i) == Some(&',') {
        i += 1;
        digits(&mut i);
    }
    if s.get(i) == Some(&'}') {
        i + 1
    } else {
        0
    }
}

/// Matches the longest prefix made of Unicode letters, decimal digits and
/// `_` (Go's `unicode.IsLetter || unicode.IsDigit || '_'`).
fn name_prefix(s: &str) -> usize {
    static NAME: OnceLock<regex::Regex> = OnceLock::new();
    let re = NAME.get_or_init(|| regex::Regex::new(r"^[\p{L}\p{Nd}_]+").expect("static regex"));
    re.find(s).map_or(0, |m| m.end())
}

/// Expands `template` like Go's `Regexp.ExpandString`: `$$` is `$`; `$name`
/// takes the longest run of letters/digits/`_`; `${name}` is braced; a name
/// of decimal digits without a leading zero is a group number; unknown or
/// unmatched groups expand to nothing; a malformed `$` is kept literally.
pub(crate) fn expand(template: &str, caps: &regex::Captures<'_>, re: &regex::Regex) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        let (braced, body) = match rest.strip_prefix('{') {
            Some(b) => (true, b),
            None => (false, rest),
        };
        let n = name_prefix(body);
        if n == 0 || (braced && !body[n..].starts_with('}')) {
            out.push('$');
            continue;
        }
        let name = &body[..n];
        rest = &body[n + usize::from(braced)..];
        let group = match group_number(name) {
            Some(idx) => caps.get(idx),
            None => re
                .capture_names()
                .position(|g| g == Some(name))
                .and_then(|idx| caps.get(idx)),
        };
        if let Some(m) = group {
            out.push_str(m.as_str());
        }
    }
    out.push_str(rest);
    out
}

/// Go's rule: all ASCII digits, below 1e8 while parsing, no leading zero.
fn group_number(name: &str) -> Option<usize> {
    let mut num: usize = 0;
    for b in name.bytes() {
        if !b.is_ascii_digit() || num >= 100_000_000 {
            return None;
        }
        num = num * 10 + usize::from(b - b'0');
    }
    if name.len() > 1 && name.starts_with('0') {
        return None;
    }
    Some(num)
}
