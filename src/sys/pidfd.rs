//! pidfds (pidfd_open(2), pidfd_send_signal(2)): a handle on one process
//! that never refers to another one, even after its pid is reused. Used
//! by `hutch stop|kill|rm|wait` (in the caller's process) to signal and
//! wait for a container init that is not its child.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

/// Opens a pidfd for `pid` (close-on-exec, as every pidfd is).
pub fn open(pid: i32) -> nix::Result<OwnedFd> {
    // SAFETY: pidfd_open(2) takes a pid and flags by value and returns a
    // new fd or -1; no memory is shared with the kernel.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0 as libc::c_uint) };
    let fd = Errno::result(ret)?;
    // SAFETY: the kernel just installed `fd` for this process; nothing
    // else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Sends `sig` to the process behind `fd`; ESRCH once it has exited.
pub fn send_signal(fd: BorrowedFd<'_>, sig: i32) -> nix::Result<()> {
    // SAFETY: a NULL siginfo makes the kernel fill in SI_USER as kill(2)
    // does; the fd is borrowed and open for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0 as libc::c_uint,
        )
    };
    Errno::result(ret).map(drop)
}
