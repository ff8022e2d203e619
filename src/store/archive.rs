//! Random access to the members of a (hostile) tar archive on disk.
//!
//! One pass records where each regular file's bytes start; members are
//! then read in place with positional reads, never extracted. Member
//! names are normalised (`./` and empty parts dropped); absolute names and
//! names that climb out with `..` are never indexed (a leading `/` is
//! dropped: nothing is written, names only select). Symlinks and hard
//! links between members (skopeo's `ID/layer.tar -> ../HEX.tar`) are
//! followed inside the archive only, a bounded number of times.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

use anyhow::Context;
use tar::EntryType;

/// More members than this is not an image archive.
const MAX_MEMBERS: usize = 100_000;
/// How many links may be followed to reach a file.
const MAX_HOPS: usize = 8;

#[derive(Debug, Clone)]
enum Member {
    File { offset: u64, size: u64 },
    Link(String),
}

/// The members of an archive file, by normalised name.
pub struct ArchiveIndex {
    file: File,
    members: HashMap<String, Member>,
}

impl ArchiveIndex {
    /// Indexes every member of the tar in `file`.
    pub fn open(file: File) -> anyhow::Result<ArchiveIndex> {
        let mut members = HashMap::new();
        {
            let mut ar = tar::Archive::new(&file);
            let entries = ar.entries_with_seek().context("read archive")?;
            for entry in entries {
                let entry = entry.context("read archive member")?;
                if members.len() >= MAX_MEMBERS {
                    anyhow::bail!("read archive: more than {MAX_MEMBERS} members");
                }
                let Some(name) = normalize(&String::from_utf8_lossy(&entry.path_bytes()), "")
                else {
                    continue;
                };
                let link = entry
                    .link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned());
                let member = match (entry.header().entry_type(), link) {
                    (EntryType::Regular | EntryType::Continuous, _) => Member::File {
                        offset: entry.raw_file_position(),
                        size: entry.size(),
                    },
                    (EntryType::Symlink, Some(target)) => {
                        let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
                        match normalize(&target, dir) {
                            Some(t) if !target.starts_with('/') => Member::Link(t),
                            _ => continue,
                        }
                    }
                    (EntryType::Link, Some(target)) => match normalize(&target, "") {
                        Some(t) => Member::Link(t),
                        None => continue,
                    },
                    _ => continue,
                };
                members.insert(name, member);
            }
        }
        Ok(ArchiveIndex { file, members })
    }

    pub fn has(&self, name: &str) -> bool {
        self.locate(name).is_ok()
    }

    /// Where a regular-file member's bytes are, following links.
    fn locate(&self, name: &str) -> anyhow::Result<(u64, u64)> {
        let mut key = normalize(name, "")
            .with_context(|| format!("find `{name}` in the archive: not a valid member name"))?;
        for _ in 0..MAX_HOPS {
            match self.members.get(&key) {
                Some(Member::File { offset, size }) => return Ok((*offset, *size)),
                Some(Member::Link(target)) => key = target.clone(),
                None => anyhow::bail!("find `{name}` in the archive: no such file"),
            }
        }
        anyhow::bail!("find `{name}` in the archive: too many links")
    }

    /// A reader of a member's bytes, and their count.
    pub fn reader(&self, name: &str) -> anyhow::Result<(MemberReader<'_>, u64)> {
        let (offset, size) = self.locate(name)?;
        let end = offset
            .checked_add(size)
            .with_context(|| format!("read `{name}` in the archive: bad size"))?;
        Ok((
            MemberReader {
                file: &self.file,
                pos: offset,
                end,
            },
            size,
        ))
    }

    /// A small member read completely; larger than `cap` is an error.
    pub fn read_small(&self, name: &str, cap: u64) -> anyhow::Result<Vec<u8>> {
        let (mut r, size) = self.reader(name)?;
        if size > cap {
            anyhow::bail!(
                "read `{name}` in the archive: {size} bytes is over the {cap}-byte limit"
            );
        }
        let mut buf = Vec::new();
        r.read_to_end(&mut buf)
            .with_context(|| format!("read `{name}` in the archive"))?;
        Ok(buf)
    }
}

/// Positional reads of one member; never moves a shared file offset.
pub struct MemberReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for MemberReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end.saturating_sub(self.pos);
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        let Some(slice) = buf.get_mut(..want) else {
            return Ok(0);
        };
        if slice.is_empty() {
            return Ok(0);
        }
        let n = self.file.read_at(slice, self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "archive is truncated",
            ));
        }
        self.pos = self
            .pos
            .saturating_add(u64::try_from(n).map_err(io::Error::other)?);
        Ok(n)
    }
}

/// Normalises `name` (relative to the directory `base`): drops `.` and
/// empty parts, resolves `..` without leaving the archive's root. `None`
/// for names that climb out or that are empty.
pub fn normalize(name: &str, base: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    let base = if name.starts_with('/') { "" } else { base };
    for part in base.split('/').chain(name.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_stays_inside() {
        assert_eq!(normalize("./a/b", "").as_deref(), Some("a/b"));
        assert_eq!(normalize("../x.tar", "id").as_deref(), Some("x.tar"));
        assert_eq!(normalize("/abs", "").as_deref(), Some("abs"));
        assert_eq!(normalize("../../x", "id"), None);
        assert_eq!(normalize("..", ""), None);
        assert_eq!(normalize("./", ""), None);
        assert_eq!(normalize("a//./b/..", "").as_deref(), Some("a"));
    }
}
