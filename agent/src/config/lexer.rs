//! Tokenizer for the Alloy (River) configuration syntax subset: identifiers, strings (`"..."`
//! with Go-style escapes and raw `` `...` ``), numbers, punctuation, and `//` and `/* */`
//! comments. It knows positions, not meaning; the parser gives tokens their meaning.

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
            Tok::Eof => "end of file".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub pos: Pos,
}

/// Splits `src` into tokens; the last token is always `Tok::Eof`.
pub fn tokenize(src: &str, file: &str) -> Result<Vec<Token>, ConfigError> {
    let mut lx = Lexer {
        chars: src.chars().collect(),
        i: 0,
        line: 1,
        col: 1,
        file,
    };
    let mut out = Vec::new();
    loop {
        lx.skip_space_and_comments()?;
        let pos = lx.pos();
        let Some(c) = lx.peek() else {
            out.push(Token { tok: Tok::Eof, pos });
            return Ok(out);
        };
        let tok = match c {
            '{' => lx.single(Tok::LBrace),
            '}' => lx.single(Tok::RBrace),
            '[' => lx.single(Tok::LBracket),
            ']' => lx.single(Tok::RBracket),
            '(' => lx.single(Tok::LParen),
            ')' => lx.single(Tok::RParen),
            ',' => lx.single(Tok::Comma),
            '=' => {
                if lx.peek_at(1) == Some('=') {
                    return Err(lx.err(pos, "operators are not supported; expected `=`"));
                }
                lx.single(Tok::Assign)
            }
            '.' => lx.single(Tok::Dot),
            '-' => lx.single(Tok::Minus),
            '"' => lx.string(pos)?,
            '`' => lx.raw_string(pos)?,
            c if c.is_ascii_digit() => lx.number(pos)?,
            c if c.is_alphabetic() || c == '_' => lx.ident(),
            other => {
                return Err(lx.err(
                    pos,
                    format!("unexpected character {other:?}; expected an identifier, a value or punctuation"),
                ))
            }
        };
        out.push(Token { tok, pos });
    }
}

struct Lexer<'a> {
    chars: Vec<char>,
    i: usize,
    line: u32,
    col: u32,
    file: &'a str,
}

impl Lexer<'_> {
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

    fn skip_space_and_comments(&mut self) -> Result<(), ConfigError> {
        loop {
            match (self.peek(), self.peek_at(1)) {
                (Some(c), _) if c.is_whitespace() => {
                    self.bump();
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
                    let start = self.pos();
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
                                    self.err(start, "unterminated block comment; expected `*/`")
                                )
                            }
                        }
                    }
                }
                _ => return Ok(()),
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
        s.parse::<f64>()
            .map(Tok::Num)
            .map_err(|_| self.err(pos, format!("invalid number `{s}`")))
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
            match self.bump() {
                Some('"') => return Ok(Tok::Str(s)),
                Some('\n') | None => {
                    return Err(self.err(pos, "unterminated string; expected a closing `\"`"))
                }
                Some('\\') => {
                    let c = self.bump().ok_or_else(|| {
                        self.err(pos, "unterminated string; expected a closing `\"`")
                    })?;
                    match c {
                        'n' => s.push('\n'),
                        't' => s.push('\t'),
                        'r' => s.push('\r'),
                        'a' => s.push('\u{07}'),
                        'b' => s.push('\u{08}'),
                        'f' => s.push('\u{0c}'),
                        'v' => s.push('\u{0b}'),
                        '\\' => s.push('\\'),
                        '"' => s.push('"'),
                        '\'' => s.push('\''),
                        'x' => s.push(self.hex_escape(here, 2)?),
                        'u' => s.push(self.hex_escape(here, 4)?),
                        'U' => s.push(self.hex_escape(here, 8)?),
                        other => {
                            return Err(self.err(
                                here,
                                format!(
                                    "unknown escape `\\{other}`; expected one of \\n \\t \\r \\\\ \\\" \\xNN \\uNNNN"
                                ),
                            ))
                        }
                    }
                }
                Some(c) => s.push(c),
            }
        }
    }

    fn hex_escape(&mut self, pos: Pos, digits: usize) -> Result<char, ConfigError> {
        let mut v: u32 = 0;
        for _ in 0..digits {
            let d = self.bump().and_then(|c| c.to_digit(16)).ok_or_else(|| {
                self.err(pos, format!("invalid escape; expected {digits} hex digits"))
            })?;
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
