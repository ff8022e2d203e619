//! The container's mount table, built by the container init in its new
//! mount namespace, before pivot_root.
//!
//! Every target inside the rootfs is resolved with openat2(RESOLVE_IN_ROOT)
//! from a descriptor of the rootfs, created there if missing, and mounted
//! through `/proc/self/fd/N`: a symlink planted in the image (`/proc ->
//! /home/you`) can never redirect a mount or a file creation to the host.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::mkdirat;
use nix::sys::stat::{fstat, Mode, SFlag};
use nix::sys::statvfs::{fstatvfs, FsFlags};
use nix::unistd::{chdir, pivot_root, symlinkat};

use crate::errors::WithHint;
use crate::plan::mounts::Kind as MountKind;
use crate::plan::{self, Mount, Plan};
use crate::sys::fs::{openat2, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS};

/// What a mount target must be.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    /// Must already exist; `None` from [`resolve`] when it does not.
    Existing,
}

/// Everything the mount setup needs besides the plan.
pub struct Inputs<'a> {
    pub rootfs: &'a Path,
    pub plan: &'a Plan,
    /// Whether gid 5 (tty) is mapped, for devpts' `gid=5`.
    pub tty_gid_mapped: bool,
    /// Overlay mount options when the rootfs is an overlay of layers.
    pub overlay: Option<&'a str>,
    /// With fuse-overlayfs: asks the parent to mount the rootfs and waits
    /// until it has (sync points [2a], [2b]).
    pub fuse_handshake: Option<&'a dyn Fn() -> anyhow::Result<()>>,
}

/// Builds the mount table of the plan under `inputs.rootfs`, then the
/// masked and read-only paths.
pub fn prepare(inp: &Inputs<'_>) -> anyhow::Result<()> {
    // Nothing we mount may propagate back to the host's namespace.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .context("make `/` private")?;
    if let Some(data) = inp.overlay {
        // In our own mount namespace: needs a kernel that allows overlay
        // in a user namespace (5.11+, `userxattr`) on this filesystem.
        mount(Some("overlay"), inp.rootfs, Some("overlay"), MsFlags::empty(), Some(data))
            .context("mount the image layers with overlayfs")
            .map_err(|e| {
                crate::errors::hint(
                    e,
                    "`hutch doctor` shows whether kernel overlay works here (it does not on NFS or kernels before 5.11)",
                )
            })?;
    }
    if let Some(handshake) = inp.fuse_handshake {
        receive_fuse_mount(inp.rootfs, handshake)?;
    }
    // pivot_root needs the new root to be a mount point.
    mount(
        Some(inp.rootfs),
        inp.rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .with_context(|| format!("bind rootfs `{}`", inp.rootfs.display()))?;
    let root: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(inp.rootfs)
        .with_context(|| format!("open rootfs `{}`", inp.rootfs.display()))?
        .into();
    for m in &inp.plan.mounts {
        apply(&root, m, inp.tty_gid_mapped).with_context(|| match &m.source {
            Some(src) => format!("mount `{}` on `{}`", src.display(), m.destination),
            None => format!("mount {} on `{}`", m.kind.fstype(), m.destination),
        })?;
    }
    dev_links(&root)?;
    for p in &inp.plan.masked_paths {
        mask(&root, p).with_context(|| format!("mask `{p}`"))?;
    }
    // Before /proc/sys goes read-only: unprivileged ping in the
    // container's own network namespace, as Podman does.
    if matches!(
        inp.plan.network,
        plan::Network::None | plan::Network::Pasta(_) | plan::Network::Slirp4netns(_)
    ) {
        allow_ping(&root);
    }
    for p in &inp.plan.readonly_paths {
        if let Some(fd) = resolve(&root, p, Kind::Existing)? {
            mount_fd(
                Some(&fd_path(&fd)),
                &fd,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                "",
            )
            .with_context(|| format!("bind `{p}` read-only"))?;
            remount_ro(&root, p, MsFlags::empty())?;
        }
    }
    // `--read-only`: last, so mount points could still be created. Only
    // the root mount itself: /dev, /proc, tmpfs and volumes stay as made.
    if inp.plan.readonly_rootfs {
        remount_ro(&root, "/", MsFlags::empty()).context("make the rootfs read-only")?;
    }
    Ok(())
}

/// fuse-overlayfs runs in a mount namespace of its own (so that our
/// pivot_root and the old root's detach do not pull its /proc away), and
/// its mount reaches us through propagation: the rootfs is a shared bind
/// mount while the daemon mounts on its peer, and private again after.
fn receive_fuse_mount(
    rootfs: &Path,
    handshake: &dyn Fn() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let at = || format!("`{}`", rootfs.display());
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .with_context(|| format!("bind rootfs {}", at()))?;
    mount(
        None::<&str>,
        rootfs,
        None::<&str>,
        MsFlags::MS_SHARED,
        None::<&str>,
    )
    .with_context(|| format!("make rootfs {} shared", at()))?;
    handshake()?;
    mount(
        None::<&str>,
        rootfs,
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .with_context(|| format!("make rootfs {} private", at()))
}

fn apply(root: &OwnedFd, m: &Mount, tty_gid_mapped: bool) -> anyhow::Result<()> {
    let mut f = plan::mounts::flags(&m.options);
    if m.kind == MountKind::Devpts && tty_gid_mapped {
        f.data.push_str(",gid=5");
    }
    match (m.kind, &m.source) {
        (MountKind::Bind, Some(src)) => {
            let meta = std::fs::metadata(src)
                .with_context(|| format!("find `{}` on the host", src.display()))?;
            let kind = if meta.is_dir() { Kind::Dir } else { Kind::File };
            let fd = match resolve(root, &m.destination, kind) {
                Ok(Some(fd)) => fd,
                Ok(None) => bail!("resolve `{}`", m.destination),
                Err(e) if read_only_rootfs(&e) && m.optional => return Ok(()),
                Err(e) if read_only_rootfs(&e) => {
                    return Err(crate::errors::hint(
                        e,
                        format!(
                            "the rootfs is not writable: create `{}` in it first, or run an image",
                            m.destination
                        ),
                    ))
                }
                Err(e) => return Err(e),
            };
            refuse_root(root, &fd, &m.destination)?;
            if m.copy_up {
                super::copyup::copy_up(&fd, src).with_context(|| {
                    format!(
                        "fill volume `{}` from the image's `{}`",
                        src.display(),
                        m.destination
                    )
                })?;
            }
            let bind = f.flags & (MsFlags::MS_BIND | MsFlags::MS_REC);
            mount_fd(Some(src), &fd, None, bind, "")?;
            if f.readonly {
                let extra = f.flags & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
                remount_ro(root, &m.destination, extra)?;
            }
            Ok(())
        }
        (MountKind::Bind, None) => bail!("bind mount without a source"),
        (MountKind::Sysfs, _) => {
            match fs_mount(root, &m.destination, m.kind.fstype(), f.flags, &f.data) {
                // Not allowed for a network namespace we do not own: bind
                // the host's, read-only.
                Err(e) if e.downcast_ref::<Errno>() == Some(&Errno::EPERM) => {
                    let host = Mount {
                        source: Some("/sys".into()),
                        kind: MountKind::Bind,
                        ..m.clone()
                    };
                    apply(root, &host, tty_gid_mapped)
                }
                other => other,
            }
        }
        (kind, _) => fs_mount(root, &m.destination, kind.fstype(), f.flags, &f.data),
    }
}

/// Switches the root to the prepared rootfs and detaches the old one.
pub fn pivot(rootfs: &Path) -> anyhow::Result<()> {
    chdir(rootfs).with_context(|| format!("enter rootfs `{}`", rootfs.display()))?;
    // pivot_root(".", ".") stacks the old root on top of the new one;
    // unmounting "." then detaches it (pivot_root(2), NOTES).
    pivot_root(".", ".").context("pivot_root into the rootfs")?;
    umount2(".", MntFlags::MNT_DETACH).context("detach the old root")?;
    chdir("/").context("enter `/` of the container")?;
    Ok(())
}

/// The symlinks every /dev has (runtime-spec, "Default Devices").
fn dev_links(root: &OwnedFd) -> anyhow::Result<()> {
    // O_PATH cannot serve as a dirfd for symlinkat: open the new tmpfs.
    let dev = openat2(
        root.as_fd(),
        Path::new("dev"),
        libc::O_DIRECTORY | libc::O_RDONLY,
        0,
        RESOLVE_IN_ROOT,
    )
    .context("open `/dev`")?;
    let links = [
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("pts/ptmx", "ptmx"),
        ("/proc/kcore", "core"),
    ];
    for (target, name) in links {
        symlinkat(target, Some(dev.as_raw_fd()), name)
            .with_context(|| format!("create `/dev/{name}`"))?;
    }
    Ok(())
}

fn mask(root: &OwnedFd, path: &str) -> anyhow::Result<()> {
    let Some(fd) = resolve(root, path, Kind::Existing)? else {
        return Ok(());
    };
    let st = fstat(fd.as_raw_fd()).context("stat")?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
        mount_fd(
            Some(Path::new("tmpfs")),
            &fd,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            "size=0",
        )
    } else {
        mount_fd(
            Some(Path::new("/dev/null")),
            &fd,
            None,
            MsFlags::MS_BIND,
            "",
        )
    }
}

fn fs_mount(
    root: &OwnedFd,
    target: &str,
    fstype: &str,
    flags: MsFlags,
    data: &str,
) -> anyhow::Result<()> {
    let fd = resolve(root, target, Kind::Dir)?.with_context(|| format!("resolve `{target}`"))?;
    refuse_root(root, &fd, target)?;
    mount_fd(Some(Path::new(fstype)), &fd, Some(fstype), flags, data)
        .with_context(|| format!("mount {fstype} on `{target}`"))
}

/// Refuses a mount target that resolved to the rootfs itself (a link
/// such as `/mnt/x -> ..` in the image): mounted there, a volume would
/// cover the whole rootfs and become the container's root after pivot_root.
fn refuse_root(root: &OwnedFd, target: &OwnedFd, dest: &str) -> anyhow::Result<()> {
    let (r, t) = (fstat(root.as_raw_fd()), fstat(target.as_raw_fd()));
    let (r, t) = (
        r.context("stat the rootfs")?,
        t.with_context(|| format!("stat `{dest}`"))?,
    );
    if (r.st_dev, r.st_ino) == (t.st_dev, t.st_ino) {
        return Err(anyhow::anyhow!(
            "mount on `{dest}`: it resolves to the container's root"
        ))
        .hint("a symbolic link in the image leads there; mount somewhere else");
    }
    Ok(())
}

/// Whether creating a mount point failed because the rootfs is read-only
/// or not the caller's (a `--rootfs` owned by someone else).
fn read_only_rootfs(e: &anyhow::Error) -> bool {
    matches!(
        e.root_cause().downcast_ref::<Errno>(),
        Some(Errno::EACCES | Errno::EROFS | Errno::EPERM)
    )
}

/// Remounts the bind mount at `target` read-only. Flags the kernel locked
/// when the mount crossed into our user namespace (nosuid, nodev, noexec,
/// atime) must be repeated or the remount fails with EPERM.
fn remount_ro(root: &OwnedFd, target: &str, extra: MsFlags) -> anyhow::Result<()> {
    // Re-resolve: the earlier descriptor points below the new mount.
    let fd =
        resolve(root, target, Kind::Existing)?.with_context(|| format!("resolve `{target}`"))?;
    let st = fstatvfs(&fd).with_context(|| format!("statvfs `{target}`"))?;
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | extra;
    for (have, add) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if st.flags().contains(have) {
            flags |= add;
        }
    }
    mount_fd(None, &fd, None, flags, "").with_context(|| format!("remount `{target}` read-only"))
}

/// `net.ipv4.ping_group_range = 0 0` in the network namespace this
/// process made (the sysctl is per namespace: the host's and another
/// container's are never touched). Every container group may then open
/// ICMP datagram sockets, which is what an unprivileged `ping` uses,
/// without CAP_NET_RAW. Only a convenience: a kernel or /proc that
/// refuses leaves ping as it was, so a failure is ignored (ping then
/// needs `--cap-add NET_RAW`, as README says).
fn allow_ping(root: &OwnedFd) {
    const RANGE: &str = "/proc/sys/net/ipv4/ping_group_range";
    let write = || -> anyhow::Result<()> {
        let fd =
            resolve(root, RANGE, Kind::Existing)?.with_context(|| format!("find `{RANGE}`"))?;
        std::fs::OpenOptions::new()
            .write(true)
            .open(fd_path(&fd))
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"0 0"))
            .with_context(|| format!("write `{RANGE}`"))
    };
    if let Err(e) = write() {
        if std::env::var_os("HUTCH_DEBUG").is_some() {
            eprintln!("debug: unprivileged ping stays off: {e:#}");
        }
    }
}

fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn mount_fd(
    src: Option<&Path>,
    target: &OwnedFd,
    fstype: Option<&str>,
    flags: MsFlags,
    data: &str,
) -> anyhow::Result<()> {
    let data = (!data.is_empty()).then_some(data);
    mount(src, &fd_path(target), fstype, flags, data).map_err(anyhow::Error::new)
}

/// Links followed while creating one mount target (SYMLOOP_MAX is 40).
const MAX_LINKS: usize = 40;

/// Opens `path` (absolute, inside the rootfs) as O_PATH, creating missing
/// directories (and the last component as a file for `Kind::File`).
///
/// Existing paths resolve with openat2(RESOLVE_IN_ROOT). For a missing
/// one the components are walked by hand: a symlink's target is spliced
/// in and resolved against the root (an absolute target starts at the
/// root, `..` stops there), so a dangling link such as Ubuntu's
/// `/etc/resolv.conf -> ../run/systemd/resolve/stub-resolv.conf` gets its
/// target created inside the rootfs, never outside it.
fn resolve(root: &OwnedFd, path: &str, kind: Kind) -> anyhow::Result<Option<OwnedFd>> {
    let rel = path.trim_start_matches('/');
    let open = |p: &Path| {
        // openat2 takes no empty path: the root itself is `.`.
        let p = if p.as_os_str().is_empty() {
            Path::new(".")
        } else {
            p
        };
        let how = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
        openat2(root.as_fd(), p, libc::O_PATH, 0, how)
    };
    match open(Path::new(rel)) {
        Ok(fd) => return Ok(Some(fd)),
        Err(Errno::ENOENT) if kind != Kind::Existing => {}
        Err(Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("open `{path}` in the rootfs")),
    }
    if rel.split('/').any(|c| c == "..") {
        bail!("create mount target `{path}`: `..` is not allowed");
    }
    let mut todo: std::collections::VecDeque<String> = rel.split('/').map(str::to_string).collect();
    // The real path below the root resolved so far: no symlinks in it.
    let mut cur = PathBuf::new();
    let mut links = 0;
    while let Some(comp) = todo.pop_front() {
        match comp.as_str() {
            "" | "." => continue,
            ".." => {
                cur.pop();
                continue;
            }
            _ => {}
        }
        let parent = open(&cur).with_context(|| format!("open parent of `{path}`"))?;
        match nix::fcntl::readlinkat(Some(parent.as_raw_fd()), comp.as_str()) {
            Ok(target) => {
                links += 1;
                if links > MAX_LINKS {
                    bail!("create mount target `{path}`: too many symbolic links");
                }
                let target = PathBuf::from(target);
                if target.is_absolute() {
                    cur = PathBuf::new();
                }
                for c in target.iter().rev() {
                    todo.push_front(c.to_string_lossy().into_owned());
                }
                continue;
            }
            Err(Errno::ENOENT) => create(&parent, &comp, todo.is_empty() && kind == Kind::File)
                .with_context(|| format!("create mount target `{path}`"))?,
            Err(Errno::EINVAL) => {} // exists, and is not a symlink
            Err(e) => return Err(e).with_context(|| format!("inspect `{path}` in the rootfs")),
        }
        cur.push(&comp);
    }
    open(&cur)
        .map(Some)
        .with_context(|| format!("open mount target `{path}`"))
}

/// Creates `name` in the directory `parent` (an O_PATH descriptor): an
/// empty file when `file`, else a directory.
fn create(parent: &OwnedFd, name: &str, file: bool) -> Result<(), Errno> {
    let dir = openat2(
        parent.as_fd(),
        Path::new("."),
        libc::O_DIRECTORY | libc::O_RDONLY,
        0,
        0,
    )?;
    let made = if file {
        let flags = libc::O_CREAT | libc::O_WRONLY | libc::O_NOFOLLOW;
        openat2(dir.as_fd(), Path::new(name), flags, 0o644, 0).map(drop)
    } else {
        mkdirat(Some(dir.as_raw_fd()), name, Mode::from_bits_truncate(0o755))
    };
    match made {
        Err(Errno::EEXIST) => Ok(()),
        other => other,
    }
}
