//! The two ends of `hutch cp`'s tar stream, working only from directory
//! descriptors: one end runs in a helper inside the container's user and
//! mount namespaces (root = the container's root), the other in the
//! user's `hutch` process on the host.
//!
//! Every path is resolved from a root descriptor with
//! openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS), and every name below
//! it is opened relative to its parent with O_NOFOLLOW: a symlink in the
//! container (`/etc/shadow`, `../../..`) is copied as a symlink and never
//! followed out of the root, and a symlink member of the stream cannot
//! redirect a later member (it too resolves inside the destination).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context};
use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::{fstatat, mkdirat, Mode, SFlag};
use nix::unistd::UnlinkatFlags;

use crate::sys::fs::{openat2, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS};

const IN_ROOT: u64 = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;

/// Opens `path` (a directory, or with `O_PATH` anything) inside `root`.
pub fn open_in(root: BorrowedFd<'_>, path: &Path, flags: i32) -> nix::Result<OwnedFd> {
    let rel = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    openat2(root, rel, flags, 0, IN_ROOT)
}

/// Splits a container or host path into (parent, last name); `None` as
/// the name means "the directory's contents" (`/`, `dir/.`).
pub fn split(path: &str) -> (PathBuf, Option<OsString>) {
    let contents = path.ends_with("/.") || path == "." || path.trim_end_matches('/').is_empty();
    let p = Path::new(path);
    if contents {
        return (p.to_path_buf(), None);
    }
    let name = p.file_name().map(OsStr::to_os_string);
    let parent = p.parent().map(Path::to_path_buf).unwrap_or_default();
    match name {
        Some(n) if n != ".." => (parent, Some(n)),
        _ => (p.to_path_buf(), None),
    }
}

/// Writes `name` in `parent` (or with `None` every entry of `parent`) to
/// `out` as a tar stream; members are named from `name` down.
pub fn write_tar<W: Write>(
    parent: BorrowedFd<'_>,
    name: Option<&OsStr>,
    out: W,
) -> anyhow::Result<W> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    match name {
        Some(n) => add(&mut b, parent, n, Path::new(n))?,
        None => {
            for child in list(parent)? {
                add(&mut b, parent, &child, Path::new(&child))?;
            }
        }
    }
    b.into_inner().context("finish the tar stream")
}

/// The names in `dir` (without `.` and `..`), sorted.
pub(super) fn list(dir: BorrowedFd<'_>) -> anyhow::Result<Vec<OsString>> {
    let fd = openat2(
        dir,
        Path::new("."),
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
        0,
    )
    .context("open a directory to list it")?;
    let mut d = nix::dir::Dir::from_fd(std::os::fd::IntoRawFd::into_raw_fd(fd))
        .context("list a directory")?;
    let mut names = Vec::new();
    for e in d.iter() {
        let e = e.context("read a directory")?;
        let n = OsStr::from_bytes(e.file_name().to_bytes());
        if n != "." && n != ".." {
            names.push(n.to_os_string());
        }
    }
    names.sort();
    Ok(names)
}

fn add<W: Write>(
    b: &mut tar::Builder<W>,
    parent: BorrowedFd<'_>,
    name: &OsStr,
    tar_path: &Path,
) -> anyhow::Result<()> {
    let what = || format!("copy `{}`", tar_path.display());
    let st =
        fstatat(Some(parent.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW).with_context(what)?;
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    let mut h = tar::Header::new_gnu();
    h.set_mode(st.st_mode & 0o7777);
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_uid(0);
    h.set_gid(0);
    match kind {
        SFlag::S_IFREG => {
            let f = openat2(
                parent,
                Path::new(name),
                libc::O_RDONLY | libc::O_NOFOLLOW,
                0,
                0,
            )
            .with_context(what)?;
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(st.st_size as u64);
            b.append_data(&mut h, tar_path, File::from(f).take(st.st_size as u64))
                .with_context(what)
        }
        SFlag::S_IFLNK => {
            let target =
                nix::fcntl::readlinkat(Some(parent.as_raw_fd()), name).with_context(what)?;
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, tar_path, Path::new(&target))
                .with_context(what)
        }
        SFlag::S_IFDIR => {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            b.append_data(&mut h, tar_path, std::io::empty())
                .with_context(what)?;
            let dir = openat2(
                parent,
                Path::new(name),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
                0,
            )
            .with_context(what)?;
            if is_kernel_fs(&dir) {
                return Ok(()); // the directory, not /proc's or /sys's contents
            }
            for child in list(dir.as_fd())? {
                add(b, dir.as_fd(), &child, &tar_path.join(&child))?;
            }
            Ok(())
        }
        _ => {
            eprintln!(
                "warning: {} skipped: not a file, directory or symlink",
                tar_path.display()
            );
            Ok(())
        }
    }
}

/// Kernel filesystems (proc, sysfs, devpts, cgroup): copying `/` copies
/// their mount points, not the kernel's files, as `docker cp` does.
fn is_kernel_fs(dir: &OwnedFd) -> bool {
    use nix::sys::statfs::{
        fstatfs, CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC, DEVPTS_SUPER_MAGIC, PROC_SUPER_MAGIC,
        SYSFS_MAGIC,
    };
    // O_PATH descriptors answer fstatfs(2) since Linux 2.6.39.
    fstatfs(dir).is_ok_and(|s| {
        [
            PROC_SUPER_MAGIC,
            SYSFS_MAGIC,
            DEVPTS_SUPER_MAGIC,
            CGROUP_SUPER_MAGIC,
            CGROUP2_SUPER_MAGIC,
        ]
        .contains(&s.filesystem_type())
    })
}

/// Unpacks a tar stream into the directory `dest`. With `rename`, the
/// first component of every member is replaced (copying `a` to `b`).
/// Members must be relative and free of `..`; each is created relative
/// to its parent, resolved inside `dest`.
pub fn extract<R: Read>(
    input: R,
    dest: BorrowedFd<'_>,
    rename: Option<&OsStr>,
) -> anyhow::Result<()> {
    let mut ar = tar::Archive::new(input);
    for entry in ar.entries().context("read the tar stream")? {
        let mut entry = entry.context("read the tar stream")?;
        let raw = entry.path().context("read a member name")?.into_owned();
        let Some(path) = member_path(&raw, rename)? else {
            continue;
        };
        let what = || format!("copy `{}`", path.display());
        let (parent_path, name) = match (path.parent(), path.file_name()) {
            (Some(p), Some(n)) => (p.to_path_buf(), n.to_os_string()),
            _ => continue,
        };
        let parent =
            open_in(dest, &parent_path, libc::O_PATH | libc::O_DIRECTORY).with_context(what)?;
        let mode = entry.header().mode().unwrap_or(0o644) & 0o7777;
        match entry.header().entry_type() {
            tar::EntryType::Directory => match mkdirat(
                Some(parent.as_raw_fd()),
                name.as_os_str(),
                Mode::from_bits_truncate(mode),
            ) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(e).with_context(what),
            },
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                remove_non_dir(parent.as_fd(), &name).with_context(what)?;
                let f = openat2(
                    parent.as_fd(),
                    Path::new(&name),
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
                    mode,
                    0,
                )
                .with_context(what)?;
                let mut f = File::from(f);
                std::io::copy(&mut entry, &mut f).with_context(what)?;
                nix::sys::stat::fchmod(f.as_raw_fd(), Mode::from_bits_truncate(mode))
                    .with_context(what)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .with_context(what)?
                    .context("symlink without target")?;
                remove_non_dir(parent.as_fd(), &name).with_context(what)?;
                nix::unistd::symlinkat(target.as_ref(), Some(parent.as_raw_fd()), name.as_os_str())
                    .with_context(what)?;
            }
            other => eprintln!(
                "warning: {} skipped: unsupported member type {other:?}",
                path.display()
            ),
        }
    }
    // The reader stops at the first zero block; a writer may still be
    // sending the second one, or tar(1)'s padding to a 10 KiB record.
    // Read it, so that writer does not die of a broken pipe (bounded:
    // a container's writer may never stop).
    let _ = std::io::copy(
        &mut ar.into_inner().take(TRAILER_LIMIT),
        &mut std::io::sink(),
    );
    Ok(())
}

/// What `extract` reads past the end of an archive, at most.
const TRAILER_LIMIT: u64 = 1 << 20;

fn remove_non_dir(parent: BorrowedFd<'_>, name: &OsStr) -> nix::Result<()> {
    match nix::unistd::unlinkat(Some(parent.as_raw_fd()), name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

/// A member's path checked (relative, no `..`) and renamed; `None` for
/// the archive's `.` entry.
fn member_path(raw: &Path, rename: Option<&OsStr>) -> anyhow::Result<Option<PathBuf>> {
    let mut parts = Vec::new();
    for c in raw.components() {
        match c {
            Component::Normal(n) => parts.push(n.to_os_string()),
            Component::CurDir => {}
            _ => bail!(
                "copy `{}`: member names must be relative and without `..`",
                raw.display()
            ),
        }
    }
    if parts.is_empty() {
        return Ok(None);
    }
    if let Some(new) = rename {
        parts[0] = new.to_os_string();
    }
    Ok(Some(parts.iter().collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_like_docker_cp() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("/etc/hostname", "/etc", Some("hostname")),
            ("/etc/", "/", Some("etc")),
            ("/etc/.", "/etc/.", None),
            ("/", "/", None),
            ("rel/file", "rel", Some("file")),
            ("file", "", Some("file")),
            ("/a/..", "/a/..", None),
        ];
        for (path, parent, name) in cases {
            let (p, n) = split(path);
            assert_eq!(p, Path::new(parent), "{path}");
            assert_eq!(n.as_deref(), name.map(OsStr::new), "{path}");
        }
    }

    #[test]
    fn hostile_member_names_are_refused_and_renames_apply() {
        let new = Some(OsStr::new("b"));
        assert_eq!(
            member_path(Path::new("a/x"), new).unwrap(),
            Some(PathBuf::from("b/x"))
        );
        assert_eq!(
            member_path(Path::new("./a"), None).unwrap(),
            Some(PathBuf::from("a"))
        );
        assert_eq!(member_path(Path::new("."), new).unwrap(), None);
        for bad in ["../x", "/etc/passwd", "a/../../x"] {
            assert!(member_path(Path::new(bad), None).is_err(), "{bad}");
        }
    }

    #[test]
    fn trees_round_trip_with_symlinks_kept_as_symlinks() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "host").unwrap();
        let d = src.path().join("d");
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(d.join("sub/f"), "data").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), d.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../..", d.join("up")).unwrap();
        let root = File::open(src.path()).unwrap();
        let tar = write_tar(root.as_fd(), Some(OsStr::new("d")), Vec::new()).unwrap();
        let out = File::open(dst.path()).unwrap();
        extract(&tar[..], out.as_fd(), Some(OsStr::new("copy"))).unwrap();
        let c = dst.path().join("copy");
        assert_eq!(std::fs::read_to_string(c.join("sub/f")).unwrap(), "data");
        assert_eq!(
            std::fs::read_link(c.join("abs")).unwrap(),
            outside.path().join("secret")
        );
        assert_eq!(
            std::fs::read_link(c.join("up")).unwrap(),
            Path::new("../../../../..")
        );
        // A later member under a symlink member stays inside the destination.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "esc", outside.path()).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        b.append_data(&mut h, "esc/secret", &b"bad"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        let _ = extract(&tar[..], out.as_fd(), None);
        assert_eq!(
            std::fs::read_to_string(outside.path().join("secret")).unwrap(),
            "host"
        );
    }

    #[test]
    fn the_end_of_an_archive_and_its_padding_are_read_but_not_without_bound() {
        let src = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("f"), "x").unwrap();
        let root = File::open(src.path()).unwrap();
        let mut tar = write_tar(root.as_fd(), Some(OsStr::new("f")), Vec::new()).unwrap();
        // tar(1) pads to a 10 KiB record: a writer sends these zeros
        // after the reader has seen the end, and must not get EPIPE.
        tar.resize(tar.len() + 10240, 0);
        let dst = tempfile::tempdir().unwrap();
        let out = File::open(dst.path()).unwrap();
        let mut input = std::io::Cursor::new(&tar);
        extract(&mut input, out.as_fd(), None).unwrap();
        assert_eq!(input.position() as usize, tar.len());
        // An endless writer is not drained forever.
        let endless = std::io::Cursor::new(tar).chain(std::io::repeat(0));
        let mut endless = endless.take(u64::MAX);
        extract(&mut endless, out.as_fd(), None).unwrap();
        assert!(endless.limit() > 0);
    }
}
