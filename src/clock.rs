//! Time as users read it: RFC 3339 timestamps with nanoseconds (Docker's
//! `StartedAt` and json-file `time`) and Docker's human durations ("Up 3
//! seconds", "2 minutes ago"). Pure, apart from [`now`]; used by every
//! process that records or shows container state.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Nanoseconds since the epoch, now.
pub fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// `2026-12-02T06:06:40.123456789Z` for a time since the epoch.
pub fn rfc3339(t: Duration) -> String {
    let secs = t.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        t.subsec_nanos()
    )
}

/// Parses what [`rfc3339`] writes (UTC, optional fraction); None otherwise.
pub fn parse_rfc3339(s: &str) -> Option<Duration> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut dp = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (dp.next()??, dp.next()??, dp.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut tp = hms.splitn(3, ':').map(|p| p.parse::<u64>().ok());
    let (hh, mm, ss) = (tp.next()??, tp.next()??, tp.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse::<u32>().ok()?
    };
    let days = u64::try_from(days_from_civil(y, m, d)).ok()?;
    Some(Duration::new(
        days * 86_400 + hh * 3600 + mm * 60 + ss,
        nanos,
    ))
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 → (y, m, d).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The inverse of [`civil_from_days`].
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Docker's `units.HumanDuration`: "Less than a second", "3 seconds",
/// "About a minute", "5 minutes", "About an hour", "7 hours", "3 days"...
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    let (min, hour, day) = (60, 3600, 86_400);
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        _ if s < min => format!("{s} seconds"),
        _ if s < 2 * min => "About a minute".into(),
        _ if s < hour => format!("{} minutes", s / min),
        _ if s < 2 * hour => "About an hour".into(),
        _ if s < 48 * hour => format!("{} hours", s / hour),
        _ if s < 14 * day => format!("{} days", s / day),
        _ if s < 60 * day => format!("{} weeks", s / (7 * day)),
        _ if s < 730 * day => format!("{} months", s / (30 * day)),
        _ => format!("{} years", s / (365 * day)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_table() {
        let cases = [
            (0, 0, "1970-01-01T00:00:00.000000000Z"),
            (951_782_400, 5, "2000-02-29T00:00:00.000000005Z"),
            (1_796_191_600, 123_456_789, "2026-12-02T06:06:40.123456789Z"),
            (4_107_542_399, 999_999_999, "2100-02-28T23:59:59.999999999Z"),
        ];
        for (secs, nanos, text) in cases {
            let t = Duration::new(secs, nanos);
            assert_eq!(rfc3339(t), text);
            assert_eq!(parse_rfc3339(text), Some(t), "{text}");
        }
    }

    #[test]
    fn parse_rejects_junk_and_accepts_short_fractions() {
        assert_eq!(
            parse_rfc3339("1970-01-01T00:00:01.5Z"),
            Some(Duration::new(1, 500_000_000))
        );
        assert_eq!(
            parse_rfc3339("1970-01-01T00:01:00Z"),
            Some(Duration::new(60, 0))
        );
        for bad in [
            "",
            "Z",
            "1970-01-01",
            "1970-13-01T00:00:00Z",
            "1970-01-01T24:00:00Z",
            "1970-01-01T00:00:00.1234567890Z",
            "1970-01-01T00:00:00.-1Z",
            "1970-01-01T00:00:00+01:00",
            "1969-12-31T23:59:59Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn human_durations_as_docker() {
        let cases = [
            (0, "Less than a second"),
            (1, "1 second"),
            (59, "59 seconds"),
            (60, "About a minute"),
            (119, "About a minute"),
            (120, "2 minutes"),
            (3599, "59 minutes"),
            (3600, "About an hour"),
            (7200, "2 hours"),
            (47 * 3600, "47 hours"),
            (2 * 86_400, "2 days"),
            (14 * 86_400, "2 weeks"),
            (60 * 86_400, "2 months"),
            (800 * 86_400, "2 years"),
        ];
        for (s, text) in cases {
            assert_eq!(human(Duration::from_secs(s)), text, "{s}");
        }
    }
}
