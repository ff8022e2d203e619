//! The one channel between `hutch` (parent) and the container init
//! (child): a SOCK_SEQPACKET socketpair, one JSON message per packet,
//! file descriptors passed with SCM_RIGHTS. Both ends are close-on-exec,
//! so a successful execve in the child reads as end-of-file in the parent.
//!
//! ```text
//!  parent (hutch, host userns)            child (container init)
//!  ──────────────────────────             ──────────────────────
//!  clone(NEWUSER|NEWNS|NEWPID|...) ─────► [1] PDEATHSIG=KILL, wait
//!  newgidmap, newuidmap (or single map)
//!  [2] ── Go { winsize } ────────────────► make `/` private
//!                                          (fuse-overlayfs only:)
//!                                          bind rootfs on itself, shared
//!  [2a] ◄── MountRootfs ─────────────────
//!  fuse-overlayfs: setns(child's user, mnt),
//!  unshare(mnt), mount on the rootfs (the
//!  mount propagates to the child's peer);
//!  wait until it shows in mountinfo
//!  [2b] ── RootfsMounted ────────────────► rootfs made private again
//!                                          mounts, pivot_root, hostname
//!                                          (-t) open pty in the new devpts
//!  [3] ◄── PtyMaster + fd ──────────────── (only with -t)
//!                                          credentials, caps, no_new_privs,
//!                                          seccomp (last), execve
//!  [4] ◄── EOF ─────────────────────────── execve succeeded (CLOEXEC)
//!   or ◄── Failed { code, .. } ─────────── setup or execve failed; exits
//! ```
//!
//! A message out of this order is an error in the parent, never a hang:
//! the child is killed and reaped by its guard.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use anyhow::{bail, Context};
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

const MAX_MESSAGE: usize = 64 * 1024;

/// Parent → child.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToChild {
    /// [2] The id maps are written: go on. Carries the host terminal's
    /// size for `-t`, so the command sees it from its first instruction.
    Go { winsize: Option<(u16, u16)> },
    /// [2b] fuse-overlayfs has mounted the rootfs.
    RootfsMounted,
}

/// Child → parent.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToParent {
    /// [0] `join.rs` only: the host pid of the container init.
    InitPid { pid: i32 },
    /// [2a] The rootfs mount point is ready (a shared bind mount):
    /// start fuse-overlayfs on it.
    MountRootfs,
    /// [3] The pty master, attached as SCM_RIGHTS.
    PtyMaster,
    /// A task run by `nsexec` finished.
    Done,
    /// Setup or exec failed: the error chain, its hints and the exit code.
    Failed {
        chain: Vec<String>,
        hints: Vec<String>,
        code: i32,
    },
}

/// One end of the socketpair.
pub struct Channel(OwnedFd);

impl Channel {
    /// Creates both ends, close-on-exec.
    pub fn pair() -> anyhow::Result<(Channel, Channel)> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .context("create sync socketpair")?;
        Ok((Channel(a), Channel(b)))
    }

    pub fn send<T: Serialize>(&self, msg: &T, fd: Option<BorrowedFd<'_>>) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec(msg).context("encode sync message")?;
        let raw: Vec<RawFd> = fd.iter().map(|f| f.as_raw_fd()).collect();
        let cmsg = [ControlMessage::ScmRights(&raw)];
        let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &cmsg };
        sendmsg::<()>(
            self.0.as_raw_fd(),
            &[IoSlice::new(&bytes)],
            cmsgs,
            MsgFlags::empty(),
            None,
        )
        .context("send sync message")?;
        Ok(())
    }

    /// Receives one message; `None` when the peer closed its end.
    pub fn recv<T: DeserializeOwned>(&self) -> anyhow::Result<Option<(T, Option<OwnedFd>)>> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = loop {
            match recvmsg::<()>(
                self.0.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Err(nix::errno::Errno::EINTR) => continue,
                other => break other.context("receive sync message")?,
            }
        };
        let mut fd = None;
        for c in msg.cmsgs().context("read sync control message")? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for raw in fds {
                    // Fresh fds the kernel installed for us: own each once.
                    let owned = own_fd(raw);
                    if fd.is_none() {
                        fd = Some(owned);
                    }
                }
            }
        }
        let len = msg.bytes;
        if len == 0 {
            return Ok(None);
        }
        if msg.flags.contains(MsgFlags::MSG_TRUNC) {
            bail!("receive sync message: truncated");
        }
        let value = serde_json::from_slice(&buf[..len]).context("decode sync message")?;
        Ok(Some((value, fd)))
    }

    /// True when the peer has closed its end (POLLHUP), without blocking.
    pub fn peer_gone(&self) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mut fds = [PollFd::new(self.0.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(_) => fds[0]
                .revents()
                .is_some_and(|r| r.contains(PollFlags::POLLHUP)),
            Err(_) => true,
        }
    }
}

fn own_fd(raw: RawFd) -> OwnedFd {
    crate::sys::process::own_fd(raw)
}

impl AsRawFd for Channel {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}
