//! Storage checks: kernel overlayfs inside a user namespace (a forked
//! probe on the data dir's filesystem), the FUSE fallback, and whether the
//! data dir's filesystem can hold overlay upper dirs.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::statfs::statfs;

use super::{device, errno_text, judge_device, judge_program};
use super::{Check, Facts, Status, Who, PROBE_TIMEOUT};
use crate::sys::probe::{self, OverlayPaths, ProbeOutcome, SelfMaps};

// ---- overlay ---------------------------------------------------------------

pub(super) fn check_overlay(who: &Who, data_dir: Option<&Path>, facts: &mut Facts) -> Check {
    // Test where `run` tests (`rootfs::probe_dir`): the filesystem of the
    // upper dirs, which is local disk when the store is on NFS; its
    // nearest existing directory if it is not created yet.
    let base = data_dir
        .map(|d| overlay_probe_dir(d, who.uid))
        .unwrap_or_else(std::env::temp_dir);
    let scratch = base.join(format!(".hutch-doctor-{}", std::process::id()));
    let outcome = match make_overlay_dirs(&scratch) {
        Ok(paths) => probe::overlay(&SelfMaps::single(who.uid, who.gid), &paths, PROBE_TIMEOUT),
        Err(errno) => ProbeOutcome::Failed {
            step: "create scratch dirs",
            errno,
        },
    };
    remove_tree(&scratch);
    let check = judge_overlay(&outcome, &base);
    facts.kernel_overlay = check.status == Status::Ok;
    check
}

/// The directory `run` would probe kernel overlay on for a store at
/// `data`, or its nearest existing ancestor.
fn overlay_probe_dir(data: &Path, uid: u32) -> PathBuf {
    let dir = crate::rootfs::probe_dir_of(data, &crate::state::containers_dir(data, uid));
    dir.ancestors()
        .find(|p| p.is_dir())
        .map_or_else(std::env::temp_dir, Path::to_path_buf)
}

/// Whether kernel overlay with `userxattr` mounts in a user namespace
/// on `dir`'s filesystem and handles a whiteout: the probe `hutch doctor`
/// runs, for `run`'s choice of storage driver; else why not.
pub fn overlay_works(dir: &Path) -> Result<(), String> {
    let (uid, gid) = (
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    );
    let scratch = dir.join(format!(".hutch-probe-{}", std::process::id()));
    let outcome = match make_overlay_dirs(&scratch) {
        Ok(paths) => probe::overlay(&SelfMaps::single(uid, gid), &paths, PROBE_TIMEOUT),
        Err(errno) => ProbeOutcome::Failed {
            step: "create scratch dirs",
            errno,
        },
    };
    remove_tree(&scratch);
    match judge_overlay(&outcome, dir) {
        c if c.status == Status::Ok => Ok(()),
        // The detail without its "; hutch uses ..." tail.
        c => Err(c.detail.split("; ").next().unwrap_or_default().to_string()),
    }
}

/// Whether this user can open /dev/fuse for reading and writing.
pub fn dev_fuse_usable() -> bool {
    device("/dev/fuse").read_write
}

/// `name` in a directory of PATH, executable.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .filter(|d| d.is_absolute())
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn make_overlay_dirs(scratch: &Path) -> Result<OverlayPaths, Errno> {
    let io = |e: std::io::Error| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO));
    let mut builder = std::fs::DirBuilder::new();
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(scratch).map_err(io)?;
    for sub in ["lower", "upper", "work", "merged"] {
        builder.create(scratch.join(sub)).map_err(io)?;
    }
    std::fs::write(scratch.join("lower").join("victim"), b"x").map_err(io)?;
    OverlayPaths::new(scratch, "victim")
}

/// Removes the scratch tree; overlay leaves `work/work` with mode 0, so
/// directories are opened up before they are read.
fn remove_tree(dir: &Path) {
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return;
    };
    if meta.is_dir() {
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        if let Ok(entries) = std::fs::read_dir(dir) {
            entries.flatten().for_each(|e| remove_tree(&e.path()));
        }
        let _ = std::fs::remove_dir(dir);
    } else {
        let _ = std::fs::remove_file(dir);
    }
}

fn judge_overlay(outcome: &ProbeOutcome, base: &Path) -> Check {
    const NAME: &str = "kernel overlay";
    const FALLBACK: &str = "hutch uses fuse-overlayfs or a plain copy instead";
    let (step, errno) = match outcome {
        ProbeOutcome::Ok => {
            let detail = format!(
                "overlayfs with userxattr works in a user namespace (tested in {})",
                base.display()
            );
            return Check::new(NAME, Status::Ok, detail);
        }
        ProbeOutcome::Failed { step, errno } => (*step, *errno),
        ProbeOutcome::TimedOut => {
            return Check::new(
                NAME,
                Status::Warn,
                format!("the probe timed out; {FALLBACK}"),
            )
        }
        ProbeOutcome::Died(how) => {
            return Check::new(NAME, Status::Warn, format!("the probe {how}; {FALLBACK}"))
        }
    };
    if matches!(step, "unshare" | "setgroups" | "uid_map" | "gid_map") {
        return Check::new(
            NAME,
            Status::Info,
            "not tested: no user namespace (see above)",
        );
    }
    let detail = format!(
        "{step} failed in {}: {}; {FALLBACK}",
        base.display(),
        errno_text(errno)
    );
    let hint = match (step, errno) {
        ("mount overlay", Errno::ENODEV) => {
            "the overlay module is missing: `sudo modprobe overlay`"
        }
        ("mount overlay", Errno::EINVAL | Errno::EPERM) => {
            "needs Linux >= 5.11 (userxattr) and a data dir on a local filesystem with user xattrs"
        }
        _ => "install fuse-overlayfs (see below) so hutch need not copy layers",
    };
    Check::new(NAME, Status::Warn, detail).hint(hint)
}

// ---- FUSE ------------------------------------------------------------------

pub(super) fn check_fuse(who: &Who, facts: &mut Facts) -> [Check; 2] {
    // FUSE is only the fallback when kernel overlay works.
    let severity = if facts.kernel_overlay {
        Status::Info
    } else {
        Status::Warn
    };
    let dev = judge_device(
        "/dev/fuse",
        device("/dev/fuse"),
        &who.name,
        severity,
        "`sudo modprobe fuse`",
    );
    let bin = find_in_path("fuse-overlayfs");
    let why = "layers are copied when kernel overlay is unavailable";
    let prog = judge_program(
        "fuse-overlayfs",
        bin.as_deref(),
        severity,
        "fuse-overlayfs",
        why,
    );
    if dev.status == Status::Ok {
        facts.fuse_overlayfs = bin;
    }
    [dev, prog].map(|mut check| {
        if check.status == Status::Info {
            check
                .detail
                .push_str("; only needed when kernel overlay does not work");
        }
        check
    })
}

// ---- storage driver --------------------------------------------------------

/// The rung `run` would take here (rootfs::driver), from the facts the
/// overlay and FUSE checks found and the config file.
pub(super) fn check_storage_driver(overlay: &Check, facts: &Facts) -> Check {
    let host = crate::rootfs::driver::HostStorage {
        kernel_overlay: if facts.kernel_overlay {
            Ok(())
        } else {
            Err(overlay.detail.clone())
        },
        fuse_program: facts.fuse_overlayfs.clone(),
        dev_fuse: facts.fuse_overlayfs.is_some(),
    };
    let chosen =
        crate::rootfs::driver::explicit(None).and_then(|e| crate::rootfs::driver::choose(e, &host));
    judge_storage_driver(chosen)
}

fn judge_storage_driver(chosen: anyhow::Result<crate::rootfs::driver::Choice>) -> Check {
    use crate::rootfs::driver::Driver;
    const NAME: &str = "storage driver";
    match chosen {
        Ok(c) => {
            let status = match c.driver {
                Driver::Vfs if !c.reason.starts_with("chosen") => Status::Warn,
                _ => Status::Ok,
            };
            let check = Check::new(NAME, status, format!("{}: {}", c.driver.name(), c.reason));
            match status {
                Status::Warn => check.hint("each container copies its image; install fuse-overlayfs or fix kernel overlay (above) to share layers"),
                _ => check,
            }
        }
        Err(e) => {
            let (chain, hints, _) = crate::errors::split(&e);
            let check = Check::new(NAME, Status::Fail, chain.join(": "));
            match hints.into_iter().next() {
                Some(h) => check.hint(h),
                None => check,
            }
        }
    }
}

// ---- data dir --------------------------------------------------------------

/// `$XDG_DATA_HOME/hutch` (absolute only, per the XDG spec), else
/// `~/.local/share/hutch`.
pub(super) fn data_dir(xdg_data_home: Option<OsString>, home: Option<PathBuf>) -> Option<PathBuf> {
    let xdg = xdg_data_home.map(PathBuf::from).filter(|p| p.is_absolute());
    let base = xdg.or_else(|| {
        home.filter(|h| h.is_absolute())
            .map(|h| h.join(".local/share"))
    })?;
    Some(base.join("hutch"))
}

/// Whether a filesystem can hold overlay upper dirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FsFit {
    Good,
    /// A network or cluster filesystem: no upper dirs, and hutch keeps
    /// the mutable parts of containers on local disk.
    Network,
    NoUpper,
    Unknown,
}

/// Name and fitness of a filesystem by its statfs magic (statfs(2),
/// <linux/magic.h>, and the vendors' own headers for GPFS and BeeGFS).
fn fs_kind(magic: u32) -> (&'static str, FsFit) {
    match magic {
        0xEF53 => ("ext4", FsFit::Good),
        0x5846_5342 => ("xfs", FsFit::Good),
        0x9123_683E => ("btrfs", FsFit::Good),
        0x0102_1994 => ("tmpfs", FsFit::Good),
        0xF2F5_2010 => ("f2fs", FsFit::Good),
        0x2FC1_2FC1 => ("zfs", FsFit::Good),
        0xCA45_1A4E => ("bcachefs", FsFit::Good),
        0x6969 => ("NFS", FsFit::Network),
        0x0BD0_0BD0 => ("Lustre", FsFit::Network),
        0xFF53_4D42 | 0xFE53_4D42 | 0x517B => ("SMB/CIFS", FsFit::Network),
        0x4750_4653 => ("GPFS", FsFit::Network),
        0x1983_0326 => ("BeeGFS", FsFit::Network),
        0x00C3_6400 => ("CephFS", FsFit::Network),
        0x5346_414F | 0x6B41_4653 => ("AFS", FsFit::Network),
        0x2003_0528 => ("OrangeFS", FsFit::Network),
        0x0102_1997 => ("9p", FsFit::Network),
        0x6573_5546 => ("FUSE", FsFit::NoUpper),
        0xF15F => ("eCryptfs", FsFit::NoUpper),
        0x794C_7630 => ("overlayfs", FsFit::NoUpper),
        _ => ("unknown", FsFit::Unknown),
    }
}

/// The filesystem holding `path` (or its nearest existing ancestor):
/// its name, and whether it is a network or cluster filesystem.
pub fn fs_name(path: &Path) -> Option<(&'static str, bool)> {
    let existing = path.ancestors().find(|p| p.exists())?;
    // The magic is a 32-bit value; `fs_type_t` is wider (and signed) on
    // some targets, so keep only the low 32 bits.
    let magic = statfs(existing).ok()?.filesystem_type().0 as u32;
    let (name, fit) = fs_kind(magic);
    Some((name, fit == FsFit::Network))
}

pub(super) fn check_data_dir(dir: Option<&Path>) -> Check {
    let Some(dir) = dir else {
        return Check::new(
            "data dir",
            Status::Fail,
            "neither $XDG_DATA_HOME nor $HOME is set to an absolute path",
        )
        .hint("set HOME or XDG_DATA_HOME");
    };
    let existing = dir
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let magic = statfs(existing)
        .ok()
        // The magic is a 32-bit value; `fs_type_t` is wider (and signed) on
        // some targets, so keep only the low 32 bits.
        .map(|s| s.filesystem_type().0 as u32);
    judge_data_dir(dir, existing != dir, magic)
}

fn judge_data_dir(dir: &Path, not_yet: bool, magic: Option<u32>) -> Check {
    const NAME: &str = "data dir";
    let d = dir.display();
    let created = if not_yet { " (not created yet)" } else { "" };
    let Some(magic) = magic else {
        return Check::new(
            NAME,
            Status::Info,
            format!("{d}{created}; filesystem type unknown"),
        );
    };
    match fs_kind(magic) {
        (name, FsFit::Good) => Check::new(NAME, Status::Ok, format!("{d}{created} on {name}")),
        (_, FsFit::Unknown) => {
            let detail = format!("{d}{created} on an unrecognized filesystem (magic {magic:#x})");
            Check::new(NAME, Status::Info, detail)
        }
        (name, FsFit::NoUpper | FsFit::Network) => {
            let detail = format!(
                "{d}{created} is on {name}: NFS, Lustre and other network or stacked \
                 filesystems cannot hold overlay upper dirs"
            );
            let hint = "point XDG_DATA_HOME at a local disk, \
                e.g. `export XDG_DATA_HOME=/var/tmp/$USER/share`";
            Check::new(NAME, Status::Warn, detail).hint(hint)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doctor_probes_overlay_where_run_does() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("share/hutch");
        // Not created yet: its nearest existing directory, same filesystem.
        assert_eq!(overlay_probe_dir(&data, 1000), tmp.path());
        std::fs::create_dir_all(&data).unwrap();
        // A local store keeps containers beside it: `run` probes the store.
        let containers = crate::state::containers_dir(&data, 1000);
        assert_eq!(containers, data.join("containers"));
        assert_eq!(
            overlay_probe_dir(&data, 1000),
            crate::rootfs::probe_dir_of(&data, &containers)
        );
        assert_eq!(overlay_probe_dir(&data, 1000), data);
    }

    #[test]
    fn judge_overlay_table() {
        let base = Path::new("/home/a/.local/share/hutch");
        let failed = |step, errno| ProbeOutcome::Failed { step, errno };
        // (outcome, status, detail contains, hint contains)
        let cases = [
            (ProbeOutcome::Ok, Status::Ok, "works", None),
            (
                failed("unshare", Errno::EPERM),
                Status::Info,
                "no user namespace",
                None,
            ),
            (
                failed("uid_map", Errno::EPERM),
                Status::Info,
                "no user namespace",
                None,
            ),
            (
                failed("mount overlay", Errno::ENODEV),
                Status::Warn,
                "fuse-overlayfs or a plain copy",
                Some("modprobe overlay"),
            ),
            (
                failed("mount overlay", Errno::EINVAL),
                Status::Warn,
                "Invalid argument",
                Some("5.11"),
            ),
            (
                failed("whiteout", Errno::EPERM),
                Status::Warn,
                "whiteout failed",
                Some("fuse-overlayfs"),
            ),
            (ProbeOutcome::TimedOut, Status::Warn, "timed out", None),
            (
                ProbeOutcome::Died("killed by SIGSEGV".into()),
                Status::Warn,
                "SIGSEGV",
                None,
            ),
        ];
        for (outcome, status, detail, hint) in cases {
            crate::preflight::tests::assert_check(
                &judge_overlay(&outcome, base),
                status,
                detail,
                hint,
            );
        }
    }

    #[test]
    fn storage_driver_judged() {
        use crate::rootfs::driver::{Choice, Driver};
        let choice = |driver, reason: &str| {
            Ok(Choice {
                driver,
                reason: reason.into(),
                program: None,
            })
        };
        let c = judge_storage_driver(choice(Driver::Overlay, "kernel overlayfs works"));
        assert_eq!(
            (c.status, c.detail.as_str()),
            (Status::Ok, "overlay: kernel overlayfs works")
        );
        let c = judge_storage_driver(choice(Driver::Vfs, "kernel overlayfs is unavailable"));
        assert_eq!(c.status, Status::Warn);
        assert!(c.hint.is_some_and(|h| h.contains("fuse-overlayfs")));
        let c = judge_storage_driver(choice(Driver::Vfs, "chosen by `/c/config.toml`"));
        assert_eq!(c.status, Status::Ok);
        let e = Err(crate::errors::hint(
            anyhow::anyhow!("use storage driver `x`"),
            "fix it",
        ));
        let c = judge_storage_driver(e);
        assert_eq!(
            (c.status, c.hint.as_deref()),
            (Status::Fail, Some("fix it"))
        );
    }

    #[test]
    fn data_dir_table() {
        let home = Some(PathBuf::from("/home/a"));
        let cases = [
            (Some("/data"), home.clone(), Some("/data/hutch")),
            (None, home.clone(), Some("/home/a/.local/share/hutch")),
            (
                Some("relative/ignored"),
                home.clone(),
                Some("/home/a/.local/share/hutch"),
            ),
            (Some(""), home.clone(), Some("/home/a/.local/share/hutch")),
            (None, Some(PathBuf::from("relative")), None),
            (None, None, None),
        ];
        for (xdg, home, want) in cases {
            let got = data_dir(xdg.map(OsString::from), home);
            assert_eq!(got.as_deref(), want.map(Path::new));
        }
    }

    #[test]
    fn fs_kind_table() {
        let cases = [
            (0xEF53, "ext4", FsFit::Good),
            (0x5846_5342, "xfs", FsFit::Good),
            (0x0102_1994, "tmpfs", FsFit::Good),
            (0x6969, "NFS", FsFit::Network),
            (0x0BD0_0BD0, "Lustre", FsFit::Network),
            (0xFF53_4D42, "SMB/CIFS", FsFit::Network),
            (0x4750_4653, "GPFS", FsFit::Network),
            (0x1983_0326, "BeeGFS", FsFit::Network),
            (0x00C3_6400, "CephFS", FsFit::Network),
            (0x6573_5546, "FUSE", FsFit::NoUpper),
            (0x794C_7630, "overlayfs", FsFit::NoUpper),
            (0x1234_5678, "unknown", FsFit::Unknown),
        ];
        for (magic, name, fit) in cases {
            assert_eq!(fs_kind(magic), (name, fit), "{magic:#x}");
        }
    }

    #[test]
    fn judge_data_dir_table() {
        let dir = Path::new("/home/a/.local/share/hutch");
        let c = judge_data_dir(dir, true, Some(0xEF53));
        assert_eq!(c.status, Status::Ok);
        assert_eq!(
            c.detail,
            "/home/a/.local/share/hutch (not created yet) on ext4"
        );
        let c = judge_data_dir(dir, false, Some(0x6969));
        assert_eq!(c.status, Status::Warn);
        assert!(
            c.detail.contains("is on NFS") && c.detail.contains("cannot hold overlay upper dirs")
        );
        assert!(c.hint.is_some_and(|h| h.contains("XDG_DATA_HOME")));
        assert_eq!(judge_data_dir(dir, false, Some(1)).status, Status::Info);
        assert_eq!(judge_data_dir(dir, false, None).status, Status::Info);
        assert_eq!(check_data_dir(None).status, Status::Fail);
    }

    #[test]
    fn remove_tree_opens_up_mode_0_dirs() -> std::io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let scratch = tmp.path().join("s");
        std::fs::create_dir_all(scratch.join("work/work/inner"))?;
        std::fs::write(scratch.join("work/work/inner/f"), b"x")?;
        std::fs::set_permissions(
            scratch.join("work/work"),
            std::fs::Permissions::from_mode(0o000),
        )?;
        remove_tree(&scratch);
        assert!(!scratch.exists());
        Ok(())
    }

    #[test]
    fn overlay_dirs_are_laid_out_for_the_probe() -> std::io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let scratch = tmp.path().join("s");
        assert!(make_overlay_dirs(&scratch).is_ok());
        for sub in ["lower/victim", "upper", "work", "merged"] {
            assert!(scratch.join(sub).exists(), "{sub}");
        }
        // A second run in the same place must not silently reuse the dirs.
        assert_eq!(make_overlay_dirs(&scratch).err(), Some(Errno::EEXIST));
        Ok(())
    }
}
