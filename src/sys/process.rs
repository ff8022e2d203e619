//! Process-level syscalls nix does not wrap safely: a fork-like `clone`
//! with namespace flags, `_exit`, terminal ioctls, `close_range`.

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::unistd::Pid;

/// `clone(flags | SIGCHLD)` with no new stack: like fork(2), the child
/// continues on a copy of the caller's stack and returns `None`.
///
/// Callers must be single-threaded (DESIGN.md: no threads exist when
/// `clone` is called), since only the calling thread is copied; this is
/// how crun creates its container process (`syscall_clone`).
pub fn clone_fork(flags: CloneFlags) -> nix::Result<Option<Pid>> {
    let flags = flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: with a NULL stack and without CLONE_VM the kernel gives the
    // child a copy-on-write copy of the address space, exactly as fork(2);
    // no pointers are passed. The caller is single-threaded, so no lock
    // can be held by a thread that does not exist in the child.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    match Errno::result(ret)? {
        0 => Ok(None),
        pid => Ok(Some(Pid::from_raw(pid as libc::pid_t))),
    }
}

/// fork(2), for the `--init` reaper (single-threaded caller).
pub fn fork() -> nix::Result<Option<Pid>> {
    clone_fork(CloneFlags::empty())
}

/// Ends the calling process at once, without running exit handlers or
/// flushing buffers that belong to the parent's copy of the process.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit(2) has no preconditions and does not return.
    unsafe { libc::_exit(code) }
}

/// Makes `fd` (a terminal) the controlling terminal of this session.
pub fn set_controlling_tty(fd: BorrowedFd<'_>) -> nix::Result<()> {
    // SAFETY: TIOCSCTTY takes an int argument by value; fd is borrowed
    // and open for the duration of the call.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) };
    Errno::result(ret).map(drop)
}

/// Window size of a terminal as (rows, cols).
pub fn window_size(fd: BorrowedFd<'_>) -> nix::Result<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `struct winsize` to the valid pointer.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    Errno::result(ret).map(|_| (ws.ws_row, ws.ws_col))
}

/// Sets the window size of a terminal.
pub fn set_window_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> nix::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `struct winsize` from the valid pointer.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    Errno::result(ret).map(drop)
}

/// Marks every fd from `first` up close-on-exec, so nothing of the host
/// leaks into the container's command (CVE-2024-21626 class).
pub fn cloexec_from(first: RawFd) -> nix::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range(2) only changes flags on this process's fds.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    Errno::result(ret).map(drop)
}

/// Returns free heap memory to the kernel (glibc's malloc_trim(3)). A
/// long-lived process forked from a busy one (the detached supervisor)
/// otherwise keeps the parent's freed heap pages as its own.
pub fn trim_heap() {
    // SAFETY: malloc_trim only works on glibc's own allocator state, is
    // thread-safe and has no preconditions; its result is advisory.
    unsafe { libc::malloc_trim(0) };
}

/// Takes ownership of an fd the kernel just installed (SCM_RIGHTS).
pub fn own_fd(raw: RawFd) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: the caller passes an fd received from recvmsg(2), which the
    // kernel installed for this process and nothing else owns yet.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) }
}

/// Takes ownership of `raw` if it is open: an fd this process got across
/// execve from its former self (the re-executed supervisor's handoff).
pub fn inherited_fd(raw: RawFd) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    nix::fcntl::fcntl(raw, nix::fcntl::FcntlArg::F_GETFD).ok()?;
    // SAFETY: `raw` is open (F_GETFD succeeded) and was inherited across
    // execve; called once per fd at the start of the process, before
    // anything else could open or own it.
    Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) })
}

/// Resets every catchable signal to its default disposition. Rust's
/// runtime ignores SIGPIPE, and an ignored disposition survives execve:
/// without this, `yes | head` would behave differently in a container.
pub fn reset_signal_dispositions() {
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL installs no handler code; signals numbers the
        // kernel rejects (32, 33 used by glibc) just fail with EINVAL.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}

/// Borrows a raw fd the caller keeps open for the program's lifetime.
pub fn borrow_fd(fd: RawFd) -> BorrowedFd<'static> {
    // SAFETY: callers pass fds they own and do not close while borrowed
    // (the container init's pty slave until it execs).
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// Closes every fd from `first` up except `keep`: a process that is about
/// to enter a container must hold no descriptor of the host, since a
/// magic link such as `/proc/self/fd/N` would lead back out of the root
/// (CVE-2024-21626). Marking close-on-exec is not enough before a chdir.
pub fn close_fds_except(first: RawFd, keep: &[RawFd]) -> nix::Result<()> {
    let mut from = first;
    loop {
        // The next kept fd at or above `from`; no allocation, as this runs
        // in forked children.
        let next = keep.iter().copied().filter(|k| *k >= from).min();
        if next != Some(from) {
            let last = next.map_or(libc::c_uint::MAX, |k| (k - 1) as libc::c_uint);
            // SAFETY: close_range(2) closes this process's fds in the
            // range; the caller owns every one of them except `keep`, and
            // no Rust object outlives this for a closed fd (the callers
            // are about to exec and hold only the kept descriptors).
            let ret = unsafe {
                libc::syscall(
                    libc::SYS_close_range,
                    from as libc::c_uint,
                    last,
                    0 as libc::c_uint,
                )
            };
            Errno::result(ret)?;
        }
        match next {
            Some(k) => from = k.saturating_add(1),
            None => return Ok(()),
        }
    }
}

/// Closes every fd from `first` up (a fresh supervisor drops what the
/// `hutch` process that forked it had open, its store lock included).
pub fn close_from(first: RawFd) -> nix::Result<()> {
    // SAFETY: close_range(2) only closes this process's fds; callers own
    // no Rust object that still uses an fd at or above `first`.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            0 as libc::c_uint,
        )
    };
    Errno::result(ret).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `fd` is open in this process.
    fn is_open(fd: RawFd) -> bool {
        nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).is_ok()
    }

    #[test]
    fn close_fds_except_keeps_stdio_and_the_kept_ones() {
        // In a child: closing descriptors of the test harness is fine there.
        let code = crate::sys::seccomp::fork_and_wait(|| {
            let mut fds = [0; 6];
            for slot in fds.iter_mut() {
                match nix::unistd::dup(2) {
                    Ok(fd) => *slot = fd,
                    Err(_) => return 2,
                }
            }
            let keep = [fds[1], fds[4], 2, fds[4]];
            if close_fds_except(3, &keep).is_err() {
                return 3;
            }
            let ok = [0, 1, 2].iter().all(|f| is_open(*f))
                && fds
                    .iter()
                    .all(|f| is_open(*f) == (*f == fds[1] || *f == fds[4]))
                && !is_open(fds[5] + 1);
            i32::from(!ok)
        });
        assert_eq!(code, Ok(0));
    }
}
