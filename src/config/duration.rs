//! Go's `time.ParseDuration` syntax (`300ms`, `1m30s`, `1.5h`), exact to the nanosecond, plus an
//! optional `d` (24 h) unit for retention. Negative values parse; callers decide what is sane.

use std::time::Duration;

const NANOS_PER_DAY: u128 = 86_400 * 1_000_000_000;

fn unit_nanos(unit: &str, allow_days: bool) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3_600 * 1_000_000_000,
        "d" if allow_days => NANOS_PER_DAY,
        _ => return None,
    })
}

/// A signed duration as Go prints and parses it. `negative` is kept apart because
/// `std::time::Duration` cannot hold it and a negative interval must be reported, not wrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoDuration {
    pub negative: bool,
    pub duration: Duration,
}

/// Parses a Go duration string. `allow_days` additionally accepts `d`.
pub fn parse(input: &str, allow_days: bool) -> Result<GoDuration, String> {
    let invalid = || format!("invalid duration {input:?}");
    let mut rest = input;
    let mut negative = false;
    if let Some(r) = rest.strip_prefix('-') {
        negative = true;
        rest = r;
    } else if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    }
    if rest == "0" {
        return Ok(GoDuration { negative: false, duration: Duration::ZERO });
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, after_int) = rest.split_at(int_len);
        let (frac_digits, after_num) = match after_int.strip_prefix('.') {
            Some(r) => {
                let n = r.bytes().take_while(u8::is_ascii_digit).count();
                r.split_at(n)
            }
            None => ("", after_int),
        };
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(invalid());
        }
        let unit_len =
            after_num.char_indices().find(|(_, c)| *c == '.' || c.is_ascii_digit()).map_or(after_num.len(), |(i, _)| i);
        let (unit, after_unit) = after_num.split_at(unit_len);
        if unit.is_empty() {
            return Err(format!(
                "missing unit in duration {input:?} (use ns, us, ms, s, m, h{})",
                if allow_days { ", d" } else { "" }
            ));
        }
        let scale = unit_nanos(unit, allow_days).ok_or_else(|| {
            format!(
                "unknown unit {unit:?} in duration {input:?} (use ns, us, ms, s, m, h{})",
                if allow_days { ", d" } else { "" }
            )
        })?;
        let too_big = || format!("duration {input:?} is too large");
        let whole: u128 = if int_digits.is_empty() { 0 } else { int_digits.parse().map_err(|_| too_big())? };
        let mut value = whole.checked_mul(scale).ok_or_else(too_big)?;
        // Like Go, the fraction is applied as f / 10^k of the unit; digits past the 20th are
        // far below a nanosecond and ignored; the result is rounded to the nearest nanosecond.
        let mut fraction: u128 = 0;
        let mut fraction_scale: u128 = 1;
        for digit in frac_digits.bytes().take(20) {
            fraction = fraction * 10 + u128::from(digit - b'0');
            fraction_scale *= 10;
        }
        value += (fraction * scale + fraction_scale / 2) / fraction_scale;
        total = total.checked_add(value).ok_or_else(too_big)?;
        if total > u128::from(u64::MAX) {
            return Err(too_big());
        }
        rest = after_unit;
    }
    let secs = (total / 1_000_000_000) as u64;
    let nanos = (total % 1_000_000_000) as u32;
    Ok(GoDuration { negative: negative && total > 0, duration: Duration::new(secs, nanos) })
}

/// Formats a duration the way an operator wrote it, for messages (`1m30s`, `250ms`).
pub fn format(d: Duration) -> String {
    let total_ms = d.as_millis();
    if total_ms == 0 {
        return format!("{}ns", d.as_nanos());
    }
    if total_ms % 1000 != 0 || total_ms < 1000 {
        return format!("{total_ms}ms");
    }
    let mut secs = d.as_secs();
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(n: u128) -> Duration {
        Duration::new((n / 1_000_000_000) as u64, (n % 1_000_000_000) as u32)
    }

    // Rows taken from Go's own `parseDurationTests` (time/time_test.go).
    #[test]
    fn parses_gos_examples() {
        let s = 1_000_000_000u128;
        let ms = 1_000_000u128;
        let cases: &[(&str, bool, u128)] = &[
            ("0", false, 0),
            ("5s", false, 5 * s),
            ("30s", false, 30 * s),
            ("1478s", false, 1478 * s),
            ("-5s", true, 5 * s),
            ("+5s", false, 5 * s),
            ("-0", false, 0),
            ("+0", false, 0),
            ("5.0s", false, 5 * s),
            ("5.6s", false, 5 * s + 600 * ms),
            ("5.s", false, 5 * s),
            (".5s", false, 500 * ms),
            ("1.0s", false, s),
            ("1.00s", false, s),
            ("1.004s", false, s + 4 * ms),
            ("1.0040s", false, s + 4 * ms),
            ("100.00100s", false, 100 * s + ms),
            ("10ns", false, 10),
            ("11us", false, 11_000),
            ("12µs", false, 12_000),
            ("12μs", false, 12_000),
            ("13ms", false, 13 * ms),
            ("14s", false, 14 * s),
            ("15m", false, 15 * 60 * s),
            ("16h", false, 16 * 3600 * s),
            ("3h30m", false, (3 * 3600 + 30 * 60) * s),
            ("10.5s4m", false, 4 * 60 * s + 10 * s + 500 * ms),
            ("-2m3.4s", true, 2 * 60 * s + 3 * s + 400 * ms),
            ("1h2m3s4ms5us6ns", false, 3600 * s + 120 * s + 3 * s + 4 * ms + 5_000 + 6),
            ("39h9m14.425s", false, (39 * 3600 + 9 * 60 + 14) * s + 425 * ms),
            ("52763797000ns", false, 52_763_797_000),
            ("0.3333333333333333333h", false, 20 * 60 * s),
            ("9007199254740993ns", false, 9_007_199_254_740_993),
            ("0.100000000000000000000h", false, 6 * 60 * s),
            ("1.5h", false, 5400 * s),
            ("2h45m", false, (2 * 3600 + 45 * 60) * s),
            ("1m30s", false, 90 * s),
            ("300ms", false, 300 * ms),
        ];
        for (input, negative, nanos) in cases {
            let got = parse(input, false).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got.duration, ns(*nanos), "{input}");
            assert_eq!(got.negative, *negative, "{input}");
        }
    }

    #[test]
    fn rejects_what_go_rejects() {
        for input in ["", "3", "-", "s", ".", "-.", ".s", "+.s", "1d", "1M", "5 s", "1h 30m", "x5s", "5sx"] {
            assert!(parse(input, false).is_err(), "{input:?} should be rejected");
        }
    }

    #[test]
    fn days_only_where_allowed() {
        assert_eq!(parse("30d", true).unwrap().duration, Duration::from_secs(30 * 86_400));
        assert_eq!(parse("1d12h", true).unwrap().duration, Duration::from_secs(36 * 3_600));
        assert!(parse("30d", false).unwrap_err().contains("unknown unit \"d\""));
    }

    #[test]
    fn overflow_is_an_error() {
        assert!(parse("9999999999999999999999h", false).unwrap_err().contains("too large"));
        assert!(parse("18446744073709551616ns", false).is_err());
    }

    #[test]
    fn formats_for_messages() {
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
        assert_eq!(format(Duration::from_millis(250)), "250ms");
        assert_eq!(format(Duration::from_secs(30 * 86_400)), "30d");
        assert_eq!(format(Duration::from_millis(1500)), "1500ms");
    }
}
