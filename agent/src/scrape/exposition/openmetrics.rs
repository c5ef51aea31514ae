//! OpenMetrics 1.0 text, as Prometheus 2.42's `openmetricslex.l` and `openmetricsparse.go` read
//! it (stricter than the text format):
//!
//! - Tokens are separated by exactly one space; no tabs, no blank lines, no leading blanks.
//! - The body must end with `# EOF` (optionally followed by one `\n`, then nothing).
//! - The only comments are `# HELP`, `# TYPE`, `# UNIT` and `# EOF`; each metadata line is
//!   `# KEYWORD name text` (the text may be empty, the space before it may not). Types are
//!   `counter`, `gauge`, `histogram`, `gaugehistogram`, `summary`, `info`, `stateset`,
//!   `unknown`; a non-empty unit must be a `_`-separated suffix of the metric name.
//! - Label sets: no blanks, commas between labels, no trailing comma; values without raw
//!   newlines.
//! - Timestamps are float seconds (any sign), kept as `int64(seconds * 1000)`.
//! - An exemplar (` # {labels} value [timestamp]`, only after a `_total` or `_bucket`
//!   name) is checked and dropped (Prometheus keeps exemplars apart from samples).
//! - `_created` series and the `le`/`quantile` values are samples like any other.

use super::{
    help_text, is_label_char, is_label_start, is_name_char, is_name_start, label_token_name,
    parse_float, record_label, run, At, Entry, MetricType, RawSample,
};

const UNTERMINATED: &str = "unterminated label value; expected a closing `\"` on the same line";

const NO_EOF: &str = "data does not end with # EOF";

/// The byte at `i`, 0 past the end.
fn at(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

/// A value or timestamp character: anything but NUL, ` ` and `\n`.
fn is_value_char(c: u8) -> bool {
    !matches!(c, 0 | b'\n' | b' ')
}

/// The next entry from `*pos`; `Ok(None)` after `# EOF`.
pub(super) fn next<'a>(b: &'a [u8], pos: &mut usize) -> Result<Option<Entry<'a>>, At> {
    let i = *pos;
    if i >= b.len() {
        return Err((i, NO_EOF.into()));
    }
    match b[i] {
        b'#' if at(b, i + 1) == b' ' => {
            let k = i + 2;
            let rest = &b[k..];
            if rest.starts_with(b"EOF") {
                let mut end = k + 3;
                if at(b, end) == b'\n' {
                    end += 1;
                }
                if end < b.len() {
                    return Err((end, "unexpected data after # EOF".into()));
                }
                *pos = b.len();
                return Ok(None);
            }
            for (keyword, what) in [(&b"HELP "[..], 0), (b"TYPE ", 1), (b"UNIT ", 2)] {
                if rest.starts_with(keyword) {
                    return metadata(b, pos, k + 5, what).map(Some);
                }
            }
            Err((
                k,
                "expected HELP, TYPE, UNIT or EOF after `# ` (OpenMetrics has no other comments)"
                    .into(),
            ))
        }
        c if is_name_start(c) => sample(b, pos, i).map(Some),
        c => Err((
            i,
            format!("{:?} is not a valid start of a line", char::from(c)),
        )),
    }
}

/// `# HELP` (0), `# TYPE` (1) or `# UNIT` (2) from the metric name at `p`.
fn metadata<'a>(b: &'a [u8], pos: &mut usize, p: usize, what: u8) -> Result<Entry<'a>, At> {
    let word = ["HELP", "TYPE", "UNIT"][what as usize];
    if !is_name_start(at(b, p)) {
        return Err((
            p,
            format!("expected a metric name after {word}, got INVALID"),
        ));
    }
    let name_end = run(b, p + 1, is_name_char);
    let name = &b[p..name_end];
    let eol = (at(b, name_end) == b' ')
        .then(|| memchr::memchr(b'\n', &b[name_end..]).map(|k| name_end + k))
        .flatten()
        .ok_or_else(|| {
            (
                name_end,
                format!("expected a space and text in {word}, ended by a newline"),
            )
        })?;
    let text = &b[name_end + 1..eol];
    *pos = eol + 1;
    match what {
        1 => {
            let kind = match text {
                b"counter" => MetricType::Counter,
                b"gauge" => MetricType::Gauge,
                b"histogram" => MetricType::Histogram,
                b"gaugehistogram" => MetricType::GaugeHistogram,
                b"summary" => MetricType::Summary,
                b"info" => MetricType::Info,
                b"stateset" => MetricType::Stateset,
                b"unknown" => MetricType::Unknown,
                _ => {
                    return Err((
                        p,
                        format!("invalid metric type {:?}", String::from_utf8_lossy(text)),
                    ))
                }
            };
            Ok(Entry::Type { name, kind })
        }
        0 => Ok(Entry::Help {
            name,
            help: help_text(text, true).map_err(|m| (p, m))?,
        }),
        _ => {
            let suffix = name.len() > text.len()
                && name.ends_with(text)
                && name[name.len() - text.len() - 1] == b'_';
            if !text.is_empty() && !suffix {
                return Err((
                    p,
                    format!(
                        "unit {:?} is not a suffix of metric {:?}",
                        String::from_utf8_lossy(text),
                        String::from_utf8_lossy(name)
                    ),
                ));
            }
            Ok(Entry::Unit { name, unit: text })
        }
    }
}

/// A sample line starting at `i`.
fn sample<'a>(b: &'a [u8], pos: &mut usize, i: usize) -> Result<Entry<'a>, At> {
    let name_end = run(b, i + 1, is_name_char);
    let mut j = name_end;
    if at(b, j) == b'{' {
        j = labels(b, j + 1, None)?;
    }
    let series = &b[i..j];
    let (value, value_end) = space_and_float(b, j).ok_or_else(|| {
        let got = if at(b, j) == b'{' { "BOPEN" } else { "INVALID" };
        (
            j,
            format!("expected a space and a value after the metric, got {got}"),
        )
    })?;
    let value = value.map_err(|m| (j + 1, m))?;
    let mut timestamp_ms = None;
    let mut k = value_end;
    if at(b, k) == b' ' && !is_exemplar(b, k) {
        let (ts, ts_end) = space_and_float(b, k).ok_or_else(|| {
            (
                k,
                "expected a timestamp or ` # {` after the value".to_string(),
            )
        })?;
        let ts = ts.map_err(|m| (k + 1, m))?;
        if !ts.is_finite() {
            return Err((k + 1, "invalid timestamp".into()));
        }
        timestamp_ms = Some(seconds_to_ms(ts));
        k = ts_end;
    }
    if k >= b.len() {
        return Err((k, NO_EOF.into()));
    }
    if is_exemplar(b, k) {
        let name = &b[i..name_end];
        if !name.ends_with(b"_total") && !name.ends_with(b"_bucket") {
            return Err((
                k,
                format!(
                    "metric name {:?} does not support exemplars",
                    String::from_utf8_lossy(name)
                ),
            ));
        }
        k = exemplar(b, k + 4)?;
    }
    if at(b, k) != b'\n' {
        return Err((k, "expected the end of the line".into()));
    }
    *pos = k + 1;
    Ok(Entry::Sample(RawSample {
        series,
        value,
        timestamp_ms,
    }))
}

/// Whether ` # {` starts at `k`.
fn is_exemplar(b: &[u8], k: usize) -> bool {
    b.get(k..k + 4) == Some(b" # {")
}

/// ` value` at `k` (one space, then a run of value characters): the parsed float and the
/// end of the run; `None` if there is no such token.
fn space_and_float(b: &[u8], k: usize) -> Option<(Result<f64, String>, usize)> {
    if at(b, k) != b' ' || !is_value_char(at(b, k + 1)) {
        return None;
    }
    let end = run(b, k + 1, is_value_char);
    Some((parse_float(&b[k + 1..end]), end))
}

/// Go's `int64(seconds * 1000)` on amd64: truncated toward zero; out of range is `MinInt64`.
fn seconds_to_ms(seconds: f64) -> i64 {
    let ms = seconds * 1000.0;
    if ms >= -9.223_372_036_854_776e18 && ms < 9.223_372_036_854_776e18 {
        ms as i64
    } else {
        i64::MIN
    }
}

/// An exemplar's labels after ` # {` at `i`, its value and optional timestamp; the position of
/// the newline that must follow.
fn exemplar(b: &[u8], i: usize) -> Result<usize, At> {
    let j = labels(b, i, None)?;
    let (value, mut k) = space_and_float(b, j).ok_or_else(|| {
        (
            j,
            "expected a space and a value after the exemplar's labels".to_string(),
        )
    })?;
    value.map_err(|m| (j + 1, m))?;
    if k >= b.len() {
        return Err((k, NO_EOF.into()));
    }
    if at(b, k) == b' ' {
        let (ts, end) = space_and_float(b, k).ok_or_else(|| {
            (
                k,
                "expected a timestamp or the end of the line after the exemplar".to_string(),
            )
        })?;
        if !ts.map_err(|m| (k + 1, m))?.is_finite() {
            return Err((k + 1, "invalid exemplar timestamp".into()));
        }
        k = end;
        if k >= b.len() {
            return Err((k, NO_EOF.into()));
        }
    }
    Ok(k)
}

/// The label set after `{` at `i`, through `}`; its end. With `out`, the labels are decoded
/// into it.
fn labels(
    b: &[u8],
    mut i: usize,
    mut out: Option<&mut Vec<(String, String)>>,
) -> Result<usize, At> {
    let mut first = true;
    loop {
        match at(b, i) {
            b'}' => return Ok(i + 1),
            b',' if !first => {
                i += 1;
                if !is_label_start(at(b, i)) {
                    return Err((
                        i,
                        format!(
                            "expected a label name after `,`, got {}",
                            label_token_name(at(b, i))
                        ),
                    ));
                }
            }
            c if first && is_label_start(c) => {}
            c => {
                let expected = if first {
                    "a label name or `}`"
                } else {
                    "`,` or `}`"
                };
                return Err((
                    i,
                    format!("expected {expected}, got {}", label_token_name(c)),
                ));
            }
        }
        first = false;
        let name_start = i;
        i = run(b, i + 1, is_label_char);
        let name_end = i;
        if at(b, i) != b'=' {
            return Err((
                i,
                format!("expected `=`, got {}", label_token_name(at(b, i))),
            ));
        }
        i += 1;
        if at(b, i) != b'"' {
            return Err((i, "expected a quoted label value".into()));
        }
        let value_start = i + 1;
        i = quoted_end(b, value_start).ok_or_else(|| (name_start, UNTERMINATED.to_string()))?;
        record_label(
            b,
            (name_start, name_end),
            (value_start, i - 1),
            out.as_deref_mut(),
        )?;
    }
}

/// After a label value's opening quote at `i`: the position after its closing quote; `None`
/// at a raw newline, a backslash before a newline, or the end of the body.
fn quoted_end(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let k = i + memchr::memchr3(b'"', b'\\', b'\n', b.get(i..)?)?;
        match b[k] {
            b'"' => return Some(k + 1),
            b'\n' => return None,
            _ => {
                if k + 1 >= b.len() || b[k + 1] == b'\n' {
                    return None;
                }
                i = k + 2;
            }
        }
    }
}

/// Decodes a series text `series` returned by [`next`]: the labels into `out`; the end of the
/// metric name.
pub(super) fn decode_series(series: &[u8], out: &mut Vec<(String, String)>) -> Result<usize, At> {
    if !is_name_start(at(series, 0)) {
        return Err((0, "expected a metric name".into()));
    }
    let name_end = run(series, 1, is_name_char);
    if at(series, name_end) == b'{' {
        labels(series, name_end + 1, Some(out))?;
    }
    Ok(name_end)
}
