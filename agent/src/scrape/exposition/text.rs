//! The Prometheus text format 0.0.4, as Prometheus 2.42's `promlex.l` and `promparse.go` read
//! it. What that means, beyond the obvious:
//!
//! - The body gets a virtual `\n` at its end (a last line without one is fine).
//! - Blanks (` `, `\t`) separate tokens anywhere on a line, also before a line's first token;
//!   a line of blanks is a blank line. A sample line's leading blanks stay part of its series
//!   text (and so of its metric name, which the scrape loop then refuses).
//! - `\r` is an ordinary character: `a 1\r\n` is the value `1\r`, an error.
//! - A NUL byte where a line starts, or in a `#comment` without a blank after `#`, ends the
//!   exposition without error. In a comment after `# `, a help text and a label value, NULs
//!   are part of the text.
//! - `#` then blanks then `HELP` or `TYPE` then blanks is a metadata line; anything else
//!   starting with `#` is a comment, whatever it holds (`# TYPE` alone, invalid UTF-8).
//! - In a metadata line the text after the metric name starts after exactly one separator
//!   character (`# TYPE a  counter` has the type ` counter`, an error); a type must be
//!   `counter`, `gauge`, `histogram`, `summary` or `untyped`; a help text must be UTF-8.
//! - Label values may hold a raw newline; commas between labels are optional; a trailing
//!   comma is fine. Label values must be UTF-8.
//! - Values are Go floats ([`super::parse_float`]); timestamps are digits only (no sign).

use super::{
    help_text, is_label_char, is_label_start, is_name_char, is_name_start, label_token_name,
    parse_float, record_label, run, At, Entry, MetricType, RawSample,
};

const UNTERMINATED: &str = "unterminated label value; expected a closing `\"`";

/// The byte at `i` of the body with its virtual trailing `\n`; 0 past that.
fn at(b: &[u8], i: usize) -> u8 {
    match i.cmp(&b.len()) {
        std::cmp::Ordering::Less => b[i],
        std::cmp::Ordering::Equal => b'\n',
        std::cmp::Ordering::Greater => 0,
    }
}

fn is_blank(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

fn skip_blanks(b: &[u8], i: usize) -> usize {
    run(b, i, is_blank)
}

/// A value character: anything but NUL, blanks, `\n` and `{`.
fn is_value_char(c: u8) -> bool {
    !matches!(c, 0 | b'\t' | b'\n' | b' ' | b'{')
}

/// The first `\n` at or after `i` (the virtual one at the end if none).
fn line_end(b: &[u8], i: usize) -> usize {
    if i >= b.len() {
        return b.len();
    }
    memchr::memchr(b'\n', &b[i..]).map_or(b.len(), |k| i + k)
}

/// The next entry from `*pos`; `Ok(None)` at the end.
pub(super) fn next<'a>(b: &'a [u8], pos: &mut usize) -> Result<Option<Entry<'a>>, At> {
    loop {
        let start = *pos;
        let i = skip_blanks(b, start);
        if i > b.len() {
            return Ok(None);
        }
        match at(b, i) {
            0 => return Ok(None),
            b'\n' => *pos = i + 1,
            b'#' => return comment(b, pos, i),
            c if is_name_start(c) => return sample(b, pos, start, i).map(Some),
            c => {
                return Err((
                    i,
                    format!("{:?} is not a valid start of a line", char::from(c)),
                ))
            }
        }
    }
}

/// A line starting with `#` at `i`.
fn comment<'a>(b: &'a [u8], pos: &mut usize, i: usize) -> Result<Option<Entry<'a>>, At> {
    if !is_blank(at(b, i + 1)) {
        // `#` directly followed by text: a comment up to the newline; a NUL ends everything.
        let rest = b.get(i + 1..).unwrap_or_default();
        return match memchr::memchr2(b'\n', 0, rest) {
            Some(k) if rest[k] == 0 => Ok(None),
            Some(k) => {
                *pos = i + 1 + k + 1;
                Ok(Some(Entry::Comment))
            }
            None => {
                *pos = b.len() + 1;
                Ok(Some(Entry::Comment))
            }
        };
    }
    let k = skip_blanks(b, i + 1);
    let rest = b.get(k..).unwrap_or_default();
    for (keyword, is_type) in [(&b"HELP"[..], false), (&b"TYPE"[..], true)] {
        if rest.starts_with(keyword) && is_blank(at(b, k + 4)) {
            return metadata(b, pos, skip_blanks(b, k + 4), is_type).map(Some);
        }
    }
    if at(b, k) == 0 {
        return Ok(None);
    }
    *pos = line_end(b, k) + 1;
    Ok(Some(Entry::Comment))
}

/// `# HELP` / `# TYPE` from the metric name at `p`.
fn metadata<'a>(b: &'a [u8], pos: &mut usize, p: usize, is_type: bool) -> Result<Entry<'a>, At> {
    let what = if is_type { "TYPE" } else { "HELP" };
    if !is_name_start(at(b, p)) {
        return Err((
            p,
            format!("expected a metric name after {what}, got INVALID"),
        ));
    }
    let name_end = run(b, p + 1, is_name_char);
    let name = &b[p..name_end];
    // The text token starts right after the name and the text is that token minus its
    // first character; blanks alone before the newline are no text.
    let (text, eol): (&[u8], usize) = match at(b, name_end) {
        b'\n' => (b"", name_end),
        0 => {
            return Err((
                name_end,
                format!("linebreak expected after {what} metadata"),
            ))
        }
        c if is_blank(c) => {
            let r = skip_blanks(b, name_end);
            match at(b, r) {
                b'\n' => (b"", r),
                0 => return Err((r, format!("linebreak expected after {what} metadata"))),
                _ => {
                    let eol = line_end(b, r);
                    (&b[name_end + 1..eol], eol)
                }
            }
        }
        _ => {
            let eol = line_end(b, name_end);
            (b.get(name_end + 1..eol).unwrap_or_default(), eol)
        }
    };
    *pos = eol + 1;
    if is_type {
        let kind = match text {
            b"counter" => MetricType::Counter,
            b"gauge" => MetricType::Gauge,
            b"histogram" => MetricType::Histogram,
            b"summary" => MetricType::Summary,
            b"untyped" => MetricType::Unknown,
            _ => {
                return Err((
                    p,
                    format!(
                        "invalid metric type {:?}; expected counter, gauge, histogram, summary or untyped",
                        String::from_utf8_lossy(text)
                    ),
                ))
            }
        };
        return Ok(Entry::Type { name, kind });
    }
    Ok(Entry::Help {
        name,
        help: help_text(text, false).map_err(|m| (p, m))?,
    })
}

/// A sample line whose metric name starts at `i` (the line, with leading blanks, at `start`).
fn sample<'a>(b: &'a [u8], pos: &mut usize, start: usize, i: usize) -> Result<Entry<'a>, At> {
    let name_end = run(b, i + 1, is_name_char);
    let mut j = skip_blanks(b, name_end);
    let mut series_end = name_end;
    if at(b, j) == b'{' {
        j = labels(b, j + 1, None)?;
        series_end = j;
        j = skip_blanks(b, j);
    }
    if !is_value_char(at(b, j)) {
        let got = if at(b, j) == b'{' { "BOPEN" } else { "INVALID" };
        return Err((j, format!("expected a value after the metric, got {got}")));
    }
    let value_end = run(b, j, is_value_char);
    let value = parse_float(&b[j..value_end]).map_err(|m| (j, m))?;
    let k = skip_blanks(b, value_end);
    let (timestamp_ms, end) = match at(b, k) {
        b'\n' => (None, k),
        c if c.is_ascii_digit() => {
            let ts_end = run(b, k, |c| c.is_ascii_digit());
            // ASCII digits only, so this is valid UTF-8.
            let digits = std::str::from_utf8(&b[k..ts_end]).unwrap_or_default();
            let ts = digits.parse::<i64>().map_err(|_| {
                (
                    k,
                    format!("timestamp {digits} is out of range of a 64-bit integer"),
                )
            })?;
            let m = skip_blanks(b, ts_end);
            if at(b, m) != b'\n' {
                return Err((
                    m,
                    "expected the next line after the timestamp; found more text".into(),
                ));
            }
            (Some(ts), m)
        }
        _ => {
            return Err((
                k,
                "expected a timestamp (digits, no sign) or the end of the line".into(),
            ))
        }
    };
    *pos = end + 1;
    Ok(Entry::Sample(RawSample {
        series: &b[start..series_end],
        value,
        timestamp_ms,
    }))
}

/// The label set after `{` at `i`, up to and including `}`; its end. With `out`, the labels
/// are decoded into it.
fn labels(
    b: &[u8],
    mut i: usize,
    mut out: Option<&mut Vec<(String, String)>>,
) -> Result<usize, At> {
    i = skip_blanks(b, i);
    loop {
        match at(b, i) {
            b'}' => return Ok(i + 1),
            c if is_label_start(c) => {}
            c => {
                return Err((
                    i,
                    format!("expected a label name, got {}", label_token_name(c)),
                ))
            }
        }
        let name_start = i;
        i = run(b, i + 1, is_label_char);
        let name_end = i;
        i = skip_blanks(b, i);
        if at(b, i) != b'=' {
            return Err((
                i,
                format!("expected `=`, got {}", label_token_name(at(b, i))),
            ));
        }
        i = skip_blanks(b, i + 1);
        if at(b, i) != b'"' {
            return Err((i, "expected a quoted label value, got INVALID".into()));
        }
        let value_start = i + 1;
        i = quoted_end(b, value_start).ok_or_else(|| (name_start, UNTERMINATED.to_string()))?;
        record_label(
            b,
            (name_start, name_end),
            (value_start, i - 1),
            out.as_deref_mut(),
        )?;
        i = skip_blanks(b, i);
        if at(b, i) == b',' {
            i = skip_blanks(b, i + 1);
        }
    }
}

/// The position after the closing quote of a label value starting at `i` (after its opening
/// quote): any byte but `"` and `\`, or `\` and any byte but `\n`. `None` if the body ends
/// first.
fn quoted_end(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let k = i + memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
        if b[k] == b'"' {
            return Some(k + 1);
        }
        // A backslash escapes any byte but a newline (the virtual one at the end too).
        if k + 1 >= b.len() || b[k + 1] == b'\n' {
            return None;
        }
        i = k + 2;
    }
}

/// Decodes a series text `series` returned by [`next`]: the labels into `out`; the end of the
/// metric name.
pub(super) fn decode_series(series: &[u8], out: &mut Vec<(String, String)>) -> Result<usize, At> {
    let i = skip_blanks(series, 0);
    if !is_name_start(at(series, i)) {
        return Err((i, "expected a metric name".into()));
    }
    let name_end = run(series, i + 1, is_name_char);
    let j = skip_blanks(series, name_end);
    if at(series, j) == b'{' {
        labels(series, j + 1, Some(out))?;
    }
    Ok(name_end)
}
