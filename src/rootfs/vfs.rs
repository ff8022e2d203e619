//! The vfs rung: a container's private rootfs, copied from the same
//! unpacked layers the overlay rungs mount (`storage/layers/MAPKEY/HEX`),
//! bottom layer first, merged the way overlayfs would show them. Runs
//! inside the user namespace with the container's maps (the layers'
//! owners are subordinate ids), in the unpacking child of `rootfs`.
//!
//! What the unpacker leaves in a layer for overlay (`image::entry`):
//! a whiteout is a 0/0 character device (or, on a filesystem that refuses
//! it, the AUFS `.wh.NAME` file), an opaque directory carries
//! `user.overlay.opaque=y`; an image cannot plant either xattr itself.
//! Here a whiteout removes the name from what the lower layers copied, an
//! opaque directory replaces the lower one instead of merging into it,
//! and anything else replaces what lower layers left at its name, except
//! a directory over a directory, which merges (its mode, owner, times and
//! xattrs are the upper one's, as overlay shows them).
//!
//! Everything is done with `*at` calls on directory descriptors opened
//! without following symlinks, on both sides: a symlink in a layer or in
//! the copy is copied or replaced, never followed. File data is cloned
//! with FICLONE where the filesystem shares blocks (btrfs, XFS), else
//! copied by `std::io::copy`, which uses copy_file_range(2) (in-kernel,
//! and server-side on NFS) and falls back to read/write. Hard links
//! within a layer stay hard links in the copy.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use nix::errno::Errno;
use nix::fcntl::{readlinkat, AtFlags};
use nix::sys::stat::{
    fchmod, fchmodat, futimens, mkdirat, mknodat, utimensat, FchmodatFlags, FileStat, Mode, SFlag,
    UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, Gid, Uid};

use crate::image::tree::{lstat_at, remove_all};
use crate::sys::fs::{openat2, RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS};

/// Resolution for a path below an opened directory, through no symlink.
const BENEATH: u64 = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
/// Deepest directory nesting copied (PATH_MAX bounds what unpacking can
/// create well below this).
const MAX_DEPTH: usize = 4096;
const WHITEOUT: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";
/// overlayfs' own markers: read here, never copied into a rootfs.
const OVERLAY_XATTRS: [&str; 2] = ["user.overlay.", "trusted.overlay."];

/// Copies the unpacked `layers` (bottom first) into the existing, empty
/// directory `rootfs`, merged as overlayfs would show them.
pub fn merge_layers(layers: &[PathBuf], rootfs: &Path) -> anyhow::Result<()> {
    let dst = open_dir(rootfs)?;
    for layer in layers {
        let src = open_dir(layer)?;
        let mut copier = Copier {
            root: dst.as_fd(),
            links: HashMap::new(),
        };
        copier
            .merge_dir(src.as_fd(), dst.as_fd(), Path::new(""), 0)
            .and_then(|()| {
                let st = nix::sys::stat::fstat(src.as_raw_fd()).context("stat `/`")?;
                set_meta_fd(src.as_fd(), dst.as_fd(), &st).context("copy `/`")
            })
            .with_context(|| format!("copy layer `{}`", layer.display()))?;
    }
    Ok(())
}

fn open_dir(path: &Path) -> anyhow::Result<OwnedFd> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("open directory `{}`", path.display()))?;
    Ok(file.into())
}

/// One layer's copy into the rootfs.
struct Copier<'a> {
    /// The rootfs, for hard links (whose first copy is named from it).
    root: BorrowedFd<'a>,
    /// Inode in the layer of a file with several links -> its first copy.
    links: HashMap<u64, PathBuf>,
}

impl Copier<'_> {
    /// Merges the layer directory `src` into the copy's directory `dst`;
    /// `rel` names both below the root, for messages.
    fn merge_dir(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        rel: &Path,
        depth: usize,
    ) -> anyhow::Result<()> {
        if depth > MAX_DEPTH {
            anyhow::bail!("copy `{}`: directories nested too deep", rel.display());
        }
        for name in list_names(src).with_context(|| format!("list `/{}`", rel.display()))? {
            let child = rel.join(&name);
            self.merge_entry(src, dst, &name, &child, depth)
                .with_context(|| format!("copy `/{}`", child.display()))?;
        }
        Ok(())
    }

    fn merge_entry(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        name: &OsStr,
        rel: &Path,
        depth: usize,
    ) -> anyhow::Result<()> {
        let Some(st) = lstat_at(src, name)? else {
            return Ok(());
        };
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        let bytes = name.as_bytes();
        if let Some(target) = bytes.strip_prefix(WHITEOUT) {
            // The AUFS form: `.wh..wh..opq` was read with its directory;
            // other `.wh..wh.` names are AUFS metadata.
            if !target.starts_with(WHITEOUT) && !target.is_empty() && !target.contains(&b'/') {
                remove_all(dst, OsStr::from_bytes(target))?;
            }
            return Ok(());
        }
        if kind == SFlag::S_IFCHR && st.st_rdev == 0 {
            return Ok(remove_all(dst, name)?); // an overlay whiteout
        }
        if kind == SFlag::S_IFDIR {
            let from = open_child_dir(src, name)?;
            let lower = lstat_at(dst, name)?;
            let merge = lower.as_ref().is_some_and(is_dir) && !is_opaque(from.as_fd())?;
            if !merge {
                remove_all(dst, name)?;
                mkdirat(Some(dst.as_raw_fd()), name, Mode::from_bits_truncate(0o700))?;
            }
            let to = open_child_dir(dst, name)?;
            self.merge_dir(from.as_fd(), to.as_fd(), rel, depth + 1)?;
            return set_meta_fd(from.as_fd(), to.as_fd(), &st);
        }
        remove_all(dst, name)?;
        if kind == SFlag::S_IFREG {
            if st.st_nlink > 1 {
                if let Some(first) = self.links.get(&st.st_ino) {
                    return self.link(first, dst, name);
                }
                self.links.insert(st.st_ino, rel.to_path_buf());
            }
            return copy_file(src, dst, name, &st);
        }
        if kind == SFlag::S_IFLNK {
            let target = readlinkat(Some(src.as_raw_fd()), name)?;
            symlinkat(target.as_os_str(), Some(dst.as_raw_fd()), name)?;
        } else {
            // Devices, fifos and sockets, which the unpacker could make.
            let perm = Mode::from_bits_truncate(st.st_mode & 0o7777);
            mknodat(Some(dst.as_raw_fd()), name, kind, perm, st.st_rdev)?;
        }
        set_meta_at(dst, name, &st, kind == SFlag::S_IFLNK)
    }

    /// Links `name` in `dst` to the copy of an earlier link of the same file.
    fn link(&self, first: &Path, dst: BorrowedFd<'_>, name: &OsStr) -> anyhow::Result<()> {
        let (parent, last) = match (first.parent(), first.file_name()) {
            (Some(p), Some(l)) => (p, l),
            _ => anyhow::bail!("link to `/{}`: not a file", first.display()),
        };
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        let dir = openat2(
            self.root,
            parent,
            libc::O_PATH | libc::O_DIRECTORY,
            0,
            BENEATH,
        )
        .with_context(|| format!("open `/{}`", parent.display()))?;
        linkat(
            Some(dir.as_raw_fd()),
            last,
            Some(dst.as_raw_fd()),
            name,
            AtFlags::empty(),
        )
        .with_context(|| format!("link to `/{}`", first.display()))
    }
}

fn is_dir(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
}

/// Whether the layer directory `dir` hides the lower layers' entries.
fn is_opaque(dir: BorrowedFd<'_>) -> anyhow::Result<bool> {
    for x in ["user.overlay.opaque", "trusted.overlay.opaque"] {
        match crate::sys::fs::fgetxattr(dir, OsStr::new(x)) {
            Ok(v) if v == b"y" => return Ok(true),
            Ok(_) | Err(Errno::ENODATA | Errno::ENOTSUP | Errno::EPERM | Errno::EACCES) => {}
            Err(err) => return Err(err).with_context(|| format!("read xattr `{x}`")),
        }
    }
    Ok(lstat_at(dir, OsStr::from_bytes(OPAQUE))?.is_some())
}

/// Opens the real directory `name` in `dir`, refusing symlinks.
fn open_child_dir(dir: BorrowedFd<'_>, name: &OsStr) -> nix::Result<OwnedFd> {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
    openat2(dir, Path::new(name), flags, 0, BENEATH)
}

/// The names in the open directory `dir`, without `.` and `..`.
fn list_names(dir: BorrowedFd<'_>) -> nix::Result<Vec<OsString>> {
    let fd = openat2(
        dir,
        Path::new("."),
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
        BENEATH,
    )?;
    let mut names = Vec::new();
    for entry in nix::dir::Dir::from(fd)? {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(OsString::from_vec(name));
        }
    }
    Ok(names)
}

/// Copies the regular file `name` of `src` to a new file in `dst`.
fn copy_file(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    name: &OsStr,
    st: &FileStat,
) -> anyhow::Result<()> {
    let from = openat2(
        src,
        Path::new(name),
        libc::O_RDONLY | libc::O_NOFOLLOW,
        0,
        BENEATH,
    )?;
    let create = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
    let to = openat2(dst, Path::new(name), create, 0o600, BENEATH)?;
    if st.st_size > 0 && crate::sys::fs::ficlone(to.as_fd(), from.as_fd()).is_err() {
        let size = u64::try_from(st.st_size).context("read the size")?;
        let mut r = std::fs::File::from(from.try_clone()?);
        let mut w = std::fs::File::from(to.try_clone()?);
        copy_data(&mut r, &mut w, size).context("copy the data")?;
    }
    set_meta_fd(from.as_fd(), to.as_fd(), st)
}

/// Copies the `size` bytes of `from` to the empty `to`, its holes left
/// holes: the unpacker made runs of zeros into holes, and copying them as
/// data would fill the disk with what the layer does not occupy. Each
/// data extent (SEEK_DATA/SEEK_HOLE) goes through `std::io::copy`, which
/// uses copy_file_range(2); a filesystem without SEEK_DATA gets one copy.
fn copy_data(from: &mut std::fs::File, to: &mut std::fs::File, size: u64) -> std::io::Result<()> {
    use nix::unistd::{lseek, Whence};
    use std::io::{Read, Seek, SeekFrom};
    let fd = from.as_raw_fd();
    let end = i64::try_from(size).map_err(|_| Errno::EFBIG)?;
    let mut pos = 0i64;
    // Each round moves `pos` forward past one extent: at most one round
    // per extent, and the extents are fewer than the bytes.
    while pos < end {
        let data = match lseek(fd, pos, Whence::SeekData) {
            Ok(d) => d,
            Err(Errno::ENXIO) => break, // only a hole is left
            Err(Errno::EINVAL) if pos == 0 => {
                std::io::copy(from, to)?;
                return Ok(());
            }
            Err(err) => return Err(err.into()),
        };
        let hole = lseek(fd, data, Whence::SeekHole)?.min(end);
        if hole <= data {
            break;
        }
        let offset = u64::try_from(data).map_err(|_| Errno::EINVAL)?;
        let len = u64::try_from(hole - data).map_err(|_| Errno::EINVAL)?;
        from.seek(SeekFrom::Start(offset))?;
        to.seek(SeekFrom::Start(offset))?;
        let copied = std::io::copy(&mut from.by_ref().take(len), to)?;
        if copied != len {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        }
        pos = hole;
    }
    to.set_len(size)
}

fn owner(st: &FileStat) -> (Option<Uid>, Option<Gid>) {
    (
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
    )
}

/// EINVAL: an owner the namespace does not map (not one an unpack under
/// the same maps made); the copy keeps root, as the unpacker would.
fn chown_result(res: nix::Result<()>) -> anyhow::Result<()> {
    match res {
        Ok(()) | Err(Errno::EINVAL) => Ok(()),
        Err(err) => Err(err).context("set the owner"),
    }
}

fn times(st: &FileStat) -> (TimeSpec, TimeSpec) {
    (
        TimeSpec::new(st.st_atime, st.st_atime_nsec),
        TimeSpec::new(st.st_mtime, st.st_mtime_nsec),
    )
}

/// Gives the open copy `to` the owner, mode, xattrs and times of `from`
/// (`st`); owner first, as a chown clears setuid bits.
fn set_meta_fd(from: BorrowedFd<'_>, to: BorrowedFd<'_>, st: &FileStat) -> anyhow::Result<()> {
    let (uid, gid) = owner(st);
    chown_result(fchown(to.as_raw_fd(), uid, gid))?;
    fchmod(
        to.as_raw_fd(),
        Mode::from_bits_truncate(st.st_mode & 0o7777),
    )
    .context("set the mode")?;
    copy_xattrs(from, to)?;
    let (atime, mtime) = times(st);
    futimens(to.as_raw_fd(), &atime, &mtime).context("set the times")
}

/// The same for a symlink or special file, by name (no xattrs: `user.`
/// ones are not allowed on them).
fn set_meta_at(dst: BorrowedFd<'_>, name: &OsStr, st: &FileStat, link: bool) -> anyhow::Result<()> {
    let (uid, gid) = owner(st);
    let at = Some(dst.as_raw_fd());
    chown_result(fchownat(at, name, uid, gid, AtFlags::AT_SYMLINK_NOFOLLOW))?;
    if !link {
        let mode = Mode::from_bits_truncate(st.st_mode & 0o7777);
        fchmodat(at, name, mode, FchmodatFlags::FollowSymlink).context("set the mode")?;
    }
    let (atime, mtime) = times(st);
    utimensat(at, name, &atime, &mtime, UtimensatFlags::NoFollowSymlink).context("set the times")
}

/// Copies the xattrs of `from` to `to`, overlay's markers left out;
/// those the filesystem or the namespace refuses are skipped, as the
/// unpacker skips them.
fn copy_xattrs(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> anyhow::Result<()> {
    let names = match crate::sys::fs::flistxattr(from) {
        Ok(n) => n,
        Err(Errno::ENOTSUP) => return Ok(()),
        Err(err) => return Err(err).context("list xattrs"),
    };
    for name in names {
        let Some(text) = name.to_str() else { continue };
        if OVERLAY_XATTRS.iter().any(|p| text.starts_with(p)) {
            continue;
        }
        let value = match crate::sys::fs::fgetxattr(from, &name) {
            Ok(v) => v,
            Err(Errno::ENODATA | Errno::EPERM | Errno::EACCES) => continue,
            Err(err) => return Err(err).with_context(|| format!("read xattr `{text}`")),
        };
        match crate::sys::fs::fsetxattr(to, text, &value) {
            Ok(()) | Err(Errno::EPERM | Errno::ENOTSUP | Errno::EINVAL | Errno::EACCES) => {}
            Err(err) => return Err(err).with_context(|| format!("set xattr `{text}`")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::unpack::unpack_tar;
    use crate::image::unpack_tests::RawTar;
    use crate::image::UnpackOptions;
    use std::fs;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    use tar::EntryType;

    /// Unpacks `tar` alone as the store does (overlay whiteouts).
    fn layer(at: &Path, tar: &RawTar) -> PathBuf {
        fs::create_dir(at).unwrap();
        let opts = UnpackOptions {
            preserve_ownership: false,
            overlay_whiteouts: true,
        };
        unpack_tar(&tar.finish()[..], at, &opts).unwrap();
        at.to_path_buf()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// Every path below `dir` that is a character device (a whiteout).
    fn devices(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap().flatten() {
                let t = e.file_type().unwrap();
                if t.is_char_device() {
                    out.push(e.path());
                } else if t.is_dir() {
                    stack.push(e.path());
                }
            }
        }
        out
    }

    #[test]
    fn layers_merge_as_overlay_shows_them() {
        let tmp = tempfile::tempdir().unwrap();
        let mut lower = RawTar::default();
        lower
            .dir("etc", 0o755)
            .file("etc/keep", b"k", 0o644)
            .file("etc/gone", b"g", 0o644)
            .file("etc/replaced", b"old", 0o644)
            .dir("opq", 0o755)
            .file("opq/lower", b"l", 0o644)
            .file("opq/sub/deep", b"d", 0o644)
            .file("merged/a", b"a", 0o644)
            .file("hl/a", b"h", 0o644)
            .entry(EntryType::Link, "hl/b", "hl/a", 0o644, b"")
            .entry(EntryType::Symlink, "link", "etc/keep", 0o777, b"")
            .file("file-to-dir", b"f", 0o644)
            .file("dir-to-file/x", b"x", 0o644)
            .file("bin/su", b"su", 0o4755);
        let mut upper = RawTar::default();
        upper
            .file("etc/.wh.gone", b"", 0o644)
            .file("etc/replaced", b"new", 0o600)
            .file("opq/.wh..wh..opq", b"", 0o644)
            .file("opq/upper", b"u", 0o644)
            .dir("merged", 0o750)
            .file("merged/b", b"b", 0o644)
            .file("file-to-dir/y", b"y", 0o644)
            .file("dir-to-file", b"now a file", 0o644)
            .entry(EntryType::Symlink, "link2", "/etc/replaced", 0o777, b"")
            .file("hl2/one", b"2", 0o644)
            .entry(EntryType::Link, "hl2/two", "hl2/one", 0o644, b"")
            .pax("SCHILY.xattr.user.test", "v")
            .file("x", b"x", 0o644);
        let layers = [
            layer(&tmp.path().join("l1"), &lower),
            layer(&tmp.path().join("l2"), &upper),
        ];
        // The layers hold overlay's markers, which the copy applies.
        assert_eq!(devices(&layers[1]), vec![layers[1].join("etc/gone")]);
        // A file that is mostly hole, as the unpacker leaves runs of zeros.
        let sparse = fs::File::create(layers[1].join("sparse")).unwrap();
        sparse.set_len(64 << 20).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&sparse, b"end", (64 << 20) - 3).unwrap();
        drop(sparse);
        let root = tmp.path().join("rootfs");
        fs::create_dir(&root).unwrap();
        merge_layers(&layers, &root).unwrap();

        let read = |p: &str| fs::read_to_string(root.join(p)).unwrap();
        assert_eq!(names(&root.join("etc")), ["keep", "replaced"], "whiteout");
        assert_eq!(read("etc/replaced"), "new", "the upper layer wins");
        let replaced = fs::metadata(root.join("etc/replaced")).unwrap();
        assert_eq!(replaced.mode() & 0o7777, 0o600);
        assert_eq!(replaced.mtime(), 1_600_000_000, "times kept");
        assert_eq!(names(&root.join("opq")), ["upper"], "opaque dir");
        assert!(!crate::sys::probe::has_xattr(
            &root.join("opq"),
            c"user.overlay.opaque"
        ));
        assert_eq!(names(&root.join("merged")), ["a", "b"], "dirs merge");
        let merged = fs::metadata(root.join("merged")).unwrap();
        assert_eq!(merged.mode() & 0o7777, 0o750, "the upper dir's mode");
        assert_eq!(merged.mtime(), 1_600_000_000);
        let ino = |p: &str| fs::symlink_metadata(root.join(p)).unwrap().ino();
        assert_eq!(ino("hl/a"), ino("hl/b"), "a hard link stays one");
        assert_eq!(ino("hl2/one"), ino("hl2/two"));
        assert_ne!(
            ino("hl/a"),
            fs::metadata(layers[0].join("hl/a")).unwrap().ino()
        );
        assert_eq!(read("hl/b"), "h");
        assert_eq!(
            fs::read_link(root.join("link")).unwrap(),
            Path::new("etc/keep")
        );
        assert_eq!(
            fs::read_link(root.join("link2")).unwrap(),
            Path::new("/etc/replaced"),
            "copied, not followed"
        );
        assert_eq!(names(&root.join("file-to-dir")), ["y"]);
        assert_eq!(read("dir-to-file"), "now a file");
        assert_eq!(read("bin/su"), "su");
        let su = fs::metadata(root.join("bin/su")).unwrap();
        assert_eq!(su.mode() & 0o7777, 0o4755, "setuid kept");
        assert!(crate::sys::probe::has_xattr(&root.join("x"), c"user.test"));
        assert!(devices(&root).is_empty(), "{:?}", devices(&root));
        let sparse = fs::metadata(root.join("sparse")).unwrap();
        assert_eq!(sparse.len(), 64 << 20);
        assert!(sparse.blocks() * 512 < 1 << 20, "holes kept: {sparse:?}");
        let tail = fs::read(root.join("sparse")).unwrap();
        assert!(tail.ends_with(b"end") && tail[..1 << 20].iter().all(|b| *b == 0));
        // The shared layers are untouched.
        assert_eq!(names(&layers[0].join("opq")), ["lower", "sub"]);
        assert_eq!(fs::read_to_string(layers[0].join("etc/gone")).unwrap(), "g");
    }
}
