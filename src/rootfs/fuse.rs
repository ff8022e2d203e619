//! The fuse-overlayfs rung: the daemon that serves a container's rootfs.
//!
//! Runs in `hutch` (the parent side of the container, `sandbox::parent`),
//! at sync point [2a] (`sandbox::sync`): fuse-overlayfs is started in the
//! child's user namespace (so it serves files as the container's root)
//! and in a copy of the child's mount namespace, where it mounts the
//! rootfs; the mount reaches the child through a shared bind mount. Its
//! own mount namespace keeps the host's /proc (which fuse-overlayfs uses)
//! when the child pivots away from the old root. It is NOT in the
//! container's pid namespace: no container process can see it, signal it
//! or ptrace it, so none can make it write to the shared layers. The
//! parent waits (bounded) until the mount shows in the daemon's
//! mountinfo; the daemon is killed when the container is torn down
//! ([`Daemon`]'s drop) or when hutch dies (its parent-death signal).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::sys::spawn::Tied;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::unistd::Pid;

use crate::errors::WithHint;
use crate::plan::mounts::Overlay;
use crate::sys::nsspawn::{self, Namespaces};

/// How long fuse-overlayfs may take to mount.
const MOUNT_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything needed to start the daemon for one container.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FuseMount {
    pub program: PathBuf,
    /// `lowerdir=...,upperdir=...,workdir=...`
    pub options: String,
    pub target: PathBuf,
    /// The daemon's stdout and stderr, in the container's runtime dir.
    pub log: PathBuf,
}

/// fuse-overlayfs's `-o` value. Unlike the kernel, fuse-overlayfs before
/// 1.15 cannot escape `:` in lower dirs (and libfuse splits on `,`), so
/// a path holding `,` `:` or `\` is refused with a clear error.
pub fn options(o: &Overlay) -> anyhow::Result<String> {
    let plain = |p: &Path| -> anyhow::Result<String> {
        let s = p.to_str().with_context(|| {
            format!(
                "use `{}` for fuse-overlayfs: the path is not UTF-8",
                p.display()
            )
        })?;
        if s.contains([',', ':', '\\']) || s.contains(char::is_control) {
            return Err(anyhow::anyhow!(
                "use `{}` for fuse-overlayfs: the path holds `,`, `:`, `\\` or a control character",
                s.escape_debug()
            ))
            .hint("move the data dir (XDG_DATA_HOME) to a plain path, or use --storage-driver overlay or vfs");
        }
        Ok(s.to_string())
    };
    if o.lower.is_empty() {
        anyhow::bail!("mount fuse-overlayfs: the image has no layers");
    }
    let lower = o
        .lower
        .iter()
        .map(|p| plain(p))
        .collect::<anyhow::Result<Vec<_>>>()?
        .join(":");
    Ok(format!(
        "lowerdir={lower},upperdir={},workdir={}",
        plain(&o.upper)?,
        plain(&o.work)?
    ))
}

/// The running daemon; killed and reaped when dropped.
/// The container is gone (or never started) when it is dropped: nothing
/// is left to flush, every write went to the upper dir as it happened.
pub struct Daemon(Tied);

impl Daemon {
    /// Gives the daemon up without ending it; returns its pid.
    pub fn hand_over(self) -> u32 {
        self.0.hand_over()
    }
}

/// [`start`], for a child that asked for it: an error when the container
/// was not set up for fuse-overlayfs (a confused or hostile child).
pub fn start_for(m: Option<&FuseMount>, pid: Pid) -> anyhow::Result<Daemon> {
    let m = m.context(
        "start container: the init asked for fuse-overlayfs, which this container does not use",
    )?;
    start(m, pid)
}

/// Starts fuse-overlayfs for the container init `pid` and waits until
/// the rootfs is mounted in its mount namespace.
pub fn start(m: &FuseMount, pid: Pid) -> anyhow::Result<Daemon> {
    let open = |ns: &str| -> anyhow::Result<std::os::fd::OwnedFd> {
        let p = format!("/proc/{pid}/ns/{ns}");
        Ok(std::fs::File::open(&p)
            .with_context(|| format!("open `{p}`"))?
            .into())
    };
    let ns = Namespaces {
        user: open("user")?,
        mnt: open("mnt")?,
    };
    let log =
        std::fs::File::create(&m.log).with_context(|| format!("create `{}`", m.log.display()))?;
    let mut cmd = Command::new(&m.program);
    cmd.arg("-f")
        .arg("-o")
        .arg(&m.options)
        .arg(&m.target)
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("duplicate the log fd")?)
        .stderr(log);
    let child = nsspawn::spawn_in(&mut cmd, &ns)
        .with_context(|| format!("start `{}`", m.program.display()))?;
    let mut daemon = Daemon(Tied::new(child));
    wait_mounted(&mut daemon, m)?;
    Ok(daemon)
}

fn wait_mounted(d: &mut Daemon, m: &FuseMount) -> anyhow::Result<()> {
    let child = &mut d.0;
    let mountinfo = format!("/proc/{}/mountinfo", child.pid());
    let deadline = Instant::now() + MOUNT_TIMEOUT;
    let failed = |what: String| {
        let log = std::fs::read_to_string(&m.log).unwrap_or_default();
        let last = log
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        Err(anyhow::anyhow!("mount the image layers with fuse-overlayfs: {what}{}{last}",
            if last.is_empty() { "" } else { ": " }))
        .hint("`hutch doctor` shows whether FUSE works here; --storage-driver vfs needs neither FUSE nor overlay")
    };
    loop {
        if let Some(status) = child.try_wait().context("wait for fuse-overlayfs")? {
            return failed(format!("it exited with {status}"));
        }
        let text = std::fs::read_to_string(&mountinfo).unwrap_or_default();
        if is_mounted(&text, &m.target) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return failed(format!("not mounted after {}s", MOUNT_TIMEOUT.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Whether mountinfo(5) text has a FUSE mount at `target`. Mount points
/// there are octal-escaped (space, tab, newline, backslash).
fn is_mounted(mountinfo: &str, target: &Path) -> bool {
    let want = target
        .to_string_lossy()
        .replace('\\', "\\134")
        .replace(' ', "\\040")
        .replace('\t', "\\011")
        .replace('\n', "\\012");
    mountinfo.lines().any(|line| {
        let mut halves = line.splitn(2, " - ");
        let (Some(left), Some(right)) = (halves.next(), halves.next()) else {
            return false;
        };
        left.split(' ').nth(4) == Some(want.as_str()) && right.starts_with("fuse")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_plain_or_refused() {
        let o = Overlay {
            lower: vec!["/s/l/top".into(), "/s/l/base".into()],
            upper: "/c/upper".into(),
            work: "/c/work".into(),
        };
        assert_eq!(
            options(&o).unwrap(),
            "lowerdir=/s/l/top:/s/l/base,upperdir=/c/upper,workdir=/c/work"
        );
        for bad in ["/a,b", "/a:b", "/a\\b", "/a\nb"] {
            let mut o2 = o.clone();
            o2.upper = bad.into();
            let e = options(&o2).unwrap_err();
            let (chain, hints, _) = crate::errors::split(&e);
            assert!(chain[0].contains("fuse-overlayfs"), "{chain:?}");
            assert!(!chain[0].contains('\n'), "{chain:?}");
            assert!(hints[0].contains("vfs"), "{hints:?}");
        }
        let none = Overlay { lower: vec![], ..o };
        assert!(options(&none).is_err());
    }

    #[test]
    fn mountinfo_lookup() {
        let info = "\
22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:40 / /d/c\\040x/rootfs rw,nosuid,nodev - fuse.fuse-overlayfs fuse-overlayfs rw
41 22 0:41 / /d/other rw - fuse.fuse-overlayfs fuse-overlayfs rw
42 22 0:42 / /d/ext4 rw - ext4 /dev/sdb rw";
        assert!(is_mounted(info, Path::new("/d/c x/rootfs")));
        assert!(is_mounted(info, Path::new("/d/other")));
        assert!(!is_mounted(info, Path::new("/d/c")));
        assert!(!is_mounted(info, Path::new("/d/ext4")), "not a FUSE mount");
        assert!(!is_mounted("", Path::new("/")));
        assert!(!is_mounted("garbage without separator", Path::new("/")));
    }
}
