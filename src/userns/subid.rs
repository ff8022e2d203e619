//! Parsing /etc/subuid and /etc/subgid (subuid(5)): `NAME_OR_UID:START:COUNT`.
//! Pure; runs in the `hutch` process before anything is cloned.

use std::path::Path;

/// One subordinate range: host ids `start .. start+count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubidRange {
    pub start: u32,
    pub count: u32,
}

/// Ranges for `user` (matched by name or by numeric uid), in file order.
pub fn parse(_content: &str, _user: &str, _uid: u32) -> Vec<SubidRange> {
    Vec::new() // helper implements
}

/// Reads and parses a subid file; a missing file means no ranges.
pub fn lookup(path: &Path, user: &str, uid: u32) -> anyhow::Result<Vec<SubidRange>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(parse(&s, user, uid)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(anyhow::Error::new(e).context(format!("read `{}`", path.display()))),
    }
}
