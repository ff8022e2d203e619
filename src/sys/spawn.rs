//! Starting helper programs (pasta, slirp4netns, the UDP relay) tied to
//! hutch's life: the child gets PR_SET_PDEATHSIG, so a killed `hutch` never
//! leaves a network helper behind, and chosen fds are handed to it at fixed
//! numbers.

use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

/// Spawns `cmd` so that it is killed when this thread exits, with each
/// `(fd, target)` of `pass` (at most [`MAX_PASS`]) duplicated onto
/// `target`, close-on-exec off there. Everything else keeps its
/// close-on-exec flag.
pub fn spawn_tied(cmd: &mut Command, pass: &[(RawFd, RawFd)]) -> std::io::Result<Child> {
    if pass.len() > MAX_PASS {
        return Err(std::io::Error::other("too many fds to pass"));
    }
    let parent = nix::unistd::getpid().as_raw();
    // Allocated here, before the fork: the child only writes into them.
    let pairs: Vec<(RawFd, RawFd)> = pass.to_vec();
    let mut high: Vec<RawFd> = vec![-1; pass.len()];
    // Sources move above every target first (and above the low fds).
    let above = pass.iter().map(|p| p.1 + 1).max().unwrap_or(0).max(64);
    // SAFETY: the closure runs in the forked child before execve and only
    // makes async-signal-safe syscalls (prctl, getppid, fcntl, dup2,
    // _exit) on vectors allocated before the fork; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before the prctl: then nobody
            // would ever signal us.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            // First move every source above the targets, so that one
            // dup2 cannot overwrite a source not yet passed.
            for (h, pair) in high.iter_mut().zip(&pairs) {
                *h = libc::fcntl(pair.0, libc::F_DUPFD_CLOEXEC, above);
                if *h < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (h, pair) in high.iter().zip(&pairs) {
                if libc::dup2(*h, pair.1) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// The most fds [`spawn_tied`] passes (the UDP relay's sockets and its
/// ready pipe); twice that stays under the usual soft limit of 1024.
pub const MAX_PASS: usize = 260;

/// A helper process that is killed and reaped when dropped, unless it
/// was handed over to a process that outlives this value (the detached
/// supervisor re-executing itself keeps its children).
pub struct Tied(Option<Child>);

impl Tied {
    pub fn new(child: Child) -> Tied {
        Tied(Some(child))
    }
    pub fn pid(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }
    /// Whether it exited already, and how (reaps it then).
    pub fn try_wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        match &mut self.0 {
            Some(c) => c.try_wait(),
            None => Ok(None),
        }
    }
    /// Gives up ownership without killing it; returns its pid.
    pub fn hand_over(mut self) -> u32 {
        self.0.take().map_or(0, |c| c.id())
    }
}

impl Drop for Tied {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
