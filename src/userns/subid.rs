//! Parsing /etc/subuid and /etc/subgid (subuid(5)): `NAME_OR_UID:START:COUNT`.
//! Pure; runs in the `hutch` process before anything is cloned.
//!
//! The rules follow what the setuid helpers (newuidmap/newgidmap from
//! shadow-utils) accept, so that a range we find is a range they will grant:
//!
//! - a line belongs to a user when its first field equals the user's name
//!   *or* the decimal uid exactly (`1000`, not `01000`);
//! - a user may own several ranges; all are returned, in file order;
//! - blank lines and lines starting with `#` are skipped;
//! - a malformed line is skipped silently, as the helpers do: a field count
//!   other than three, an empty owner, a number that is not plain decimal
//!   digits (no sign, no whitespace), a count of 0, or a range whose end
//!   (`start + count`) does not fit in a u32. Whitespace inside a line makes
//!   it malformed (the helpers would not match ` alice` or `65536 ` either);
//!   only the line ending (`\n`, `\r\n`) is stripped.

use std::path::Path;

/// One subordinate range: host ids `start .. start+count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SubidRange {
    pub start: u32,
    pub count: u32,
}

impl SubidRange {
    /// The last id of the range (inclusive); parsing guarantees `count > 0`.
    pub fn last(&self) -> u32 {
        self.start.saturating_add(self.count.saturating_sub(1))
    }

    /// Whether two ranges share at least one id.
    pub fn overlaps(&self, other: &SubidRange) -> bool {
        self.start <= other.last() && other.start <= self.last()
    }
}

/// Ranges for `user` (matched by name or by numeric uid), in file order.
pub fn parse(content: &str, user: &str, uid: u32) -> Vec<SubidRange> {
    let uid = uid.to_string();
    entries(content)
        .filter(|(owner, _)| *owner == user || *owner == uid)
        .map(|(_, range)| range)
        .collect()
}

/// Every well-formed range in the file, whoever owns it (used to suggest a
/// free range for a user who has none).
pub fn all_ranges(content: &str) -> Vec<SubidRange> {
    entries(content).map(|(_, range)| range).collect()
}

/// Reads and parses a subid file; a missing file means no ranges.
pub fn lookup(path: &Path, user: &str, uid: u32) -> anyhow::Result<Vec<SubidRange>> {
    read(path).map(|s| parse(&s, user, uid))
}

/// Reads a subid file and returns every range in it; missing means none.
pub fn lookup_all(path: &Path) -> anyhow::Result<Vec<SubidRange>> {
    read(path).map(|s| all_ranges(&s))
}

fn read(path: &Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(anyhow::Error::new(e).context(format!("read `{}`", path.display()))),
    }
}

/// Well-formed `(owner, range)` entries, in file order.
fn entries(content: &str) -> impl Iterator<Item = (&str, SubidRange)> {
    content.lines().filter_map(parse_line)
}

fn parse_line(line: &str) -> Option<(&str, SubidRange)> {
    let trimmed = line.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return None;
    }
    let mut fields = line.split(':');
    let owner = fields.next()?;
    let start = parse_u32(fields.next()?)?;
    let count = parse_u32(fields.next()?)?;
    if fields.next().is_some() || owner.is_empty() || owner.contains(char::is_whitespace) {
        return None;
    }
    if count == 0 || start.checked_add(count).is_none() {
        return None;
    }
    Some((owner, SubidRange { start, count }))
}

/// Plain decimal digits only: `str::parse` alone would accept a leading `+`.
fn parse_u32(field: &str) -> Option<u32> {
    if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    field.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u32, count: u32) -> SubidRange {
        SubidRange { start, count }
    }

    #[test]
    fn parse_table() {
        let cases: &[(&str, &str, &str, u32, Vec<SubidRange>)] = &[
            (
                "by name",
                "alice:100000:65536\n",
                "alice",
                1000,
                vec![r(100000, 65536)],
            ),
            (
                "by uid",
                "1000:100000:65536\n",
                "alice",
                1000,
                vec![r(100000, 65536)],
            ),
            (
                "uid needs exact decimal",
                "01000:100000:65536\n",
                "alice",
                1000,
                vec![],
            ),
            (
                "several ranges, name and uid mixed, file order",
                "alice:300000:10\nbob:100000:65536\n1000:200000:5\nalice:100:1\n",
                "alice",
                1000,
                vec![r(300000, 10), r(200000, 5), r(100, 1)],
            ),
            (
                "other users only",
                "bob:100000:65536\n1001:165536:65536\n",
                "alice",
                1000,
                vec![],
            ),
            (
                "prefix of a name is not a match",
                "alice2:100000:65536\n",
                "alice",
                1000,
                vec![],
            ),
            (
                "comments and blank lines",
                "# alice:1:1\n\n   \n  # indented comment\nalice:5:5\n",
                "alice",
                1000,
                vec![r(5, 5)],
            ),
            (
                "crlf line endings",
                "alice:5:5\r\nalice:9:1\r\n",
                "alice",
                1000,
                vec![r(5, 5), r(9, 1)],
            ),
            (
                "no final newline",
                "alice:5:5",
                "alice",
                1000,
                vec![r(5, 5)],
            ),
            (
                "leading space in owner",
                " alice:5:5\n",
                "alice",
                1000,
                vec![],
            ),
            (
                "space in a number",
                "alice: 5:5\nalice:5:5 \n",
                "alice",
                1000,
                vec![],
            ),
            ("missing field", "alice:5\nalice\n", "alice", 1000, vec![]),
            ("extra field", "alice:5:5:5\n", "alice", 1000, vec![]),
            (
                "empty fields",
                "alice::5\nalice:5:\n:5:5\n",
                "",
                1000,
                vec![],
            ),
            (
                "non-numeric",
                "alice:x:5\nalice:5:ten\nalice:-5:5\nalice:+5:5\n",
                "alice",
                1000,
                vec![],
            ),
            ("count 0", "alice:100000:0\n", "alice", 1000, vec![]),
            (
                "start beyond u32",
                "alice:4294967296:1\n",
                "alice",
                1000,
                vec![],
            ),
            (
                "start+count overflows",
                "alice:4294967295:1\nalice:4294901760:65536\n",
                "alice",
                1000,
                vec![],
            ),
            (
                "range ending at u32::MAX-1 fits",
                "alice:4294967294:1\n",
                "alice",
                1000,
                vec![r(4294967294, 1)],
            ),
            (
                "malformed lines do not hide good ones",
                "alice:x:1\nalice:1:1\nalice:2\n",
                "alice",
                1000,
                vec![r(1, 1)],
            ),
        ];
        for (what, content, user, uid, want) in cases {
            assert_eq!(&parse(content, user, *uid), want, "{what}");
        }
    }

    /// A numeric user name equal to another user's uid: shadow-utils matches
    /// the line for both (by name for one, by uid for the other), so do we.
    #[test]
    fn numeric_name_matches_both_owners() {
        let content = "1001:100000:65536\ncarol:200000:65536\n";
        // The user literally named "1001" (uid 2000) owns the line by name.
        assert_eq!(parse(content, "1001", 2000), vec![r(100000, 65536)]);
        // carol has uid 1001, so the same line is hers too.
        assert_eq!(
            parse(content, "carol", 1001),
            vec![r(100000, 65536), r(200000, 65536)]
        );
        // Someone else with neither that name nor that uid gets nothing.
        assert_eq!(parse(content, "dave", 1002), vec![]);
    }

    #[test]
    fn all_ranges_skips_malformed() {
        let content = "a:1:1\n#b:2:2\nc:x:1\nd:3:3\n";
        assert_eq!(all_ranges(content), vec![r(1, 1), r(3, 3)]);
    }

    #[test]
    fn last_and_overlap() {
        assert_eq!(r(100000, 65536).last(), 165535);
        assert!(r(10, 5).overlaps(&r(14, 1)));
        assert!(!r(10, 5).overlaps(&r(15, 1)));
        assert!(r(15, 1).overlaps(&r(0, 100)));
    }

    #[test]
    fn lookup_missing_file_is_empty() {
        let got = lookup(Path::new("/nonexistent/hutch/subuid"), "alice", 1000);
        assert_eq!(got.ok(), Some(vec![]));
    }

    #[test]
    fn lookup_reads_file() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("subuid");
        std::fs::write(&path, "alice:100000:65536\nbob:165536:65536\n")?;
        assert_eq!(lookup(&path, "alice", 1000)?, vec![r(100000, 65536)]);
        assert_eq!(lookup_all(&path)?.len(), 2);
        Ok(())
    }
}
