//! Running a piece of hutch inside a fresh user namespace with the
//! container's id maps: unpacking layers (so file owners map into the
//! subordinate range) and removing container files (which the caller
//! cannot unlink from the host, as they belong to subordinate ids).
//!
//! The parent clones a child with CLONE_NEWUSER, writes its maps, and
//! says go; the child, now root of that namespace, runs the closure and
//! reports `Done` or `Failed` over the same channel `sync.rs` defines.

use std::io::Write;

use anyhow::{bail, Context};
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};

use super::parent::ChildGuard;
use super::sync::{Channel, ToChild, ToParent};
use crate::sys::process::{clone_fork, exit_now};
use crate::userns::IdMaps;

/// Runs `f` as root of a new user namespace mapped by `maps`.
pub fn run_in_userns<F>(maps: &IdMaps, what: &str, f: F) -> anyhow::Result<()>
where
    F: FnOnce() -> anyhow::Result<()>,
{
    let (ours, theirs) = Channel::pair()?;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    let pid = match clone_fork(CloneFlags::CLONE_NEWUSER)
        .with_context(|| format!("clone a process to {what}"))?
    {
        None => {
            drop(ours);
            child(theirs, f)
        }
        Some(pid) => pid,
    };
    drop(theirs);
    let guard = ChildGuard::new(pid);
    crate::userns::write::write(pid, maps)?;
    ours.send(&ToChild::Go { winsize: None }, None)?;
    let reply = ours.recv::<ToParent>()?;
    let _ = guard.release(); // reaped just below
    let status = waitpid(pid, None).with_context(|| format!("wait for the process to {what}"))?;
    match reply {
        Some((ToParent::Done, _)) if status == WaitStatus::Exited(pid, 0) => Ok(()),
        Some((ToParent::Failed { chain, hints, code }, _)) => {
            Err(crate::errors::rebuild(&chain, &hints, code))
        }
        _ => bail!("{what}: the helper process ended with {status:?}"),
    }
}

fn child<F: FnOnce() -> anyhow::Result<()>>(chan: Channel, f: F) -> ! {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    match chan.recv::<ToChild>() {
        Ok(Some(_)) => {}
        _ => exit_now(1),
    }
    let msg = match f() {
        Ok(()) => ToParent::Done,
        Err(e) => {
            let (chain, hints, code) = crate::errors::split(&e);
            ToParent::Failed { chain, hints, code }
        }
    };
    let ok = matches!(msg, ToParent::Done);
    let _ = chan.send(&msg, None);
    exit_now(if ok { 0 } else { 1 })
}
