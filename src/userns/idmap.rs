//! Id-map computation (pure): which container ids map to which host ids.
//!
//! Default: container root is the caller, container ids 1.. are the
//! caller's subordinate ranges in file order. `--userns=keep-id` maps the
//! caller to the same id inside, and the subordinate ids fill the ids
//! around it (as Podman does). Without ranges: a single-id map.

use super::subid::SubidRange;

/// The kernel accepts at most 340 lines in a uid_map (user_namespaces(7)).
const MAX_LINES: usize = 340;
/// `(uid_t)-1` is never a valid id, inside or outside.
const INVALID_ID: u64 = u32::MAX as u64;

/// One line of /proc/PID/uid_map: `inside outside count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdMapEntry {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// How the caller's own id appears in the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Mode {
    /// The caller is container root (the default).
    #[default]
    Root,
    /// The caller keeps its own id inside (`--userns=keep-id`).
    KeepId,
}

/// Computes the map for one kind of id (uid or gid).
///
/// `host_id` is the caller's id; `ranges` its subordinate ranges (may be
/// empty, which gives a single-id map).
pub fn compute(host_id: u32, ranges: &[SubidRange], mode: Mode) -> Vec<IdMapEntry> {
    let own_inside = match mode {
        Mode::Root => 0,
        Mode::KeepId => host_id,
    };
    let mut map = vec![IdMapEntry {
        inside: own_inside,
        outside: host_id,
        count: 1,
    }];
    // Container ids are handed out from 0 upward, skipping the caller's.
    let mut next: u64 = 0;
    for range in ranges {
        let mut start = u64::from(range.start);
        let mut left = u64::from(range.count);
        // Never map the invalid id or past it (subuid(5) ranges are u32).
        left = left.min(INVALID_ID.saturating_sub(start));
        while left > 0 && map.len() < MAX_LINES {
            if next == u64::from(own_inside) {
                next += 1;
            }
            // A chunk ends before the caller's own inside id, if ahead.
            let limit = if next < u64::from(own_inside) {
                u64::from(own_inside) - next
            } else {
                INVALID_ID.saturating_sub(next)
            };
            let count = left.min(limit);
            if count == 0 {
                return sorted(map);
            }
            // All three fit in u32: bounded by INVALID_ID above.
            map.push(IdMapEntry {
                inside: next as u32,
                outside: start as u32,
                count: count as u32,
            });
            next += count;
            start += count;
            left -= count;
        }
    }
    sorted(map)
}

fn sorted(mut map: Vec<IdMapEntry>) -> Vec<IdMapEntry> {
    map.sort_by_key(|e| e.inside);
    map
}

/// Formats a map as the kernel's uid_map text.
pub fn to_proc_text(map: &[IdMapEntry]) -> String {
    map.iter()
        .map(|e| format!("{} {} {}\n", e.inside, e.outside, e.count))
        .collect()
}

/// Formats a map as newuidmap(1) arguments after the pid.
pub fn to_helper_args(map: &[IdMapEntry]) -> Vec<String> {
    map.iter()
        .flat_map(|e| [e.inside, e.outside, e.count])
        .map(|n| n.to_string())
        .collect()
}

/// Translates a container id to its host id, if mapped.
pub fn to_host(map: &[IdMapEntry], inside: u32) -> Option<u32> {
    map.iter().find_map(|e| {
        let off = inside.checked_sub(e.inside)?;
        (off < e.count).then(|| e.outside + off)
    })
}

/// Number of ids mapped.
#[cfg(test)]
pub fn total(map: &[IdMapEntry]) -> u64 {
    map.iter().map(|e| u64::from(e.count)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u32, count: u32) -> SubidRange {
        SubidRange { start, count }
    }
    fn e(inside: u32, outside: u32, count: u32) -> IdMapEntry {
        IdMapEntry {
            inside,
            outside,
            count,
        }
    }

    #[test]
    fn root_mode_maps_caller_to_zero_then_ranges() {
        let cases: Vec<(Vec<SubidRange>, Vec<IdMapEntry>)> = vec![
            (vec![], vec![e(0, 1000, 1)]),
            (
                vec![r(100000, 65536)],
                vec![e(0, 1000, 1), e(1, 100000, 65536)],
            ),
            (
                vec![r(100000, 10), r(300000, 5)],
                vec![e(0, 1000, 1), e(1, 100000, 10), e(11, 300000, 5)],
            ),
        ];
        for (ranges, want) in cases {
            assert_eq!(compute(1000, &ranges, Mode::Root), want, "{ranges:?}");
        }
    }

    #[test]
    fn keep_id_splits_ranges_around_caller() {
        let got = compute(1000, &[r(100000, 65536)], Mode::KeepId);
        assert_eq!(
            got,
            vec![e(0, 100000, 1000), e(1000, 1000, 1), e(1001, 101000, 64536)]
        );
        // Fewer subordinate ids than the caller's uid: no split needed.
        let got = compute(5000, &[r(100000, 10)], Mode::KeepId);
        assert_eq!(got, vec![e(0, 100000, 10), e(5000, 5000, 1)]);
        // Split across two ranges.
        let got = compute(3, &[r(10, 2), r(20, 5)], Mode::KeepId);
        assert_eq!(got, vec![e(0, 10, 2), e(2, 20, 1), e(3, 3, 1), e(4, 21, 4)]);
        assert_eq!(compute(7, &[], Mode::KeepId), vec![e(7, 7, 1)]);
    }

    #[test]
    fn never_maps_the_invalid_id() {
        let got = compute(1000, &[r(u32::MAX - 3, 100)], Mode::Root);
        assert_eq!(got, vec![e(0, 1000, 1), e(1, u32::MAX - 3, 3)]);
        // Inside ids stop before 4294967295 as well.
        let got = compute(1000, &[r(1, u32::MAX - 1), r(5, 5)], Mode::Root);
        assert_eq!(total(&got), u64::from(u32::MAX));
        assert!(got
            .iter()
            .all(|x| u64::from(x.inside) + u64::from(x.count) <= INVALID_ID));
    }

    #[test]
    fn caps_line_count() {
        let ranges: Vec<_> = (0..1000).map(|i| r(100000 + i * 10, 5)).collect();
        assert_eq!(compute(1000, &ranges, Mode::Root).len(), MAX_LINES);
    }

    #[test]
    fn formats_and_translates() {
        let map = compute(1000, &[r(100000, 65536)], Mode::Root);
        assert_eq!(to_proc_text(&map), "0 1000 1\n1 100000 65536\n");
        assert_eq!(
            to_helper_args(&map),
            ["0", "1000", "1", "1", "100000", "65536"]
        );
        assert_eq!(to_host(&map, 0), Some(1000));
        assert_eq!(to_host(&map, 1000), Some(100999));
        assert_eq!(to_host(&map, 65537), None);
    }
}
