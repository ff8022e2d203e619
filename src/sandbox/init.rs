//! `--init`: the container init stays as pid 1, forwards signals to the
//! command and reaps every zombie, as tini and catatonit do.
//!
//! pid 1 here is hutch's own code, so it makes itself non-dumpable: its
//! /proc/1/exe and /proc/1/mem then need CAP_SYS_PTRACE over the initial
//! user namespace, which nothing in the container has (the CVE-2019-5736
//! class of attack on the runtime binary).

use std::os::fd::RawFd;

use anyhow::Context;
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::sys::process::{exit_now, fork};

/// Forks the command's process. Returns in the child, which goes on to
/// exec; pid 1 becomes the reaper and never returns.
pub fn become_init(sync_fd: RawFd) -> anyhow::Result<()> {
    let all = SigSet::all();
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&all), None)
        .context("block signals")?;
    match fork().context("fork the command under --init")? {
        None => {
            nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
                .context("unblock signals")?;
            Ok(())
        }
        Some(child) => {
            // Only the command's process may report an exec failure, and
            // its exec must read as EOF in the parent.
            let _ = nix::unistd::close(sync_fd);
            let _ = nix::sys::prctl::set_dumpable(false);
            reap(child, &all)
        }
    }
}

fn reap(child: Pid, set: &SigSet) -> ! {
    loop {
        let Ok(sig) = set.wait() else { continue };
        if sig != Signal::SIGCHLD {
            let _ = kill(child, sig);
            continue;
        }
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == child => exit_now(code),
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == child => exit_now(128 + sig as i32),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}
