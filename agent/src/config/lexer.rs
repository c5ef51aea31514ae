//! Tokenizer for the Alloy (River) configuration syntax subset: identifiers, strings (`"..."`
//! with Go-style escapes and raw `` `...` ``), numbers, punctuation, and `//` and `/* */`
//! comments. It knows positions, not meaning; the parser gives tokens their meaning.
//!
//! Two extra modes serve the commands that do not run a configuration: `agent fmt` keeps
//! comments as tokens ([`tokenize_with_comments`]) and `agent validate` collects every error
//! instead of stopping at the first ([`tokenize_recovering`]).

use super::error::{ConfigError, Pos};

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    LParen,
    RParen,
    Comma,
    Assign,
    Dot,
    Minus,
    /// A `//` or `/* */` comment, as written (only from [`tokenize_with_comments`]).
    Comment(String),
    Eof,
}

impl Tok {
    /// How the token is named in "expected X, found Y" messages.
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("identifier `{s}`"),
            Tok::Str(s) => format!("string {s:?}"),
            Tok::Num(n) => format!("number {n}"),
            Tok::LBrace => "`{`".into(),
            Tok::RBrace => "`}`".into(),
            Tok::LBracket => "`[`".into(),
            Tok::RBracket => "`]`".into(),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Assign => "`=`".into(),
            Tok::Dot => "`.`".into(),
            Tok::Minus => "`-`".into(),
            Tok::Comment(_) => "comment".into(),
            Tok::Eof => "end of file".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    /// Where the token starts.
    pub pos: Pos,
    /// Where it ends (the position just after its last character).
    pub end: Pos,
    /// Its characters in the source, as indices into the file's characters.
    pub span: std::ops::Range<usize>,
}

/// Splits `src` into tokens; the last token is always `Tok::Eof`.
pub fn tokenize(src: &str, file: &str) -> Result<Vec<Token>, ConfigError> {
    let (tokens, mut errors) = run(src, file, false, false);
    match errors.is_empty() {
        true => Ok(tokens),
        false => Err(errors.swap_remove(0)),
    }
}

/// [`tokenize`], with every comment kept as a [`Tok::Comment`] token.
pub fn tokenize_with_comments(src: &str, file: &str) -> Result<Vec<Token>, ConfigError> {
    let (tokens, mut errors) = run(src, file, true, false);
    match errors.is_empty() {
        true => Ok(tokens),
        false => Err(errors.swap_remove(0)),
    }
}

/// [`tokenize`] that goes on after an error: a bad character is skipped, an unterminated
/// string ends at its line, a bad escape or number is kept as a placeholder. Returns the
/// tokens and every error, in source order.
pub fn tokenize_recovering(src: &str, file: &str) -> (Vec<Token>, Vec<ConfigError>) {
    run(src, file, false, true)
}

fn run(src: &str, file: &str, comments: bool, recover: bool) -> (Vec<Token>, Vec<ConfigError>) {
    let mut lx = Lexer {
        chars: src.chars().collect(),
        i: 0,
        line: 1,
        col: 1,
        file,
        errors: Vec::new(),
    };
    let mut out = Vec::new();
    loop {
        match lx.skip_space_and_comments(comments.then_some(&mut out)) {
            Ok(()) => {}
            Err(e) => {
                // Only an unterminated block comment fails here; it runs to the end.
                lx.errors.push(e);
                let pos = lx.pos();
                let at = lx.i;
                out.push(Token {
                    tok: Tok::Eof,
                    pos,
                    end: pos,
                    span: at..at,
                });
                return (out, lx.errors);
            }
        }
        if !recover && !lx.errors.is_empty() {
            return (out, lx.errors);
        }
        let pos = lx.pos();
        let start = lx.i;
        let Some(c) = lx.peek() else {
            out.push(Token {
                tok: Tok::Eof,
                pos,
                end: pos,
                span: start..start,
            });
            return (out, lx.errors);
        };
        let tok = match lx.token(c, pos) {
            Ok(tok) => tok,
            Err(e) => {
                lx.errors.push(e);
                if !recover {
                    return (out, lx.errors);
                }
                continue;
            }
        };
        out.push(Token {
            tok,
            pos,
            end: lx.pos(),
            span: start..lx.i,
        });
    }
}

struct Lexer<'a> {
    chars: Vec<char>,
    i: usize,
    line: u32,
    col: u32,
    file: &'a str,
    /// Errors already recovered from (a bad escape keeps its string going).
    errors: Vec<ConfigError>,
}

impl Lexer<'_> {
    /// The token starting with `c` at `pos`. On an error the bad characters are consumed, so
    /// a recovering lexer goes on after them.
    fn token(&mut self, c: char, pos: Pos) -> Result<Tok, ConfigError> {
        let tok = match c {
            '{' => self.single(Tok::LBrace),
            '}' => self.single(Tok::RBrace),
            '[' => self.single(Tok::LBracket),
            ']' => self.single(Tok::RBracket),
            '(' => self.single(Tok::LParen),
            ')' => self.single(Tok::RParen),
            ',' => self.single(Tok::Comma),
            '=' => {
                if self.peek_at(1) == Some('=') {
                    self.bump();
                    self.bump();
                    return Err(self.err(pos, "operators are not supported; expected `=`"));
                }
                self.single(Tok::Assign)
            }
            '.' => self.single(Tok::Dot),
            '-' => self.single(Tok::Minus),
            '"' => self.string(pos)?,
            '`' => self.raw_string(pos)?,
            c if c.is_ascii_digit() => self.number(pos)?,
            c if c.is_alphabetic() || c == '_' => self.ident(),
            other => {
                self.bump();
                return Err(self.err(
                    pos,
                    format!("unexpected character {other:?}; expected an identifier, a value or punctuation"),
                ));
            }
        };
        Ok(tok)
    }

    fn pos(&self) -> Pos {
        Pos::new(self.line, self.col)
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.i + ahead).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += 1;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn single(&mut self, tok: Tok) -> Tok {
        self.bump();
        tok
    }

    fn err(&self, pos: Pos, msg: impl Into<String>) -> ConfigError {
        ConfigError::at(self.file, pos, msg)
    }

    /// Skips whitespace and comments; with `keep`, each comment is pushed there as a token.
    fn skip_space_and_comments(
        &mut self,
        mut keep: Option<&mut Vec<Token>>,
    ) -> Result<(), ConfigError> {
        loop {
            let (pos, start) = (self.pos(), self.i);
            match (self.peek(), self.peek_at(1)) {
                (Some(c), _) if c.is_whitespace() => {
                    self.bump();
                    continue;
                }
                (Some('/'), Some('/')) => {
                    while let Some(c) = self.peek() {
                        if c == '\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                (Some('/'), Some('*')) => {
                    self.bump();
                    self.bump();
                    loop {
                        match (self.peek(), self.peek_at(1)) {
                            (Some('*'), Some('/')) => {
                                self.bump();
                                self.bump();
                                break;
                            }
                            (Some(_), _) => {
                                self.bump();
                            }
                            (None, _) => {
                                return Err(
                                    self.err(pos, "unterminated block comment; expected `*/`")
                                )
                            }
                        }
                    }
                }
                _ => return Ok(()),
            }
            if let Some(out) = keep.as_deref_mut() {
                let text: String = self.chars[start..self.i].iter().collect();
                let text = text.trim_end().to_string();
                out.push(Token {
                    tok: Tok::Comment(text),
                    pos,
                    end: self.pos(),
                    span: start..self.i,
                });
            }
        }
    }

    fn ident(&mut self) -> Tok {
        let mut s = String::new();
        while let Some(c) = self.peek() {
            if c.is_alphanumeric() || c == '_' {
                s.push(c);
                self.bump();
            } else {
                break;
            }
        }
        Tok::Ident(s)
    }

    fn number(&mut self, pos: Pos) -> Result<Tok, ConfigError> {
        let mut s = String::new();
        while let Some(c) = self.peek() {
            let exponent_sign =
                (c == '+' || c == '-') && matches!(s.chars().last(), Some('e') | Some('E'));
            if c.is_ascii_digit() || c == '.' || c == 'e' || c == 'E' || c == '_' || exponent_sign {
                // A `.` not followed by a digit ends the number (e.g. `1.foo` is not valid anyway).
                if c == '.' && !self.peek_at(1).is_some_and(|d| d.is_ascii_digit()) {
                    break;
                }
                if c != '_' {
                    s.push(c);
                }
                self.bump();
            } else {
                break;
            }
        }
        match s.parse::<f64>() {
            Ok(n) => Ok(Tok::Num(n)),
            Err(_) => {
                self.errors
                    .push(self.err(pos, format!("invalid number `{s}`")));
                Ok(Tok::Num(0.0))
            }
        }
    }

    fn raw_string(&mut self, pos: Pos) -> Result<Tok, ConfigError> {
        self.bump();
        let mut s = String::new();
        loop {
            match self.bump() {
                Some('`') => return Ok(Tok::Str(s)),
                Some(c) => s.push(c),
                None => {
                    return Err(self.err(pos, "unterminated raw string; expected a closing '`'"))
                }
            }
        }
    }

    fn string(&mut self, pos: Pos) -> Result<Tok, ConfigError> {
        self.bump();
        let mut s = String::new();
        loop {
            let here = self.pos();
            match self.peek() {
                Some('"') => {
                    self.bump();
                    return Ok(Tok::Str(s));
                }
                // The newline is left for the next token (a recovering lexer goes on there).
                Some('\n') | None => {
                    return Err(self.err(pos, "unterminated string; expected a closing `\"`"))
                }
                Some('\\') => {
                    self.bump();
                    let Some(c) = self.peek().filter(|c| *c != '\n') else {
                        return Err(self.err(pos, "unterminated string; expected a closing `\"`"));
                    };
                    self.bump();
                    let decoded = match c {
                        'n' => Ok('\n'),
                        't' => Ok('\t'),
                        'r' => Ok('\r'),
                        'a' => Ok('\u{07}'),
                        'b' => Ok('\u{08}'),
                        'f' => Ok('\u{0c}'),
                        'v' => Ok('\u{0b}'),
                        '\\' => Ok('\\'),
                        '"' => Ok('"'),
                        '\'' => Ok('\''),
                        'x' => self.hex_escape(here, 2),
                        'u' => self.hex_escape(here, 4),
                        'U' => self.hex_escape(here, 8),
                        other => Err(self.err(
                            here,
                            format!(
                                "unknown escape `\\{other}`; expected one of \\n \\t \\r \\\\ \\\" \\xNN \\uNNNN"
                            ),
                        )),
                    };
                    match decoded {
                        Ok(c) => s.push(c),
                        // The string goes on; the error is reported with the others.
                        Err(e) => self.errors.push(e),
                    }
                }
                Some(c) => {
                    self.bump();
                    s.push(c);
                }
            }
        }
    }

    fn hex_escape(&mut self, pos: Pos, digits: usize) -> Result<char, ConfigError> {
        let mut v: u32 = 0;
        for _ in 0..digits {
            // Only hex digits are consumed, so a bad escape cannot swallow the closing quote.
            let d = self.peek().and_then(|c| c.to_digit(16)).ok_or_else(|| {
                self.err(pos, format!("invalid escape; expected {digits} hex digits"))
            })?;
            self.bump();
            v = v * 16 + d;
        }
        char::from_u32(v)
            .ok_or_else(|| self.err(pos, format!("escape is not a valid character (0x{v:x})")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        tokenize(src, "t")
            .unwrap()
            .into_iter()
            .map(|t| t.tok)
            .collect()
    }

    #[test]
    fn comments_are_skipped_and_positions_count_lines() {
        let t = tokenize("// c\n/* a\n b */ x = 1", "t").unwrap();
        assert_eq!(t[0].tok, Tok::Ident("x".into()));
        assert_eq!(t[0].pos, Pos::new(3, 7));
    }

    #[test]
    fn strings_decode_escapes() {
        assert_eq!(
            toks(r#""a\"b\n\u00e9" `raw\n`"#),
            vec![
                Tok::Str("a\"b\né".into()),
                Tok::Str("raw\\n".into()),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn numbers_and_dotted_references() {
        assert_eq!(
            toks("1.5 10 a.b"),
            vec![
                Tok::Num(1.5),
                Tok::Num(10.0),
                Tok::Ident("a".into()),
                Tok::Dot,
                Tok::Ident("b".into()),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn unterminated_string_points_at_its_start() {
        let e = tokenize("x = \"abc\n", "f.alloy").unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.alloy:1:5: unterminated string; expected a closing `\"`"
        );
    }
}
