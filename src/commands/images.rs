//! `hutch images` (and `hutch image ls`): the store's images as Docker
//! and Podman list them, plus the human forms of sizes and ages they use.

use serde_json::json;

use crate::cli::ImagesArgs;
use crate::state::{self, Dirs};
use crate::store::{ImageRecord, Store};

pub fn images(args: ImagesArgs) -> anyhow::Result<i32> {
    let json = match args.format.as_deref() {
        None | Some("table") => false,
        Some("json") => true,
        Some(other) => {
            anyhow::bail!("list images: unknown format `{other}`; use `table` or `json`")
        }
    };
    let store = Store::open(&Dirs::new()?)?;
    let all = store.images()?;
    if json {
        let out: Vec<serde_json::Value> = all.iter().map(json_row).collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if args.quiet {
        let mut seen = std::collections::BTreeSet::new();
        for rec in &all {
            let id = show_id(&rec.id, args.no_trunc);
            if seen.insert(id.clone()) {
                println!("{id}");
            }
        }
    } else {
        print!("{}", table(&rows(&all, args.no_trunc, state::now())));
    }
    Ok(0)
}

fn json_row(rec: &ImageRecord) -> serde_json::Value {
    json!({
        "Id": rec.id.strip_prefix("sha256:").unwrap_or(&rec.id),
        "RepoTags": crate::store::tags_of(rec),
        "Digest": rec.manifest_digest,
        "Created": rec.created.as_deref().and_then(parse_rfc3339),
        "CreatedAt": rec.created,
        "Size": rec.size,
    })
}

/// The header and one row per name (`<none>` for a nameless image).
fn rows(all: &[ImageRecord], no_trunc: bool, now: u64) -> Vec<Vec<String>> {
    let mut out = vec![["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
        .map(str::to_owned)
        .to_vec()];
    for rec in all {
        let created = rec
            .created
            .as_deref()
            .and_then(parse_rfc3339)
            .map_or_else(|| "N/A".to_owned(), |t| ago(now, t));
        let id = show_id(&rec.id, no_trunc);
        let size = human_size(rec.size);
        let names: Vec<(&str, &str)> = if rec.names.is_empty() {
            vec![("<none>", "<none>")]
        } else {
            rec.names.iter().map(|n| split_name(n)).collect()
        };
        for (repo, tag) in names {
            out.push(vec![
                repo.into(),
                tag.into(),
                id.clone(),
                created.clone(),
                size.clone(),
            ]);
        }
    }
    out
}

/// A digest name (`REPO@sha256:...`) shows as TAG `<none>`, as in Podman.
fn split_name(name: &str) -> (&str, &str) {
    let (repo, tag) = crate::store::split_name(name);
    (repo, tag.unwrap_or("<none>"))
}

/// Columns padded as Docker's tabwriter does (min width 10, padding 3).
pub(super) fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            let w = rows
                .iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max();
            w.unwrap_or(0).saturating_add(3).max(10)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let last = row.len().saturating_sub(1);
        for (i, cell) in row.iter().enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                let w = widths.get(i).copied().unwrap_or(0);
                out.push_str(&format!("{cell:<w$}"));
            }
        }
        out.push('\n');
    }
    out
}

fn show_id(id: &str, no_trunc: bool) -> String {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    if no_trunc {
        format!("sha256:{hex}")
    } else {
        hex.chars().take(12).collect()
    }
}

/// Docker's decimal sizes with 3 significant digits: `4.26MB`, `866kB`.
pub(super) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    #[allow(clippy::cast_precision_loss)] // display only
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let mut s = format!("{v:.digits$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_owned();
    }
    format!("{s}{}", UNITS.get(unit).copied().unwrap_or("B"))
}

/// Docker's `HumanDuration` of `now - then`, with ` ago`.
pub(super) fn ago(now: u64, then: i64) -> String {
    let secs = i64::try_from(now)
        .unwrap_or(i64::MAX)
        .saturating_sub(then)
        .max(0);
    let minutes = secs / 60;
    let hours = (secs + 1800) / 3600;
    let text = match secs {
        0 => "Less than a second".to_owned(),
        1 => "1 second".to_owned(),
        2..=59 => format!("{secs} seconds"),
        _ if minutes == 1 => "About a minute".to_owned(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".to_owned(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 14 => format!("{} days", hours / 24),
        _ if hours < 24 * 60 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", secs / 3600 / 24 / 365),
    };
    format!("{text} ago")
}

/// Seconds since the epoch of an RFC 3339 time (`2024-01-27T10:00:00.5Z`,
/// `...+02:00`); `None` when it does not parse.
pub(super) fn parse_rfc3339(s: &str) -> Option<i64> {
    let (date, rest) = s.split_once(['T', 't', ' '])?;
    let mut ymd = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (ymd.next()??, ymd.next()??, ymd.next()??);
    if !(0..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let (clock, offset) = if let Some(c) = rest.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else {
        let at = rest.rfind(['+', '-'])?;
        let (c, off) = rest.split_at(at);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off.get(1..)?.split_once(':')?;
        (
            c,
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60),
        )
    };
    let clock = clock.split_once('.').map_or(clock, |(c, _)| c);
    let mut hms = clock.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, mi, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if !(0..24).contains(&h) || !(0..60).contains(&mi) || !(0..=60).contains(&sec) {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86400 + h * 3600 + mi * 60 + sec - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_docker_prints_them() {
        for (n, want) in [
            (0, "0B"),
            (999, "999B"),
            (1000, "1kB"),
            (4_262_000, "4.26MB"),
            (4_198_400, "4.2MB"),
            (866_123, "866kB"),
            (12_345_678, "12.3MB"),
            (1_999_999_999, "2GB"),
            (u64::MAX, "18.4EB"),
        ] {
            assert_eq!(human_size(n), want, "{n}");
        }
    }

    #[test]
    fn ages_as_docker_prints_them() {
        let now = 1_000_000_000;
        let t = |ago_secs: i64| ago(now, now as i64 - ago_secs);
        assert_eq!(t(0), "Less than a second ago");
        assert_eq!(t(1), "1 second ago");
        assert_eq!(t(59), "59 seconds ago");
        assert_eq!(t(60), "About a minute ago");
        assert_eq!(t(59 * 60), "59 minutes ago");
        assert_eq!(t(3600), "About an hour ago");
        assert_eq!(t(47 * 3600), "47 hours ago");
        assert_eq!(t(2 * 86400), "2 days ago");
        assert_eq!(t(15 * 86400), "2 weeks ago");
        assert_eq!(t(90 * 86400), "3 months ago");
        assert_eq!(t(3 * 365 * 86400), "3 years ago");
        assert_eq!(t(-50), "Less than a second ago");
    }

    #[test]
    fn parses_rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2000-03-01T00:00:00Z"), Some(951_868_800));
        assert_eq!(
            parse_rfc3339("2024-01-27T10:00:00.123456789Z"),
            Some(1_706_349_600)
        );
        assert_eq!(
            parse_rfc3339("2024-01-27T12:00:00+02:00"),
            Some(1_706_349_600)
        );
        assert_eq!(
            parse_rfc3339("2024-01-27T08:30:00-01:30"),
            Some(1_706_349_600)
        );
        for bad in [
            "",
            "2024-13-01T00:00:00Z",
            "yesterday",
            "2024-01-01",
            "2024-01-01T25:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn table_pads_like_tabwriter() {
        let rows = vec![
            vec!["A".to_owned(), "BB".to_owned()],
            vec!["a-long-value".to_owned(), "x".to_owned()],
        ];
        assert_eq!(table(&rows), "A              BB\na-long-value   x\n");
    }
}
