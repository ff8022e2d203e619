//! The container init: runs in the cloned child, inside the new user,
//! mount, pid, uts, ipc and cgroup namespaces. One short sequence:
//! wait for the maps → mounts → pivot_root → hostname → stdio → user →
//! (--init: fork) → credentials, caps, seccomp → execve.
//!
//! Nothing here returns: success is execve, failure is reported to the
//! parent as `ToParent::Failed` and the process exits.

use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::Context;
use caps::CapsHashSet;
use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::stat::Mode;
use nix::unistd::{access, dup2, execve, sethostname, setsid, AccessFlags};

use super::seccomp::Bpf;
use super::sync::{Channel, ToChild, ToParent};
use super::{creds, init, mounts, pty, user, workdir};
use crate::errors::{ExitCode, EXIT_CANNOT_EXEC, EXIT_HUTCH, EXIT_NOT_FOUND};
use crate::plan::Plan;
use crate::sys::process::{cloexec_from, close_fds_except, exit_now, reset_signal_dispositions};

/// What the container init needs, prepared by the parent before clone.
pub struct Setup<'a> {
    pub plan: &'a Plan,
    pub rootfs: &'a Path,
    pub caps: &'a CapsHashSet,
    pub seccomp: Option<&'a Bpf>,
    pub tty_gid_mapped: bool,
    pub setgroups_allowed: bool,
    /// Overlay mount options when the rootfs is an overlay of layers.
    pub overlay: Option<&'a str>,
    /// Where the network helper keeps its pid file, socket and log
    /// (used by the parent side only).
    pub net_dir: &'a Path,
    /// fuse-overlayfs, which the parent starts for the rootfs ([2a]).
    pub fuse: Option<&'a crate::rootfs::fuse::FuseMount>,
    /// `--network container:NAME`: that container's init (`join.rs`).
    pub join: Option<&'a crate::state::ProcId>,
}

/// Entry point of the cloned child.
pub fn main(chan: Channel, ctx: &Setup<'_>) -> ! {
    let err = match run(&chan, ctx) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let (chain, hints, code) = crate::errors::split(&err);
    let _ = chan.send(&ToParent::Failed { chain, hints, code }, None);
    exit_now(code)
}

fn run(chan: &Channel, ctx: &Setup<'_>) -> anyhow::Result<Infallible> {
    let plan = ctx.plan;
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).context("set parent-death signal")?;
    reset_signal_dispositions();
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .context("unblock signals")?;
    // Nothing of the host but stdio and our channel: a host descriptor
    // would be a way out through /proc/self/fd (CVE-2024-21626).
    close_fds_except(3, &[chan.as_raw_fd()]).context("close inherited descriptors")?;
    // [1] The parent writes our id maps, then says go. EOF: it died.
    let winsize = match chan.recv::<ToChild>()? {
        Some((ToChild::Go { winsize }, _)) => winsize,
        Some((other, _)) => anyhow::bail!("start container: unexpected message {other:?}"),
        None => exit_now(EXIT_HUTCH),
    };
    // [2a]/[2b] fuse-overlayfs, started by the parent, mounts the rootfs.
    let fuse_handshake = || -> anyhow::Result<()> {
        chan.send(&ToParent::MountRootfs, None)?;
        match chan.recv::<ToChild>()? {
            Some((ToChild::RootfsMounted, _)) => Ok(()),
            Some((other, _)) => anyhow::bail!("start container: unexpected message {other:?}"),
            None => exit_now(EXIT_HUTCH),
        }
    };
    // Our own session: terminal signals reach hutch, which forwards them.
    setsid().context("start a new session")?;
    if plan.network == crate::plan::Network::None {
        // Loopback only, and up, as Docker's and Podman's `none` (the
        // user-mode helpers bring it up themselves).
        crate::sys::netif::loopback_up().context("bring the loopback interface up")?;
    }
    mounts::prepare(&mounts::Inputs {
        rootfs: ctx.rootfs,
        plan,
        tty_gid_mapped: ctx.tty_gid_mapped,
        overlay: ctx.overlay,
        fuse_handshake: ctx
            .fuse
            .is_some()
            .then_some(&fuse_handshake as &dyn Fn() -> _),
    })?;
    mounts::pivot(ctx.rootfs)?;
    sethostname(&plan.hostname).with_context(|| format!("set hostname `{}`", plan.hostname))?;
    if plan.process.terminal {
        pty::attach_in_child(chan, winsize)?;
    } else if !plan.process.stdin {
        let null = open("/dev/null", OFlag::O_RDONLY, Mode::empty()).context("open `/dev/null`")?;
        dup2(null, 0).context("attach `/dev/null` to stdin")?;
        let _ = nix::unistd::close(null);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let who = user::resolve(plan.process.user.as_deref(), &passwd, &group).with_context(|| {
        format!(
            "resolve user `{}`",
            plan.process.user.as_deref().unwrap_or("root")
        )
    })?;
    let who = fit_single_map(who, plan, ctx.setgroups_allowed);
    let mut env = plan.process.env.clone();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", who.home));
    }
    // Docker creates a missing working directory, as root.
    let _ = std::fs::create_dir_all(&plan.process.cwd);
    let root = workdir::open_root()?;
    if plan.init {
        init::become_init(chan_raw(chan))?;
    }
    creds::apply(&creds::Creds {
        user: &who,
        caps: ctx.caps,
        no_new_privs: plan.no_new_privs,
        seccomp: ctx.seccomp,
        setgroups_allowed: ctx.setgroups_allowed,
    })?;
    workdir::enter(&root, &plan.process.cwd)?;
    drop(root);
    // No host descriptor survives execve (CVE-2024-21626 class).
    cloexec_from(3).context("mark descriptors close-on-exec")?;
    // setresuid cleared the parent-death signal (prctl(2)): re-arm it and
    // make sure the parent did not die in between.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).context("set parent-death signal")?;
    if chan.peer_gone() {
        exit_now(EXIT_HUTCH);
    }
    exec(&plan.process.args, &env)
}

/// Under a single-id map only container root exists. An image that asks
/// for another user still runs, as root (the caller), with a warning; an
/// explicit `-u` fails later with a hint instead.
fn fit_single_map(who: user::Resolved, plan: &Plan, full_map: bool) -> user::Resolved {
    if full_map || !plan.process.user_from_image || (who.uid == 0 && who.gid == 0) {
        return who;
    }
    eprintln!(
        "warning: the image runs as user `{}`, which does not exist under a single-id map; \
         running as container root (your own uid) instead",
        plan.process.user.as_deref().unwrap_or_default()
    );
    user::Resolved {
        uid: 0,
        gid: 0,
        groups: Vec::new(),
        ..who
    }
}

fn chan_raw(chan: &Channel) -> std::os::fd::RawFd {
    chan.as_raw_fd()
}

/// execve with Docker's lookup rules and exit codes.
pub(crate) fn exec(args: &[String], env: &[String]) -> anyhow::Result<Infallible> {
    let argv0 = args.first().map(String::as_str).unwrap_or_default();
    let path = find_program(argv0, env)?;
    let cargs = cstrings(args)?;
    let cenv = cstrings(env)?;
    let cpath = CString::new(path.as_os_str().as_encoded_bytes()).context("encode program path")?;
    let err = match execve(&cpath, &cargs, &cenv) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let code = if err == Errno::ENOENT {
        EXIT_NOT_FOUND
    } else {
        EXIT_CANNOT_EXEC
    };
    Err(anyhow::Error::new(err)
        .context(ExitCode(code))
        .context(format!("exec `{argv0}`")))
}

/// Finds `argv0` on the container's PATH (argv0 with a `/` is used as is).
fn find_program(argv0: &str, env: &[String]) -> anyhow::Result<PathBuf> {
    if argv0.contains('/') {
        return Ok(PathBuf::from(argv0));
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(crate::plan::DEFAULT_PATH);
    let mut denied = None;
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(argv0);
        if !candidate.is_file() {
            continue;
        }
        match access(&candidate, AccessFlags::X_OK) {
            Ok(()) => return Ok(candidate),
            Err(_) => denied = denied.or(Some(candidate)),
        }
    }
    match denied {
        Some(p) => Ok(p), // execve reports the permission error (126)
        None => Err(anyhow::anyhow!("executable file not found in $PATH")
            .context(ExitCode(EXIT_NOT_FOUND))
            .context(format!("exec `{argv0}`"))),
    }
}

fn cstrings(v: &[String]) -> anyhow::Result<Vec<CString>> {
    v.iter()
        .map(|s| CString::new(s.as_str()).with_context(|| format!("encode `{s}`: contains NUL")))
        .collect()
}
