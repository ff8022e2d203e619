//! Entering the command's working directory without leaving the root
//! (the CVE-2024-21626 class). Runs in the container init and in `exec`'s
//! child, after their root is the container's.
//!
//! A plain chdir(2) follows magic links: `-w /proc/self/fd/7` with a host
//! descriptor open on fd 7 would put the command's cwd on the host, out
//! of reach of pivot_root. So the directory is opened from the root with
//! openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS), which refuses
//! `/proc/*/fd/*` and `/proc/*/cwd` and keeps `..` and absolute symlinks
//! inside the root, and entered with fchdir(2).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use anyhow::Context;

use crate::errors::{ExitCode, EXIT_CANNOT_EXEC};
use crate::sys::fs::{openat2, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS};

/// A handle on `/`, opened while the root is the container's and the
/// process still has all of its rights there.
pub fn open_root() -> anyhow::Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open("/")
        .map(OwnedFd::from)
        .context("open `/`")
}

/// Enters `cwd`, resolved inside `root`; a failure exits 126 as Docker's.
pub fn enter(root: &OwnedFd, cwd: &str) -> anyhow::Result<()> {
    let dir = openat2(
        root.as_fd(),
        Path::new(cwd),
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    )
    .and_then(|d| nix::unistd::fchdir(d.as_raw_fd()));
    dir.with_context(|| format!("enter working directory `{cwd}`"))
        .map_err(|e| e.context(ExitCode(EXIT_CANNOT_EXEC)))
}
