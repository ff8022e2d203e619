//! Signalling and waiting on a container from outside: `stop`, `kill`,
//! `rm -f`, `wait`, `restart`. Runs in the caller's `hutch` process,
//! which is neither the container's parent nor its supervisor, so it
//! holds the init through a pidfd opened from the recorded pid and then
//! checked against the recorded start time and boot: a reused pid is
//! never signalled (state.rs, `ProcId::pidfd`).

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;

use crate::errors::WithHint;
use crate::state::{self, Container, Dirs, ProcId, State, Status};
use crate::userns::{self, Mode};

/// How long the supervisor gets to record an exit it has seen.
const SETTLE: Duration = Duration::from_secs(10);

/// Sends `sig` to the container init. False when it is not running.
pub fn signal(s: &State, sig: Signal) -> anyhow::Result<bool> {
    let Some(fd) = s
        .init()
        .filter(|_| s.status == Status::Running)
        .and_then(|p| p.pidfd())
    else {
        return Ok(false);
    };
    match crate::sys::pidfd::send_signal(fd.as_fd(), sig as i32) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::ESRCH) => Ok(false),
        Err(e) => {
            Err(e).with_context(|| format!("send {sig} to container `{}`", state::short_id(&s.id)))
        }
    }
}

/// Waits until the process behind `fd` exits; false on timeout. `None`
/// waits for as long as it takes.
pub fn wait_fd(fd: &OwnedFd, timeout: Option<Duration>) -> bool {
    let end = timeout.map(|t| Instant::now() + t);
    loop {
        let left = end.map(|e| e.saturating_duration_since(Instant::now()));
        let ms = left.map_or(10_000, |l| l.as_millis().min(10_000) as u16);
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(n) if n > 0 => return true,
            Err(e) if e != nix::errno::Errno::EINTR => return true,
            _ if left.is_some_and(|l| l.is_zero()) => return false,
            _ => {}
        }
    }
}

/// Waits until `p` exits; true if it did (or was already gone).
pub fn wait_proc(p: &ProcId, timeout: Option<Duration>) -> bool {
    match p.pidfd() {
        Some(fd) => wait_fd(&fd, timeout),
        None => true,
    }
}

/// After the init ended: lets a supervisor record the exit and finish
/// (bounded; a supervisor that does not is killed, as it has nothing
/// left to do). Returns the record as it stands then.
pub fn settle(dirs: &Dirs, id: &str) -> anyhow::Result<Option<State>> {
    let c = Container::open(dirs, id);
    let Ok(s) = c.load() else { return Ok(None) };
    if let Some(sup) = &s.supervisor {
        if !wait_proc(sup, Some(SETTLE)) {
            if let Some(fd) = sup.pidfd() {
                let _ = crate::sys::pidfd::send_signal(fd.as_fd(), Signal::SIGKILL as i32);
                wait_fd(&fd, Some(SETTLE));
            }
        }
    }
    Ok(c.load().ok())
}

/// `stop`: SIGTERM, then SIGKILL after `timeout`. A pid-namespace init
/// ignores signals it has no handler for (pid_namespaces(7)), so a plain
/// `sh` as pid 1 needs the SIGKILL, as in Docker.
pub fn stop(dirs: &Dirs, s: &State, timeout: Duration) -> anyhow::Result<()> {
    let Some(init) = s.init().filter(|_| state::is_alive(s)) else {
        return Ok(());
    };
    if signal(s, Signal::SIGTERM)? && wait_proc(&init, Some(timeout)) {
        settle(dirs, &s.id)?;
        return Ok(());
    }
    kill_and_wait(dirs, s)
}

/// SIGKILL and a bounded wait for the end.
pub fn kill_and_wait(dirs: &Dirs, s: &State) -> anyhow::Result<()> {
    if let Some(init) = s.init() {
        signal(s, Signal::SIGKILL)?;
        if !wait_proc(&init, Some(SETTLE)) {
            anyhow::bail!(
                "stop container `{}`: it did not exit after SIGKILL",
                state::short_id(&s.id)
            );
        }
    }
    settle(dirs, &s.id)?;
    Ok(())
}

/// Removes a container: its record first (under the user lock, so no
/// supervisor writes it back), then its files. `force` kills a running
/// one first; without it, a running container is an error.
pub fn remove(dirs: &Dirs, s: &State, force: bool) -> anyhow::Result<()> {
    if state::is_alive(s) {
        if !force {
            return Err(anyhow::anyhow!(
                "remove container `{}`: it is running",
                state::short_id(&s.id)
            ))
            .hint("stop it first with `hutch stop`, or use `hutch rm -f`");
        }
        kill_and_wait(dirs, s)?;
    } else if s.supervisor.is_some() {
        settle(dirs, &s.id)?;
    }
    let c = Container::open(dirs, &s.id);
    c.forget(dirs)?;
    // The maps of a default container; files of other mappings are
    // still removable, as the caller owns the namespace's ids.
    let (_, maps) = userns::plan(Mode::Root)?;
    super::remove_container(&c, Some(&maps))
        .with_context(|| format!("remove container `{}`", state::short_id(&s.id)))
}

/// Docker's signal names: `KILL`, `SIGKILL` or `9`.
pub fn parse_signal(text: &str) -> anyhow::Result<Signal> {
    let t = text.trim().to_ascii_uppercase();
    let sig = match t.parse::<i32>() {
        Ok(n) => Signal::try_from(n).ok(),
        Err(_) => {
            let name = if t.starts_with("SIG") {
                t
            } else {
                format!("SIG{t}")
            };
            name.parse::<Signal>().ok()
        }
    };
    sig.with_context(|| format!("parse signal `{text}`: unknown signal"))
        .hint("use a name such as TERM or KILL, or a number such as 9")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_as_docker() {
        let cases = [
            ("KILL", Signal::SIGKILL),
            ("sigterm", Signal::SIGTERM),
            ("9", Signal::SIGKILL),
            ("HUP", Signal::SIGHUP),
            ("SIGUSR1", Signal::SIGUSR1),
        ];
        for (text, sig) in cases {
            assert_eq!(parse_signal(text).unwrap(), sig, "{text}");
        }
        for bad in ["", "0", "65", "SIGFOO", "-9", "KILL9"] {
            assert!(parse_signal(bad).is_err(), "{bad}");
        }
    }
}
