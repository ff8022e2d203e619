//! Starting a helper program inside another process's user namespace and
//! a copy of its mount namespace, but not its pid namespace:
//! fuse-overlayfs serves the container's rootfs from there
//! (`rootfs::fuse`). Runs in `hutch`; the namespace switch happens in the
//! forked child, between fork and exec.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

/// The namespaces to join, opened from `/proc/PID/ns/{user,mnt}`.
pub struct Namespaces {
    pub user: OwnedFd,
    pub mnt: OwnedFd,
}

/// Spawns `cmd` after setns() into `ns.user` then `ns.mnt`, then
/// unshare(CLONE_NEWNS) for a copy of that mount namespace, as root of
/// the user namespace (uid and gid 0, which every map of hutch's has),
/// with a parent-death signal of SIGKILL set last (credential changes
/// clear it, prctl(2)).
pub fn spawn_in(cmd: &mut Command, ns: &Namespaces) -> std::io::Result<Child> {
    let (user, mnt) = (ns.user.as_raw_fd(), ns.mnt.as_raw_fd());
    let check = |ret: libc::c_int| {
        if ret == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    // SAFETY: the closure runs in the forked child before execve and only
    // makes raw syscalls on fds and integers captured by value; it takes
    // no locks and does not allocate (io::Error from an errno does not).
    // setns(2) needs a single-threaded caller, which a fresh fork is; the
    // fds stay open in the parent until spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            check(libc::setns(user, libc::CLONE_NEWUSER))?;
            check(libc::setns(mnt, libc::CLONE_NEWNS))?;
            check(libc::unshare(libc::CLONE_NEWNS))?;
            check(libc::setresgid(0, 0, 0))?;
            check(libc::setresuid(0, 0, 0))?;
            check(libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
            ))
        })
    };
    cmd.spawn()
}
