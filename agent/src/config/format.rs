//! `agent fmt`: the canonical formatting of a configuration file, with `alloy fmt`'s rules.
//!
//! - One tab per level of nesting; `name = value` with one space around `=`; `, ` between
//!   elements written on one line; no space inside `[...]`, `{...}` or `(...)` on one line.
//! - The `=` of attributes (and of object fields) on consecutive lines is aligned, as are
//!   the comments at the end of those lines. A blank line, a comment line, a block or an
//!   attribute whose value spans several lines ends such a run.
//! - A blank line before every block that is not the first statement of its body (before
//!   the comments directly above it); otherwise one blank line where the source had one or
//!   more; none at the start or end of a body. A block's body always goes on its own lines;
//!   an empty block is `name "label" { }`.
//! - Inside lists, objects and calls the user's line breaks are kept: an element that started
//!   on a new line starts on a new line, one level deeper than the line of the opening
//!   bracket (an element on that line stays on it, at its level); a closing bracket on its
//!   own line gets a trailing comma before it, one on the element's line gets none.
//! - Literals are kept as written (escapes, raw strings, number spelling); comments are kept
//!   where they were (end of line or own line). A comment in a place that has no line of its
//!   own (between a name and its `=`, say) moves to the line before its statement.
//!
//! The result means the same as the input (checked: both parse to the same syntax tree) and
//! formatting it again changes nothing. This module formats; it does not check meaning (an
//! unknown component is formatted like any block) and it reads no file.

use super::error::ConfigError;
use super::lexer::{tokenize_with_comments, Tok, Token};
use super::syntax;

/// Formats configuration text. Syntax errors (the same as `agent run` would report) are
/// returned instead.
pub fn format(src: &str, file: &str) -> Result<String, ConfigError> {
    let before = syntax::parse(src, file)?;
    let tokens = tokenize_with_comments(src, file)?;
    let chars: Vec<char> = src.chars().collect();
    let mut p = Cst {
        tokens,
        i: 0,
        chars: &chars,
        file,
    };
    let items = p.body(true)?;
    let mut out = Out::default();
    out.body(&items, 0);
    let text = out.finish();
    // Nothing may be lost or changed in meaning: the result parses to the same statements
    // and keeps every comment.
    let after = syntax::parse(&text, file).map_err(|e| internal(file, &format!("{e}")))?;
    if strip(&before) != strip(&after) {
        return Err(internal(file, "the formatted text means something else"));
    }
    let count = |s: &str| {
        tokenize_with_comments(s, file)
            .map(|t| {
                t.iter()
                    .filter(|t| matches!(t.tok, Tok::Comment(_)))
                    .count()
            })
            .unwrap_or(usize::MAX)
    };
    if count(src) != count(&text) {
        return Err(internal(file, "a comment would be lost"));
    }
    Ok(text)
}

fn internal(file: &str, what: &str) -> ConfigError {
    ConfigError::Io {
        file: file.to_string(),
        message: format!("cannot format (a bug in `agent fmt`; the file is left as it is): {what}"),
    }
}

/// The statements without positions, to compare meaning.
fn strip(file: &syntax::Body) -> String {
    fn expr(e: &syntax::Expr, out: &mut String) {
        use syntax::ExprKind::*;
        match &e.kind {
            Str(s) => out.push_str(&format!("{s:?}")),
            Num(n) => out.push_str(&format!("{n:?}")),
            Bool(b) => out.push_str(&b.to_string()),
            Null => out.push_str("null"),
            List(items) => {
                out.push('[');
                for i in items {
                    expr(i, out);
                    out.push(',');
                }
                out.push(']');
            }
            Object(fields) => {
                out.push('{');
                for (k, _, v) in fields {
                    out.push_str(&format!("{k:?}="));
                    expr(v, out);
                    out.push(',');
                }
                out.push('}');
            }
            Ref(path) => out.push_str(&path.join(".")),
            Call(path, args) => {
                out.push_str(&path.join("."));
                out.push('(');
                for a in args {
                    expr(a, out);
                    out.push(',');
                }
                out.push(')');
            }
        }
    }
    fn body(b: &syntax::Body, out: &mut String) {
        for s in &b.stmts {
            match s {
                syntax::Stmt::Attr(a) => {
                    out.push_str(&format!("{}=", a.name));
                    expr(&a.value, out);
                    out.push(';');
                }
                syntax::Stmt::Block(b) => {
                    out.push_str(&format!(
                        "{} {:?}{{",
                        b.name,
                        b.label.as_ref().map(|l| &l.0)
                    ));
                    body(&b.body, out);
                    out.push('}');
                }
            }
        }
    }
    let mut out = String::new();
    body(file, &mut out);
    out
}

/// A comment as written, with the lines it covers.
#[derive(Debug, Clone)]
struct Comment {
    text: String,
    line: u32,
    end_line: u32,
}

#[derive(Debug)]
enum Item {
    Comment(Comment),
    Stmt(Stmt),
}

#[derive(Debug)]
struct Stmt {
    /// Comments found inside the statement where no line of their own exists.
    hoisted: Vec<Comment>,
    kind: StmtKind,
    /// Comments after the statement's last token, on its line.
    trailing: Vec<String>,
    line: u32,
    end_line: u32,
}

#[derive(Debug)]
enum StmtKind {
    Attr {
        name: String,
        value: Value,
    },
    Block {
        name: String,
        label: Option<String>,
        /// Comments after `{` on its line.
        header: Vec<String>,
        body: Vec<Item>,
    },
}

#[derive(Debug)]
enum Value {
    /// A literal or reference, as written.
    Atom(String),
    /// `[...]`, `{...}` or `name(...)`.
    Seq(Box<Seq>),
}

#[derive(Debug)]
struct Seq {
    /// `name(` for a call, `[` or `{`.
    open: String,
    close: char,
    /// Comments after the opening bracket, on its line.
    open_comment: Vec<String>,
    elems: Vec<Elem>,
    /// Own-line comments before the closing bracket.
    tail: Vec<Comment>,
    open_line: u32,
    close_line: u32,
}

#[derive(Debug)]
struct Elem {
    leading: Vec<Comment>,
    /// An object field's key, as written.
    key: Option<String>,
    value: Value,
    /// Comments after the element (and its comma).
    trailing: Vec<String>,
    line: u32,
    end_line: u32,
}

struct Cst<'a> {
    tokens: Vec<Token>,
    i: usize,
    chars: &'a [char],
    file: &'a str,
}

impl Cst<'_> {
    fn peek(&self) -> &Token {
        &self.tokens[self.i.min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.i < self.tokens.len() - 1 {
            self.i += 1;
        }
        t
    }

    fn raw(&self, t: &Token) -> String {
        self.chars[t.span.clone()].iter().collect()
    }

    fn err(&self, t: &Token, what: &str) -> ConfigError {
        ConfigError::at(
            self.file,
            t.pos,
            format!("expected {what}, found {}", t.tok.describe()),
        )
    }

    /// The next non-comment token; the comments skipped go to `into`.
    fn code(&mut self, into: &mut Vec<Comment>) -> Token {
        loop {
            let t = self.next();
            match &t.tok {
                Tok::Comment(text) => into.push(Comment {
                    text: text.clone(),
                    line: t.pos.line,
                    end_line: t.end.line,
                }),
                _ => return t,
            }
        }
    }

    /// Peeks past comments without consuming anything.
    fn peek_code(&self) -> &Token {
        let mut i = self.i;
        while matches!(self.tokens[i].tok, Tok::Comment(_)) && i < self.tokens.len() - 1 {
            i += 1;
        }
        &self.tokens[i]
    }

    /// Comments that start on `line` (end-of-line comments).
    fn same_line_comments(&mut self, line: u32) -> Vec<String> {
        let mut parts = Vec::new();
        while let Tok::Comment(text) = self.peek().tok.clone() {
            if self.peek().pos.line != line {
                break;
            }
            parts.push(text);
            self.next();
        }
        parts
    }

    /// Own-line comments before the next code token.
    fn own_line_comments(&mut self) -> Vec<Comment> {
        let mut out = Vec::new();
        while let Tok::Comment(text) = self.peek().tok.clone() {
            let t = self.next();
            out.push(Comment {
                text,
                line: t.pos.line,
                end_line: t.end.line,
            });
        }
        out
    }

    /// Statements until `}` (not consumed) or the end of the file.
    fn body(&mut self, top: bool) -> Result<Vec<Item>, ConfigError> {
        let mut items = Vec::new();
        loop {
            for c in self.own_line_comments() {
                items.push(Item::Comment(c));
            }
            match self.peek().tok {
                Tok::Eof if top => return Ok(items),
                Tok::RBrace if !top => return Ok(items),
                _ => items.push(Item::Stmt(self.stmt()?)),
            }
        }
    }

    fn stmt(&mut self) -> Result<Stmt, ConfigError> {
        let mut hoisted = Vec::new();
        let first = self.code(&mut hoisted);
        let Tok::Ident(mut name) = first.tok.clone() else {
            return Err(self.err(&first, "an identifier"));
        };
        while self.peek_code().tok == Tok::Dot {
            self.code(&mut hoisted);
            let part = self.code(&mut hoisted);
            let Tok::Ident(part) = part.tok else {
                return Err(self.err(&part, "an identifier"));
            };
            name.push('.');
            name.push_str(&part);
        }
        let t = self.code(&mut hoisted);
        let (kind, last_line) = match t.tok {
            Tok::Assign => {
                let (value, end) = self.value(&mut hoisted)?;
                (StmtKind::Attr { name, value }, end)
            }
            Tok::Str(_) | Tok::LBrace => {
                let label = match t.tok {
                    Tok::Str(_) => {
                        let label = self.raw(&t);
                        let open = self.code(&mut hoisted);
                        if open.tok != Tok::LBrace {
                            return Err(self.err(&open, "`{`"));
                        }
                        Some(label)
                    }
                    _ => None,
                };
                let open_line = self.tokens[self.i - 1].pos.line;
                let header = self.same_line_comments(open_line);
                let body = self.body(false)?;
                let close = self.next();
                (
                    StmtKind::Block {
                        name,
                        label,
                        header,
                        body,
                    },
                    close.end.line,
                )
            }
            _ => return Err(self.err(&t, "`=` or a block")),
        };
        Ok(Stmt {
            hoisted,
            kind,
            trailing: self.same_line_comments(last_line),
            line: first.pos.line,
            end_line: last_line,
        })
    }

    /// A value; returns it and the line of its last token.
    fn value(&mut self, hoisted: &mut Vec<Comment>) -> Result<(Value, u32), ConfigError> {
        let t = self.code(hoisted);
        match t.tok {
            Tok::Minus => {
                let n = self.code(hoisted);
                Ok((Value::Atom(format!("-{}", self.raw(&n))), n.end.line))
            }
            Tok::Ident(first) => {
                let mut path = first;
                let mut end = t.end.line;
                while self.peek_code().tok == Tok::Dot {
                    self.code(hoisted);
                    let part = self.code(hoisted);
                    path.push('.');
                    path.push_str(&self.raw(&part));
                    end = part.end.line;
                }
                if self.peek_code().tok == Tok::LParen {
                    let open = self.code(hoisted);
                    let open_text = format!("{path}(");
                    return self.seq(open_text, ')', open.pos.line, false, hoisted);
                }
                Ok((Value::Atom(path), end))
            }
            Tok::LBracket => self.seq("[".into(), ']', t.pos.line, false, hoisted),
            Tok::LBrace => self.seq("{".into(), '}', t.pos.line, true, hoisted),
            _ => Ok((Value::Atom(self.raw(&t)), t.end.line)),
        }
    }

    /// The elements of a list, object or call after its opening bracket, through the
    /// closing one.
    fn seq(
        &mut self,
        open: String,
        close: char,
        open_line: u32,
        object: bool,
        hoisted: &mut Vec<Comment>,
    ) -> Result<(Value, u32), ConfigError> {
        let open_comment = self.same_line_comments(open_line);
        let mut elems = Vec::new();
        loop {
            let leading = self.own_line_comments();
            let t = self.peek().clone();
            if matches!(t.tok, Tok::RBracket | Tok::RBrace | Tok::RParen) {
                self.next();
                let seq = Seq {
                    open,
                    close,
                    open_comment,
                    elems,
                    tail: leading,
                    open_line,
                    close_line: t.pos.line,
                };
                return Ok((Value::Seq(Box::new(seq)), t.end.line));
            }
            let line = t.pos.line;
            let key = if object {
                let k = self.code(hoisted);
                let eq = self.code(hoisted);
                if eq.tok != Tok::Assign {
                    return Err(self.err(&eq, "`=`"));
                }
                Some(self.raw(&k))
            } else {
                None
            };
            let (value, end_line) = self.value(hoisted)?;
            // Comments between the value and its comma move after the comma.
            let mut between = Vec::new();
            if self.peek_code().tok == Tok::Comma {
                self.code(&mut between);
            }
            let mut trailing: Vec<String> = between.into_iter().map(|c| c.text).collect();
            trailing.extend(self.same_line_comments(self.tokens[self.i - 1].end.line));
            elems.push(Elem {
                leading,
                key,
                value,
                trailing,
                line,
                end_line,
            });
        }
    }
}

/// One output line: indentation, an optional key aligned within its run, text and an
/// end-of-line comment.
#[derive(Debug, Default, Clone)]
struct Line {
    indent: usize,
    key: Option<(String, usize)>,
    text: String,
    comment: Option<String>,
    blank: bool,
}

#[derive(Default)]
struct Out {
    lines: Vec<Line>,
    next_run: usize,
}

impl Out {
    fn run(&mut self) -> usize {
        self.next_run += 1;
        self.next_run
    }

    fn line(&mut self, indent: usize) {
        self.lines.push(Line {
            indent,
            ..Line::default()
        });
    }

    fn blank(&mut self) {
        self.lines.push(Line {
            blank: true,
            ..Line::default()
        });
    }

    fn push(&mut self, s: &str) {
        self.lines.last_mut().expect("a line").text.push_str(s);
    }

    /// End-of-line comments: on the current line until one of them is a `//` comment (it
    /// runs to the end of the line); those after it get lines of their own at `indent`.
    /// Returns whether the current line is closed (nothing may follow on it).
    fn comments(&mut self, parts: &[String], indent: usize) -> bool {
        let mut closed = self
            .lines
            .last()
            .and_then(|l| l.comment.as_deref())
            .is_some_and(|c| c.contains("//"));
        for p in parts {
            if closed {
                self.line(indent);
                self.push(p);
                continue;
            }
            let line = self.lines.last_mut().expect("a line");
            line.comment = Some(match line.comment.take() {
                Some(before) => format!("{before} {p}"),
                None => p.clone(),
            });
            closed = p.starts_with("//");
        }
        closed
    }

    fn comment_lines(&mut self, comments: &[Comment], indent: usize) {
        for c in comments {
            self.line(indent);
            self.push(&c.text);
        }
    }

    fn body(&mut self, items: &[Item], indent: usize) {
        let lines = |i: &Item| match i {
            Item::Comment(c) => (c.line, c.end_line),
            Item::Stmt(s) => (
                s.hoisted.first().map_or(s.line, |c| c.line.min(s.line)),
                s.end_line,
            ),
        };
        let mut blank: Vec<bool> = (0..items.len())
            .map(|i| i > 0 && lines(&items[i]).0 > lines(&items[i - 1]).1 + 1)
            .collect();
        for (b, item) in items.iter().enumerate() {
            if !matches!(
                item,
                Item::Stmt(Stmt {
                    kind: StmtKind::Block { .. },
                    ..
                })
            ) {
                continue;
            }
            // The blank line goes before the comments directly above the block.
            let mut g = b;
            while g > 0 && matches!(items[g - 1], Item::Comment(_)) && !blank[g] {
                g -= 1;
            }
            if g > 0 {
                blank[g] = true;
            }
        }
        let mut run: Option<usize> = None;
        for (i, item) in items.iter().enumerate() {
            if blank[i] {
                self.blank();
                run = None;
            }
            match item {
                Item::Comment(c) => {
                    self.comment_lines(std::slice::from_ref(c), indent);
                    run = None;
                }
                Item::Stmt(s) => {
                    if !s.hoisted.is_empty() {
                        self.comment_lines(&s.hoisted, indent);
                        run = None;
                    }
                    match &s.kind {
                        StmtKind::Attr { name, value } => {
                            let r = match run {
                                Some(r) => r,
                                None => self.run(),
                            };
                            self.line(indent);
                            self.lines.last_mut().unwrap().key = Some((name.clone(), r));
                            let first = self.lines.len();
                            self.value(value, indent);
                            run = (self.lines.len() == first).then_some(r);
                        }
                        StmtKind::Block {
                            name,
                            label,
                            header,
                            body,
                        } => {
                            run = None;
                            self.line(indent);
                            self.push(name);
                            if let Some(l) = label {
                                self.push(" ");
                                self.push(l);
                            }
                            self.push(" {");
                            self.comments(header, indent + 1);
                            if body.is_empty() && header.is_empty() {
                                self.push(" }");
                            } else {
                                self.body(body, indent + 1);
                                self.line(indent);
                                self.push("}");
                            }
                        }
                    }
                    self.comments(&s.trailing, indent);
                }
            }
        }
    }

    fn value(&mut self, v: &Value, indent: usize) {
        let seq = match v {
            Value::Atom(s) => return self.push(s),
            Value::Seq(seq) => seq,
        };
        self.push(&seq.open);
        let mut line_closed = self.comments(&seq.open_comment, indent + 1);
        // Where the previous element (or the bracket) ended.
        let mut prev_line = seq.open_line;
        let mut run: Option<usize> = None;
        let values = seq.elems.len();
        let mut close_on_new_line = !seq.tail.is_empty() || seq.close_line != prev_line;
        for (i, e) in seq.elems.iter().enumerate() {
            let new_line = !e.leading.is_empty() || e.line != prev_line || line_closed;
            if !e.leading.is_empty() {
                self.comment_lines(&e.leading, indent + 1);
                run = None;
            }
            if new_line {
                self.line(indent + 1);
                if let Some(k) = &e.key {
                    let r = match run {
                        Some(r) => r,
                        None => self.run(),
                    };
                    self.lines.last_mut().unwrap().key = Some((k.clone(), r));
                    run = Some(r);
                }
            } else {
                if i > 0 {
                    self.push(" ");
                }
                if let Some(k) = &e.key {
                    self.push(k);
                    self.push(" = ");
                }
                run = None;
            }
            // What an element on the opening bracket's line holds is indented from that line.
            let base = if new_line { indent + 1 } else { indent };
            let before = self.lines.len();
            self.value(&e.value, base);
            if self.lines.len() != before {
                run = None;
            }
            if i + 1 == values {
                close_on_new_line = !seq.tail.is_empty()
                    || seq.close_line != e.end_line
                    || e.trailing.iter().any(|c| c.starts_with("//"));
            }
            // A comma after every element but the last; after the last one too when the
            // closing bracket goes on a line of its own.
            if i + 1 < values || close_on_new_line {
                self.push(",");
            }
            let before = self.lines.len();
            line_closed = self.comments(&e.trailing, indent + 1);
            if self.lines.len() != before {
                run = None;
            }
            prev_line = e.end_line;
        }
        let open = values > 0 || !seq.tail.is_empty() || line_closed;
        if (close_on_new_line || line_closed) && open {
            self.comment_lines(&seq.tail, indent + 1);
            self.line(indent);
        }
        self.push(&seq.close.to_string());
    }

    /// Aligns keys and comments within runs and joins the lines.
    fn finish(mut self) -> String {
        let n = self.lines.len();
        // Key width per run.
        let mut width: std::collections::BTreeMap<usize, usize> = Default::default();
        for l in &self.lines {
            if let Some((k, r)) = &l.key {
                let w = width.entry(*r).or_default();
                *w = (*w).max(k.chars().count());
            }
        }
        let mut rendered: Vec<String> = self
            .lines
            .iter()
            .map(|l| {
                if l.blank {
                    return String::new();
                }
                let mut s = "\t".repeat(l.indent);
                if let Some((k, r)) = &l.key {
                    s.push_str(k);
                    s.push_str(&" ".repeat(width[r] - k.chars().count()));
                    s.push_str(" = ");
                }
                s.push_str(&l.text);
                s
            })
            .collect();
        // Comments at the end of consecutive lines of one run start in one column.
        let mut i = 0;
        while i < n {
            let run_of = |l: &Line| l.key.as_ref().map(|(_, r)| *r);
            if self.lines[i].comment.is_none() {
                i += 1;
                continue;
            }
            let mut j = i + 1;
            while j < n
                && self.lines[j].comment.is_some()
                && run_of(&self.lines[j]).is_some()
                && run_of(&self.lines[j]) == run_of(&self.lines[i])
            {
                j += 1;
            }
            let col = (i..j)
                .map(|k| display_width(&rendered[k]))
                .max()
                .unwrap_or(0);
            for k in i..j {
                let pad = col - display_width(&rendered[k]);
                let c = self.lines[k].comment.take().unwrap();
                rendered[k].push_str(&" ".repeat(pad + 1));
                rendered[k].push_str(&c);
            }
            i = j;
        }
        let mut out = rendered.join("\n");
        out.push('\n');
        out
    }
}

/// Width of a rendered line with tabs counted as one column each (only leading tabs occur,
/// and they are equal within a run).
fn display_width(s: &str) -> usize {
    s.chars().count()
}

#[cfg(test)]
mod tests;
