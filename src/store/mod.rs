//! The content-addressed image store under `$XDG_DATA_HOME/hutch/storage`,
//! used by the `hutch` process (never by a container):
//!
//! ```text
//! storage/
//!   store.lock              flock: shared to read, exclusive to change
//!   blobs/sha256/<hex>      immutable blobs (configs, manifests, layers), mode 0444
//!   images/<config-hex>.json  one record per image (see record.rs)
//!   names.json              name → image id, the authority for tags
//!   leases/<name>           flocked by live blob writers; prune keeps blobs then
//!   tmp/                    scratch files of load and save
//! ```
//!
//! Every write is a temp file in the destination directory, fsync, rename;
//! a writer that dies leaves only a `.tmp-*` file that [`Store::open`]
//! removes (all of them when no lock or lease is held, otherwise those
//! older than an hour). Blobs stream in without the store lock, under the
//! writer's lease. Nothing outside the root is ever written:
//! digests are validated (`sha256:` + 64 hex) before they become paths.

mod archive;
mod digest;
mod fsutil;
mod load;
mod lock;
mod names;
mod ops;
mod pull;
mod record;
mod save;

#[cfg(test)]
mod concurrency_tests;
#[cfg(test)]
mod tests;

use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;

use crate::state::Dirs;
pub use digest::Digest;
pub use fsutil::write_atomic as write_file_atomic;
pub use lock::Lock;
use lock::{Holders, Lease};
pub use names::split as split_name;
pub use pull::Pulled;
pub use record::ImageRecord;
pub use save::Format;

/// Temp files untouched this long belong to a writer that died.
const STALE_TEMP: Duration = Duration::from_secs(3600);
/// Largest blob accepted (a sanity cap, far above any real layer).
const MAX_BLOB: u64 = 1 << 40;

/// An opened store. One per thread or process; each holds its own locks.
pub struct Store {
    root: PathBuf,
    holders: Holders,
    lease: Mutex<Option<Lease>>,
}

impl Store {
    /// Opens (creating if needed) the store of the calling user.
    pub fn open(dirs: &Dirs) -> anyhow::Result<Store> {
        Store::open_at(&dirs.data.join("storage"))
    }

    /// Opens the store rooted at `root`.
    pub fn open_at(root: &Path) -> anyhow::Result<Store> {
        let store = Store {
            root: root.to_path_buf(),
            holders: Holders::default(),
            lease: Mutex::new(None),
        };
        for dir in [
            store.blob_dir(),
            store.images_dir(),
            store.leases_dir(),
            store.tmp_dir(),
        ] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .with_context(|| format!("create store directory `{}`", dir.display()))
                .map_err(|e| {
                    crate::errors::hint(e, "check that XDG_DATA_HOME is writable by you")
                })?;
        }
        store.clean_temps()?;
        Ok(store)
    }

    /// Removes leftovers of interrupted writes: all of them when nobody
    /// holds the store lock or a lease (no write can be in progress),
    /// else old ones.
    fn clean_temps(&self) -> anyhow::Result<()> {
        let alone = lock::flock_file(&self.lock_path(), true, false)?;
        let idle = alone.is_some() && lock::live_leases(&self.leases_dir(), None)? == 0;
        let age = if idle { None } else { Some(STALE_TEMP) };
        for dir in [
            self.root.clone(),
            self.blob_dir(),
            self.images_dir(),
            self.tmp_dir(),
            self.leases_dir(),
        ] {
            fsutil::clean_temps(&dir, age)?;
        }
        Ok(())
    }

    /// Takes the store lock exclusively; released on drop. Re-entrant
    /// within one thread, so the store's methods may be called meanwhile.
    pub fn lock(&self) -> anyhow::Result<Lock<'_>> {
        self.holders.acquire(&self.lock_path(), true)
    }

    fn lock_shared(&self) -> anyhow::Result<Lock<'_>> {
        self.holders.acquire(&self.lock_path(), false)
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.is_file())
    }

    /// `blobs/sha256/HEX` for a validated digest.
    pub fn blob_path(&self, digest: &str) -> anyhow::Result<PathBuf> {
        let d = Digest::parse(digest)?;
        Ok(self.blob_dir().join(d.hex()))
    }

    /// Streams `r` into the store as the blob `digest`, checking its
    /// sha256 and (when given) its size; nothing is stored on a mismatch.
    /// A concurrent writer of the same blob is harmless: same content.
    pub fn put_blob(
        &self,
        digest: &str,
        size: Option<u64>,
        r: &mut dyn Read,
    ) -> anyhow::Result<PathBuf> {
        let want = Digest::parse(digest)?;
        let (_, _, path) = self.write_blob(Some(&want), size, r)?;
        Ok(path)
    }

    /// Stores a blob whose digest is learned while writing it.
    fn write_blob(
        &self,
        want: Option<&Digest>,
        size: Option<u64>,
        r: &mut dyn Read,
    ) -> anyhow::Result<(Digest, u64, PathBuf)> {
        {
            let _lock = self.lock_shared()?;
            self.ensure_lease()?;
            if let Some(want) = want {
                let path = self.blob_dir().join(want.hex());
                if let Some(len) = existing_len(&path) {
                    if size.is_none_or(|s| s == len) {
                        return Ok((want.clone(), len, path));
                    }
                }
            }
        }
        // Streamed without the store lock (a pull may take minutes); the
        // lease keeps prune and `open`'s temp cleanup away meanwhile.
        let mut tmp = fsutil::TempFile::create(&self.blob_dir(), 0o600)?;
        let cap = size.unwrap_or(MAX_BLOB);
        let (got, len) = digest::copy_hashed(r, &mut tmp.file, cap)
            .with_context(|| format!("write blob `{}`", describe(want)))
            .map_err(|e| crate::errors::hint_if_full(e, &self.root))?;
        if let Some(want) = want {
            if got != *want {
                anyhow::bail!("verify blob `{want}`: its content has digest `{got}`");
            }
        }
        if size.is_some_and(|s| s != len) {
            anyhow::bail!(
                "verify blob `{}`: it has {len} bytes, expected {}",
                describe(want),
                size.unwrap_or_default()
            );
        }
        tmp.file
            .set_permissions(std::fs::Permissions::from_mode(0o444))
            .with_context(|| format!("set mode of `{}`", tmp.path.display()))?;
        let path = self.blob_dir().join(got.hex());
        tmp.persist(&path)?;
        Ok((got, len, path))
    }

    /// Serialises downloads of one blob across processes: a second pull of
    /// the same layer waits here, then finds the blob stored and skips it
    /// (issue 3: each layer fetched once even when pulls run at once).
    /// The lock files stay, one empty file per blob ever downloaded:
    /// removing one while another process waits on it would let a third
    /// download the blob alongside.
    pub fn download_lock(&self, digest: &str) -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
        let d = Digest::parse(digest)?;
        lock_file(&self.root.join("downloads"), d.hex())
    }

    /// Where layer `diff_id`, unpacked under the id maps `map_key`, lives.
    pub fn layer_dir(&self, map_key: &str, diff_id: &str) -> anyhow::Result<PathBuf> {
        let d = Digest::parse(diff_id)?;
        if map_key.is_empty() || !digest::is_lower_hex(map_key) {
            anyhow::bail!("use layer key `{map_key}`: not lowercase hex");
        }
        Ok(self.root.join("layers").join(map_key).join(d.hex()))
    }

    /// Every unpacked layer as (map key, diff id), temporary ones left out.
    pub fn unpacked_layers(&self) -> anyhow::Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for (key, e) in self.layer_entries(|_| true)? {
            if let Some(d) = e.file_name().to_str().and_then(Digest::from_hex) {
                out.push((key, d.to_string()));
            }
        }
        Ok(out)
    }

    /// Every entry of each `layers/KEY/` whose KEY passes `keep`, with that
    /// KEY; none before the first unpack made `layers`.
    fn layer_entries(
        &self,
        keep: impl Fn(&str) -> bool,
    ) -> anyhow::Result<Vec<(String, std::fs::DirEntry)>> {
        let root = self.root.join("layers");
        let mut out = Vec::new();
        let keys = match std::fs::read_dir(&root) {
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).with_context(|| format!("list `{}`", root.display())),
        };
        for key in keys.flatten() {
            let key_name = key.file_name().to_string_lossy().into_owned();
            if !keep(&key_name) {
                continue;
            }
            let entries = std::fs::read_dir(key.path())
                .with_context(|| format!("list `{}`", key.path().display()))?;
            out.extend(entries.flatten().map(|e| (key_name.clone(), e)));
        }
        Ok(out)
    }

    /// Where this process unpacks layer `diff_id` before renaming it to
    /// [`Store::layer_dir`]: `layers/KEY/.tmp-HEX-PID`, used only under
    /// the layer's lock, so that [`Store::stale_unpacks`] can tell a dead
    /// unpack's leftovers from a live one.
    pub fn unpack_dir(&self, map_key: &str, diff_id: &str) -> anyhow::Result<PathBuf> {
        let dir = self.layer_dir(map_key, diff_id)?;
        let d = Digest::parse(diff_id)?;
        Ok(dir.with_file_name(format!(".tmp-{}-{}", d.hex(), std::process::id())))
    }

    /// What unpacking layer `diff_id` had to change (owners flattened,
    /// devices skipped), recorded beside it: `layers/KEY/.unpack-HEX.json`.
    pub fn unpack_report_path(&self, map_key: &str, diff_id: &str) -> anyhow::Result<PathBuf> {
        let dir = self.layer_dir(map_key, diff_id)?;
        let d = Digest::parse(diff_id)?;
        Ok(dir.with_file_name(format!(".unpack-{}.json", d.hex())))
    }

    /// Half-unpacked layer directories that a killed unpack left: a
    /// `.tmp-HEX-PID` whose layer lock is free (taken and returned with
    /// it, so no unpack starts while it is removed), or an older-style
    /// `.tmp-PID` whose process is gone.
    pub fn stale_unpacks(&self) -> anyhow::Result<Vec<StaleUnpack>> {
        let mut out = Vec::new();
        for (_, e) in self.layer_entries(digest::is_lower_hex)? {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(".tmp-") else {
                continue;
            };
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let stale = match rest.split_once('-') {
                Some((hex, pid)) if pid.parse::<u32>().is_ok() => {
                    let Some(d) = Digest::from_hex(hex) else {
                        continue;
                    };
                    // Taken here: the unpack is over. A lock file that
                    // cannot be opened tells nothing: left alone.
                    let lock_path = e.path().with_file_name(".locks").join(d.hex());
                    lock::flock_file(&lock_path, true, false)
                        .ok()
                        .flatten()
                        .map(Some)
                }
                None => match rest.parse::<i32>() {
                    Ok(pid) if pid > 0 && !process_alive(pid) => Some(None),
                    _ => None,
                },
                Some(_) => None,
            };
            if let Some(lock) = stale {
                out.push(StaleUnpack {
                    path: e.path(),
                    _lock: lock,
                });
            }
        }
        Ok(out)
    }

    /// Serialises unpacking one layer across processes.
    pub fn layer_lock(
        &self,
        map_key: &str,
        diff_id: &str,
    ) -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
        let dir = self.layer_dir(map_key, diff_id)?;
        let d = Digest::parse(diff_id)?;
        lock_file(
            &self.root.join("layers").join(map_key).join(".locks"),
            d.hex(),
        )
        .map_err(|e| e.context(format!("lock `{}`", dir.display())))
    }

    /// Marks this store as a writer, so a concurrent prune keeps the
    /// blobs it has written but not yet referenced from a record.
    /// A pull takes it before it finds a layer already stored, so that a
    /// failing pull beside it leaves that layer alone.
    pub fn ensure_lease(&self) -> anyhow::Result<()> {
        let mut lease = self
            .lease
            .lock()
            .map_err(|_| anyhow::anyhow!("lease store: poisoned"))?;
        if lease.is_none() {
            *lease = Some(Lease::create(&self.leases_dir())?);
        }
        Ok(())
    }

    fn own_lease(&self) -> Option<PathBuf> {
        self.lease
            .lock()
            .ok()
            .and_then(|l| l.as_ref().map(|l| l.path.clone()))
    }

    fn blob_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    fn images_dir(&self) -> PathBuf {
        self.root.join("images")
    }

    fn leases_dir(&self) -> PathBuf {
        self.root.join("leases")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn lock_path(&self) -> PathBuf {
        self.root.join("store.lock")
    }

    fn names_path(&self) -> PathBuf {
        self.root.join("names.json")
    }

    fn record_path(&self, id: &Digest) -> PathBuf {
        self.images_dir().join(format!("{}.json", id.hex()))
    }
}

/// An image's names that are tags (`REPO:TAG`), not digests.
pub fn tags_of(rec: &ImageRecord) -> Vec<String> {
    rec.names
        .iter()
        .filter(|n| !n.contains('@'))
        .cloned()
        .collect()
}

/// A half-unpacked layer directory to remove; its layer stays locked
/// while this lives.
pub struct StaleUnpack {
    pub path: PathBuf,
    _lock: Option<nix::fcntl::Flock<std::fs::File>>,
}

/// Whether process `pid` exists (EPERM: it does, as another user's).
fn process_alive(pid: i32) -> bool {
    let pid = nix::unistd::Pid::from_raw(pid);
    !matches!(
        nix::sys::signal::kill(pid, None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// The size of an existing regular blob file.
fn existing_len(path: &Path) -> Option<u64> {
    std::fs::symlink_metadata(path)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len())
}

fn describe(d: Option<&Digest>) -> String {
    d.map_or_else(|| "(new)".to_owned(), Digest::to_string)
}

/// Opens (creating) and exclusively flocks `dir/name`.
fn lock_file(dir: &Path, name: &str) -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("create `{}`", dir.display()))?;
    let path = dir.join(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .with_context(|| format!("open `{}`", path.display()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| anyhow::Error::new(e).context(format!("lock `{}`", path.display())))
}
