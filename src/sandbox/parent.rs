//! The parent side of a container: clone the init into new namespaces,
//! write its id maps, let it go, then wait for it while forwarding
//! signals and, with `-t`, relaying the pty. Runs in the `hutch` process.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use anyhow::{bail, Context};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::child;
use super::pty;
use super::sync::{Channel, ToChild, ToParent};
use crate::sys::process::clone_fork;
use crate::userns::IdMaps;

/// Signals hutch forwards to the container (as docker and podman do).
const FORWARDED: [Signal; 7] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// Kills and reaps the child on every early return, unless disarmed.
pub struct ChildGuard(Option<Pid>);

impl ChildGuard {
    pub fn new(pid: Pid) -> ChildGuard {
        ChildGuard(Some(pid))
    }
    /// Disarms the guard: the caller reaps the child itself.
    pub fn release(mut self) -> Option<Pid> {
        self.0.take()
    }
    pub fn pid(&self) -> Option<Pid> {
        self.0
    }
    fn disarm(&mut self) -> Option<Pid> {
        self.0.take()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
    }
}

/// A started container.
pub struct Running {
    /// The process hutch waits for: the container init, or with
    /// `--network container:NAME` the intermediate above it (`join.rs`).
    pub guard: ChildGuard,
    /// The container init's host pid.
    init: Pid,
    /// The network helper; ends when the container is waited for.
    net: Option<Box<dyn crate::net::Helper>>,
    /// hutch's UDP relay (`net::relay`), for what the helper cannot
    /// deliver; ends with the helper.
    relay: Option<crate::net::relay::Relay>,
    signals: SignalFd,
    master: Option<OwnedFd>,
    /// fuse-overlayfs serving the rootfs; ended when this is dropped,
    /// after the container (fields drop in order).
    _fuse: Option<crate::rootfs::fuse::Daemon>,
}

pub(super) fn signal_set() -> SigSet {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    set.add(Signal::SIGCHLD);
    set
}

/// Clones the container init and takes it through the sync protocol
/// (`sync.rs`) up to its execve.
pub fn launch(ctx: &child::Setup<'_>, maps: &IdMaps) -> anyhow::Result<Running> {
    let (ours, theirs) = Channel::pair()?;
    let signals = block_signals()?;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    let mut flags = CloneFlags::CLONE_NEWUSER
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWCGROUP;
    if ctx.plan.network.own_namespace() {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    // `--network container:NAME`: into that container's namespaces
    // (`join.rs`), whose id maps are already written.
    let join = ctx.join.map(super::join::Target::open).transpose()?;
    let pid = match join {
        Some(target) => super::join::fork_into(target, theirs, ctx)?,
        None => match clone_fork(flags).context("clone the container process")? {
            None => {
                drop(ours);
                drop(signals);
                child::main(theirs, ctx)
            }
            Some(pid) => {
                drop(theirs);
                pid
            }
        },
    };
    let mut guard = ChildGuard(Some(pid));
    let (init, net, relay) = if ctx.join.is_some() {
        (init_of_join(&ours, &mut guard)?, None, None)
    } else {
        crate::userns::write::write(pid, maps)?;
        // The helper joins the container's user and network namespaces
        // from outside (it needs the id maps written) and has configured
        // the network before the command runs; so has the relay, with
        // the UDP ports the helper could not deliver.
        let (ports, relayed) = crate::net::relay::split(ctx.plan.network, &ctx.plan.ports);
        let net = crate::net::attach(
            ctx.plan.network,
            &crate::net::Attach {
                pid,
                net: ctx.plan.network.user_net().unwrap_or_default(),
                ports: &ports,
                dir: ctx.net_dir,
            },
        )?;
        let relay = crate::net::relay::start(pid, &relayed, ctx.net_dir)?;
        (pid, net, relay)
    };
    let mut fuse = None;
    let winsize = if ctx.plan.process.terminal {
        pty::host_winsize()
    } else {
        None
    };
    ours.send(&ToChild::Go { winsize }, None)?;
    let mut master = None;
    loop {
        match ours.recv::<ToParent>()? {
            None => break, // [4] execve succeeded: the channel closed on exec.
            // [2a] fuse-overlayfs mounts the rootfs (`rootfs::fuse`); [2b] go on.
            Some((ToParent::MountRootfs, _)) if fuse.is_none() => {
                fuse = Some(crate::rootfs::fuse::start_for(ctx.fuse, init)?);
                ours.send(&ToChild::RootfsMounted, None)?;
            }
            Some((ToParent::PtyMaster, Some(fd)))
                if ctx.plan.process.terminal && master.is_none() =>
            {
                master = Some(fd)
            }
            Some((ToParent::Failed { chain, hints, code }, _)) => {
                // The child exits with `code`; reap it here.
                if let Some(pid) = guard.disarm() {
                    let _ = waitpid(pid, None);
                }
                return Err(crate::errors::rebuild(&chain, &hints, code));
            }
            Some((msg, _)) => {
                bail!("start container: unexpected message {msg:?} from the container init")
            }
        }
    }
    Ok(Running {
        guard,
        init,
        net,
        relay,
        signals,
        master,
        _fuse: fuse,
    })
}

/// Blocks the forwarded signals and SIGCHLD and returns a signalfd for
/// them. Called before clone, so a SIGCHLD of a fast child stays pending
/// for the signalfd; the child unblocks them first thing.
pub fn block_signals() -> anyhow::Result<SignalFd> {
    let set = signal_set();
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
        .context("block signals")?;
    SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC).context("create signalfd")
}

/// `exec`'s side of `launch`'s loop: reads the child's messages until its
/// execve closes the channel; returns the pty master it sent with `-t`.
pub fn until_exec(
    ours: &Channel,
    guard: &mut ChildGuard,
    terminal: bool,
) -> anyhow::Result<Option<OwnedFd>> {
    let mut master = None;
    loop {
        match ours.recv::<ToParent>()? {
            None => return Ok(master), // [4] execve succeeded: the channel closed on exec.
            Some((ToParent::PtyMaster, Some(fd))) if terminal && master.is_none() => {
                master = Some(fd)
            }
            Some((ToParent::Failed { chain, hints, code }, _)) => {
                // The child exits with `code`; reap it here.
                if let Some(pid) = guard.disarm() {
                    let _ = waitpid(pid, None);
                }
                return Err(crate::errors::rebuild(&chain, &hints, code));
            }
            Some((msg, _)) => {
                bail!("exec: unexpected message {msg:?} from the child")
            }
        }
    }
}

/// [0] of `join.rs`: the host pid of the container init the
/// intermediate started, or its failure.
fn init_of_join(ours: &Channel, guard: &mut ChildGuard) -> anyhow::Result<Pid> {
    match ours.recv::<ToParent>()? {
        Some((ToParent::InitPid { pid }, _)) => Ok(Pid::from_raw(pid)),
        Some((ToParent::Failed { chain, hints, code }, _)) => {
            if let Some(pid) = guard.disarm() {
                let _ = waitpid(pid, None);
            }
            Err(crate::errors::rebuild(&chain, &hints, code))
        }
        other => bail!("start container: unexpected message {other:?} from the intermediate"),
    }
}

impl Running {
    /// A started process that is not a container init (`hutch exec`).
    pub fn adopt(guard: ChildGuard, signals: SignalFd, master: Option<OwnedFd>) -> Running {
        let init = guard.pid().unwrap_or(Pid::from_raw(0));
        Running {
            guard,
            init,
            net: None,
            relay: None,
            signals,
            master,
            _fuse: None,
        }
    }

    /// The container init's host pid (recorded; `exec` joins it).
    pub fn init_pid(&self) -> Pid {
        self.init
    }

    /// The network helper's name and host pid, if the network has one.
    pub fn net_helper(&self) -> Option<(&'static str, u32)> {
        self.net.as_ref().map(|h| (h.name(), h.pid()))
    }

    /// The UDP relay's host pid, if the container has one.
    pub fn udp_relay_pid(&self) -> Option<u32> {
        use crate::net::Helper;
        self.relay.as_ref().map(Helper::pid)
    }

    /// Gives everything up without ending anything, for a process that
    /// takes over (the re-executed supervisor): the process to wait for,
    /// the helpers in the order to end them once it exited (as `Drop`
    /// does: network, then fuse-overlayfs), and the pty master.
    pub fn hand_over(self) -> Handover {
        let Running {
            guard,
            init: _,
            net,
            relay,
            signals,
            master,
            _fuse,
        } = self;
        drop(signals); // the mask stays; the new owner makes its own
        let mut helpers: Vec<crate::net::Kept> = net.map(|h| h.hand_over()).into_iter().collect();
        helpers.extend(relay.map(|r| crate::net::Helper::hand_over(Box::new(r))));
        if let Some(d) = _fuse {
            helpers.push(crate::net::Kept {
                pid: d.hand_over(),
                fds: Vec::new(),
            });
        }
        Handover {
            wait: guard.release(),
            helpers,
            master,
        }
    }
}

/// What [`Running::hand_over`] gives up.
pub struct Handover {
    pub wait: Option<Pid>,
    pub helpers: Vec<crate::net::Kept>,
    pub master: Option<OwnedFd>,
}

/// Waits for the container init to exit; returns Docker's exit code.
pub fn wait(mut r: Running, relay_stdin: bool) -> anyhow::Result<i32> {
    let pid = r.guard.pid().context("wait for container: no process")?;
    let _raw = match &r.master {
        Some(_) => pty::RawMode::enter()?,
        None => None,
    };
    let mut stdin_open = relay_stdin && r.master.is_some();
    let mut master_open = r.master.is_some();
    loop {
        if let Some(code) = reap(pid)? {
            if let Some(m) = &r.master {
                drain(m);
            }
            r.guard.disarm();
            return Ok(code);
        }
        let stdin = std::io::stdin();
        let mut fds = vec![PollFd::new(r.signals.as_fd(), PollFlags::POLLIN)];
        if let (Some(m), true) = (&r.master, master_open) {
            fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
        }
        let stdin_slot = fds.len();
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => other.context("wait for the container")?,
        };
        let ready = |i: usize| {
            fds.get(i)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty())
        };
        let (sig_ready, master_ready, stdin_ready) = (
            ready(0),
            master_open && ready(1),
            stdin_open && ready(stdin_slot),
        );
        drop(fds);
        if sig_ready {
            on_signal(&r, pid)?;
        }
        if master_ready {
            master_open = copy_out(r.master.as_ref());
        }
        if stdin_ready {
            stdin_open = copy_in(r.master.as_ref());
        }
    }
}

fn on_signal(r: &Running, pid: Pid) -> anyhow::Result<()> {
    let Some(info) = r.signals.read_signal().context("read signalfd")? else {
        return Ok(());
    };
    let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
        return Ok(());
    };
    match (sig, &r.master) {
        (Signal::SIGCHLD, _) => {}
        // With a pty, its new size makes the kernel signal the
        // container's foreground group; without one, forward it as
        // Docker's sig-proxy does.
        (Signal::SIGWINCH, Some(m)) => pty::forward_winsize(m),
        (sig, _) => {
            let _ = kill(pid, sig);
        }
    }
    Ok(())
}

/// Docker's code for a finished child: its status, or 128+signal.
pub fn reap(pid: Pid) -> anyhow::Result<Option<i32>> {
    match waitpid(pid, Some(WaitPidFlag::WNOHANG)).context("wait for the container process")? {
        WaitStatus::Exited(_, code) => Ok(Some(code)),
        WaitStatus::Signaled(_, sig, _) => Ok(Some(128 + sig as i32)),
        _ => Ok(None),
    }
}

/// pty → stdout. False once the pty has no writer left (EIO).
fn copy_out(master: Option<&OwnedFd>) -> bool {
    let Some(m) = master else { return false };
    let mut buf = [0u8; 16384];
    match nix::unistd::read(m.as_raw_fd(), &mut buf) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&buf[..n]);
            let _ = out.flush();
            true
        }
    }
}

/// stdin → pty. False at end of input, which sends the terminal's EOF.
fn copy_in(master: Option<&OwnedFd>) -> bool {
    let Some(m) = master else { return false };
    let mut buf = [0u8; 16384];
    // Unbuffered: poll said fd 0 is ready, a BufReader could hide bytes.
    match nix::unistd::read(0, &mut buf) {
        Ok(0) | Err(_) => {
            let _ = nix::unistd::write(m, &[4u8]); // ^D
            false
        }
        Ok(n) => nix::unistd::write(m, &buf[..n]).is_ok(),
    }
}

/// Reads what the container wrote before it exited.
fn drain(master: &OwnedFd) {
    let _ = nix::fcntl::fcntl(
        master.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
    for _ in 0..1024 {
        if !copy_out(Some(master)) {
            break;
        }
    }
}
