//! `oci-archive:` support: a private scratch directory that holds the
//! extracted layout for as long as the [`Image`](super::Image) lives.
//!
//! Owns creating that directory (mode 0700, unique name) and removing it
//! again without following symlinks; extraction itself reuses the layer
//! unpacker's confinement (only files and directories are accepted).

use std::ffi::OsString;
use std::os::fd::AsFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;

use super::blob;
use super::tree::{self, Root};
use super::unpack::extract_archive;

/// How many unique names are tried before giving up.
const ATTEMPTS: u32 = 64;

/// A directory under the caller's scratch space, removed on drop.
#[derive(Debug)]
pub struct ScratchDir {
    parent: PathBuf,
    name: OsString,
    path: PathBuf,
}

impl ScratchDir {
    /// Creates a fresh, private (0700) directory below `parent`.
    pub fn create(parent: &Path) -> anyhow::Result<ScratchDir> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .with_context(|| format!("create directory `{}`", parent.display()))?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        for attempt in 0..ATTEMPTS {
            let name = OsString::from(format!(
                "hutch-archive-{}-{nanos:x}-{attempt}",
                std::process::id()
            ));
            let path = parent.join(&name);
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {
                    return Ok(ScratchDir {
                        parent: parent.to_path_buf(),
                        name,
                        path,
                    })
                }
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(err) => {
                    return Err(err)
                        .with_context(|| format!("create directory `{}`", path.display()))
                }
            }
        }
        anyhow::bail!(
            "create a directory below `{}`: all names taken",
            parent.display()
        )
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // Best effort: nothing useful can be done with a failure here.
        if let Ok(root) = Root::open(&self.parent) {
            let _ = tree::remove_all(root.fd().as_fd(), &self.name);
        }
    }
}

/// Extracts the archive at `path` into a new scratch directory.
pub(crate) fn extract(path: &Path, scratch: &Path) -> anyhow::Result<ScratchDir> {
    let dir = ScratchDir::create(scratch)?;
    let file = blob::open_regular(path, None)?;
    extract_archive(file, dir.path()).with_context(|| format!("extract `{}`", path.display()))?;
    Ok(dir)
}
