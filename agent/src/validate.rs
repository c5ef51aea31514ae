//! `agent validate CONFIG_FILE`: checks a configuration file the way `agent run` loads it,
//! without running anything, and reports every error it can find at once.
//!
//! What is checked, in order: the file can be read (size limit, UTF-8); its syntax (parsing
//! goes on after each error, so every syntax error is reported); then, when the syntax is
//! sound, every function call and each component's first error (unknown blocks and
//! attributes, types, required attributes, references, loops); then the files the components
//! name (certificates, keys, passwords), read once as `agent run` does.
//!
//! It must not open a listener, join a cluster, start a component, resolve a name or write a
//! file: a user runs it next to a live agent (in CI, in a config-reloader sidecar) and it must
//! not disturb anything.

use std::fmt::Write as _;
use std::path::Path;

use crate::config::{Config, ConfigError, Environment, CONFIG_SIZE_MAX_BYTES};

/// The outcome of a validation: what goes to standard output on success, or the report of
/// every error (for standard error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Valid(String),
    Invalid(String),
}

/// Validates the file at `path` (named as given in messages).
pub fn validate_file(path: &Path, env: &dyn Environment) -> Outcome {
    let shown = path.display().to_string();
    let io = |message: String| {
        let e = ConfigError::Io {
            file: shown.clone(),
            message,
        };
        report(&shown, "", &[e])
    };
    let len = match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => return io("is a directory, not a configuration file".into()),
        Ok(m) => m.len(),
        Err(e) => return io(format!("cannot read config file: {e}")),
    };
    if len > CONFIG_SIZE_MAX_BYTES {
        return io(format!(
            "config file is {len} bytes; the limit is {CONFIG_SIZE_MAX_BYTES}"
        ));
    }
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return io(format!("cannot read config file: {e}")),
    };
    match std::str::from_utf8(&bytes) {
        Ok(src) => validate_source(src, &shown, env),
        Err(e) => io(format!("config file is not UTF-8: {e}")),
    }
}

/// Validates configuration text; `file` names it in messages.
pub fn validate_source(src: &str, file: &str, env: &dyn Environment) -> Outcome {
    let (config, positions) = match Config::diagnose(src, file, env) {
        Ok(ok) => ok,
        Err(errors) => return report(file, src, &errors),
    };
    let errors: Vec<ConfigError> = crate::pipeline::client_errors(&config)
        .into_iter()
        .map(|(id, message)| {
            let message = format!("{id}: {message}");
            match positions.get(&id) {
                Some(pos) => ConfigError::At {
                    file: file.to_string(),
                    pos: *pos,
                    message,
                },
                None => ConfigError::Io {
                    file: file.to_string(),
                    message,
                },
            }
        })
        .collect();
    if !errors.is_empty() {
        return report(file, src, &errors);
    }
    let ids: Vec<&str> = positions.keys().map(String::as_str).collect();
    let mut out = format!("{file}: valid");
    match ids.len() {
        0 => out.push_str("; no components"),
        1 => out.push_str("; 1 component: "),
        n => {
            let _ = write!(out, "; {n} components: ");
        }
    }
    out.push_str(&ids.join(", "));
    out.push('\n');
    Outcome::Valid(out)
}

/// Every error as `file:line:col: message`, followed by the source line and a caret under
/// the column, and a last line with the count.
fn report(file: &str, src: &str, errors: &[ConfigError]) -> Outcome {
    let lines: Vec<&str> = src.lines().collect();
    let mut out = String::new();
    for e in errors {
        let _ = writeln!(out, "{e}");
        if let Some(pos) = e.pos() {
            if let Some(text) = lines.get(pos.line.saturating_sub(1) as usize) {
                let number = pos.line.to_string();
                let gutter = " ".repeat(number.len());
                // The caret sits under the column; tabs are kept so it lines up.
                let lead: String = text
                    .chars()
                    .take(pos.col.saturating_sub(1) as usize)
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                let _ = writeln!(out, " {number} | {}", text.trim_end());
                let _ = writeln!(out, " {gutter} | {lead}^");
            }
        }
    }
    let n = errors.len();
    let _ = writeln!(
        out,
        "{file}: {n} error{}; the configuration is not valid",
        if n == 1 { "" } else { "s" }
    );
    Outcome::Invalid(out)
}

#[cfg(test)]
mod tests;
