//! `hutch exec`: a new process in a running container.
//!
//! The `hutch` process (the user's own, so loginuid and the audit session
//! are the caller's) joins the container's namespaces through a pidfd of
//! its init, user namespace first (setns(2) with a pidfd does them in one
//! step, the user namespace before the others), then forks: only a child
//! lands in the new pid namespace. The child, inside the container's root,
//! does what the container init did before its execve:
//!
//! ```text
//! hutch exec (joined)                  child (pid ns of the container)
//!   fork ───────────────────────────►  close host fds, setsid, stdio/pty
//!                                      [3] PtyMaster ──► (with -t)
//!                                      user from the container's /etc/passwd
//!                                      caps, no_new_privs, seccomp
//!                                      cwd (inside the root), execve
//!   EOF on the channel = exec done ◄── or Failed { chain, hints, code }
//!   relay pty, forward signals, wait
//! ```
//!
//! The protocol is `sync.rs`'s; only `PtyMaster` and `Failed` are used.

use std::convert::Infallible;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};

use anyhow::Context;
use caps::CapsHashSet;
use nix::fcntl::{open, OFlag};
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::stat::Mode;
use nix::unistd::{dup2, setsid};

use super::parent::{self, ChildGuard, Running};
use super::seccomp::Bpf;
use super::sync::Channel;
use super::sync::ToParent;
use super::{creds, pty, user, workdir};
use crate::errors::{WithHint, EXIT_HUTCH};
use crate::sys::process::{
    cloexec_from, close_fds_except, exit_now, fork, reset_signal_dispositions,
};

/// What to run, decided from the container's config.json and the flags.
pub struct Spec<'a> {
    pub args: &'a [String],
    pub env: &'a [String],
    pub cwd: &'a str,
    /// `-u`, or the container's own user; `None` is root.
    pub user: Option<&'a str>,
    /// Whether `user` came from `-u` (an unmapped id is then an error).
    pub user_explicit: bool,
    pub caps: &'a CapsHashSet,
    pub no_new_privs: bool,
    pub seccomp: Option<&'a Bpf>,
    pub terminal: bool,
    pub stdin: bool,
    pub detach: bool,
}

/// Joins the namespaces `ns` of the process behind `pidfd` and runs
/// `spec` there; returns the exit code (0 at once with `detach`).
pub fn exec(pidfd: &OwnedFd, ns: CloneFlags, spec: &Spec<'_>) -> anyhow::Result<i32> {
    let (ours, theirs) = Channel::pair()?;
    let winsize = spec.terminal.then(pty::host_winsize).flatten();
    match nix::sched::setns(pidfd, ns) {
        Err(nix::errno::Errno::ESRCH) => {
            return Err(anyhow::anyhow!(
                "join the container's namespaces: it has stopped"
            ))
            .hint("`hutch ps -a` shows its state")
        }
        other => other.context("join the container's namespaces")?,
    }
    let signals = parent::block_signals()?;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    let pid = match fork().context("fork the process to run in the container")? {
        None => {
            drop(ours);
            drop(signals);
            child_main(theirs, spec, winsize)
        }
        Some(pid) => pid,
    };
    drop(theirs);
    let mut guard = ChildGuard::new(pid);
    let master = parent::until_exec(&ours, &mut guard, spec.terminal)?;
    if spec.detach {
        // It runs on; the container's init inherits it when we exit.
        let _ = guard.release();
        return Ok(0);
    }
    parent::wait(Running::adopt(guard, signals, master), spec.stdin)
}

fn child_main(chan: Channel, spec: &Spec<'_>, winsize: Option<(u16, u16)>) -> ! {
    let err = match run(&chan, spec, winsize) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let (chain, hints, code) = crate::errors::split(&err);
    let _ = chan.send(&ToParent::Failed { chain, hints, code }, None);
    exit_now(code)
}

fn run(chan: &Channel, spec: &Spec<'_>, winsize: Option<(u16, u16)>) -> anyhow::Result<Infallible> {
    if !spec.detach {
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).context("set parent-death signal")?;
    }
    reset_signal_dispositions();
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .context("unblock signals")?;
    // Nothing of the host but stdio and our channel (CVE-2024-21626).
    close_fds_except(3, &[chan.as_raw_fd()]).context("close inherited descriptors")?;
    setsid().context("start a new session")?;
    attach_stdio(chan, spec, winsize)?;
    let passwd = read_regular("/etc/passwd");
    let group = read_regular("/etc/group");
    let who = user::resolve(spec.user, &passwd, &group)
        .with_context(|| format!("resolve user `{}`", spec.user.unwrap_or("root")))?;
    // Under a single-id map (setgroups `deny`) only container root exists.
    let setgroups_allowed =
        std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "allow");
    let who = if setgroups_allowed || spec.user_explicit {
        who
    } else {
        user::Resolved {
            uid: 0,
            gid: 0,
            groups: Vec::new(),
            ..who
        }
    };
    let mut env = spec.env.to_vec();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", who.home));
    }
    let root = workdir::open_root()?;
    creds::apply(&creds::Creds {
        user: &who,
        caps: spec.caps,
        no_new_privs: spec.no_new_privs,
        seccomp: spec.seccomp,
        setgroups_allowed,
    })?;
    workdir::enter(&root, spec.cwd)?;
    drop(root);
    cloexec_from(3).context("mark descriptors close-on-exec")?;
    if !spec.detach {
        // setresuid cleared the parent-death signal (prctl(2)).
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).context("set parent-death signal")?;
        if chan.peer_gone() {
            exit_now(EXIT_HUTCH);
        }
    }
    super::child::exec(spec.args, &env)
}

/// A file of the container's, if it is a regular one: a FIFO planted as
/// /etc/passwd must not hang `hutch exec` (opened non-blocking, checked,
/// read up to 1 MiB).
fn read_regular(path: &str) -> String {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    else {
        return String::new();
    };
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        return String::new();
    }
    let mut text = String::new();
    let _ = f.take(1 << 20).read_to_string(&mut text);
    text
}

/// `-t`: a pty of the container's devpts; `-d`: /dev/null for all three;
/// without `-i`: stdin from /dev/null; otherwise hutch's own stdio.
fn attach_stdio(
    chan: &Channel,
    spec: &Spec<'_>,
    winsize: Option<(u16, u16)>,
) -> anyhow::Result<()> {
    if spec.terminal && !spec.detach {
        return pty::attach_in_child(chan, winsize);
    }
    let targets: &[i32] = match (spec.detach, spec.stdin) {
        (true, _) => &[0, 1, 2],
        (false, false) => &[0],
        (false, true) => &[],
    };
    if targets.is_empty() {
        return Ok(());
    }
    let null = open("/dev/null", OFlag::O_RDWR, Mode::empty()).context("open `/dev/null`")?;
    for fd in targets {
        dup2(null, *fd).with_context(|| format!("attach `/dev/null` to fd {fd}"))?;
    }
    let _ = nix::unistd::close(null);
    Ok(())
}

/// A helper process of hutch's own code inside a container's namespaces
/// (`cp`): it runs a closure there and reports over the channel.
pub struct Helper {
    guard: ChildGuard,
    chan: Channel,
}

/// Forks a helper that joins `ns` of the process behind `pidfd` and runs
/// `f` with a handle on the container's root and `io` (its end of the
/// data pipe). The helper holds no other descriptor of the host.
pub fn spawn_helper<F>(pidfd: &OwnedFd, ns: CloneFlags, io: OwnedFd, f: F) -> anyhow::Result<Helper>
where
    F: FnOnce(OwnedFd, OwnedFd) -> anyhow::Result<()>,
{
    let (ours, theirs) = Channel::pair()?;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    match fork().context("fork a helper to join the container")? {
        None => {
            drop(ours);
            let result = helper_run(&theirs, pidfd, ns, io, f);
            let ok = result.is_ok();
            let msg = match result {
                Ok(()) => ToParent::Done,
                Err(e) => {
                    let (chain, hints, code) = crate::errors::split(&e);
                    ToParent::Failed { chain, hints, code }
                }
            };
            let _ = theirs.send(&msg, None);
            exit_now(if ok { 0 } else { EXIT_HUTCH })
        }
        Some(pid) => Ok(Helper {
            guard: ChildGuard::new(pid),
            chan: ours,
        }),
    }
}

fn helper_run<F>(
    chan: &Channel,
    pidfd: &OwnedFd,
    ns: CloneFlags,
    io: OwnedFd,
    f: F,
) -> anyhow::Result<()>
where
    F: FnOnce(OwnedFd, OwnedFd) -> anyhow::Result<()>,
{
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).context("set parent-death signal")?;
    close_fds_except(3, &[chan.as_raw_fd(), pidfd.as_raw_fd(), io.as_raw_fd()])
        .context("close inherited descriptors")?;
    nix::sched::setns(pidfd, ns).context("join the container's namespaces")?;
    f(workdir::open_root()?, io)
}

impl Helper {
    /// Waits for the helper's report and reaps it.
    pub fn finish(self) -> anyhow::Result<()> {
        let reply = self.chan.recv::<ToParent>();
        if let Some(pid) = self.guard.release() {
            let _ = nix::sys::wait::waitpid(pid, None);
        }
        match reply? {
            Some((ToParent::Done, _)) => Ok(()),
            Some((ToParent::Failed { chain, hints, code }, _)) => {
                Err(crate::errors::rebuild(&chain, &hints, code))
            }
            _ => anyhow::bail!("copy: the helper in the container ended without a report"),
        }
    }
}
