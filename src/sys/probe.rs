//! Host probes that need a throwaway child process or a raw syscall:
//! "can this user create a user namespace?", "can it mount overlayfs with
//! `userxattr` inside one?", and "does this file carry an xattr?".
//!
//! A probe forks a child that tries the real thing and reports back through
//! a pipe, so the caller's own namespaces and mounts are never touched:
//!
//! ```text
//! parent                                 child (fork)
//!   prepare every path/map as bytes        |
//!   pipe2(O_CLOEXEC), fork  ───────────►   run the steps (raw syscalls only)
//!   poll(pipe, deadline)    ◄───────────   write [step, errno] or [0], _exit(0)
//!   reap (WNOHANG until deadline),
//!   else SIGKILL + reap
//! ```
//!
//! The child only makes async-signal-safe syscalls on memory prepared before
//! the fork (no allocation, no locks, no panics), so forking is sound even if
//! the caller has other threads. It never returns: it ends with `_exit`.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::mount::{mount, MsFlags};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, pipe2, read, unlink, write, ForkResult, Pid};

/// What a forked probe reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// Every step succeeded.
    Ok,
    /// A step failed with this errno (`step` names it: "unshare", "uid_map", ...).
    Failed { step: &'static str, errno: Errno },
    /// The child did not finish before the deadline and was killed.
    TimedOut,
    /// The child ended without a report (signal, or exit status).
    Died(String),
}

/// Steps a child may fail at; the byte on the pipe is the index + 1.
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
enum Step {
    Unshare = 1,
    Setgroups,
    UidMap,
    GidMap,
    MakePrivate,
    MountOverlay,
    Whiteout,
}

const STEP_NAMES: [&str; 7] = [
    "unshare",
    "setgroups",
    "uid_map",
    "gid_map",
    "make / private",
    "mount overlay",
    "whiteout",
];

type StepResult = Result<(), (Step, Errno)>;

/// Maps a process writes for itself after `unshare(CLONE_NEWUSER)`: one id,
/// `0 UID 1` and `0 GID 1`, with `setgroups` denied first (user_namespaces(7)).
#[derive(Debug, Clone)]
pub struct SelfMaps {
    uid_map: Vec<u8>,
    gid_map: Vec<u8>,
}

impl SelfMaps {
    /// The single-id maps for the caller's own uid and gid.
    pub fn single(uid: u32, gid: u32) -> SelfMaps {
        SelfMaps {
            uid_map: format!("0 {uid} 1\n").into_bytes(),
            gid_map: format!("0 {gid} 1\n").into_bytes(),
        }
    }
}

/// Paths for the overlay probe, prepared (as C strings) before the fork.
#[derive(Debug, Clone)]
pub struct OverlayPaths {
    merged: CString,
    options: CString,
    /// A file of the lower layer, seen through `merged`, that the child deletes
    /// (overlay must then create a whiteout in the upper dir).
    victim: CString,
}

impl OverlayPaths {
    /// `lower/upper/work/merged` must exist; `lower` must hold `victim_name`.
    pub fn new(dir: &Path, victim_name: &str) -> Result<OverlayPaths, Errno> {
        let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL);
        let options = format!(
            "lowerdir={},upperdir={},workdir={},userxattr",
            escape_overlay(&dir.join("lower")),
            escape_overlay(&dir.join("upper")),
            escape_overlay(&dir.join("work")),
        );
        Ok(OverlayPaths {
            merged: c(&dir.join("merged"))?,
            options: CString::new(options).map_err(|_| Errno::EINVAL)?,
            victim: c(&dir.join("merged").join(victim_name))?,
        })
    }
}

/// Escapes `\`, `,` and `:` for overlay mount options.
fn escape_overlay(path: &Path) -> String {
    let mut out = String::new();
    for ch in path.to_string_lossy().chars() {
        if matches!(ch, '\\' | ',' | ':') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// Forks a child that creates a user namespace and maps itself into it.
pub fn userns(maps: &SelfMaps, timeout: Duration) -> ProbeOutcome {
    in_child(timeout, || {
        unshare(CloneFlags::CLONE_NEWUSER).map_err(|e| (Step::Unshare, e))?;
        write_maps(maps)
    })
}

/// Forks a child that creates user+mount namespaces, mounts overlay with
/// `userxattr` on the prepared dirs, and deletes a lower file through it.
pub fn overlay(maps: &SelfMaps, paths: &OverlayPaths, timeout: Duration) -> ProbeOutcome {
    in_child(timeout, || {
        let flags = CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS;
        unshare(flags).map_err(|e| (Step::Unshare, e))?;
        write_maps(maps)?;
        let private = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
        mount(None::<&CStr>, c"/", None::<&CStr>, private, None::<&CStr>)
            .map_err(|e| (Step::MakePrivate, e))?;
        let (src, fstype) = (Some(c"overlay"), Some(c"overlay"));
        mount(
            src,
            paths.merged.as_c_str(),
            fstype,
            MsFlags::empty(),
            Some(paths.options.as_c_str()),
        )
        .map_err(|e| (Step::MountOverlay, e))?;
        unlink(paths.victim.as_c_str()).map_err(|e| (Step::Whiteout, e))
    })
}

/// Whether `path` carries the extended attribute `name` (e.g.
/// `security.capability`). Errors (ENODATA, ENOTSUP, ENOENT) mean "no".
pub fn has_xattr(path: &Path, name: &CStr) -> bool {
    let Ok(cpath) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: both pointers are valid NUL-terminated strings that outlive the
    // call; a null buffer with size 0 asks only for the value's length.
    let len = unsafe { libc::getxattr(cpath.as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) };
    len >= 0
}

/// Runs in the child: `setgroups` deny, then gid map, then uid map.
fn write_maps(maps: &SelfMaps) -> StepResult {
    write_file(c"/proc/self/setgroups", b"deny").map_err(|e| (Step::Setgroups, e))?;
    write_file(c"/proc/self/gid_map", &maps.gid_map).map_err(|e| (Step::GidMap, e))?;
    write_file(c"/proc/self/uid_map", &maps.uid_map).map_err(|e| (Step::UidMap, e))
}

/// One `open` + one `write`; async-signal-safe (the fd closes on drop).
fn write_file(path: &CStr, data: &[u8]) -> Result<(), Errno> {
    let fd = open(path, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty())?;
    // SAFETY: `open` just returned this descriptor and nothing else owns it.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let n = write(&fd, data)?;
    if n == data.len() {
        Ok(())
    } else {
        Err(Errno::EIO)
    }
}

/// Forks, runs `body` in the child, and collects its report within `timeout`.
fn in_child<F: FnOnce() -> StepResult>(timeout: Duration, body: F) -> ProbeOutcome {
    let deadline = Instant::now() + timeout;
    let (rd, wr) = match pipe2(OFlag::O_CLOEXEC) {
        Ok(pair) => pair,
        Err(errno) => {
            return ProbeOutcome::Failed {
                step: "pipe",
                errno,
            }
        }
    };
    // SAFETY: the child runs only `body` and `child_report`, which make
    // async-signal-safe syscalls on memory prepared before the fork (no
    // allocation, no locks, no panicking paths) and end with `_exit`, so no
    // state inherited from other threads of the parent is ever used.
    match unsafe { fork() } {
        Err(errno) => ProbeOutcome::Failed {
            step: "fork",
            errno,
        },
        Ok(ForkResult::Child) => {
            drop(rd);
            child_report(&wr, body())
        }
        Ok(ForkResult::Parent { child }) => {
            drop(wr);
            let report = read_report(&rd, deadline);
            let status = reap(child, deadline);
            judge(report, status)
        }
    }
}

/// Child side: write `[0]` or `[step, errno (4 bytes LE)]`, then `_exit(0)`.
fn child_report(wr: &OwnedFd, result: StepResult) -> ! {
    let mut msg = [0u8; 5];
    if let Err((step, errno)) = result {
        msg[0] = step as u8;
        msg[1..].copy_from_slice(&(errno as i32).to_le_bytes());
    }
    let _ = write(wr, &msg);
    // SAFETY: `_exit` is async-signal-safe, never returns, and skips the
    // parent's atexit handlers and stdio buffers inherited through fork.
    unsafe { libc::_exit(0) }
}

/// Parent side: the child's 5 bytes, or `None` if the pipe closes early or
/// time runs out.
fn read_report(rd: &OwnedFd, deadline: Instant) -> Option<[u8; 5]> {
    let mut buf = [0u8; 5];
    let mut got = 0;
    while got < buf.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        if ms == 0 {
            return None;
        }
        let mut fds = [PollFd::new(rd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => {}
            Err(_) => return None,
        }
        match read(rd.as_raw_fd(), &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::EINTR) => continue,
            Err(_) => return None,
        }
    }
    (got == buf.len()).then_some(buf)
}

/// Waits for the child until the deadline, then kills it. `None`: timed out.
fn reap(child: Pid, deadline: Instant) -> Option<WaitStatus> {
    loop {
        match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => {}
            Ok(status) => return Some(status),
            Err(_) => return None,
        }
        if Instant::now() >= deadline {
            let _ = kill(child, Signal::SIGKILL);
            let _ = waitpid(child, None);
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn judge(report: Option<[u8; 5]>, status: Option<WaitStatus>) -> ProbeOutcome {
    match (report, status) {
        (Some(msg), _) => decode(msg),
        (None, None) => ProbeOutcome::TimedOut,
        (None, Some(WaitStatus::Signaled(_, sig, _))) => {
            ProbeOutcome::Died(format!("killed by {sig}"))
        }
        (None, Some(status)) => ProbeOutcome::Died(format!("ended without a report ({status:?})")),
    }
}

fn decode(msg: [u8; 5]) -> ProbeOutcome {
    if msg[0] == 0 {
        return ProbeOutcome::Ok;
    }
    let name = STEP_NAMES
        .get(usize::from(msg[0]) - 1)
        .copied()
        .unwrap_or("unknown step");
    let errno = Errno::from_raw(i32::from_le_bytes([msg[1], msg[2], msg[3], msg[4]]));
    ProbeOutcome::Failed { step: name, errno }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_overlay_options() {
        assert_eq!(escape_overlay(Path::new("/a/b")), "/a/b");
        assert_eq!(escape_overlay(Path::new("/a,b:c\\d")), "/a\\,b\\:c\\\\d");
    }

    #[test]
    fn decode_reports() {
        assert_eq!(decode([0; 5]), ProbeOutcome::Ok);
        let mut msg = [Step::UidMap as u8, 0, 0, 0, 0];
        msg[1..].copy_from_slice(&(Errno::EPERM as i32).to_le_bytes());
        assert_eq!(
            decode(msg),
            ProbeOutcome::Failed {
                step: "uid_map",
                errno: Errno::EPERM
            }
        );
        assert!(matches!(
            decode([200, 1, 0, 0, 0]),
            ProbeOutcome::Failed {
                step: "unknown step",
                ..
            }
        ));
    }

    #[test]
    fn child_failure_is_reported_and_reaped() {
        let out = in_child(Duration::from_secs(5), || {
            Err((Step::MountOverlay, Errno::ENODEV))
        });
        assert_eq!(
            out,
            ProbeOutcome::Failed {
                step: "mount overlay",
                errno: Errno::ENODEV
            }
        );
        assert_eq!(
            in_child(Duration::from_secs(5), || Ok(())),
            ProbeOutcome::Ok
        );
    }

    #[test]
    fn slow_child_is_killed_at_the_deadline() {
        let start = Instant::now();
        let out = in_child(Duration::from_millis(100), || {
            nix::unistd::pause();
            Ok(())
        });
        assert_eq!(out, ProbeOutcome::TimedOut);
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn has_xattr_on_missing_file_is_false() {
        assert!(!has_xattr(
            Path::new("/nonexistent/hutch"),
            c"security.capability"
        ));
    }
}
