//! Syntax tree and parser for the Alloy (River) subset: a file is a body of statements; a
//! statement is an attribute (`name = expr`) or a block (`a.b "label" { body }`). Expressions
//! are literals, lists, objects, dotted references and function calls (`sys.env("HOST")`,
//! `concat(a, b)`). No operators. The parser checks shape only; `functions.rs` evaluates
//! calls and constants, `eval.rs` checks meaning (known blocks, types, references).

use super::error::{ConfigError, Pos};
use super::lexer::{tokenize, tokenize_recovering, Tok, Token};

/// Nesting limit for lists/objects/blocks, so a hostile file cannot overflow the stack.
const NESTING_DEPTH_MAX: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    pub stmts: Vec<Stmt>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Stmt {
    Attr(Attr),
    Block(Block),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Attr {
    pub name: String,
    pub pos: Pos,
    pub value: Expr,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// Dotted name, e.g. `prometheus.scrape`.
    pub name: String,
    pub pos: Pos,
    pub label: Option<(String, Pos)>,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub pos: Pos,
    pub kind: ExprKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
    List(Vec<Expr>),
    /// Keys in source order with their positions.
    Object(Vec<(String, Pos, Expr)>),
    /// A dotted reference such as `discovery.file.nodes.targets`.
    Ref(Vec<String>),
    /// A function call such as `sys.env("HOST")`: the dotted name and the arguments.
    Call(Vec<String>, Vec<Expr>),
}

impl ExprKind {
    /// How the value's type is named in type errors.
    pub fn type_name(&self) -> &'static str {
        match self {
            ExprKind::Str(_) => "string",
            ExprKind::Num(_) => "number",
            ExprKind::Bool(_) => "bool",
            ExprKind::Null => "null",
            ExprKind::List(_) => "list",
            ExprKind::Object(_) => "object",
            ExprKind::Ref(_) => "reference",
            ExprKind::Call(..) => "function call",
        }
    }
}

/// Parses a whole file.
pub fn parse(src: &str, file: &str) -> Result<Body, ConfigError> {
    let tokens = tokenize(src, file)?;
    let mut p = Parser {
        tokens,
        i: 0,
        file,
        depth: 0,
    };
    let body = p.body(None)?;
    Ok(body)
}

/// Parses a whole file and goes on after errors, for `agent validate`: a top-level
/// statement with an error is skipped (to the `}` that balances its block, else to the next
/// line that starts with an identifier in column 1) and parsing resumes after it. Returns
/// the statements that parsed and every lexical and syntax error, in source order.
pub fn parse_recovering(src: &str, file: &str) -> (Body, Vec<ConfigError>) {
    let (tokens, mut errors) = tokenize_recovering(src, file);
    let mut p = Parser {
        tokens,
        i: 0,
        file,
        depth: 0,
    };
    let mut stmts = Vec::new();
    loop {
        let t = p.peek().clone();
        match t.tok {
            Tok::Eof => break,
            Tok::Ident(_) => {
                let start = p.i;
                match p.stmt() {
                    Ok(stmt) => stmts.push(stmt),
                    Err(e) => {
                        let at = e.pos().unwrap_or_default();
                        errors.push(e);
                        p.depth = 0;
                        p.i = p.resume_after(start, at);
                    }
                }
            }
            _ => {
                errors
                    .push(p.unexpected(&t, "a block such as `prometheus.scrape \"name\" { ... }`"));
                p.i = p.resume_after(p.i, t.pos);
            }
        }
    }
    errors.sort_by_key(|e| e.pos());
    errors.dedup();
    (Body { stmts }, errors)
}

struct Parser<'a> {
    tokens: Vec<Token>,
    i: usize,
    file: &'a str,
    depth: usize,
}

impl Parser<'_> {
    /// Where to go on after a top-level statement starting at token `start` failed with an
    /// error at `at`: after the `}` that balances the statement's first `{`, else at the next
    /// identifier in column 1 on a later line, and never before the error.
    fn resume_after(&self, start: usize, at: Pos) -> usize {
        let last = self.tokens.len() - 1;
        let mut depth = 0i32;
        let mut balanced = None;
        for (i, t) in self.tokens.iter().enumerate().skip(start) {
            match t.tok {
                Tok::LBrace | Tok::LBracket | Tok::LParen => depth += 1,
                Tok::RBrace | Tok::RBracket | Tok::RParen => {
                    depth -= 1;
                    if depth <= 0 && t.tok == Tok::RBrace {
                        balanced = Some(i + 1);
                        break;
                    }
                }
                _ => {}
            }
        }
        let start_line = self.tokens[start.min(last)].pos.line;
        let candidate = balanced.unwrap_or_else(|| {
            (start + 1..last)
                .find(|&i| {
                    let t = &self.tokens[i];
                    t.pos.col == 1 && t.pos.line > start_line && matches!(t.tok, Tok::Ident(_))
                })
                .unwrap_or(last)
        });
        // Never resume at or before the error (it would be reported again).
        (candidate..last)
            .find(|&i| self.tokens[i].pos > at)
            .unwrap_or(last)
            .max(start + 1)
            .min(last)
    }

    fn peek(&self) -> &Token {
        &self.tokens[self.i.min(self.tokens.len() - 1)]
    }

    fn peek_at(&self, ahead: usize) -> &Token {
        &self.tokens[(self.i + ahead).min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.i < self.tokens.len() - 1 {
            self.i += 1;
        }
        t
    }

    fn err(&self, pos: Pos, msg: impl Into<String>) -> ConfigError {
        ConfigError::at(self.file, pos, msg)
    }

    fn unexpected(&self, t: &Token, expected: &str) -> ConfigError {
        self.err(
            t.pos,
            format!("expected {expected}, found {}", t.tok.describe()),
        )
    }

    fn enter(&mut self, pos: Pos) -> Result<(), ConfigError> {
        self.depth += 1;
        if self.depth > NESTING_DEPTH_MAX {
            return Err(self.err(
                pos,
                format!("nesting deeper than {NESTING_DEPTH_MAX} levels"),
            ));
        }
        Ok(())
    }

    /// Statements until `}` (when `open` is the position of the block's `{`) or end of file.
    fn body(&mut self, open: Option<Pos>) -> Result<Body, ConfigError> {
        let mut stmts = Vec::new();
        loop {
            let t = self.peek().clone();
            match (&t.tok, open) {
                (Tok::Eof, None) => return Ok(Body { stmts }),
                (Tok::Eof, Some(open)) => {
                    return Err(self.err(
                        open,
                        "block is never closed; expected `}` before end of file",
                    ))
                }
                (Tok::RBrace, Some(_)) => {
                    self.next();
                    return Ok(Body { stmts });
                }
                (Tok::Ident(_), _) => stmts.push(self.stmt()?),
                _ => {
                    return Err(self.unexpected(
                        &t,
                        if open.is_some() {
                            "an attribute, a block or `}`"
                        } else {
                            "a block such as `prometheus.scrape \"name\" { ... }`"
                        },
                    ))
                }
            }
        }
    }

    fn stmt(&mut self) -> Result<Stmt, ConfigError> {
        let first = self.next();
        let Tok::Ident(mut name) = first.tok.clone() else {
            return Err(self.unexpected(&first, "an identifier"));
        };
        let mut dotted = false;
        while self.peek().tok == Tok::Dot {
            self.next();
            let t = self.next();
            let Tok::Ident(part) = t.tok.clone() else {
                return Err(self.unexpected(&t, "an identifier after `.`"));
            };
            name.push('.');
            name.push_str(&part);
            dotted = true;
        }
        let t = self.peek().clone();
        match t.tok {
            Tok::Assign => {
                if dotted {
                    return Err(self.err(
                        first.pos,
                        format!("attribute names cannot contain `.`: `{name}`"),
                    ));
                }
                self.next();
                let value = self.expr()?;
                Ok(Stmt::Attr(Attr {
                    name,
                    pos: first.pos,
                    value,
                }))
            }
            Tok::Str(ref label) => {
                let label = (label.clone(), t.pos);
                self.next();
                let open = self.next();
                if open.tok != Tok::LBrace {
                    return Err(self.unexpected(&open, "`{` after the block label"));
                }
                self.enter(open.pos)?;
                let body = self.body(Some(open.pos))?;
                self.depth -= 1;
                Ok(Stmt::Block(Block {
                    name,
                    pos: first.pos,
                    label: Some(label),
                    body,
                }))
            }
            Tok::LBrace => {
                self.next();
                self.enter(t.pos)?;
                let body = self.body(Some(t.pos))?;
                self.depth -= 1;
                Ok(Stmt::Block(Block {
                    name,
                    pos: first.pos,
                    label: None,
                    body,
                }))
            }
            _ => Err(self.unexpected(
                &t,
                &format!("`=` (attribute) or a label/`{{` (block) after `{name}`"),
            )),
        }
    }

    fn expr(&mut self) -> Result<Expr, ConfigError> {
        let t = self.next();
        let pos = t.pos;
        let kind =
            match t.tok {
                Tok::Str(s) => ExprKind::Str(s),
                Tok::Num(n) => ExprKind::Num(n),
                Tok::Minus => {
                    let n = self.next();
                    match n.tok {
                        Tok::Num(v) => ExprKind::Num(-v),
                        _ => return Err(self.unexpected(&n, "a number after `-`")),
                    }
                }
                Tok::Ident(ref id) if id == "true" => ExprKind::Bool(true),
                Tok::Ident(ref id) if id == "false" => ExprKind::Bool(false),
                Tok::Ident(ref id) if id == "null" => ExprKind::Null,
                Tok::Ident(id) => {
                    let mut path = vec![id];
                    while self.peek().tok == Tok::Dot {
                        self.next();
                        let p = self.next();
                        let Tok::Ident(part) = p.tok.clone() else {
                            return Err(self.unexpected(&p, "an identifier after `.`"));
                        };
                        path.push(part);
                    }
                    if self.peek().tok == Tok::LParen {
                        let open = self.next();
                        self.enter(open.pos)?;
                        let mut args = Vec::new();
                        loop {
                            if self.peek().tok == Tok::RParen {
                                self.next();
                                break;
                            }
                            args.push(self.expr()?);
                            let sep = self.next();
                            match sep.tok {
                                Tok::Comma => {}
                                Tok::RParen => break,
                                _ => {
                                    return Err(self
                                        .unexpected(&sep, "`,` or `)` in the arguments of a call"))
                                }
                            }
                        }
                        self.depth -= 1;
                        return self.finish(Expr {
                            pos,
                            kind: ExprKind::Call(path, args),
                        });
                    }
                    ExprKind::Ref(path)
                }
                Tok::LBracket => {
                    self.enter(pos)?;
                    let mut items = Vec::new();
                    loop {
                        if self.peek().tok == Tok::RBracket {
                            self.next();
                            break;
                        }
                        items.push(self.expr()?);
                        let sep = self.next();
                        match sep.tok {
                            Tok::Comma => {}
                            Tok::RBracket => break,
                            _ => return Err(self.unexpected(&sep, "`,` or `]` in list")),
                        }
                    }
                    self.depth -= 1;
                    ExprKind::List(items)
                }
                Tok::LBrace => {
                    self.enter(pos)?;
                    let mut fields: Vec<(String, Pos, Expr)> = Vec::new();
                    loop {
                        let k = self.next();
                        let key = match k.tok {
                            Tok::RBrace => break,
                            Tok::Str(ref s) => s.clone(),
                            Tok::Ident(ref s) => s.clone(),
                            _ => {
                                return Err(self
                                    .unexpected(&k, "an object key (string or identifier) or `}`"))
                            }
                        };
                        if fields.iter().any(|(existing, _, _)| *existing == key) {
                            return Err(self.err(k.pos, format!("duplicate object key {key:?}")));
                        }
                        let eq = self.next();
                        if eq.tok != Tok::Assign {
                            return Err(self.unexpected(&eq, "`=` after the object key"));
                        }
                        let v = self.expr()?;
                        fields.push((key, k.pos, v));
                        let sep = self.next();
                        match sep.tok {
                            Tok::Comma => {}
                            Tok::RBrace => break,
                            _ => return Err(self.unexpected(&sep, "`,` or `}` in object")),
                        }
                    }
                    self.depth -= 1;
                    ExprKind::Object(fields)
                }
                _ => {
                    return Err(self.unexpected(
                        &t,
                        "a value (string, number, bool, list, object or reference)",
                    ))
                }
            };
        self.finish(Expr { pos, kind })
    }

    /// Checks what follows a value. `a = 1 b` would otherwise silently parse as two
    /// statements only if `b` is followed by `=`; anything else right after a value is an
    /// error here for a clearer message.
    fn finish(&mut self, e: Expr) -> Result<Expr, ConfigError> {
        let after = self.peek();
        if let Tok::Ident(_) = after.tok {
            let next = &self.peek_at(1).tok;
            if !matches!(next, Tok::Assign | Tok::Dot | Tok::Str(_) | Tok::LBrace) {
                let after = after.clone();
                return Err(self.unexpected(&after, "a new line with an attribute or block"));
            }
        }
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_blocks_attributes_and_values() {
        let body = parse(
            r#"
            prometheus.scrape "a" {
              targets = [{"__address__" = "h:1", job = "j"}, ]
              forward_to = [prometheus.remote_write.x.receiver]
              clustering { enabled = true }
              n = -1.5
            }"#,
            "t",
        )
        .unwrap();
        let Stmt::Block(b) = &body.stmts[0] else {
            panic!()
        };
        assert_eq!(b.name, "prometheus.scrape");
        assert_eq!(b.label.as_ref().unwrap().0, "a");
        assert_eq!(b.body.stmts.len(), 4);
        let Stmt::Attr(a) = &b.body.stmts[3] else {
            panic!()
        };
        assert_eq!(a.value.kind, ExprKind::Num(-1.5));
    }

    #[test]
    fn unclosed_block_points_at_its_brace() {
        let e = parse("a \"x\" {\n  b = 1\n", "f").unwrap_err();
        assert_eq!(
            e.to_string(),
            "f:1:7: block is never closed; expected `}` before end of file"
        );
    }

    #[test]
    fn missing_comma_in_list_is_reported() {
        let e = parse("a { b = [1 2] }", "f").unwrap_err();
        assert_eq!(
            e.to_string(),
            "f:1:12: expected `,` or `]` in list, found number 2"
        );
    }

    #[test]
    fn parses_function_calls_with_nested_arguments() {
        let body = parse("a = concat([1], f(sys.env(\"X\"), \"y\"),)\nb = g()", "t").unwrap();
        let Stmt::Attr(a) = &body.stmts[0] else {
            panic!()
        };
        let ExprKind::Call(name, args) = &a.value.kind else {
            panic!("{:?}", a.value)
        };
        assert_eq!(name, &["concat"]);
        assert_eq!(args.len(), 2);
        let ExprKind::Call(inner, inner_args) = &args[1].kind else {
            panic!()
        };
        assert_eq!(inner, &["f"]);
        assert!(matches!(&inner_args[0].kind, ExprKind::Call(n, _) if n == &["sys", "env"]));
        let Stmt::Attr(b) = &body.stmts[1] else {
            panic!()
        };
        assert_eq!(b.value.kind, ExprKind::Call(vec!["g".into()], vec![]));
    }

    #[test]
    fn unclosed_call_is_reported() {
        let e = parse("a = f(1 2)", "f").unwrap_err();
        assert_eq!(
            e.to_string(),
            "f:1:9: expected `,` or `)` in the arguments of a call, found number 2"
        );
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let src = format!("a = {}{}", "[".repeat(100), "]".repeat(100));
        let e = parse(&src, "f").unwrap_err();
        assert!(e.to_string().contains("nesting deeper than"), "{e}");
    }
}
