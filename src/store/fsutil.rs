//! Atomic file writes inside the store: a temp file in the destination's
//! own directory, fsync, rename, fsync of the directory (rename(2) is
//! atomic within one directory; the directory fsync makes it durable).
//!
//! Temp files are named `.tmp-PID-NANOS-N` so that [`clean_temps`] can
//! find what an interrupted writer left behind.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;

pub const TEMP_PREFIX: &str = ".tmp-";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temp file that is removed on drop unless it was renamed into place.
pub struct TempFile {
    pub path: PathBuf,
    pub file: File,
    done: bool,
}

impl TempFile {
    /// Creates a new, exclusive temp file in `dir` with `mode`.
    pub fn create(dir: &Path, mode: u32) -> anyhow::Result<TempFile> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{TEMP_PREFIX}{}-{nanos:x}-{n}", std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&path)
            .with_context(|| format!("create `{}`", path.display()))?;
        Ok(TempFile {
            path,
            file,
            done: false,
        })
    }

    /// fsyncs the file and renames it to `dest` (in the same directory),
    /// then fsyncs the directory.
    pub fn persist(mut self, dest: &Path) -> anyhow::Result<()> {
        self.file
            .sync_all()
            .with_context(|| format!("sync `{}`", self.path.display()))?;
        std::fs::rename(&self.path, dest)
            .with_context(|| format!("rename into `{}`", dest.display()))?;
        self.done = true;
        if let Some(dir) = dest.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.done {
            // Best effort: a leftover is removed by the next `Store::open`.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Replaces `dest` with `bytes` atomically (mode 0600).
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = dest
        .parent()
        .with_context(|| format!("write `{}`: no parent directory", dest.display()))?;
    let mut tmp = TempFile::create(dir, 0o600)?;
    tmp.file
        .write_all(bytes)
        .with_context(|| format!("write `{}`", tmp.path.display()))?;
    tmp.persist(dest)
}

/// fsyncs a directory so renames and unlinks in it survive a crash.
pub fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("sync directory `{}`", dir.display()))
}

/// Removes temp files in `dir`: all of them, or only those older than
/// `min_age`. Returns how many were removed.
pub fn clean_temps(dir: &Path, min_age: Option<Duration>) -> anyhow::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("list `{}`", dir.display())),
    };
    let now = SystemTime::now();
    let mut removed = 0;
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            continue;
        }
        let old_enough = match min_age {
            None => true,
            Some(age) => entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|d| d >= age),
        };
        if old_enough && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}
