//! The config language's standard library: `sys.env`, the `constants.*` values and the
//! functions real Alloy files call (`concat`, `format`, `join`, `split`, `replace`,
//! `to_lower`, `to_upper`, `trim`, `trim_prefix`, `trim_suffix`, `trim_space`, `coalesce`,
//! `json_decode`, `nonsensitive`), under their old names and Alloy 1.x's namespaced ones
//! (`string.format`, `array.concat`, `encoding.from_json`, `convert.nonsensitive`, ...).
//!
//! It owns one pass over a parsed file, run before [`super::eval`]: every call whose arguments
//! are values is replaced by its result, every `constants.NAME` by its value, so the
//! evaluator sees literals. A call that takes a component export (`concat(discovery.file.a.
//! targets, ...)`) stays a call; only `concat` may do that, and the evaluator resolves it at
//! run time. Unknown functions and wrong arguments are errors at the call's `file:line:col`.
//!
//! It must not know about components. The environment is passed in ([`Environment`]), so
//! tests do not depend on the machine's variables.
//!
//! Secrets: Alloy's `secret` values come from components we do not have (`local.file` with
//! `is_secret`, `remote.kubernetes.secret`); every value here is a plain string, which Alloy
//! also accepts where a secret is expected, and `nonsensitive` passes strings through.

use super::error::{ConfigError, Pos};
use super::syntax::{Body, Expr, ExprKind, Stmt};

/// Longest string a function may produce (bounds `format` widths and joins of big lists).
const RESULT_SIZE_MAX_BYTES: usize = 1 << 20;
/// Largest width or precision accepted in a `format` verb.
const FORMAT_WIDTH_MAX: usize = 1024;

/// What the functions read from the machine.
pub trait Environment {
    fn var(&self, name: &str) -> Option<String>;
    fn hostname(&self) -> String;
}

/// The real process environment.
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn hostname(&self) -> String {
        crate::run::hostname().unwrap_or_default()
    }
}

/// `constants.os` as Go names it (`runtime.GOOS`).
pub fn go_os() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    }
}

/// `constants.arch` as Go names it (`runtime.GOARCH`).
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64",
        other => other,
    }
}

/// Every function name accepted, for the "unknown function" message.
const FUNCTIONS: &[&str] = &[
    "sys.env",
    "concat",
    "format",
    "join",
    "split",
    "replace",
    "to_lower",
    "to_upper",
    "trim",
    "trim_prefix",
    "trim_suffix",
    "trim_space",
    "coalesce",
    "json_decode",
    "nonsensitive",
];

/// Evaluates every call and constant in `body` that does not depend on a component.
pub fn fold_body(body: &mut Body, file: &str, env: &dyn Environment) -> Result<(), ConfigError> {
    let mut errors = Vec::new();
    fold_body_collecting(body, file, env, &mut errors);
    match errors.is_empty() {
        true => Ok(()),
        false => Err(errors.swap_remove(0)),
    }
}

/// [`fold_body`] that goes on after an error: every attribute is folded, every error is
/// pushed to `errors` in source order.
pub fn fold_body_collecting(
    body: &mut Body,
    file: &str,
    env: &dyn Environment,
    errors: &mut Vec<ConfigError>,
) {
    let f = Folder { file, env };
    for stmt in &mut body.stmts {
        match stmt {
            Stmt::Attr(a) => {
                if let Err(e) = f.fold(&mut a.value) {
                    errors.push(e);
                }
            }
            Stmt::Block(b) => fold_body_collecting(&mut b.body, file, env, errors),
        }
    }
}

/// Whether `e` is a value (no reference, no call left inside).
pub fn is_value(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Str(_) | ExprKind::Num(_) | ExprKind::Bool(_) | ExprKind::Null => true,
        ExprKind::List(items) => items.iter().all(is_value),
        ExprKind::Object(fields) => fields.iter().all(|(_, _, v)| is_value(v)),
        ExprKind::Ref(_) | ExprKind::Call(..) => false,
    }
}

/// The canonical (Alloy 1.x or old) name of a function, without its namespace.
fn canonical(path: &[String]) -> Option<&'static str> {
    let joined = path.join(".");
    let name = match joined.as_str() {
        "sys.env" | "env" => "sys.env",
        "concat" | "array.concat" => "concat",
        "format" | "string.format" => "format",
        "join" | "string.join" => "join",
        "split" | "string.split" => "split",
        "replace" | "string.replace" => "replace",
        "to_lower" | "string.to_lower" => "to_lower",
        "to_upper" | "string.to_upper" => "to_upper",
        "trim" | "string.trim" => "trim",
        "trim_prefix" | "string.trim_prefix" => "trim_prefix",
        "trim_suffix" | "string.trim_suffix" => "trim_suffix",
        "trim_space" | "string.trim_space" => "trim_space",
        "coalesce" => "coalesce",
        "json_decode" | "encoding.from_json" => "json_decode",
        "nonsensitive" | "convert.nonsensitive" => "nonsensitive",
        _ => return None,
    };
    Some(name)
}

struct Folder<'a> {
    file: &'a str,
    env: &'a dyn Environment,
}

impl Folder<'_> {
    fn err(&self, pos: Pos, msg: impl Into<String>) -> ConfigError {
        ConfigError::at(self.file, pos, msg)
    }

    fn fold(&self, e: &mut Expr) -> Result<(), ConfigError> {
        match &mut e.kind {
            ExprKind::List(items) => {
                for i in items {
                    self.fold(i)?;
                }
            }
            ExprKind::Object(fields) => {
                for (_, _, v) in fields {
                    self.fold(v)?;
                }
            }
            ExprKind::Ref(path) if path[0] == "constants" => {
                let value = match path.get(1).map(String::as_str) {
                    Some("hostname") if path.len() == 2 => self.env.hostname(),
                    Some("os") if path.len() == 2 => go_os().to_string(),
                    Some("arch") if path.len() == 2 => go_arch().to_string(),
                    _ => {
                        return Err(self.err(
                            e.pos,
                            format!(
                                "unknown constant `{}`; expected constants.hostname, constants.os or constants.arch",
                                path.join(".")
                            ),
                        ))
                    }
                };
                e.kind = ExprKind::Str(value);
            }
            ExprKind::Call(path, args) => {
                for a in args.iter_mut() {
                    self.fold(a)?;
                }
                let Some(name) = canonical(path) else {
                    return Err(self.err(
                        e.pos,
                        format!(
                            "unknown function `{}`; expected one of: {}",
                            path.join("."),
                            FUNCTIONS.join(", ")
                        ),
                    ));
                };
                if name == "concat" && !args.iter().all(is_value) {
                    // concat of component exports: resolved by the evaluator at run time.
                    return Ok(());
                }
                if let Some(bad) = args.iter().find(|a| !is_value(a)) {
                    return Err(self.err(
                        bad.pos,
                        format!(
                            "`{}` cannot take a component export; expected a value",
                            path.join(".")
                        ),
                    ));
                }
                let args = std::mem::take(args);
                let pos = e.pos;
                e.kind = self.call(name, pos, args)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn call(&self, name: &str, pos: Pos, args: Vec<Expr>) -> Result<ExprKind, ConfigError> {
        let a = Args {
            f: self,
            name,
            pos,
            args,
        };
        let result = match name {
            "sys.env" => {
                a.count(1)?;
                ExprKind::Str(self.env.var(&a.string(0)?).unwrap_or_default())
            }
            "concat" => {
                let mut out = Vec::new();
                for i in 0..a.args.len() {
                    out.extend(a.list(i)?.iter().cloned());
                }
                ExprKind::List(out)
            }
            "format" => {
                if a.args.is_empty() {
                    return Err(self.err(pos, "`format` needs a format string"));
                }
                let fmt = a.string(0)?;
                ExprKind::Str(self.format(pos, &fmt, &a.args[1..])?)
            }
            "join" => {
                a.count(2)?;
                let sep = a.string(1)?;
                let mut parts = Vec::new();
                for item in a.list(0)? {
                    match &item.kind {
                        ExprKind::Str(s) => parts.push(s.as_str()),
                        k => {
                            return Err(self.err(
                                item.pos,
                                format!("`join` takes a list of strings; got a {}", k.type_name()),
                            ))
                        }
                    }
                }
                ExprKind::Str(self.bounded(pos, parts.join(&sep))?)
            }
            "split" => {
                a.count(2)?;
                let (s, sep) = (a.string(0)?, a.string(1)?);
                let parts: Vec<String> = if sep.is_empty() {
                    s.chars().map(String::from).collect()
                } else {
                    s.split(sep.as_str()).map(String::from).collect()
                };
                ExprKind::List(parts.into_iter().map(|p| str_expr(pos, p)).collect())
            }
            "replace" => {
                a.count(3)?;
                let (s, old, new) = (a.string(0)?, a.string(1)?, a.string(2)?);
                let out = if old.is_empty() {
                    // Go: an empty `old` inserts `new` around every character.
                    let mut o = new.clone();
                    for c in s.chars() {
                        o.push(c);
                        o.push_str(&new);
                    }
                    o
                } else {
                    s.replace(&old, &new)
                };
                ExprKind::Str(self.bounded(pos, out)?)
            }
            "to_lower" => {
                a.count(1)?;
                ExprKind::Str(a.string(0)?.to_lowercase())
            }
            "to_upper" => {
                a.count(1)?;
                ExprKind::Str(a.string(0)?.to_uppercase())
            }
            "trim" => {
                a.count(2)?;
                let (s, cutset) = (a.string(0)?, a.string(1)?);
                ExprKind::Str(s.trim_matches(|c| cutset.contains(c)).to_string())
            }
            "trim_prefix" => {
                a.count(2)?;
                let (s, p) = (a.string(0)?, a.string(1)?);
                ExprKind::Str(s.strip_prefix(p.as_str()).unwrap_or(&s).to_string())
            }
            "trim_suffix" => {
                a.count(2)?;
                let (s, p) = (a.string(0)?, a.string(1)?);
                ExprKind::Str(s.strip_suffix(p.as_str()).unwrap_or(&s).to_string())
            }
            "trim_space" => {
                a.count(1)?;
                ExprKind::Str(a.string(0)?.trim().to_string())
            }
            "coalesce" => {
                // The first argument that is not null, empty or its type's zero value; the
                // last one if all are.
                let mut args = a.args;
                let last = args.pop();
                args.into_iter()
                    .find(|e| !is_zero(e))
                    .or(last)
                    .map(|e| e.kind)
                    .unwrap_or(ExprKind::Null)
            }
            "json_decode" => {
                a.count(1)?;
                let s = a.string(0)?;
                let v: serde_json::Value = serde_json::from_str(&s)
                    .map_err(|e| self.err(pos, format!("`json_decode`: invalid JSON: {e}")))?;
                from_json(pos, v)
            }
            "nonsensitive" => {
                a.count(1)?;
                ExprKind::Str(a.string(0)?)
            }
            other => unreachable!("canonical() returned {other}"),
        };
        Ok(result)
    }

    fn bounded(&self, pos: Pos, s: String) -> Result<String, ConfigError> {
        if s.len() > RESULT_SIZE_MAX_BYTES {
            return Err(self.err(
                pos,
                format!(
                    "function result is {} bytes; the limit is {RESULT_SIZE_MAX_BYTES}",
                    s.len()
                ),
            ));
        }
        Ok(s)
    }

    /// Go's `fmt.Sprintf` for the verbs configs use: `%s %v %q %d %f %t %x %X %%`, with flags
    /// `-` and `0`, width and precision.
    fn format(&self, pos: Pos, fmt: &str, args: &[Expr]) -> Result<String, ConfigError> {
        let mut out = String::new();
        let mut next = 0usize;
        let mut chars = fmt.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            let (mut left, mut zero) = (false, false);
            while let Some(&f) = chars.peek() {
                match f {
                    '-' => left = true,
                    '0' => zero = true,
                    '+' | ' ' | '#' => {}
                    _ => break,
                }
                chars.next();
            }
            let number = |chars: &mut std::iter::Peekable<std::str::Chars>| {
                let mut n: Option<usize> = None;
                while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                    n = Some((n.unwrap_or(0) * 10 + d as usize).min(FORMAT_WIDTH_MAX + 1));
                    chars.next();
                }
                n
            };
            let width = number(&mut chars);
            let precision = if chars.peek() == Some(&'.') {
                chars.next();
                Some(number(&mut chars).unwrap_or(0))
            } else {
                None
            };
            if width.unwrap_or(0) > FORMAT_WIDTH_MAX || precision.unwrap_or(0) > FORMAT_WIDTH_MAX {
                return Err(self.err(
                    pos,
                    format!("`format`: width or precision over {FORMAT_WIDTH_MAX}"),
                ));
            }
            let Some(verb) = chars.next() else {
                out.push_str("%!(NOVERB)");
                break;
            };
            if verb == '%' {
                out.push('%');
                continue;
            }
            let Some(arg) = args.get(next) else {
                out.push_str(&format!("%!{verb}(MISSING)"));
                continue;
            };
            next += 1;
            let text = match (verb, &arg.kind) {
                ('s' | 'v', ExprKind::Str(s)) => match precision {
                    Some(p) => s.chars().take(p).collect(),
                    None => s.clone(),
                },
                ('q', ExprKind::Str(s)) => go_quote(s),
                ('d' | 'v', ExprKind::Num(n)) if n.fract() == 0.0 => format!("{}", *n as i64),
                ('v', ExprKind::Num(n)) => format!("{n}"),
                ('f', ExprKind::Num(n)) => format!("{:.*}", precision.unwrap_or(6), n),
                ('x', ExprKind::Num(n)) if n.fract() == 0.0 => format!("{:x}", *n as i64),
                ('X', ExprKind::Num(n)) if n.fract() == 0.0 => format!("{:X}", *n as i64),
                ('x', ExprKind::Str(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
                ('t' | 'v', ExprKind::Bool(b)) => b.to_string(),
                (_, k) => format!("%!{verb}({})", k.type_name()),
            };
            let pad = width.unwrap_or(0).saturating_sub(text.chars().count());
            if left {
                out.push_str(&text);
                out.extend(std::iter::repeat_n(' ', pad));
            } else {
                let fill = if zero && matches!(arg.kind, ExprKind::Num(_)) {
                    '0'
                } else {
                    ' '
                };
                out.extend(std::iter::repeat_n(fill, pad));
                out.push_str(&text);
            }
            if out.len() > RESULT_SIZE_MAX_BYTES {
                return self.bounded(pos, out);
            }
        }
        if next < args.len() {
            out.push_str("%!(EXTRA ");
            let extra: Vec<&str> = args[next..].iter().map(|a| a.kind.type_name()).collect();
            out.push_str(&extra.join(", "));
            out.push(')');
        }
        self.bounded(pos, out)
    }
}

/// The arguments of one call, with typed accessors whose errors name the function.
struct Args<'a> {
    f: &'a Folder<'a>,
    name: &'a str,
    pos: Pos,
    args: Vec<Expr>,
}

impl Args<'_> {
    fn count(&self, n: usize) -> Result<(), ConfigError> {
        if self.args.len() != n {
            return Err(self.f.err(
                self.pos,
                format!(
                    "`{}` takes {n} argument{}, got {}",
                    self.name,
                    if n == 1 { "" } else { "s" },
                    self.args.len()
                ),
            ));
        }
        Ok(())
    }

    fn string(&self, i: usize) -> Result<String, ConfigError> {
        match &self.args[i].kind {
            ExprKind::Str(s) => Ok(s.clone()),
            k => Err(self.f.err(
                self.args[i].pos,
                format!(
                    "`{}`: argument {} must be a string, got {}",
                    self.name,
                    i + 1,
                    k.type_name()
                ),
            )),
        }
    }

    fn list(&self, i: usize) -> Result<&[Expr], ConfigError> {
        match &self.args[i].kind {
            ExprKind::List(items) => Ok(items),
            k => Err(self.f.err(
                self.args[i].pos,
                format!(
                    "`{}`: argument {} must be a list, got {}",
                    self.name,
                    i + 1,
                    k.type_name()
                ),
            )),
        }
    }
}

fn str_expr(pos: Pos, s: String) -> Expr {
    Expr {
        pos,
        kind: ExprKind::Str(s),
    }
}

fn is_zero(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Null => true,
        ExprKind::Str(s) => s.is_empty(),
        ExprKind::Num(n) => *n == 0.0,
        ExprKind::Bool(b) => !b,
        ExprKind::List(items) => items.is_empty(),
        ExprKind::Object(fields) => fields.is_empty(),
        ExprKind::Ref(_) | ExprKind::Call(..) => false,
    }
}

fn from_json(pos: Pos, v: serde_json::Value) -> ExprKind {
    use serde_json::Value;
    match v {
        Value::Null => ExprKind::Null,
        Value::Bool(b) => ExprKind::Bool(b),
        Value::Number(n) => ExprKind::Num(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => ExprKind::Str(s),
        Value::Array(items) => ExprKind::List(
            items
                .into_iter()
                .map(|i| Expr {
                    pos,
                    kind: from_json(pos, i),
                })
                .collect(),
        ),
        // serde_json's map is ordered by key: the object's keys come out sorted.
        Value::Object(map) => ExprKind::Object(
            map.into_iter()
                .map(|(k, v)| {
                    (
                        k,
                        pos,
                        Expr {
                            pos,
                            kind: from_json(pos, v),
                        },
                    )
                })
                .collect(),
        ),
    }
}

/// Go's `%q`: a double-quoted string with Go escapes.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
#[path = "functions_tests.rs"]
mod tests;
