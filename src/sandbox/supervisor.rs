//! `run -d`: the supervisor of a detached container. No daemon: `hutch`
//! forks, the child starts a session of its own (setsid) and forks the
//! supervisor, then exits, so the supervisor leaves the terminal and the
//! caller's process group. It was forked from the caller's process, so
//! it keeps the caller's loginuid and audit session (DESIGN.md, process
//! model), though the kernel reparents it once the middle child exits.
//!
//! ```text
//!  hutch run -d (foreground)        supervisor (grandchild, own session)
//!  ─────────────────────────        ─────────────────────────────────────
//!  fork ─► setsid, fork, _exit      fds > 3 closed, cwd `/`
//!  reap the middle child            pipes on the container's fd 1, 2
//!                                   parent::launch (clone, maps, sync)
//!  ◄── Report::Started ──────────── record pid + start time, supervisor
//!   or ◄── Report::Failed ───────── (setup or exec failed) and _exit
//!  print the id, exit 0             fds to fixed numbers, execve itself
//!                                   (`hutch __supervise ID`, a Handoff
//!                                   on fd 3): a fresh image, its
//!                                   children still its children
//!                                   poll(pipes, signalfd): log lines,
//!                                   forward signals, reap the init,
//!                                   end the helpers
//!                                   record the exit, --rm, _exit
//! ```
//!
//! The re-execution matters for memory: a forked supervisor keeps every
//! page the whole start touched (heap, stack, the code of image and
//! network setup) for the container's life; the fresh image holds only
//! what the wait loop needs (bench/README.md, growth).
//!
//! One thread, no allocation beyond a read buffer while it waits. The
//! container init has PDEATHSIG=SIGKILL (child.rs): a supervisor killed
//! with SIGKILL takes its container with it, and its record (pid + start
//! time) then reads as exited.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use anyhow::Context;
use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::waitpid;
use nix::unistd::{dup2, pipe2, setsid, Pid};
use serde::{Deserialize, Serialize};

use super::{child, parent};
use crate::logfile::{self, Stream};
use crate::state::{Container, Dirs, ProcId, State};
use crate::sys::process::{close_from, exit_now, fork};
use crate::userns::IdMaps;

/// The supervisor's fd for its report to the foreground `hutch`.
const REPORT_FD: RawFd = 3;

/// What the supervisor starts and looks after.
pub struct Job<'a> {
    pub setup: &'a child::Setup<'a>,
    pub maps: &'a IdMaps,
    pub dirs: &'a Dirs,
    pub container: &'a Container,
    pub remove: bool,
}

/// Supervisor → foreground `hutch`, one JSON line.
#[derive(Debug, Serialize, Deserialize)]
enum Report {
    Started,
    Failed {
        chain: Vec<String>,
        hints: Vec<String>,
        code: i32,
    },
}

/// Forks the supervisor and returns once it reports the container
/// started; a failure to start comes back as the container's error.
pub fn detach(job: &Job<'_>, record: &State) -> anyhow::Result<()> {
    let (ours, theirs) = pipe2(OFlag::O_CLOEXEC).context("create report pipe")?;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    let middle = match fork().context("fork the supervisor")? {
        None => {
            drop(ours);
            let _ = setsid();
            match fork() {
                Ok(None) => supervise(job, record.clone(), theirs),
                _ => exit_now(0),
            }
        }
        Some(pid) => pid,
    };
    drop(theirs);
    let _ = waitpid(middle, None);
    let mut line = String::new();
    BufReader::new(File::from(ours))
        .read_line(&mut line)
        .context("read the supervisor's report")?;
    match serde_json::from_str::<Report>(&line) {
        Ok(Report::Started) => Ok(()),
        Ok(Report::Failed { chain, hints, code }) => {
            Err(crate::errors::rebuild(&chain, &hints, code))
        }
        Err(_) => anyhow::bail!("start container: the supervisor exited without a report"),
    }
}

/// The supervisor process: never returns.
fn supervise(job: &Job<'_>, mut record: State, report: OwnedFd) -> ! {
    let report = match keep_only(report) {
        Ok(fd) => fd,
        Err(_) => exit_now(crate::errors::EXIT_HUTCH),
    };
    // Hold no directory of the caller's busy (an unmount, say).
    let started = nix::unistd::chdir("/")
        .context("enter `/`")
        .and_then(|()| start(job, &mut record));
    let msg = match &started {
        Ok(_) => Report::Started,
        Err(e) => {
            let (chain, hints, code) = crate::errors::split(e);
            Report::Failed { chain, hints, code }
        }
    };
    let mut line = serde_json::to_vec(&msg).unwrap_or_default();
    line.push(b'\n');
    let _ = nix::unistd::write(&report, &line);
    drop(report);
    let Ok(streams) = started else {
        exit_now(crate::errors::EXIT_HUTCH)
    };
    let handoff = hand_over(job, record, streams).unwrap_or_else(|_| {
        // The fds are in disarray: end here, PDEATHSIG ends the rest.
        exit_now(crate::errors::EXIT_HUTCH)
    });
    // A fresh image of hutch for the hours of waiting: only the pages the
    // wait loop touches, not those of the whole start (heap, stack and
    // code shared with the foreground at fork), about half the memory.
    // Its children (the container, the helpers) stay its children.
    let short = crate::state::short_id(&handoff.id).to_string();
    let _ = reexec(&short);
    // No exec (no /proc?): the same loop in this process.
    crate::sys::process::trim_heap();
    watch_handed_over(handoff)
}

/// argv[1] of the re-executed supervisor; `run_cli` dispatches it before
/// the command line parser. Not a command: it wants [`Handoff`] on fd 3.
pub const ENTRY: &str = "__supervise";

/// The re-executed supervisor's fds: the handoff, the container's
/// stdout and stderr pipes, the log, then `Handoff::keep` more.
const HANDOFF_FD: RawFd = 3;
const OUT_FD: RawFd = 4;
const ERR_FD: RawFd = 5;
const LOG_FD: RawFd = 6;
const KEEP_FD: RawFd = 7;

/// What the supervisor hands to its re-executed self.
#[derive(Serialize, Deserialize)]
struct Handoff {
    id: String,
    runtime: PathBuf,
    data: PathBuf,
    containers: PathBuf,
    maps: IdMaps,
    remove: bool,
    record: State,
    /// The process to wait for (the init, or the `container:` intermediate).
    wait: i32,
    /// Helpers to end, in order, once it exited.
    helpers: Vec<u32>,
    /// How many fds from `KEEP_FD` on are held until then (stdin's write
    /// end, the helpers' exit pipes).
    keep: usize,
}

/// Gives up the started container's objects without ending anything and
/// puts their fds at the numbers the re-executed supervisor expects.
fn hand_over(job: &Job<'_>, record: State, s: Streams) -> anyhow::Result<Handoff> {
    let Streams {
        running,
        out,
        err,
        log,
        _stdin,
    } = s;
    let given = running.hand_over();
    let mut fds = vec![out, err, OwnedFd::from(log)];
    fds.extend(_stdin);
    fds.extend(given.master);
    let mut helpers = Vec::new();
    for h in given.helpers {
        helpers.push(h.pid);
        fds.extend(h.fds);
    }
    let handoff = Handoff {
        id: job.container.id.clone(),
        runtime: job.dirs.runtime.clone(),
        data: job.dirs.data.clone(),
        containers: job.dirs.containers.clone(),
        maps: job.maps.clone(),
        remove: job.remove,
        record,
        wait: given.wait.map_or(0, Pid::as_raw),
        helpers,
        keep: fds.len() - 3,
    };
    let memfd = nix::sys::memfd::memfd_create(
        c"hutch-supervisor",
        nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC,
    )
    .context("create a memfd")?;
    let mut file = File::from(memfd);
    serde_json::to_writer(&mut file, &handoff).context("write the handoff")?;
    file.seek(SeekFrom::Start(0))
        .context("rewind the handoff")?;
    fds.insert(0, OwnedFd::from(file));
    // Out of the way first, so that no dup2 below replaces a source.
    let high = fds
        .iter()
        .map(|fd| fcntl(fd.as_raw_fd(), FcntlArg::F_DUPFD_CLOEXEC(64)))
        .collect::<nix::Result<Vec<RawFd>>>()
        .context("duplicate descriptors")?;
    drop(fds);
    for (i, fd) in high.iter().enumerate() {
        dup2(*fd, HANDOFF_FD + i as RawFd).context("place a descriptor")?;
    }
    // Closes the copies in `high` too.
    close_from(HANDOFF_FD + high.len() as RawFd).context("close descriptors")?;
    Ok(handoff)
}

/// Executes this hutch again as [`ENTRY`]; returns only on failure.
fn reexec(short_id: &str) -> anyhow::Error {
    let Ok(id) = std::ffi::CString::new(short_id) else {
        return anyhow::anyhow!("the container id holds a NUL");
    };
    let args = [c"hutch".to_owned(), c"__supervise".to_owned(), id];
    match nix::unistd::execv(c"/proc/self/exe", &args) {
        Err(e) => anyhow::Error::new(e).context("re-execute hutch"),
    }
}

/// The re-executed supervisor: reads its handoff and watches the
/// container until it exits. Returns only when it was not started by a
/// supervisor (someone typed `hutch __supervise`).
pub fn resume() -> i32 {
    match read_handoff() {
        Ok(h) => watch_handed_over(h),
        Err(e) => {
            eprintln!("hutch: {ENTRY} is internal to `hutch run -d`: {e:#}");
            crate::errors::EXIT_HUTCH
        }
    }
}

fn read_handoff() -> anyhow::Result<Handoff> {
    let fd = crate::sys::process::inherited_fd(HANDOFF_FD).context("no handoff on fd 3")?;
    let mut text = String::new();
    File::from(fd)
        .take(16 << 20)
        .read_to_string(&mut text)
        .context("read the handoff")?;
    serde_json::from_str(&text).context("parse the handoff")
}

/// Watches the container, ends its helpers, records its exit (and with
/// `--rm` removes it), with the fds `hand_over` placed.
fn watch_handed_over(h: Handoff) -> ! {
    if h.wait <= 0 {
        exit_now(crate::errors::EXIT_HUTCH) // waitpid(0) would take any child
    }
    let take = crate::sys::process::inherited_fd;
    let (Some(out), Some(err), Some(log)) = (take(OUT_FD), take(ERR_FD), take(LOG_FD)) else {
        exit_now(crate::errors::EXIT_HUTCH)
    };
    let keep: Vec<OwnedFd> = (0..h.keep)
        .filter_map(|i| take(KEEP_FD + i as RawFd))
        .collect();
    // The signals stay blocked across execve; a new signalfd reads them.
    let Ok(signals) = SignalFd::with_flags(&parent::signal_set(), SfdFlags::SFD_CLOEXEC) else {
        exit_now(crate::errors::EXIT_HUTCH)
    };
    let code = watch(Watched {
        wait: Pid::from_raw(h.wait),
        signals,
        out,
        err,
        log: File::from(log),
    });
    for pid in &h.helpers {
        let pid = Pid::from_raw(*pid as i32);
        let _ = kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
    }
    drop(keep);
    let dirs = Dirs {
        runtime: h.runtime,
        data: h.data,
        containers: h.containers,
    };
    let container = Container::open(&dirs, &h.id);
    finish(&dirs, &container, &h.maps, h.remove, h.record, code);
    exit_now(0)
}

/// Moves the report pipe to fd 3 and closes every other inherited fd
/// (the store lock among them), so the supervisor holds nothing of the
/// `hutch` that forked it.
fn keep_only(report: OwnedFd) -> anyhow::Result<OwnedFd> {
    let raw = report.into_raw_fd();
    if raw != REPORT_FD {
        dup2(raw, REPORT_FD).context("move the report pipe")?;
    }
    close_from(REPORT_FD + 1).context("close inherited descriptors")?;
    fcntl(REPORT_FD, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).context("mark report pipe")?;
    Ok(crate::sys::process::own_fd(REPORT_FD))
}

/// The running container and what the supervisor holds of it.
struct Streams {
    running: parent::Running,
    out: OwnedFd,
    err: OwnedFd,
    log: File,
    /// `-i`: the write end of the container's stdin, held open and never
    /// written, so a shell reading it waits as under `docker run -di`.
    _stdin: Option<OwnedFd>,
}

fn start(job: &Job<'_>, record: &mut State) -> anyhow::Result<Streams> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .context("open `/dev/null`")?;
    let null = null.as_raw_fd();
    let stdin = if job.setup.plan.process.stdin {
        let (r, w) = pipe2(OFlag::O_CLOEXEC).context("create stdin pipe")?;
        dup2(r.as_raw_fd(), 0).context("attach stdin")?;
        Some(w)
    } else {
        dup2(null, 0).context("attach `/dev/null` to stdin")?;
        None
    };
    let (out, out_w) = pipe2(OFlag::O_CLOEXEC).context("create stdout pipe")?;
    let (err, err_w) = pipe2(OFlag::O_CLOEXEC).context("create stderr pipe")?;
    dup2(out_w.as_raw_fd(), 1).context("attach stdout pipe")?;
    dup2(err_w.as_raw_fd(), 2).context("attach stderr pipe")?;
    drop((out_w, err_w));
    let path = job.container.log_path();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("open `{}`", path.display()))?;
    let running = parent::launch(job.setup, job.maps)?;
    // The container holds the write ends now; ours go, so its exit
    // reads as end-of-file here.
    for fd in [1, 2] {
        dup2(null, fd).context("detach from the container's output")?;
    }
    let pid = running.init_pid();
    record.set_running(&ProcId::of(pid.as_raw())?);
    record.net_helper_pid = running.net_helper().map(|(_, p)| p);
    record.udp_relay_pid = running.udp_relay_pid();
    record.supervisor = Some(ProcId::of(std::process::id() as i32)?);
    if !job.container.save(job.dirs, record)? {
        anyhow::bail!("start container: it was removed while starting");
    }
    Ok(Streams {
        running,
        out,
        err,
        log,
        _stdin: stdin,
    })
}

/// What the waiting supervisor holds.
struct Watched {
    wait: Pid,
    signals: SignalFd,
    out: OwnedFd,
    err: OwnedFd,
    log: File,
}

/// Copies the container's output to its log and forwards signals until
/// the init exits and its output ends; returns Docker's exit code.
fn watch(mut s: Watched) -> i32 {
    let pid = s.wait;
    let mut open = [true, true];
    let mut code = None;
    // 16 KiB: a log line costs no more, and every page of the buffer
    // stays resident for the container's whole life.
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if code.is_none() {
            code = parent::reap(pid).unwrap_or(Some(crate::errors::EXIT_HUTCH));
        }
        if code.is_some() && open == [false, false] {
            break;
        }
        // Once the init is gone every process of its pid namespace is
        // too; its output ends at once, but never wait on it for long.
        let timeout = match code {
            Some(_) => PollTimeout::from(2000u16),
            None => PollTimeout::NONE,
        };
        let Some((signalled, readable)) = wait_ready(&s, open, timeout) else {
            break;
        };
        if signalled {
            forward(&s.signals, pid, code.is_none());
        }
        for i in readable {
            let (fd, stream) = if i == 0 {
                (&s.out, Stream::Stdout)
            } else {
                (&s.err, Stream::Stderr)
            };
            open[i] = copy(fd, stream, &mut s.log, &mut buf);
        }
    }
    code.unwrap_or(crate::errors::EXIT_HUTCH)
}

/// Polls the signalfd and the open streams (a closed pipe would report
/// POLLHUP whatever the events asked for). Returns whether a signal is
/// waiting and which streams are readable; None on timeout or error.
fn wait_ready(s: &Watched, open: [bool; 2], timeout: PollTimeout) -> Option<(bool, Vec<usize>)> {
    let streams: Vec<(usize, &OwnedFd)> = [&s.out, &s.err]
        .into_iter()
        .enumerate()
        .filter(|(i, _)| open[*i])
        .collect();
    let mut fds = vec![PollFd::new(s.signals.as_fd(), PollFlags::POLLIN)];
    fds.extend(
        streams
            .iter()
            .map(|(_, fd)| PollFd::new(fd.as_fd(), PollFlags::POLLIN)),
    );
    match poll(&mut fds, timeout) {
        Err(nix::errno::Errno::EINTR) => return Some((false, Vec::new())),
        Err(_) | Ok(0) => return None,
        Ok(_) => {}
    }
    let ready = |f: &PollFd<'_>| f.revents().is_some_and(|r| !r.is_empty());
    let readable = streams
        .iter()
        .zip(&fds[1..])
        .filter(|(_, f)| ready(f))
        .map(|((i, _), _)| *i)
        .collect();
    Some((ready(&fds[0]), readable))
}

/// One read of a stream into the log; false at its end.
fn copy(fd: &OwnedFd, stream: Stream, log: &mut File, buf: &mut [u8]) -> bool {
    match nix::unistd::read(fd.as_raw_fd(), buf) {
        Ok(0) => false,
        Ok(n) => {
            // A full disk must not stop the container: keep reading.
            let _ = logfile::append(log, stream, &buf[..n]);
            true
        }
        Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => true,
        Err(_) => false,
    }
}

/// SIGCHLD is handled by the reap at the top of the loop; any other
/// signal sent to the supervisor goes to the container, as in the
/// foreground.
fn forward(signals: &SignalFd, pid: Pid, alive: bool) {
    let Ok(Some(info)) = signals.read_signal() else {
        return;
    };
    match Signal::try_from(info.ssi_signo as i32) {
        Ok(Signal::SIGCHLD) | Err(_) => {}
        Ok(sig) if alive => {
            let _ = kill(pid, sig);
        }
        Ok(_) => {}
    }
}

/// Records the exit; with --rm removes the container, unless `hutch rm`
/// got there first.
fn finish(
    dirs: &Dirs,
    container: &Container,
    maps: &IdMaps,
    remove: bool,
    mut record: State,
    code: i32,
) {
    record.set_exited(code);
    let kept = container.save(dirs, &record).unwrap_or(false);
    if !remove || !kept {
        return;
    }
    // `hutch wait` reads the exit code first, as Docker's wait does.
    let _waiters = container.drain_waiters(std::time::Duration::from_secs(10));
    if container.forget(dirs).is_ok() {
        let _ = crate::commands::remove_container(container, Some(maps));
    }
}
