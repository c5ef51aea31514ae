//! Parsers for the two exposition formats Prometheus scrapes as text: the Prometheus text
//! format 0.0.4 (`text.rs`) and OpenMetrics 1.0 text (`openmetrics.rs`), with the format chosen
//! from the response's `Content-Type` as Prometheus does ([`Format::from_content_type`]).
//!
//! Both accept and reject exactly what Prometheus 2.42's parsers (`model/textparse`) accept and
//! reject, including their quirks, because a scrape that Prometheus takes and we refuse (or the
//! other way round) changes `up` for the same target. The rules are written from the two
//! lexers' grammars; `agent/tests/scrape_differential.rs` checks them against Prometheus itself.
//!
//! The parsers work on bytes (a comment may hold invalid UTF-8; label values and help texts
//! must be valid) and allocate nothing per sample: a sample comes out as the series text as
//! written (metric name and label set, the scrape cache's key), its value and its optional
//! timestamp. [`parse_series`] decodes a series text when the cache has not seen it.
//! Checks that Prometheus makes after parsing (a valid metric name, label names unique) are the
//! scrape loop's, because Prometheus counts such a sample as scraped before failing.

mod openmetrics;
mod text;

use std::borrow::Cow;
use std::fmt;

/// The two text formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4 (also what an unknown or missing `Content-Type` gets).
    Text,
    /// OpenMetrics 1.0 text (`application/openmetrics-text`).
    OpenMetrics,
}

impl Format {
    /// The parser Prometheus picks for a response's `Content-Type`: OpenMetrics for the media
    /// type `application/openmetrics-text` (any case, any parameters), the text format for
    /// anything else, for no header, and for a header Go's `mime.ParseMediaType` refuses.
    pub fn from_content_type(value: Option<&[u8]>) -> Format {
        match value.and_then(media_type) {
            Some(t) if t.eq_ignore_ascii_case("application/openmetrics-text") => {
                Format::OpenMetrics
            }
            _ => Format::Text,
        }
    }
}

/// The media type of a `Content-Type` value, as Go's `mime.ParseMediaType` accepts it
/// (`type/subtype` tokens, then `; name=value` parameters, values tokens or quoted strings,
/// no name twice); `None` where it returns an error.
fn media_type(value: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(value).ok()?;
    let (head, mut params) = s.split_once(';').map_or((s, None), |(h, p)| (h, Some(p)));
    let head = head.trim();
    let (ty, sub) = head.split_once('/')?;
    if !is_token(ty) || !is_token(sub) {
        return None;
    }
    let mut seen: Vec<String> = Vec::new();
    while let Some(rest) = params {
        let (param, next) = split_param(rest)?;
        params = next;
        let param = param.trim_start();
        if param.trim().is_empty() {
            // A trailing `;` is allowed; an empty parameter in the middle is not.
            if params.is_none() {
                break;
            }
            return None;
        }
        let (name, value) = param.split_once('=')?;
        let (name, value) = (name.trim_end(), value.trim_start());
        if !is_token(name) {
            return None;
        }
        let value = value.trim_end();
        let valid = is_token(value)
            || (value.len() >= 2
                && value.starts_with('"')
                && value.ends_with('"')
                && !value[1..value.len() - 1].contains('"'));
        let name = name.to_ascii_lowercase();
        if !valid || seen.contains(&name) {
            return None;
        }
        seen.push(name);
    }
    Some(head)
}

/// The next parameter of a `Content-Type` value and what follows it (a `;` inside a quoted
/// value does not end the parameter).
fn split_param(s: &str) -> Option<(&str, Option<&str>)> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => return Some((&s[..i], Some(&s[i + 1..]))),
            _ => {}
        }
    }
    (!quoted).then_some((s, None))
}

/// An RFC 2045 token: printable ASCII without spaces and `()<>@,;:\"/[]?=`.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b))
}

/// A metric type from a `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MetricType {
    /// Also the text format's `untyped`, and what a family without `# TYPE` has.
    Unknown,
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    Stateset,
}

impl MetricType {
    /// Prometheus' name of the type (`textparse.MetricType`).
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Unknown => "unknown",
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::Stateset => "stateset",
        }
    }
}

/// One entry of an exposition.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry<'a> {
    /// A sample line.
    Sample(RawSample<'a>),
    /// `# TYPE name type`.
    Type { name: &'a [u8], kind: MetricType },
    /// `# HELP name text`, the text unescaped.
    Help { name: &'a [u8], help: Cow<'a, str> },
    /// OpenMetrics `# UNIT name unit`.
    Unit { name: &'a [u8], unit: &'a [u8] },
    /// Any other comment (text format only).
    Comment,
}

/// A sample line split into its parts, without decoding the labels.
#[derive(Debug, Clone, PartialEq)]
pub struct RawSample<'a> {
    /// The metric name and label set exactly as written (in the text format with the line's
    /// leading blanks, as Prometheus keeps them), for [`parse_series`]. Equal bytes are the
    /// same series.
    pub series: &'a [u8],
    /// Any NaN is Prometheus' canonical NaN (bits `0x7ff8000000000001`).
    pub value: f64,
    /// Explicit timestamp in milliseconds, if the line had one.
    pub timestamp_ms: Option<i64>,
}

/// Prometheus' canonical NaN (`value.NormalNaN`), the value of every NaN it parses.
pub const NORMAL_NAN_BITS: u64 = 0x7ff8_0000_0000_0001;

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

/// An error at a byte offset (the line is counted only when an error happens).
pub(crate) type At = (usize, String);

/// The entries of an exposition in order. Ends at the end of the body (text format: also at
/// a NUL byte where a line or a `#`-comment starts, as Prometheus' lexer does; OpenMetrics: at
/// `# EOF`, which must be the last line). The first error ends the iteration.
pub struct Parser<'a> {
    body: &'a [u8],
    pos: usize,
    format: Format,
    done: bool,
}

impl<'a> Parser<'a> {
    pub fn new(body: &'a [u8], format: Format) -> Parser<'a> {
        Parser {
            body,
            pos: 0,
            format,
            done: false,
        }
    }
}

impl<'a> Iterator for Parser<'a> {
    type Item = Result<Entry<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = match self.format {
            Format::Text => text::next(self.body, &mut self.pos),
            Format::OpenMetrics => openmetrics::next(self.body, &mut self.pos),
        };
        match r {
            Ok(Some(entry)) => Some(Ok(entry)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err((at, message)) => {
                self.done = true;
                Some(Err(ParseError {
                    line: line_of(self.body, at),
                    message,
                }))
            }
        }
    }
}

fn line_of(body: &[u8], at: usize) -> usize {
    1 + body[..at.min(body.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
}

/// One sample, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSample {
    /// As written (see [`RawSample::series`] on leading blanks).
    pub name: String,
    /// In the order written; label names may repeat (the scrape loop refuses that).
    pub labels: Vec<(String, String)>,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

/// Parses a whole exposition into its samples (metadata and comments are checked, then
/// skipped).
pub fn parse(body: &[u8], format: Format) -> Result<Vec<ParsedSample>, ParseError> {
    let mut out = Vec::new();
    for entry in Parser::new(body, format) {
        if let Entry::Sample(raw) = entry? {
            let (name, labels) =
                parse_series(raw.series, format).expect("a series the parser accepted decodes");
            out.push(ParsedSample {
                name,
                labels,
                value: raw.value,
                timestamp_ms: raw.timestamp_ms,
            });
        }
    }
    Ok(out)
}

/// The metric name (as written, see [`RawSample::series`]) and labels (in order, unescaped)
/// of a series text that [`Parser`] returned for `format`.
pub fn parse_series(
    series: &[u8],
    format: Format,
) -> Result<(String, Vec<(String, String)>), String> {
    let mut labels = Vec::new();
    let name_end = match format {
        Format::Text => text::decode_series(series, &mut labels),
        Format::OpenMetrics => openmetrics::decode_series(series, &mut labels),
    }
    .map_err(|(_, m)| m)?;
    let name = std::str::from_utf8(&series[..name_end])
        .map_err(|_| "metric name is not UTF-8".to_string())?;
    Ok((name.to_string(), labels))
}

/// Whether `s` is a valid Prometheus metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
pub fn is_metric_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && is_name_start(b[0])
        && b[1..]
            .iter()
            .all(|c| is_name_start(*c) || c.is_ascii_digit())
}

/// `[a-zA-Z_:]`, the first character of a metric name.
pub(crate) fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}

/// `[a-zA-Z0-9_:]`.
pub(crate) fn is_name_char(c: u8) -> bool {
    is_name_start(c) || c.is_ascii_digit()
}

/// `[a-zA-Z_]`, the first character of a label name.
pub(crate) fn is_label_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

/// `[a-zA-Z0-9_]`.
pub(crate) fn is_label_char(c: u8) -> bool {
    is_label_start(c) || c.is_ascii_digit()
}

/// End of the run of bytes from `i` that satisfy `f`.
pub(crate) fn run(b: &[u8], mut i: usize, f: impl Fn(u8) -> bool) -> usize {
    while i < b.len() && f(b[i]) {
        i += 1;
    }
    i
}

/// A float as Go's `strconv.ParseFloat(s, 64)` reads it, minus the forms Prometheus refuses
/// (`p`, `P` and `_` anywhere: hexadecimal floats and digit separators). Special values: an
/// optional sign and `inf` or `infinity`, or `nan` without a sign, in any case. A finite number
/// out of range is an error (Go's `ErrRange`); one that underflows is 0.
pub(crate) fn parse_float(s: &[u8]) -> Result<f64, String> {
    let invalid = || {
        format!(
            "invalid value {:?}; expected a float, NaN, +Inf or -Inf",
            String::from_utf8_lossy(s)
        )
    };
    let unsigned = match s.first() {
        Some(b'+' | b'-') => &s[1..],
        _ => s,
    };
    match unsigned.first() {
        Some(c) if c.is_ascii_digit() || *c == b'.' => {
            let text = std::str::from_utf8(s).map_err(|_| invalid())?;
            let v: f64 = text.parse().map_err(|_| invalid())?;
            if v.is_infinite() {
                return Err(format!("value {text:?} is out of range"));
            }
            Ok(v)
        }
        _ => {
            let signed = unsigned.len() != s.len();
            if unsigned.eq_ignore_ascii_case(b"inf") || unsigned.eq_ignore_ascii_case(b"infinity") {
                Ok(if s[0] == b'-' {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                })
            } else if !signed && unsigned.eq_ignore_ascii_case(b"nan") {
                Ok(f64::from_bits(NORMAL_NAN_BITS))
            } else {
                Err(invalid())
            }
        }
    }
}

/// Label value or help text escapes: `\\` and `\n` always, `\"` where `quote` is set; any
/// other backslash stays as written.
pub(crate) fn unescape(s: &[u8], quote: bool) -> Cow<'_, [u8]> {
    if !s.contains(&b'\\') {
        return Cow::Borrowed(s);
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match (s[i], s.get(i + 1)) {
            (b'\\', Some(b'\\')) => out.push(b'\\'),
            (b'\\', Some(b'n')) => out.push(b'\n'),
            (b'\\', Some(b'"')) if quote => out.push(b'"'),
            (c, _) => {
                out.push(c);
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    Cow::Owned(out)
}

/// A help text as written, checked to be UTF-8 and unescaped (`\"` too where `quote` is set:
/// OpenMetrics unescapes help texts like label values, the text format does not).
pub(crate) fn help_text(text: &[u8], quote: bool) -> Result<Cow<'_, str>, String> {
    std::str::from_utf8(text).map_err(|_| "help text is not a valid UTF-8 string".to_string())?;
    // Unescaping removes ASCII bytes only, so UTF-8 stays UTF-8.
    Ok(match unescape(text, quote) {
        Cow::Borrowed(t) => String::from_utf8_lossy(t),
        Cow::Owned(t) => Cow::Owned(String::from_utf8_lossy(&t).into_owned()),
    })
}

/// Checks that the label value at `value` (between its quotes) is UTF-8; with `out`, adds the
/// label named by `name` with the value unescaped.
pub(crate) fn record_label(
    b: &[u8],
    name: (usize, usize),
    value: (usize, usize),
    out: Option<&mut Vec<(String, String)>>,
) -> Result<(), At> {
    let raw = &b[value.0..value.1];
    if std::str::from_utf8(raw).is_err() {
        return Err((value.0, "invalid UTF-8 label value".into()));
    }
    if let Some(out) = out {
        let name = String::from_utf8_lossy(&b[name.0..name.1]).into_owned();
        out.push((name, label_value(raw)));
    }
    Ok(())
}

/// The unescaped label value `raw` (between its quotes, already checked to be UTF-8).
fn label_value(raw: &[u8]) -> String {
    match unescape(raw, true) {
        Cow::Borrowed(b) => String::from_utf8_lossy(b).into_owned(),
        Cow::Owned(v) => String::from_utf8(v).unwrap_or_else(|e| {
            // Unescaping removes ASCII bytes only, so UTF-8 stays UTF-8.
            String::from_utf8_lossy(e.as_bytes()).into_owned()
        }),
    }
}

/// The name Prometheus' parsers give a token in their error messages, for the byte `c` that
/// starts it in a label set.
pub(crate) fn label_token_name(c: u8) -> &'static str {
    match c {
        b'}' => "BCLOSE",
        b',' => "COMMA",
        b'=' => "EQUAL",
        c if is_label_start(c) => "LNAME",
        _ => "INVALID",
    }
}

#[cfg(test)]
mod tests;
