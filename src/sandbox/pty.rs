//! `-t`: a pseudo-terminal from the container's own devpts instance.
//!
//! The container init opens /dev/ptmx after pivot_root (so the pty
//! belongs to the container's devpts, not the host's), makes the slave its
//! controlling terminal and stdio, and passes the master to the parent
//! with SCM_RIGHTS. The parent puts its terminal in raw mode and copies
//! bytes both ways, forwarding window size changes (SIGWINCH).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use anyhow::Context;
use nix::fcntl::{open, OFlag};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::stat::Mode;
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};
use nix::unistd::{dup2, isatty};

use super::sync::{Channel, ToParent};
use crate::sys::process::{set_controlling_tty, set_window_size, window_size};

/// Child side: creates the pty, sends the master, attaches the slave.
pub fn attach_in_child(chan: &Channel, winsize: Option<(u16, u16)>) -> anyhow::Result<()> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .context("open `/dev/ptmx` in the container")?;
    grantpt(&master).context("grant pty")?;
    unlockpt(&master).context("unlock pty")?;
    let name = ptsname_r(&master).context("name pty")?;
    let slave = open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY,
        Mode::empty(),
    )
    .with_context(|| format!("open `{name}`"))?;
    let slave_fd = borrowed(slave);
    if let Some((rows, cols)) = winsize {
        set_window_size(slave_fd, rows, cols).context("set pty window size")?;
    }
    chan.send(&ToParent::PtyMaster, Some(master.as_fd()))?;
    drop(master);
    set_controlling_tty(slave_fd).context("make the pty the controlling terminal")?;
    for fd in 0..=2 {
        dup2(slave, fd).with_context(|| format!("attach pty to fd {fd}"))?;
    }
    if slave > 2 {
        nix::unistd::close(slave).context("close pty slave")?;
    }
    Ok(())
}

fn borrowed(fd: std::os::fd::RawFd) -> BorrowedFd<'static> {
    crate::sys::process::borrow_fd(fd)
}

/// The host terminal's size, if stdin is a terminal.
pub fn host_winsize() -> Option<(u16, u16)> {
    window_size(std::io::stdin().as_fd()).ok()
}

/// Copies the host terminal's size to the pty.
pub fn forward_winsize(master: &OwnedFd) {
    if let Some((rows, cols)) = host_winsize() {
        let _ = set_window_size(master.as_fd(), rows, cols);
    }
}

/// Raw mode on the host terminal for the life of the value.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Enters raw mode when stdin is a terminal; `None` otherwise.
    pub fn enter() -> anyhow::Result<Option<RawMode>> {
        let stdin = std::io::stdin();
        if !isatty(stdin.as_raw_fd()).unwrap_or(false) {
            return Ok(None);
        }
        let saved = tcgetattr(stdin.as_fd()).context("read terminal attributes")?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).context("set terminal raw mode")?;
        Ok(Some(RawMode { saved }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}
