//! Applying one tar stream (a layer, or an OCI archive) below a [`Root`].
//!
//! Owns the per-entry rules: whiteouts, replacing what lower layers left,
//! creating files, directories, links and device nodes with `*at` calls on
//! confined dirfds, and metadata (owner, mode with setuid bits, mtime,
//! xattrs). Tar content is hostile: names are normalised, `..` is refused,
//! sizes are checked against what the stream really holds.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::{fchmodat, mkdirat, mknodat, utimensat, FchmodatFlags, Mode, SFlag};
use nix::sys::stat::{makedev, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, linkat, symlinkat, Gid, Uid};
use tar::EntryType;

use super::holes::HoleCopier;
use super::tree::{self, Created, Root};
use super::UnpackReport;
use crate::errors::WithHint;
use crate::sys::fs::{openat2, RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS};

const ONE_NAME: u64 = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
const WHITEOUT: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";

/// What kind of stream is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    /// An image layer: every entry type, whiteouts, optional ownership.
    Layer { preserve_ownership: bool },
    /// An OCI archive: only files and directories, no special bits.
    Archive,
}

/// Applies tar entries to a root, tracking what the current stream made.
pub(crate) struct Applier<'a> {
    root: &'a Root,
    policy: Policy,
    report: &'a mut UnpackReport,
    created: Created,
    /// Directories to finish once the stream is done: children change the
    /// mtime, and a mode without owner rwx would block creating children.
    dirs: Vec<DirFinish>,
    /// Write whiteouts as overlayfs expects them in a lower layer (a 0/0
    /// character device; `user.overlay.opaque` on an opaque directory)
    /// instead of applying them to what earlier layers left here.
    overlay: bool,
    /// Writes file content with zero blocks left as holes.
    holes: HoleCopier,
}

/// What is left to do for a directory after its children are written.
struct DirFinish {
    rel: PathBuf,
    /// The header mode, when it lacks owner rwx and was widened meanwhile.
    mode: Option<u32>,
    mtime: Option<SystemTime>,
}

/// Metadata from a tar header, read before the entry's data.
struct Meta {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: Option<SystemTime>,
    xattrs: Vec<(String, Vec<u8>)>,
}

impl<'a> Applier<'a> {
    pub(crate) fn new(root: &'a Root, policy: Policy, report: &'a mut UnpackReport) -> Self {
        Applier {
            root,
            policy,
            report,
            created: Created::new(),
            dirs: Vec::new(),
            overlay: false,
            holes: HoleCopier::default(),
        }
    }

    /// Keeps whiteouts as overlayfs markers (for a layer unpacked alone).
    pub(crate) fn with_overlay_whiteouts(mut self, on: bool) -> Self {
        self.overlay = on;
        self
    }

    /// Applies every entry of the tar stream `reader`, then sets the
    /// directory mtimes. The stream may lack the end-of-archive blocks.
    pub(crate) fn apply_tar<R: Read>(&mut self, reader: R) -> anyhow::Result<()> {
        let mut archive = tar::Archive::new(reader);
        for entry in archive.entries().context("read tar stream")? {
            let mut entry = entry.context("read tar header")?;
            let raw = entry.path_bytes().into_owned();
            let shown = String::from_utf8_lossy(&raw).into_owned();
            self.apply_entry(&mut entry, &raw)
                .with_context(|| format!("entry `{shown}`"))?;
        }
        self.finish_dirs()
    }

    fn apply_entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        raw: &[u8],
    ) -> anyhow::Result<()> {
        let kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            return Ok(());
        }
        let Some(rel) = tree::normalize(raw) else {
            anyhow::bail!("it leaves the root");
        };
        let Some((parent, name)) = tree::split_last(&rel) else {
            return Ok(()); // the root itself: keep dest's own metadata
        };
        if let Policy::Layer { .. } = self.policy {
            if name.as_bytes().starts_with(WHITEOUT) {
                return self.whiteout(parent, name);
            }
        }
        let meta = self.read_meta(entry)?;
        let dir = self.root.ensure_dir(parent, &mut self.created)?;
        let made = match (self.policy, kind) {
            (_, EntryType::Directory) => self.make_dir(&dir, &rel, name, &meta)?,
            // A GNU sparse member reads as its full content, holes as
            // zeros (the tar reader checks the map against its size).
            (_, EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse) => {
                self.make_file(&dir, name, &meta, entry)?
            }
            (Policy::Layer { .. }, EntryType::Symlink) => {
                self.make_symlink(&dir, name, &meta, entry)?
            }
            (Policy::Layer { .. }, EntryType::Link) => {
                self.make_hardlink(&dir, &rel, name, entry)?
            }
            (Policy::Layer { .. }, EntryType::Char | EntryType::Block | EntryType::Fifo) => {
                self.make_node(&dir, name, kind, &meta, entry)?
            }
            (_, other) => anyhow::bail!("its type `{other:?}` is not supported here"),
        };
        if made {
            self.created.insert(rel);
        }
        Ok(())
    }

    fn read_meta<R: Read>(&self, entry: &mut tar::Entry<'_, R>) -> anyhow::Result<Meta> {
        let header = entry.header();
        let mut mode = header.mode().context("read mode")? & 0o7777;
        let (uid, gid) = (
            header.uid().context("read uid")?,
            header.gid().context("read gid")?,
        );
        let mtime = header
            .mtime()
            .ok()
            .and_then(|s| UNIX_EPOCH.checked_add(Duration::from_secs(s)));
        let mut xattrs = Vec::new();
        match self.policy {
            Policy::Archive => mode = 0o700, // private scratch; only we read it
            Policy::Layer { .. } => {
                if let Some(exts) = entry.pax_extensions().context("read pax headers")? {
                    for ext in exts {
                        let ext = ext.context("read pax header")?;
                        let Ok(key) = ext.key() else { continue };
                        // GNU tar's sparse files in PAX headers (formats
                        // 0.1 and 1.0): the tar reader would hand over the
                        // sparse map as content, under a made-up name.
                        if key.starts_with("GNU.sparse.") {
                            return Err(anyhow::anyhow!(
                                "it is a sparse file in GNU tar's PAX format (`{key}`), which hutch does not read"
                            ))
                            .hint("rebuild the layer without `--sparse`, or with GNU tar's default format");
                        }
                        if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                            if name.starts_with("user.") || name == "security.capability" {
                                xattrs.push((name.to_owned(), ext.value_bytes().to_vec()));
                            }
                        }
                    }
                }
            }
        }
        Ok(Meta {
            mode,
            uid,
            gid,
            mtime,
            xattrs,
        })
    }

    /// `.wh.NAME` removes NAME from lower layers; `.wh..wh..opq` empties
    /// the directory of lower-layer entries. Entries of this layer stay.
    fn whiteout(&mut self, parent: &Path, name: &OsStr) -> anyhow::Result<()> {
        if self.overlay {
            return self.overlay_whiteout(parent, name);
        }
        let bytes = name.as_bytes();
        if bytes == OPAQUE {
            return self.root.prune_lower(parent, &self.created);
        }
        let target = bytes.get(WHITEOUT.len()..).unwrap_or_default();
        if target.starts_with(WHITEOUT) {
            return Ok(()); // other AUFS metadata (`.wh..wh.plnk`, ...)
        }
        if target.is_empty() || target == b"." || target == b".." {
            anyhow::bail!("it whites out an invalid name");
        }
        let target = OsStr::from_bytes(target);
        let target_rel = parent.join(target);
        if tree::created_under(&self.created, &target_rel) {
            return Ok(());
        }
        let dir = match self.root.open_dir(parent) {
            Ok(dir) => dir,
            Err(Errno::ENOENT | Errno::ENOTDIR) => return Ok(()),
            Err(err) => return Err(err).with_context(|| format!("open `{}`", parent.display())),
        };
        tree::remove_all(dir.as_fd(), target)
            .with_context(|| format!("remove `{}`", target_rel.display()))
    }

    /// The overlayfs form of a whiteout, for layers mounted as lowerdirs
    /// (overlayfs(5) "whiteouts and opaque directories"; the 0/0 device
    /// needs no CAP_MKNOD since Linux 5.8, and `user.` xattrs are what
    /// overlay reads when mounted with `userxattr`).
    fn overlay_whiteout(&mut self, parent: &Path, name: &OsStr) -> anyhow::Result<()> {
        let bytes = name.as_bytes();
        let dir = self.root.ensure_dir(parent, &mut self.created)?;
        if bytes == OPAQUE {
            let readable = crate::sys::fs::openat2(
                dir.as_fd(),
                Path::new("."),
                libc::O_RDONLY | libc::O_DIRECTORY,
                0,
                0,
            )
            .with_context(|| format!("open `{}`", parent.display()))?;
            return crate::sys::fs::fsetxattr(readable.as_fd(), "user.overlay.opaque", b"y")
                .with_context(|| format!("mark `{}` opaque", parent.display()));
        }
        let target = bytes.get(WHITEOUT.len()..).unwrap_or_default();
        if target.starts_with(WHITEOUT) {
            return Ok(()); // other AUFS metadata (`.wh..wh.plnk`, ...)
        }
        if target.is_empty() || target == b"." || target == b".." || target.contains(&b'/') {
            anyhow::bail!("it whites out an invalid name");
        }
        let target = OsStr::from_bytes(target);
        let dev = nix::sys::stat::makedev(0, 0);
        match nix::sys::stat::mknodat(
            Some(dir.as_raw_fd()),
            target,
            SFlag::S_IFCHR,
            Mode::empty(),
            dev,
        ) {
            Ok(()) | Err(Errno::EEXIST) => Ok(()),
            // A filesystem that refuses the 0/0 device in a user namespace
            // (overlayfs, some network filesystems) cannot hold kernel
            // overlay upper dirs either: keep the AUFS form, which
            // fuse-overlayfs reads as a whiteout.
            Err(Errno::EPERM | Errno::EOPNOTSUPP) => {
                let flags = libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW;
                crate::sys::fs::openat2(dir.as_fd(), Path::new(name), flags, 0o600, 0)
                    .map(drop)
                    .or_else(|e| if e == Errno::EEXIST { Ok(()) } else { Err(e) })
                    .with_context(|| format!("whiteout `{}`", parent.join(target).display()))
            }
            Err(err) => {
                Err(err).with_context(|| format!("whiteout `{}`", parent.join(target).display()))
            }
        }
    }

    fn make_dir(
        &mut self,
        dir: &OwnedFd,
        rel: &Path,
        name: &OsStr,
        meta: &Meta,
    ) -> anyhow::Result<bool> {
        let existing = tree::lstat_at(dir.as_fd(), name).context("stat")?;
        let fresh = match existing {
            Some(st) if tree::is_dir_mode(&st) => false,
            Some(_) => {
                tree::remove_all(dir.as_fd(), name).context("remove what was there")?;
                true
            }
            None => true,
        };
        if fresh {
            mkdirat(Some(dir.as_raw_fd()), name, Mode::from_bits_truncate(0o700))
                .context("create directory")?;
        }
        self.chown_at(dir.as_fd(), name, meta)?;
        let deferred = (meta.mode & 0o700 != 0o700).then_some(meta.mode);
        fchmodat(
            Some(dir.as_raw_fd()),
            name,
            Mode::from_bits_truncate(meta.mode | 0o700),
            FchmodatFlags::FollowSymlink, // just checked or made: a real directory
        )
        .context("set mode")?;
        if !meta.xattrs.is_empty() {
            let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
            if let Ok(fd) = openat2(dir.as_fd(), Path::new(name), flags, 0, ONE_NAME) {
                set_xattrs(fd.as_fd(), &meta.xattrs)?;
            }
        }
        self.dirs.push(DirFinish {
            rel: rel.to_path_buf(),
            mode: deferred,
            mtime: meta.mtime,
        });
        Ok(fresh)
    }

    fn make_file<R: Read>(
        &mut self,
        dir: &OwnedFd,
        name: &OsStr,
        meta: &Meta,
        entry: &mut tar::Entry<'_, R>,
    ) -> anyhow::Result<bool> {
        tree::remove_all(dir.as_fd(), name).context("remove what was there")?;
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
        let fd =
            openat2(dir.as_fd(), Path::new(name), flags, 0o600, ONE_NAME).context("create file")?;
        let file = File::from(fd);
        // For a sparse member, its real size (the tar reader sets it).
        let want = entry.size();
        let wrote = self.holes.copy(entry, &file).context("write file")?;
        if wrote != want {
            anyhow::bail!("the stream ends after {wrote} of its {want} bytes");
        }
        if let Policy::Layer {
            preserve_ownership: true,
        } = self.policy
        {
            let res = owner(meta)
                .and_then(|(u, g)| nix::unistd::fchown(file.as_raw_fd(), Some(u), Some(g)));
            self.count_flattened(res)?;
        }
        // After chown: chown clears setuid/setgid.
        file.set_permissions(std::fs::Permissions::from_mode(meta.mode))
            .context("set mode")?;
        set_xattrs(file.as_fd(), &meta.xattrs)?;
        if let Some(mtime) = meta.mtime {
            let times = std::fs::FileTimes::new()
                .set_accessed(mtime)
                .set_modified(mtime);
            file.set_times(times).context("set mtime")?;
        }
        Ok(true)
    }

    fn make_symlink<R: Read>(
        &mut self,
        dir: &OwnedFd,
        name: &OsStr,
        meta: &Meta,
        entry: &tar::Entry<'_, R>,
    ) -> anyhow::Result<bool> {
        let Some(target) = entry.link_name_bytes() else {
            anyhow::bail!("the symlink has no target");
        };
        tree::remove_all(dir.as_fd(), name).context("remove what was there")?;
        symlinkat(OsStr::from_bytes(&target), Some(dir.as_raw_fd()), name)
            .context("create symlink")?;
        self.chown_at(dir.as_fd(), name, meta)?;
        self.set_time_at(dir.as_fd(), name, meta.mtime)?;
        Ok(true)
    }

    /// A hard link whose target is resolved inside the root only.
    fn make_hardlink<R: Read>(
        &mut self,
        dir: &OwnedFd,
        rel: &Path,
        name: &OsStr,
        entry: &tar::Entry<'_, R>,
    ) -> anyhow::Result<bool> {
        let raw = entry.link_name_bytes().unwrap_or_default();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let Some(target) = tree::normalize(&raw) else {
            anyhow::bail!("its link target `{shown}` leaves the root");
        };
        let Some((tparent, tname)) = tree::split_last(&target) else {
            anyhow::bail!("its link target `{shown}` is the root");
        };
        if target == rel {
            return Ok(false);
        }
        let tdir = self
            .root
            .open_dir(tparent)
            .with_context(|| format!("open the directory of link target `{shown}`"))?;
        tree::remove_all(dir.as_fd(), name).context("remove what was there")?;
        linkat(
            Some(tdir.as_raw_fd()),
            tname,
            Some(dir.as_raw_fd()),
            name,
            AtFlags::empty(), // link the entry itself, never what a symlink names
        )
        .with_context(|| format!("link to `{shown}`"))?;
        Ok(true)
    }

    fn make_node<R: Read>(
        &mut self,
        dir: &OwnedFd,
        name: &OsStr,
        kind: EntryType,
        meta: &Meta,
        entry: &tar::Entry<'_, R>,
    ) -> anyhow::Result<bool> {
        let header = entry.header();
        let (sflag, dev) = match kind {
            EntryType::Fifo => (SFlag::S_IFIFO, 0),
            _ => {
                let major = header
                    .device_major()
                    .context("read device major")?
                    .unwrap_or(0);
                let minor = header
                    .device_minor()
                    .context("read device minor")?
                    .unwrap_or(0);
                let sflag = if kind == EntryType::Char {
                    SFlag::S_IFCHR
                } else {
                    SFlag::S_IFBLK
                };
                (sflag, makedev(u64::from(major), u64::from(minor)))
            }
        };
        tree::remove_all(dir.as_fd(), name).context("remove what was there")?;
        let perm = Mode::from_bits_truncate(meta.mode & 0o777);
        match mknodat(Some(dir.as_raw_fd()), name, sflag, perm, dev) {
            Ok(()) => {}
            Err(Errno::EPERM) if sflag != SFlag::S_IFIFO => {
                self.report.skipped_devices = self.report.skipped_devices.saturating_add(1);
                return Ok(false);
            }
            Err(err) => return Err(err).context("create node"),
        }
        self.chown_at(dir.as_fd(), name, meta)?;
        fchmodat(
            Some(dir.as_raw_fd()),
            name,
            Mode::from_bits_truncate(meta.mode),
            FchmodatFlags::FollowSymlink, // just made: not a symlink
        )
        .context("set mode")?;
        self.set_time_at(dir.as_fd(), name, meta.mtime)?;
        Ok(true)
    }

    /// Applies the header owner (without following symlinks) if asked.
    fn chown_at(&mut self, dir: BorrowedFd<'_>, name: &OsStr, meta: &Meta) -> anyhow::Result<()> {
        if let Policy::Layer {
            preserve_ownership: true,
        } = self.policy
        {
            let res = owner(meta).and_then(|(u, g)| {
                let flags = AtFlags::AT_SYMLINK_NOFOLLOW;
                fchownat(Some(dir.as_raw_fd()), name, Some(u), Some(g), flags)
            });
            self.count_flattened(res)?;
        }
        Ok(())
    }

    /// An owner that is not mapped in this user namespace stays as is.
    fn count_flattened(&mut self, res: nix::Result<()>) -> anyhow::Result<()> {
        match res {
            Ok(()) => Ok(()),
            Err(Errno::EINVAL | Errno::EPERM) => {
                self.report.flattened_owners = self.report.flattened_owners.saturating_add(1);
                Ok(())
            }
            Err(err) => Err(err).context("set owner"),
        }
    }

    fn set_time_at(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        mtime: Option<SystemTime>,
    ) -> anyhow::Result<()> {
        let Some(mtime) = mtime else { return Ok(()) };
        let ts = timespec(mtime);
        utimensat(
            Some(dir.as_raw_fd()),
            name,
            &ts,
            &ts,
            UtimensatFlags::NoFollowSymlink,
        )
        .context("set mtime")
    }

    /// Sets the exact modes and mtimes of this stream's directories, last
    /// first. An entry replaced since (say by a symlink) is left alone.
    fn finish_dirs(&mut self) -> anyhow::Result<()> {
        for done in std::mem::take(&mut self.dirs).into_iter().rev() {
            let Some((parent, name)) = tree::split_last(&done.rel) else {
                continue;
            };
            let Ok(dir) = self.root.open_dir(parent) else {
                continue;
            };
            self.finish_dir(dir.as_fd(), name, &done)
                .with_context(|| format!("finish directory `{}`", done.rel.display()))?;
        }
        Ok(())
    }

    fn finish_dir(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        done: &DirFinish,
    ) -> anyhow::Result<()> {
        if let Some(mode) = done.mode {
            let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
            match openat2(dir, Path::new(name), flags, 0, ONE_NAME) {
                Ok(fd) => File::from(fd)
                    .set_permissions(std::fs::Permissions::from_mode(mode))
                    .context("set mode")?,
                Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => return Ok(()),
                Err(err) => return Err(err).context("open"),
            }
        }
        match self.set_time_at(dir, name, done.mtime) {
            Err(err) if is_errno(&err, Errno::ENOENT) => Ok(()),
            other => other,
        }
    }
}

fn is_errno(err: &anyhow::Error, want: Errno) -> bool {
    err.chain()
        .any(|c| c.downcast_ref::<Errno>() == Some(&want))
}

fn timespec(t: SystemTime) -> TimeSpec {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    TimeSpec::from_duration(d)
}

/// The header owner; ids beyond 32 bits can never be mapped (EINVAL).
fn owner(meta: &Meta) -> nix::Result<(Uid, Gid)> {
    let uid = u32::try_from(meta.uid).map_err(|_| Errno::EINVAL)?;
    let gid = u32::try_from(meta.gid).map_err(|_| Errno::EINVAL)?;
    Ok((Uid::from_raw(uid), Gid::from_raw(gid)))
}

/// Sets `user.*` and `security.capability` xattrs; refusals are ignored
/// (unprivileged, or a filesystem without xattrs).
fn set_xattrs(fd: BorrowedFd<'_>, xattrs: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
    for (name, value) in xattrs {
        // overlayfs' own markers are ours to write, never an image's: a
        // layer could otherwise hide or redirect files of other layers.
        if name.starts_with("user.overlay.") || name.starts_with("trusted.overlay.") {
            continue;
        }
        match crate::sys::fs::fsetxattr(fd, name, value) {
            Ok(()) | Err(Errno::EPERM | Errno::ENOTSUP | Errno::EINVAL | Errno::EACCES) => {}
            Err(err) => return Err(err).with_context(|| format!("set xattr `{name}`")),
        }
    }
    Ok(())
}
