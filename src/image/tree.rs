//! Path resolution and removal confined to one root directory.
//!
//! Owns the rules that keep hostile layer paths inside the rootfs: entry
//! names are normalised lexically (`..` is refused), every lookup goes
//! through `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` from the
//! root's dirfd, and the last component is only ever touched with `*at`
//! calls that do not follow symlinks. Recursive removal walks dirfds
//! opened with `O_NOFOLLOW`, so a swapped-in symlink is unlinked, never
//! followed.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::ops::Bound;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use anyhow::Context;
use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::{fchmodat, fstatat, mkdirat, FchmodatFlags, FileStat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

use crate::sys::fs::{
    openat2, RESOLVE_BENEATH, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS,
};

/// Resolution for paths below the root: symlinks resolve as if the root
/// were `/`, and `/proc`-style magic links are refused.
const IN_ROOT: u64 = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
/// Resolution for one name inside an already-opened directory.
const ONE_NAME: u64 = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
/// Deepest directory nesting removal descends into (PATH_MAX bounds what
/// unpacking can create well below this).
const MAX_DEPTH: usize = 4096;

/// An opened root directory (the rootfs being unpacked into).
#[derive(Debug)]
pub(crate) struct Root {
    fd: OwnedFd,
}

/// Paths (normalised, relative) that the current layer created.
pub(crate) type Created = BTreeSet<PathBuf>;

impl Root {
    /// Opens `dest`, which must be an existing directory.
    pub(crate) fn open(dest: &Path) -> anyhow::Result<Root> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(dest)
            .with_context(|| format!("open directory `{}`", dest.display()))?;
        Ok(Root { fd: file.into() })
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Opens the directory at `rel` (empty = the root) for `*at` calls.
    pub(crate) fn open_dir(&self, rel: &Path) -> nix::Result<OwnedFd> {
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        openat2(self.fd(), rel, libc::O_PATH | libc::O_DIRECTORY, 0, IN_ROOT)
    }

    /// Opens the directory at `rel` for reading its entries.
    fn open_dir_readable(&self, rel: &Path) -> nix::Result<OwnedFd> {
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        openat2(
            self.fd(),
            rel,
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
            IN_ROOT,
        )
    }

    /// Opens directory `rel`, creating missing components (mode 0755) one
    /// at a time through the same confined resolution. New directories are
    /// recorded in `created`.
    pub(crate) fn ensure_dir(&self, rel: &Path, created: &mut Created) -> anyhow::Result<OwnedFd> {
        match self.open_dir(rel) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) => {}
            Err(err) => return Err(err).with_context(|| format!("open `{}`", rel.display())),
        }
        let mut prefix = PathBuf::new();
        let mut fd = self.open_dir(&prefix).context("open the root directory")?;
        for comp in rel.components() {
            let name = comp.as_os_str();
            prefix.push(name);
            fd = match self.open_dir(&prefix) {
                Ok(next) => next,
                Err(Errno::ENOENT) => {
                    match mkdirat(Some(fd.as_raw_fd()), name, Mode::from_bits_truncate(0o755)) {
                        Ok(()) => {
                            created.insert(prefix.clone());
                        }
                        Err(Errno::EEXIST) => {}
                        Err(err) => {
                            return Err(err).with_context(|| {
                                format!("create directory `{}`", prefix.display())
                            })
                        }
                    }
                    self.open_dir(&prefix)
                        .with_context(|| format!("open directory `{}`", prefix.display()))?
                }
                Err(err) => {
                    return Err(err)
                        .with_context(|| format!("open directory `{}`", prefix.display()))
                }
            };
        }
        Ok(fd)
    }

    /// Removes everything below directory `dir` that the current layer did
    /// not create (an opaque whiteout). Directories that hold entries of the
    /// current layer are kept and pruned recursively.
    pub(crate) fn prune_lower(&self, dir: &Path, created: &Created) -> anyhow::Result<()> {
        self.prune_lower_at(dir, created, 0)
    }

    fn prune_lower_at(&self, dir: &Path, created: &Created, depth: usize) -> anyhow::Result<()> {
        if depth > MAX_DEPTH {
            anyhow::bail!("prune `{}`: directories nest too deeply", dir.display());
        }
        let fd = match self.open_dir_readable(dir) {
            Ok(fd) => fd,
            Err(Errno::ENOENT | Errno::ENOTDIR) => return Ok(()),
            Err(err) => return Err(err).with_context(|| format!("open `{}`", dir.display())),
        };
        for name in list_names(&fd).with_context(|| format!("list `{}`", dir.display()))? {
            let child = dir.join(&name);
            if !created_under(created, &child) {
                remove_all(fd.as_fd(), &name)
                    .with_context(|| format!("remove `{}`", child.display()))?;
            } else if is_dir(fd.as_fd(), &name)? {
                self.prune_lower_at(&child, created, depth + 1)?;
            }
        }
        Ok(())
    }
}

/// Whether `path` or anything below it was created by the current layer.
pub(crate) fn created_under(created: &Created, path: &Path) -> bool {
    created
        .range::<Path, _>((Bound::Included(path), Bound::Unbounded))
        .next()
        .is_some_and(|p| p.starts_with(path))
}

/// Normalises a tar entry name into a relative path of plain names:
/// leading `/`, empty and `.` components are dropped. Returns `None` when
/// a `..` component would leave the root.
pub(crate) fn normalize(raw: &[u8]) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for comp in Path::new(OsStr::from_bytes(raw)).components() {
        match comp {
            Component::Normal(name) => out.push(name),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => return None,
        }
    }
    Some(out)
}

/// Splits a normalised, non-empty path into its parent and last name.
pub(crate) fn split_last(rel: &Path) -> Option<(&Path, &OsStr)> {
    Some((rel.parent()?, rel.file_name()?))
}

/// `lstat` of `name` in `dir`; `None` when it does not exist.
pub(crate) fn lstat_at(dir: BorrowedFd<'_>, name: &OsStr) -> nix::Result<Option<FileStat>> {
    match fstatat(Some(dir.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::ENOENT) => Ok(None),
        Err(err) => Err(err),
    }
}

pub(crate) fn is_dir_mode(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
}

fn is_dir(dir: BorrowedFd<'_>, name: &OsStr) -> anyhow::Result<bool> {
    let st =
        lstat_at(dir, name).with_context(|| format!("stat `{}`", Path::new(name).display()))?;
    Ok(st.as_ref().is_some_and(is_dir_mode))
}

/// Opens the real directory `name` inside `dir` for reading, refusing
/// symlinks; a directory without read/search permission is made 0700
/// first (it is ours to remove).
fn open_child_dir(dir: BorrowedFd<'_>, name: &OsStr) -> nix::Result<OwnedFd> {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
    match openat2(dir, Path::new(name), flags, 0, ONE_NAME) {
        Err(Errno::EACCES) => {
            fchmodat(
                Some(dir.as_raw_fd()),
                name,
                Mode::from_bits_truncate(0o700),
                FchmodatFlags::FollowSymlink,
            )?;
            openat2(dir, Path::new(name), flags, 0, ONE_NAME)
        }
        other => other,
    }
}

/// The names in an open directory, without `.` and `..`.
fn list_names(fd: &OwnedFd) -> nix::Result<Vec<OsString>> {
    let dir = nix::dir::Dir::from(fd.try_clone().map_err(|_| Errno::EMFILE)?)?;
    let mut names = Vec::new();
    for entry in dir {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(OsString::from_vec(name));
        }
    }
    Ok(names)
}

/// Removes `name` in `dir` and, if it is a directory, everything below it,
/// without following symlinks. A missing `name` is not an error.
pub(crate) fn remove_all(dir: BorrowedFd<'_>, name: &OsStr) -> nix::Result<()> {
    remove_all_at(dir, name, 0)
}

fn remove_all_at(dir: BorrowedFd<'_>, name: &OsStr, depth: usize) -> nix::Result<()> {
    match unlinkat(Some(dir.as_raw_fd()), name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => return Ok(()),
        Err(Errno::EISDIR) => {}
        Err(err) => return Err(err),
    }
    if depth > MAX_DEPTH {
        return Err(Errno::ELOOP);
    }
    let child = open_child_dir(dir, name)?;
    for entry in list_names(&child)? {
        remove_all_at(child.as_fd(), &entry, depth + 1)?;
    }
    match unlinkat(Some(dir.as_raw_fd()), name, UnlinkatFlags::RemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(err) => Err(err),
    }
}
