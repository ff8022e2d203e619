//! Fills a new named volume from the image, as Docker and Podman do: the
//! first time a volume is mounted, the image's directory at the mount
//! point (contents, owners, modes, times, xattrs where the kernel lets
//! us) is copied into it, unless `nocopy` was given.
//!
//! Runs in the container init, inside the user namespace (owners map as
//! in the image) and the new mount namespace with the rootfs ready, before
//! the volume is bound over the directory. The image is hostile: every
//! name is opened relative to its parent with O_NOFOLLOW, symlinks are
//! copied as symlinks and never followed, and the copy stays on the
//! filesystem of the mount point.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;
use nix::fcntl::AtFlags;
use nix::sys::stat::{fchmod, fstat, fstatat, futimens, mkdirat, FileStat, Mode, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, Gid, Uid};

use super::cptar::list;
use crate::sys::fs::{fgetxattr, flistxattr, fsetxattr, openat2};

/// Directory depth followed; deeper trees are refused, not truncated.
const MAX_DEPTH: usize = 256;

/// Where a volume records that it was filled (or found filled) once.
pub fn marker(volume_data: &Path) -> std::path::PathBuf {
    volume_data.with_file_name("copied-up")
}

/// Copies the directory `image_dir` (an O_PATH descriptor inside the
/// rootfs) into the volume directory `volume` if the volume has never
/// been filled and is empty. Marks the volume as filled either way.
pub fn copy_up(image_dir: &OwnedFd, volume: &Path) -> anyhow::Result<()> {
    let mark = marker(volume);
    if mark.exists() {
        return Ok(());
    }
    let dst: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(volume)
        .with_context(|| format!("open volume `{}`", volume.display()))?
        .into();
    let src = openat2(
        image_dir.as_fd(),
        Path::new("."),
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
        0,
    )
    .context("open the image's directory")?;
    if list(dst.as_fd())?.is_empty() {
        let st = fstat(src.as_raw_fd()).context("stat the image's directory")?;
        copy_dir(src.as_fd(), dst.as_fd(), st.st_dev, 0)?;
        set_attrs(src.as_fd(), dst.as_fd(), &st)?;
    }
    std::fs::write(&mark, b"")
        .with_context(|| format!("mark volume `{}` as filled", volume.display()))
}

fn open_at(dir: BorrowedFd<'_>, name: &OsStr, flags: i32, mode: u32) -> nix::Result<OwnedFd> {
    openat2(dir, Path::new(name), flags | libc::O_NOFOLLOW, mode, 0)
}

/// Copies every entry of `src` into the empty directory `dst`.
fn copy_dir(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    dev: libc::dev_t,
    depth: usize,
) -> anyhow::Result<()> {
    if depth >= MAX_DEPTH {
        anyhow::bail!("copy the image's directory: deeper than {MAX_DEPTH} levels");
    }
    for name in list(src)? {
        let what = || format!("copy `{}`", Path::new(&name).display());
        let st = fstatat(
            Some(src.as_raw_fd()),
            name.as_os_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .with_context(what)?;
        match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
            SFlag::S_IFREG => {
                let from = open_at(src, &name, libc::O_RDONLY, 0).with_context(what)?;
                let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;
                let to = open_at(dst, &name, flags, 0o600).with_context(what)?;
                let (mut r, mut w) = (File::from(from), File::from(to));
                std::io::copy(&mut r, &mut w).with_context(what)?;
                set_attrs(r.as_fd(), w.as_fd(), &st).with_context(what)?;
            }
            SFlag::S_IFDIR => {
                let from = open_at(src, &name, libc::O_RDONLY | libc::O_DIRECTORY, 0)
                    .with_context(what)?;
                mkdirat(Some(dst.as_raw_fd()), name.as_os_str(), Mode::S_IRWXU)
                    .with_context(what)?;
                let to = open_at(dst, &name, libc::O_RDONLY | libc::O_DIRECTORY, 0)
                    .with_context(what)?;
                // Another mount below the mount point is not the image's.
                let here = fstat(from.as_raw_fd()).with_context(what)?;
                if here.st_dev == dev {
                    copy_dir(from.as_fd(), to.as_fd(), dev, depth + 1)?;
                }
                set_attrs(from.as_fd(), to.as_fd(), &st).with_context(what)?;
            }
            SFlag::S_IFLNK => {
                let target = nix::fcntl::readlinkat(Some(src.as_raw_fd()), name.as_os_str())
                    .with_context(what)?;
                nix::unistd::symlinkat(target.as_os_str(), Some(dst.as_raw_fd()), name.as_os_str())
                    .with_context(what)?;
                fchownat(
                    Some(dst.as_raw_fd()),
                    name.as_os_str(),
                    Some(Uid::from_raw(st.st_uid)),
                    Some(Gid::from_raw(st.st_gid)),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .with_context(what)?;
            }
            // Device nodes cannot be made in a user namespace; sockets
            // and fifos belong to a running process, not to the image.
            _ => {}
        }
    }
    Ok(())
}

/// Gives `to` the owner, mode, xattrs and times of `from` (stat `st`).
fn set_attrs(from: BorrowedFd<'_>, to: BorrowedFd<'_>, st: &FileStat) -> anyhow::Result<()> {
    fchown(
        to.as_raw_fd(),
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
    )
    .context("set the owner")?;
    // After the owner: chown clears set-id bits.
    fchmod(
        to.as_raw_fd(),
        Mode::from_bits_truncate(st.st_mode & 0o7777),
    )
    .context("set the mode")?;
    // Xattrs where the kernel lets an unprivileged user namespace set
    // them (user.*, security.capability); others are left behind.
    if let Ok(names) = flistxattr(from) {
        for n in names {
            if let (Ok(v), Some(s)) = (fgetxattr(from, &n), n.to_str()) {
                let _ = fsetxattr(to, s, &v);
            }
        }
    }
    let atime = TimeSpec::new(st.st_atime, st.st_atime_nsec);
    let mtime = TimeSpec::new(st.st_mtime, st.st_mtime_nsec);
    futimens(to.as_raw_fd(), &atime, &mtime).context("set the times")
}
