//! The storage ladder: which way a container's root filesystem is built
//! from the shared layers, chosen once per `run` in the `hutch` process.
//!
//! ```text
//!   overlay          kernel overlayfs in the container's user namespace
//!   fuse-overlayfs   the FUSE implementation, where the kernel refuses
//!   vfs              a private copy of the layers, where neither works
//! ```
//!
//! An explicit choice (`--storage-driver`, else `[storage] driver` in
//! `$XDG_CONFIG_HOME/hutch/config.toml`) is obeyed or fails with a hint;
//! otherwise the first rung the host can do is taken ([`choose`], pure).

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::errors::WithHint;
use crate::state::Dirs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Driver {
    #[serde(rename = "overlay")]
    Overlay,
    #[serde(rename = "fuse-overlayfs")]
    FuseOverlayfs,
    #[serde(rename = "vfs")]
    Vfs,
}

impl Driver {
    pub fn name(self) -> &'static str {
        match self {
            Driver::Overlay => "overlay",
            Driver::FuseOverlayfs => "fuse-overlayfs",
            Driver::Vfs => "vfs",
        }
    }

    /// Parses a driver name as users write it (`overlay2` is Docker's).
    pub fn parse(s: &str) -> anyhow::Result<Driver> {
        match s {
            "overlay" | "overlay2" => Ok(Driver::Overlay),
            "fuse-overlayfs" => Ok(Driver::FuseOverlayfs),
            "vfs" => Ok(Driver::Vfs),
            other => Err(anyhow::anyhow!(
                "use storage driver `{}`: expected overlay, fuse-overlayfs or vfs",
                other.escape_debug()
            )),
        }
    }
}

/// Where an explicit choice came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Flag,
    Config(PathBuf),
}

/// What the host can do, as far as storage goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostStorage {
    /// `Ok` when overlay with `userxattr` mounted in a user namespace on
    /// the store's filesystem; else why not.
    pub kernel_overlay: Result<(), String>,
    /// fuse-overlayfs on PATH.
    pub fuse_program: Option<PathBuf>,
    /// /dev/fuse can be opened for reading and writing.
    pub dev_fuse: bool,
}

/// The decision and its reason, recorded with each container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    pub driver: Driver,
    pub reason: String,
    /// fuse-overlayfs's path, for that driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<PathBuf>,
}

const FUSE_HINT: &str =
    "install fuse-overlayfs (Debian/Ubuntu: `sudo apt install fuse-overlayfs`) \
and make sure /dev/fuse exists (`sudo modprobe fuse`), or choose --storage-driver vfs";

/// The rung to use: an explicit one if given (or an error saying what is
/// missing), else overlay, then fuse-overlayfs, then vfs.
pub fn choose(explicit: Option<(Driver, Origin)>, host: &HostStorage) -> anyhow::Result<Choice> {
    let fuse_ok = host.fuse_program.is_some() && host.dev_fuse;
    let fuse_missing = match (&host.fuse_program, host.dev_fuse) {
        (None, _) => "fuse-overlayfs is not on PATH",
        (Some(_), false) => "/dev/fuse cannot be opened",
        _ => "",
    };
    if let Some((driver, origin)) = explicit {
        let from = match &origin {
            Origin::Flag => "--storage-driver".to_string(),
            Origin::Config(p) => format!("`{}`", p.display()),
        };
        if driver == Driver::FuseOverlayfs && !fuse_ok {
            return Err(anyhow::anyhow!(
                "use storage driver fuse-overlayfs (chosen by {from}): {fuse_missing}"
            ))
            .hint(FUSE_HINT);
        }
        return Ok(Choice {
            driver,
            reason: format!("chosen by {from}"),
            program: host
                .fuse_program
                .clone()
                .filter(|_| driver == Driver::FuseOverlayfs),
        });
    }
    let why_not = match &host.kernel_overlay {
        Ok(()) => {
            return Ok(Choice {
                driver: Driver::Overlay,
                reason: "kernel overlayfs works in a user namespace on the store's filesystem"
                    .into(),
                program: None,
            })
        }
        Err(why) => why,
    };
    if fuse_ok {
        return Ok(Choice {
            driver: Driver::FuseOverlayfs,
            reason: format!("kernel overlayfs is unavailable ({why_not}); fuse-overlayfs is"),
            program: host.fuse_program.clone(),
        });
    }
    Ok(Choice {
        driver: Driver::Vfs,
        reason: format!(
            "kernel overlayfs is unavailable ({why_not}) and {fuse_missing}: each container gets a private copy of the layers"
        ),
        program: None,
    })
}

/// `$XDG_CONFIG_HOME/hutch/config.toml`, else `~/.config/hutch/config.toml`.
pub fn config_path() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let home = || {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .map(|h| h.join(".config"))
    };
    Some(xdg.or_else(home)?.join("hutch/config.toml"))
}

/// The driver for a new container. The host is probed only when it
/// matters: kernel overlay for the automatic choice (a success is cached
/// in the runtime dir, see [`overlay_cached`]), fuse-overlayfs's presence
/// always (a stat per PATH entry).
pub fn decide(
    explicit: Option<(Driver, Origin)>,
    dirs: &Dirs,
    fresh: bool,
) -> anyhow::Result<Choice> {
    let kernel_overlay = match &explicit {
        None => overlay_cached(dirs, fresh),
        Some(_) => Err("not probed".into()),
    };
    let host = HostStorage {
        kernel_overlay,
        fuse_program: crate::preflight::find_in_path("fuse-overlayfs"),
        dev_fuse: crate::preflight::dev_fuse_usable(),
    };
    choose(explicit, &host)
}

/// A kernel overlay probe that worked, remembered in the runtime dir
/// (cleared at reboot) for the kernel and directory it ran on: the probe
/// costs a fork and two mounts, a quarter of a container's start. A
/// failure is never cached, so a fixed host is seen on the next run.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct ProbeCache {
    kernel: String,
    dir: PathBuf,
}

fn overlay_cached(dirs: &Dirs, fresh: bool) -> Result<(), String> {
    let dir = super::probe_dir(dirs);
    let key = ProbeCache {
        kernel: nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default(),
        dir: dir.clone(),
    };
    let path = dirs.runtime.join("overlay-probe.json");
    let cached = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<ProbeCache>(&b).ok());
    if !fresh && cached.as_ref() == Some(&key) {
        return Ok(());
    }
    let result = crate::preflight::overlay_works(&dir);
    if result.is_ok() {
        let tmp = dirs
            .runtime
            .join(format!(".overlay-probe.{}", std::process::id()));
        let written = serde_json::to_vec(&key)
            .ok()
            .and_then(|b| std::fs::write(&tmp, b).ok())
            .and_then(|()| std::fs::rename(&tmp, &path).ok());
        if written.is_none() {
            let _ = std::fs::remove_file(&tmp);
        }
    } else {
        let _ = std::fs::remove_file(&path);
    }
    result
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    storage: StorageSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StorageSection {
    driver: Option<String>,
}

/// The driver named in the config file text, if any.
pub fn parse_config(text: &str, path: &Path) -> anyhow::Result<Option<Driver>> {
    let file: ConfigFile = toml::from_str(text)
        .with_context(|| format!("read `{}`", path.display()))
        .hint("the file is TOML; hutch reads `[storage]` with `driver = \"overlay\"`, `\"fuse-overlayfs\"` or `\"vfs\"`")?;
    file.storage
        .driver
        .map(|d| Driver::parse(&d))
        .transpose()
        .with_context(|| format!("read `{}`", path.display()))
}

/// The explicit choice: the flag, else the config file (a missing file is
/// no choice; an unreadable or invalid one is an error).
pub fn explicit(flag: Option<&str>) -> anyhow::Result<Option<(Driver, Origin)>> {
    if let Some(f) = flag {
        return Ok(Some((Driver::parse(f)?, Origin::Flag)));
    }
    let Some(path) = config_path() else {
        return Ok(None);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("read `{}`", path.display())),
    };
    Ok(parse_config(&text, &path)?.map(|d| (d, Origin::Config(path))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(overlay: bool, fuse: bool, dev: bool) -> HostStorage {
        HostStorage {
            kernel_overlay: if overlay {
                Ok(())
            } else {
                Err("mount overlay failed: EINVAL".into())
            },
            fuse_program: fuse.then(|| PathBuf::from("/usr/bin/fuse-overlayfs")),
            dev_fuse: dev,
        }
    }

    #[test]
    fn automatic_ladder() {
        // (overlay, fuse on PATH, /dev/fuse) -> driver, reason contains
        let cases = [
            ((true, true, true), Driver::Overlay, "works"),
            ((true, false, false), Driver::Overlay, "works"),
            ((false, true, true), Driver::FuseOverlayfs, "EINVAL"),
            ((false, false, true), Driver::Vfs, "not on PATH"),
            ((false, true, false), Driver::Vfs, "/dev/fuse"),
            ((false, false, false), Driver::Vfs, "private copy"),
        ];
        for ((o, f, d), want, reason) in cases {
            let c = choose(None, &host(o, f, d)).unwrap();
            assert_eq!(c.driver, want, "{o} {f} {d}");
            assert!(c.reason.contains(reason), "{}", c.reason);
            assert_eq!(c.program.is_some(), want == Driver::FuseOverlayfs);
        }
    }

    #[test]
    fn explicit_choice_is_obeyed_or_refused() {
        let cfg = Origin::Config("/h/.config/hutch/config.toml".into());
        let c = choose(Some((Driver::Vfs, Origin::Flag)), &host(true, true, true)).unwrap();
        assert_eq!(
            (c.driver, c.reason.as_str()),
            (Driver::Vfs, "chosen by --storage-driver")
        );
        let c = choose(
            Some((Driver::Overlay, cfg.clone())),
            &host(false, false, false),
        )
        .unwrap();
        assert_eq!(c.driver, Driver::Overlay);
        assert!(c.reason.contains("config.toml"), "{}", c.reason);
        let c = choose(
            Some((Driver::FuseOverlayfs, Origin::Flag)),
            &host(true, true, true),
        );
        assert_eq!(c.unwrap().program, Some("/usr/bin/fuse-overlayfs".into()));
        for (f, d, why) in [(false, true, "not on PATH"), (true, false, "/dev/fuse")] {
            let e = choose(
                Some((Driver::FuseOverlayfs, cfg.clone())),
                &host(true, f, d),
            )
            .unwrap_err();
            let (chain, hints, _) = crate::errors::split(&e);
            assert!(
                chain[0].contains(why) && chain[0].contains("config.toml"),
                "{chain:?}"
            );
            assert!(hints[0].contains("apt install fuse-overlayfs"), "{hints:?}");
        }
    }

    #[test]
    fn only_a_working_overlay_probe_is_cached() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let dirs = Dirs::under(tmp.path());
        std::fs::create_dir_all(&dirs.runtime)?;
        std::fs::create_dir_all(&dirs.data)?;
        let cache = dirs.runtime.join("overlay-probe.json");
        // A cache for another kernel is not trusted: the probe runs again.
        std::fs::write(&cache, br#"{"kernel":"0.0.0","dir":"/elsewhere"}"#)?;
        let first = overlay_cached(&dirs, false);
        assert_eq!(cache.exists(), first.is_ok(), "{first:?}");
        if first.is_ok() {
            let text = std::fs::read_to_string(&cache)?;
            assert!(text.contains(&dirs.data.display().to_string()), "{text}");
            assert_eq!(overlay_cached(&dirs, false), Ok(()));
        }
        // No scratch dir of the probe is left behind.
        let left: Vec<_> = std::fs::read_dir(&dirs.data)?
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "{left:?}");
        Ok(())
    }

    #[test]
    fn driver_names() {
        for (s, d) in [
            ("overlay", Driver::Overlay),
            ("overlay2", Driver::Overlay),
            ("fuse-overlayfs", Driver::FuseOverlayfs),
            ("vfs", Driver::Vfs),
        ] {
            assert_eq!(Driver::parse(s).unwrap(), d);
        }
        for bad in ["", "OVERLAY", "btrfs", "vfs ", "over\u{1b}[31mlay"] {
            let e = Driver::parse(bad).unwrap_err().to_string();
            assert!(e.contains("expected overlay, fuse-overlayfs or vfs"), "{e}");
            assert!(!e.contains('\u{1b}'), "{e}");
        }
    }

    #[test]
    fn config_file_table() {
        let p = Path::new("/c/hutch/config.toml");
        let ok = [
            ("", None),
            ("[storage]\n", None),
            ("[storage]\ndriver = \"vfs\"\n", Some(Driver::Vfs)),
            (
                "[other]\nx = 1\n[storage]\ndriver = \"fuse-overlayfs\"",
                Some(Driver::FuseOverlayfs),
            ),
        ];
        for (text, want) in ok {
            assert_eq!(parse_config(text, p).unwrap(), want, "{text}");
        }
        for bad in [
            "[storage]\ndriver = \"zfs\"",
            "[storage]\ndriver = 3",
            "[storage]\ndrvier = \"vfs\"",
            "[storage\n",
            "storage = 1",
        ] {
            let e = parse_config(bad, p).unwrap_err();
            assert!(format!("{e:#}").contains("config.toml"), "{bad}: {e:#}");
        }
    }
}
