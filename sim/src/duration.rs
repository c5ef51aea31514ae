//! Durations as scenario files write them: `"30s"`, `"200ms"`, `"1m"`, `"1m30s"`.
//!
//! This module owns the one duration grammar of the scenario format and its error text. It does
//! not know about keys or files; callers wrap its errors with where the value came from.

use std::time::Duration;

/// Largest duration a scenario may name: one simulated week. A limit so that arithmetic in
/// milliseconds can never overflow and a typo such as `"3000000h"` is caught early.
pub const DURATION_MAX: Duration = Duration::from_secs(7 * 24 * 3600);

/// The units accepted, longest suffix first so that `ms` is not read as `m`.
const UNITS: [(&str, u64); 4] = [("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000)];

/// Parses `"<int><unit>"` repeated at least once (`"1m30s"`), units `ms`, `s`, `m`, `h`.
///
/// Whole milliseconds only: the simulated clock of both engines counts milliseconds. The error
/// is the "what was expected" half of a message; it names the input.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let expected = "expected a duration such as \"30s\", \"200ms\", \"1m\" or \"1m30s\" \
                    (units ms, s, m, h; whole numbers)";
    if text.is_empty() {
        return Err(format!("empty duration: {expected}"));
    }
    let mut rest = text;
    let mut total_ms: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("{text:?} is not a duration: {expected}"));
        }
        let (number, after) = rest.split_at(digits);
        let Some((unit, unit_ms)) = UNITS.iter().find(|(u, _)| after.starts_with(u)) else {
            return Err(format!(
                "{text:?} has no valid unit after {number}: {expected}"
            ));
        };
        let value: u64 = number.parse().map_err(|_| {
            format!(
                "{text:?} is too large: at most {}h",
                DURATION_MAX.as_secs() / 3600
            )
        })?;
        total_ms = value
            .checked_mul(*unit_ms)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| {
                format!(
                    "{text:?} is too large: at most {}h",
                    DURATION_MAX.as_secs() / 3600
                )
            })?;
        rest = &after[unit.len()..];
    }
    let duration = Duration::from_millis(total_ms);
    if duration > DURATION_MAX {
        return Err(format!(
            "{text:?} is too large: at most {}h",
            DURATION_MAX.as_secs() / 3600
        ));
    }
    Ok(duration)
}

/// Formats a duration the way scenario files write it, shortest exact form: `90s` -> `"1m30s"`,
/// `1500ms` -> `"1s500ms"`, zero -> `"0s"`. `parse_duration(format_duration(d)) == d` for whole
/// milliseconds.
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, unit_ms) in [("h", 3_600_000u64), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if ms >= unit_ms {
            out.push_str(&format!("{}{unit}", ms / unit_ms));
            ms %= unit_ms;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_each_unit_and_compounds() {
        assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_missing_units_fractions_signs_and_spaces() {
        for bad in [
            "", "30", "s", "1.5s", "-1s", "30 s", " 30s", "30sec", "1d", "30S",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn rejects_durations_beyond_the_limit_without_overflow() {
        assert!(parse_duration("169h").is_err());
        assert!(parse_duration("99999999999999999999s").is_err());
        assert!(parse_duration("18446744073709551615h").is_err());
    }

    #[test]
    fn format_round_trips() {
        for ms in [0u64, 1, 999, 1000, 1500, 60_000, 90_000, 3_723_004] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
    }
}
