//! `--network container:NAME`: the new container shares the network of a
//! running one. A network namespace can only be joined from inside the
//! user namespace that owns it, so the new container lives in the
//! target's user namespace (same id maps) and gets its own mount, pid,
//! uts, ipc and cgroup namespaces there.
//!
//! ```text
//!  hutch (parent)        fork ──► intermediate (host pid ns)
//!                                  PDEATHSIG, setns(user), setns(net),
//!                                  unshare(NS|UTS|IPC|CGROUP|PID)
//!                                  fork ──► container init (pid 1): child::main
//!   [0] ◄── InitPid { pid } ─────  (its host pid, for records and exec)
//!                                  relays signals to the init, then exits
//!                                  with its status
//! ```
//!
//! The intermediate is needed because a new pid namespace takes effect
//! for children only, and the parent (in the host user namespace) may not
//! create one. It runs in the parent's process tree, so a killed hutch
//! takes it, and by PDEATHSIG the init, along.

use std::fs::File;
use std::os::fd::AsFd;

use anyhow::Context;
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::child;
use super::sync::{Channel, ToParent};
use crate::state::ProcId;
use crate::sys::process::{exit_now, fork};

/// The namespaces of a running container, opened and checked to be its.
pub struct Target {
    user: File,
    net: File,
}

impl Target {
    /// Opens the user and network namespaces of `init`, then checks that
    /// `init` is still the same process (not a reused pid).
    pub fn open(init: &ProcId) -> anyhow::Result<Target> {
        let ns = |kind: &str| {
            let p = format!("/proc/{}/ns/{kind}", init.pid);
            File::open(&p).with_context(|| format!("open `{p}`"))
        };
        let t = Target {
            user: ns("user")?,
            net: ns("net")?,
        };
        anyhow::ensure!(
            init.is_alive(),
            "the container's process {} is gone",
            init.pid
        );
        Ok(t)
    }
}

/// Forks the intermediate, which starts the container init inside the
/// target's namespaces. Returns the intermediate's pid (the parent waits
/// for it and signals it) in the parent; never returns in the children.
pub fn fork_into(t: Target, chan: Channel, ctx: &child::Setup<'_>) -> anyhow::Result<Pid> {
    match fork().context("fork the container's intermediate process")? {
        Some(pid) => Ok(pid),
        None => intermediate(t, chan, ctx),
    }
}

fn intermediate(t: Target, chan: Channel, ctx: &child::Setup<'_>) -> ! {
    let init = match enter(&t) {
        Ok(()) => fork().context("fork the container init"),
        Err(e) => Err(e),
    };
    drop(t);
    let init = match init {
        Ok(None) => child::main(chan, ctx),
        Ok(Some(pid)) => pid,
        Err(e) => {
            let (chain, hints, code) = crate::errors::split(&e);
            let _ = chan.send(&ToParent::Failed { chain, hints, code }, None);
            exit_now(code)
        }
    };
    let _ = chan.send(&ToParent::InitPid { pid: init.as_raw() }, None);
    drop(chan);
    relay(init)
}

fn enter(t: &Target) -> anyhow::Result<()> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).context("set parent-death signal")?;
    setns(t.user.as_fd(), CloneFlags::CLONE_NEWUSER)
        .context("join the user namespace of the container whose network is shared")?;
    setns(t.net.as_fd(), CloneFlags::CLONE_NEWNET)
        .context("join the network namespace of the container")?;
    unshare(
        CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWIPC
            | CloneFlags::CLONE_NEWCGROUP
            | CloneFlags::CLONE_NEWPID,
    )
    .context("make the container's namespaces")
}

/// Forwards the signals the parent forwards (still blocked here, as the
/// parent blocked them before forking) to the init and ends with its
/// status, as Docker reports it.
fn relay(init: Pid) -> ! {
    let set = super::parent::signal_set();
    loop {
        match set.wait() {
            Ok(Signal::SIGCHLD) => match waitpid(init, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, code)) => exit_now(code),
                Ok(WaitStatus::Signaled(_, sig, _)) => exit_now(128 + sig as i32),
                Err(_) => exit_now(crate::errors::EXIT_HUTCH),
                Ok(_) => {}
            },
            Ok(sig) => {
                let _ = kill(init, sig);
            }
            Err(_) => {}
        }
    }
}
