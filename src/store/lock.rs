//! The store lock and writer leases.
//!
//! `store.lock` is taken with flock(2): shared by readers (and briefly by
//! blob writers, to take their lease), exclusive by everything that
//! changes records or names or deletes blobs.
//! flock locks belong to an open file description, so two `Store`s in one
//! process exclude each other just like two processes do; within one
//! thread of one `Store` the lock is re-entrant, so a caller holding
//! [`Store::lock`](super::Store::lock) may still call the store's methods.
//!
//! A lease (`leases/NAME`, flocked for the life of a `Store` that wrote a
//! blob) tells `prune` that a writer may be about to reference blobs that
//! no image record names yet, so unreferenced blobs are kept meanwhile.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread::ThreadId;

use anyhow::Context;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::fsutil::TempFile;

/// Which lock a thread holds and how often it re-entered it.
#[derive(Debug, Clone, Copy)]
struct Held {
    exclusive: bool,
    depth: usize,
}

/// Per-`Store` bookkeeping of the locks its threads hold.
#[derive(Debug, Default)]
pub(super) struct Holders(Mutex<HashMap<ThreadId, Held>>);

/// A held store lock; released on drop.
#[must_use = "the lock is released when this is dropped"]
pub struct Lock<'a> {
    holders: &'a Holders,
    _flock: Option<Flock<File>>,
}

impl Holders {
    /// Takes the lock at `path`, or re-enters the one this thread holds.
    pub(super) fn acquire<'a>(&'a self, path: &Path, exclusive: bool) -> anyhow::Result<Lock<'a>> {
        let me = std::thread::current().id();
        {
            let mut map = self
                .0
                .lock()
                .map_err(|_| anyhow::anyhow!("lock store: poisoned"))?;
            if let Some(held) = map.get_mut(&me) {
                if exclusive && !held.exclusive {
                    anyhow::bail!("lock store: cannot upgrade a shared lock to exclusive");
                }
                held.depth += 1;
                return Ok(Lock {
                    holders: self,
                    _flock: None,
                });
            }
        }
        // Blocks without the mutex held, so other threads can proceed.
        let flock = flock_file(path, exclusive, true)?
            .with_context(|| format!("lock `{}`", path.display()))?;
        let mut map = self
            .0
            .lock()
            .map_err(|_| anyhow::anyhow!("lock store: poisoned"))?;
        map.insert(
            me,
            Held {
                exclusive,
                depth: 1,
            },
        );
        Ok(Lock {
            holders: self,
            _flock: Some(flock),
        })
    }
}

impl Drop for Lock<'_> {
    fn drop(&mut self) {
        let me = std::thread::current().id();
        if let Ok(mut map) = self.holders.0.lock() {
            if let Some(held) = map.get_mut(&me) {
                held.depth = held.depth.saturating_sub(1);
                if held.depth == 0 {
                    map.remove(&me);
                }
            }
        }
        // The flock, if this was the outermost lock, is released here.
    }
}

/// Opens `path` and flocks it; `Ok(None)` when `wait` is false and the
/// lock is held elsewhere.
pub(super) fn flock_file(
    path: &Path,
    exclusive: bool,
    wait: bool,
) -> anyhow::Result<Option<Flock<File>>> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("open `{}`", path.display()))?;
    let arg = match (exclusive, wait) {
        (true, true) => FlockArg::LockExclusive,
        (true, false) => FlockArg::LockExclusiveNonblock,
        (false, true) => FlockArg::LockShared,
        (false, false) => FlockArg::LockSharedNonblock,
    };
    flock_retry(file, arg).with_context(|| format!("flock `{}`", path.display()))
}

fn flock_retry(mut file: File, arg: FlockArg) -> anyhow::Result<Option<Flock<File>>> {
    loop {
        match Flock::lock(file, arg) {
            Ok(l) => return Ok(Some(l)),
            Err((_, Errno::EWOULDBLOCK)) => return Ok(None),
            Err((f, Errno::EINTR)) => file = f,
            Err((_, e)) => return Err(e.into()),
        }
    }
}

/// A writer's lease: a flocked file in `leases/`, removed on drop.
#[derive(Debug)]
pub(super) struct Lease {
    pub(super) path: PathBuf,
    _flock: Flock<File>,
}

impl Lease {
    pub(super) fn create(dir: &Path) -> anyhow::Result<Lease> {
        let tmp = TempFile::create(dir, 0o600)?;
        let name = tmp
            .path
            .file_name()
            .map(|n| n.to_string_lossy().trim_start_matches('.').to_owned())
            .context("name a lease")?;
        let path = dir.join(name);
        std::fs::rename(&tmp.path, &path)
            .with_context(|| format!("create lease `{}`", path.display()))?;
        drop(tmp);
        let flock = flock_file(&path, true, false)?
            .with_context(|| format!("lock lease `{}`", path.display()))?;
        Ok(Lease {
            path,
            _flock: flock,
        })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether any lease in `dir` other than `own` is held by a live writer;
/// stale leases (no holder) are removed on the way.
pub(super) fn live_leases(dir: &Path, own: Option<&Path>) -> anyhow::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("list `{}`", dir.display())),
    };
    let mut live = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if Some(path.as_path()) == own || entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        match flock_file(&path, true, false)? {
            None => live += 1,
            Some(_stale) => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    Ok(live)
}
