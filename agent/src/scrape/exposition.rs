//! Parser for the Prometheus text exposition format (version 0.0.4), and the parts of
//! OpenMetrics text that Prometheus servers commonly emit (`# EOF`). Comments, `# HELP` and
//! `# TYPE` lines are skipped; sample lines are `name{label="value",...} value [timestamp]`
//! with `\\`, `\"` and `\n` escapes in label values and `NaN`/`+Inf`/`-Inf` values.
//!
//! Any malformed line fails the whole scrape (as Prometheus does), reported with its line.
//! This module knows nothing about targets or labels added by the scraper.
//!
//! Two ways in: [`parse`] decodes everything; [`scan`] (the scrape loop's fast path) yields
//! each sample line's series text as written, its value and timestamp without allocating, so
//! the caller can look the series up in a cache and decode it with [`parse_series`] only when
//! it is new. Both accept and reject the same input.

use std::fmt;

/// One sample line as written by the target.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSample {
    pub name: String,
    /// In the order written; `__name__` is not among them.
    pub labels: Vec<(String, String)>,
    pub value: f64,
    /// Explicit timestamp in milliseconds, if the line had one.
    pub timestamp_ms: Option<i64>,
}

/// Why an exposition could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Parses a whole exposition.
pub fn parse(text: &str) -> Result<Vec<ParsedSample>, ParseError> {
    let mut out = Vec::new();
    for line in scan(text) {
        let sample = match line? {
            Line::Sample(raw) => {
                let (name, labels) = parse_series(raw.series).map_err(|message| ParseError {
                    line: raw.line,
                    message,
                })?;
                ParsedSample {
                    name,
                    labels,
                    value: raw.value,
                    timestamp_ms: raw.timestamp_ms,
                }
            }
            Line::Parsed(_, sample) => sample,
        };
        out.push(sample);
    }
    Ok(out)
}

/// One sample line as [`scan`] sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Line<'a> {
    /// The common shape, split without allocating. `series` (the metric name and label set
    /// exactly as written) is only known to end where it does: decode and check it with
    /// [`parse_series`].
    Sample(RawSample<'a>),
    /// A line of an unusual but valid shape, fully parsed (1-based line number first).
    Parsed(usize, ParsedSample),
}

/// A sample line split into its parts.
#[derive(Debug, Clone, PartialEq)]
pub struct RawSample<'a> {
    /// 1-based line number.
    pub line: usize,
    pub series: &'a str,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

/// The sample lines of an exposition, in order; stops at `# EOF`. Comments are checked as
/// [`parse`] checks them; an error ends the iteration.
pub fn scan(text: &str) -> Scan<'_> {
    Scan {
        lines: text.split('\n'),
        line_no: 0,
        done: false,
    }
}

/// Iterator returned by [`scan`].
pub struct Scan<'a> {
    lines: std::str::Split<'a, char>,
    line_no: usize,
    done: bool,
}

impl<'a> Iterator for Scan<'a> {
    type Item = Result<Line<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        for raw in self.lines.by_ref() {
            self.line_no += 1;
            let line_no = self.line_no;
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            let trimmed = line.trim_start_matches([' ', '\t']);
            if trimmed.is_empty() {
                continue;
            }
            let fail = |message| {
                Some(Err(ParseError {
                    line: line_no,
                    message,
                }))
            };
            if let Some(comment) = trimmed.strip_prefix('#') {
                if comment.trim() == "EOF" {
                    break;
                }
                if let Err(message) = check_comment(comment) {
                    self.done = true;
                    return fail(message);
                }
                continue;
            }
            if let Some((series, value, timestamp_ms)) = split_line(trimmed) {
                return Some(Ok(Line::Sample(RawSample {
                    line: line_no,
                    series,
                    value,
                    timestamp_ms,
                })));
            }
            // Not the common shape: the full parser decides (and names the error).
            return match parse_line(trimmed) {
                Ok(sample) => Some(Ok(Line::Parsed(line_no, sample))),
                Err(message) => {
                    self.done = true;
                    fail(message)
                }
            };
        }
        self.done = true;
        None
    }
}

/// Splits `name[{labels}] value [timestamp]` without decoding the labels; `None` for any
/// other shape (the caller falls back to [`parse_line`]). The series text ends after the
/// metric name, or after the `}` that closes the label set (quotes and escapes respected).
fn split_line(line: &str) -> Option<(&str, f64, Option<i64>)> {
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
        i += 1;
    }
    if i == 0 || b[0].is_ascii_digit() {
        return None;
    }
    if b.get(i) == Some(&b'{') {
        let mut in_quote = false;
        i += 1;
        loop {
            match *b.get(i)? {
                b'\\' if in_quote => i += 1,
                b'"' => in_quote = !in_quote,
                b'}' if !in_quote => break,
                _ => {}
            }
            i += 1;
        }
        i += 1;
    }
    let series = &line[..i];
    let mut rest = line[i..].split([' ', '\t']).filter(|t| !t.is_empty());
    let value = parse_value(rest.next()?)?;
    let timestamp_ms = match rest.next() {
        Some(t) => Some(t.parse::<i64>().ok()?),
        None => None,
    };
    if rest.next().is_some() {
        return None;
    }
    // A name must be followed by a blank or a label set (`a1` is a name, not `a` and `1`).
    if !series.ends_with('}') && !matches!(b.get(i), Some(b' ') | Some(b'\t')) {
        return None;
    }
    Some((series, value, timestamp_ms))
}

/// Decodes and checks a series as written in an exposition: a metric name and an optional
/// label set, e.g. `http_requests_total{code="200",path="/"}`.
pub fn parse_series(series: &str) -> Result<(String, Vec<(String, String)>), String> {
    let mut c = Cursor { s: series, i: 0 };
    let (name, labels, _) = series_at(&mut c)?;
    c.skip_blanks();
    if c.peek().is_some() {
        return Err(format!(
            "unexpected text {:?} after the series {:?}",
            truncate(&series[c.i..]),
            truncate(series)
        ));
    }
    Ok((name.to_string(), labels))
}

/// `# TYPE name type` must name a known type; other comments are free text.
fn check_comment(comment: &str) -> Result<(), String> {
    let mut words = comment.split_whitespace();
    if words.next() == Some("TYPE") {
        let name = words.next().ok_or("TYPE line without a metric name")?;
        if !is_metric_name(name) {
            return Err(format!("invalid metric name {name:?} in TYPE line"));
        }
        let ty = words.next().ok_or("TYPE line without a type")?;
        const TYPES: [&str; 8] = [
            "counter",
            "gauge",
            "histogram",
            "summary",
            "untyped",
            "unknown",
            "gaugehistogram",
            "stateset",
        ];
        if !TYPES.contains(&ty) && ty != "info" {
            return Err(format!("unknown metric type {ty:?}"));
        }
    }
    Ok(())
}

fn is_metric_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_' || b[0] == b':')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b':')
}

struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    fn skip_blanks(&mut self) -> bool {
        let start = self.i;
        while matches!(self.peek(), Some(b' ') | Some(b'\t')) {
            self.i += 1;
        }
        self.i > start
    }

    fn take_while(&mut self, f: impl Fn(u8, bool) -> bool) -> &'a str {
        let start = self.i;
        while let Some(c) = self.peek() {
            if !f(c, self.i == start) {
                break;
            }
            self.i += 1;
        }
        &self.s[start..self.i]
    }

    fn token(&mut self) -> &'a str {
        self.take_while(|c, _| c != b' ' && c != b'\t')
    }
}

fn parse_line(line: &str) -> Result<ParsedSample, String> {
    let mut c = Cursor { s: line, i: 0 };
    let (name, labels, mut separated) = series_at(&mut c)?;
    separated |= c.skip_blanks();
    if !separated && c.peek().is_some() {
        return Err(format!("expected a space after metric name {name:?}"));
    }
    let value_str = c.token();
    if value_str.is_empty() {
        return Err(format!("expected a value for {name:?}"));
    }
    let value = parse_value(value_str).ok_or_else(|| {
        format!("invalid value {value_str:?} for {name:?}; expected a float, NaN, +Inf or -Inf")
    })?;
    c.skip_blanks();
    let ts_str = c.token();
    let timestamp_ms = if ts_str.is_empty() {
        None
    } else {
        Some(ts_str.parse::<i64>().map_err(|_| {
            format!("invalid timestamp {ts_str:?} for {name:?}; expected integer milliseconds")
        })?)
    };
    c.skip_blanks();
    if c.peek().is_some() {
        return Err(format!(
            "unexpected text {:?} after the sample of {name:?}",
            truncate(&line[c.i..])
        ));
    }
    Ok(ParsedSample {
        name: name.to_string(),
        labels,
        value,
        timestamp_ms,
    })
}

/// A metric name, its labels, and whether a blank or a label set followed the name.
type SeriesAt<'a> = (&'a str, Vec<(String, String)>, bool);

/// The metric name and the optional label set at the cursor; whether a blank or a label set
/// followed the name.
fn series_at<'a>(c: &mut Cursor<'a>) -> Result<SeriesAt<'a>, String> {
    let line = c.s;
    let name = c.take_while(|b, first| {
        if first {
            b.is_ascii_alphabetic() || b == b'_' || b == b':'
        } else {
            b.is_ascii_alphanumeric() || b == b'_' || b == b':'
        }
    });
    if name.is_empty() {
        return Err(format!(
            "expected a metric name at the start of {:?}",
            truncate(line)
        ));
    }
    let mut labels: Vec<(String, String)> = Vec::new();
    let mut separated = c.skip_blanks();
    if c.peek() == Some(b'{') {
        c.i += 1;
        loop {
            c.skip_blanks();
            if c.peek() == Some(b'}') {
                c.i += 1;
                break;
            }
            let lname = c.take_while(|b, first| {
                if first {
                    b.is_ascii_alphabetic() || b == b'_'
                } else {
                    b.is_ascii_alphanumeric() || b == b'_'
                }
            });
            if lname.is_empty() {
                return Err(format!(
                    "expected a label name or `}}` in {:?}",
                    truncate(line)
                ));
            }
            c.skip_blanks();
            if c.peek() != Some(b'=') {
                return Err(format!("expected `=` after label name {lname:?}"));
            }
            c.i += 1;
            c.skip_blanks();
            if c.peek() != Some(b'"') {
                return Err(format!(
                    "expected `\"` to open the value of label {lname:?}"
                ));
            }
            c.i += 1;
            let value = label_value(c).ok_or_else(|| {
                format!("unterminated value of label {lname:?}; expected a closing `\"`")
            })?;
            if lname == "__name__" || labels.iter().any(|(k, _)| k == lname) {
                return Err(format!("label {lname:?} appears twice in one sample"));
            }
            labels.push((lname.to_string(), value));
            c.skip_blanks();
            match c.peek() {
                Some(b',') => c.i += 1,
                Some(b'}') => {
                    c.i += 1;
                    break;
                }
                _ => return Err(format!("expected `,` or `}}` after label {lname:?}")),
            }
        }
        separated = true;
    }
    Ok((name, labels, separated))
}

/// Reads a label value after its opening quote, through the closing quote. `\\`, `\"` and
/// `\n` are unescaped; any other escaped character is kept with its backslash (Prometheus).
fn label_value(c: &mut Cursor) -> Option<String> {
    let bytes = c.s.as_bytes();
    let start = c.i;
    // Fast path: no escapes.
    while c.i < bytes.len() {
        match bytes[c.i] {
            b'"' => {
                let v = c.s[start..c.i].to_string();
                c.i += 1;
                return Some(v);
            }
            b'\\' => break,
            _ => c.i += 1,
        }
    }
    let mut out: Vec<u8> = bytes[start..c.i].to_vec();
    while c.i < bytes.len() {
        match bytes[c.i] {
            b'"' => {
                c.i += 1;
                // Input was &str and we only removed ASCII backslashes.
                return Some(String::from_utf8(out).expect("valid utf-8"));
            }
            b'\\' => {
                let next = *bytes.get(c.i + 1)?;
                match next {
                    b'\\' => out.push(b'\\'),
                    b'"' => out.push(b'"'),
                    b'n' => out.push(b'\n'),
                    other => {
                        out.push(b'\\');
                        out.push(other);
                    }
                }
                c.i += 2;
            }
            b => {
                out.push(b);
                c.i += 1;
            }
        }
    }
    None
}

/// Go `strconv.ParseFloat` spellings as Prometheus accepts them.
fn parse_value(s: &str) -> Option<f64> {
    match s {
        "NaN" | "nan" => return Some(f64::NAN),
        "+Inf" | "Inf" | "+inf" | "inf" => return Some(f64::INFINITY),
        "-Inf" | "-inf" => return Some(f64::NEG_INFINITY),
        _ => {}
    }
    s.parse::<f64>().ok()
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(60) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> ParsedSample {
        let mut v = parse(line).unwrap();
        assert_eq!(v.len(), 1);
        v.remove(0)
    }

    #[test]
    fn comments_help_and_type_are_skipped() {
        let text = "# HELP x_total The x.\n# TYPE x_total counter\n# free comment\nx_total 3\n\n";
        let v = parse(text).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].name, "x_total");
        assert_eq!(v[0].value, 3.0);
        assert_eq!(v[0].timestamp_ms, None);
    }

    #[test]
    fn labels_with_escapes_and_trailing_comma() {
        let s = one(r#"m{a="x\"y",b="c\\d",c="l1\nl2",d="\q",} 1"#);
        assert_eq!(
            s.labels,
            vec![
                ("a".to_string(), "x\"y".to_string()),
                ("b".to_string(), "c\\d".to_string()),
                ("c".to_string(), "l1\nl2".to_string()),
                ("d".to_string(), "\\q".to_string()),
            ]
        );
    }

    #[test]
    fn special_values_and_timestamps() {
        assert!(one("a NaN").value.is_nan());
        assert_eq!(one("a +Inf").value, f64::INFINITY);
        assert_eq!(one("a -Inf").value, f64::NEG_INFINITY);
        assert_eq!(one("a 1.5e3").value, 1500.0);
        assert_eq!(one("a -0.5").value, -0.5);
        let s = one("a{b=\"c\"} 2 1700000000123");
        assert_eq!(s.timestamp_ms, Some(1_700_000_000_123));
        assert_eq!(one("a 2 -5").timestamp_ms, Some(-5));
    }

    #[test]
    fn whitespace_variants_and_crlf() {
        let v = parse("a\t1\r\n  b { x = \"1\" }   2  \r\n").unwrap();
        assert_eq!(v[0].value, 1.0);
        assert_eq!(v[1].labels, vec![("x".to_string(), "1".to_string())]);
    }

    #[test]
    fn colons_and_utf8_in_values() {
        let s = one("job:rate5m{path=\"/ä/€\"} 7");
        assert_eq!(s.name, "job:rate5m");
        assert_eq!(s.labels[0].1, "/ä/€");
    }

    #[test]
    fn openmetrics_eof_ends_the_exposition() {
        let v = parse("a 1\n# EOF\ngarbage here\n").unwrap();
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            ("a 1\nb{x=\"1\" 2\n", 2, "expected `,` or `}`"),
            ("a{x=\"1} 2", 1, "unterminated value"),
            ("a notanumber", 1, "invalid value"),
            ("a 1 1.5", 1, "invalid timestamp"),
            ("a 1 2 3", 1, "unexpected text"),
            ("a{x=\"1\",x=\"2\"} 1", 1, "appears twice"),
            ("{x=\"1\"} 1", 1, "expected a metric name"),
            ("a", 1, "expected a value"),
            ("# TYPE a bogus\na 1", 1, "unknown metric type"),
            ("a{1x=\"1\"} 1", 1, "expected a label name"),
        ];
        for (text, line, needle) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.message.contains(needle), "{text:?}: {e}");
        }
    }

    /// The scrape loop's fast split (`scan` + `parse_series`) accepts and rejects exactly
    /// what the full line parser does, and decodes the same sample.
    #[test]
    fn the_fast_split_agrees_with_the_full_parser() {
        let lines = [
            "a 1",
            "a{b=\"c\"} 2",
            "a{b=\"c d\"} 2 3",
            "a{b=\"}\"} 1",
            "a{b=\"\\\"\"} 1",
            "a{b=\"\\\\\"} 1",
            "a {b=\"c\"} 1",
            "a{b=\"c\"}1",
            "a{ b = \"c\" , } 1",
            "a1 2",
            "1a 2",
            ":a 1",
            "_a NaN",
            "a -Inf -5",
            "a\t1\t2",
            "a{b=\"c\"}} 1",
            "a{b=c} 1",
            "a{b=\"c\"} 1 2 3",
            "a{b=\"c\"} x",
            "a{b=\"c\"",
            "a{b=\"c\"}",
            "a{__name__=\"x\"} 1",
            "a{b=\"1\",b=\"2\"} 1",
            "a{b=\"é€\"} 1",
            "a{b=\"c\"} 1 1.5",
            "a{1b=\"c\"} 1",
        ];
        for line in lines {
            let full = parse_line(line);
            let fast = parse(line).map(|mut v| v.remove(0));
            match (&full, &fast) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(
                        (&a.name, &a.labels, a.value.to_bits(), a.timestamp_ms),
                        (&b.name, &b.labels, b.value.to_bits(), b.timestamp_ms),
                        "{line:?}"
                    );
                }
                (Err(_), Err(_)) => {}
                _ => panic!("{line:?}: full {full:?} fast {fast:?}"),
            }
        }
        let raw: Vec<_> = scan("# TYPE a counter\na{x=\"1 }\"} 2 3\n")
            .map(|l| l.unwrap())
            .collect();
        assert_eq!(
            raw,
            vec![Line::Sample(RawSample {
                line: 2,
                series: "a{x=\"1 }\"}",
                value: 2.0,
                timestamp_ms: Some(3)
            })]
        );
    }
}
