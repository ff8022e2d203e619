//! Starting helper programs (pasta, slirp4netns) tied to hutch's life:
//! the child gets PR_SET_PDEATHSIG, so a killed `hutch` never leaves a
//! network helper behind, and chosen fds are handed to it at fixed numbers.

use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

/// Spawns `cmd` so that it is killed when this thread exits, with each
/// `(fd, target)` of `pass` (at most four) duplicated onto `target`,
/// close-on-exec off there. Everything else keeps its close-on-exec flag.
pub fn spawn_tied(cmd: &mut Command, pass: &[(RawFd, RawFd)]) -> std::io::Result<Child> {
    if pass.len() > MAX_PASS {
        return Err(std::io::Error::other("too many fds to pass"));
    }
    let parent = nix::unistd::getpid().as_raw();
    let mut pairs = [(-1, -1); MAX_PASS];
    pairs[..pass.len()].copy_from_slice(pass);
    let n = pass.len();
    // SAFETY: the closure runs in the forked child before execve and only
    // makes async-signal-safe syscalls (prctl, getppid, fcntl, dup2,
    // _exit) on a fixed-size array copied before the fork; it allocates
    // nothing.
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
            let mut high = [-1; MAX_PASS];
            for i in 0..n {
                high[i] = libc::fcntl(pairs[i].0, libc::F_DUPFD_CLOEXEC, 64);
                if high[i] < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for i in 0..n {
                if libc::dup2(high[i], pairs[i].1) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    cmd.spawn()
}

const MAX_PASS: usize = 4;

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
