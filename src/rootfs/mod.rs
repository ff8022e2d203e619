//! Root filesystems from the image store: each layer unpacked once, by
//! its diff id, into `storage/layers/MAPKEY/HEX` and shared by every
//! container of every image that has it; a container's rootfs is an
//! overlay of those layers with its own upper and work directories,
//! mounted by the container init (`sandbox::mounts`). Runs in the `hutch`
//! process; the unpacking itself runs in a user namespace with the
//! container's maps (`nsexec`), so layer files belong to the subordinate
//! ids. MAPKEY fingerprints those maps: files unpacked under one mapping
//! (say, a single-id fallback) are never shown under another.
//!
//! Which way the layers become a rootfs is the storage driver
//! ([`driver`]): kernel overlay, fuse-overlayfs ([`fuse`]), or vfs, a
//! private copy of the same unpacked layers in the container's own
//! directory ([`vfs`]).

pub mod driver;
pub mod fuse;
pub mod vfs;

use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest as _, Sha256};

use self::driver::{Choice, Driver};
use self::fuse::FuseMount;
use crate::image::{self, Image, UnpackOptions};
use crate::plan::mounts::{overlay_options, Overlay};
use crate::sandbox::nsexec;
use crate::state::{self, Container, Dirs};
use crate::store::Store;
use crate::userns::{idmap, IdMaps};

/// Where to probe kernel overlay: the filesystem of the upper dirs
/// (`Dirs::containers`), where the store is (layers) or local disk.
pub fn probe_dir(dirs: &Dirs) -> PathBuf {
    probe_dir_of(&dirs.data, &dirs.containers)
}

/// [`probe_dir`] for a store at `data` whose containers go to `containers`
/// (`hutch doctor` has no `Dirs`: it creates nothing).
pub fn probe_dir_of(data: &Path, containers: &Path) -> PathBuf {
    match containers.parent() {
        Some(p) if p != data => p.to_path_buf(),
        _ => data.to_path_buf(),
    }
}

/// The one warning `run` prints when the store is on a network
/// filesystem and containers' writable files are kept elsewhere.
pub fn network_warning(dirs: &Dirs) -> Option<String> {
    if dirs.containers.starts_with(&dirs.data) {
        return None;
    }
    let fs = crate::preflight::fs_name(&dirs.data).map_or("a network filesystem", |f| f.0);
    Some(format!(
        "warning: the store `{}` is on {fs}, which cannot hold containers' writable files \
         (upper and work dirs, vfs copies): they are kept on local disk in `{}`",
        dirs.data.display(),
        dirs.containers.display()
    ))
}

/// How the container init gets its rootfs mounted.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum RootfsMount {
    /// A plain directory (vfs, `--rootfs`): nothing to mount.
    Plain,
    /// Kernel overlay, mounted by the container init with these options.
    Overlay(String),
    /// fuse-overlayfs, started by the parent in the child's namespaces.
    Fuse(FuseMount),
}

/// Builds the rootfs of a container from stored layers with the chosen
/// driver: at `c.data_dir/rootfs`, with `upper` and `work` beside it for
/// the overlay flavours.
pub fn prepare(
    store: &Store,
    image: &Image,
    diff_ids: &[String],
    c: &Container,
    maps: &IdMaps,
    choice: &Choice,
) -> anyhow::Result<(PathBuf, RootfsMount)> {
    match choice.driver {
        Driver::Overlay => {
            let (rootfs, overlay) = overlay_rootfs(store, image, diff_ids, c, maps)?;
            Ok((rootfs, RootfsMount::Overlay(overlay_options(&overlay)?)))
        }
        Driver::FuseOverlayfs => {
            let program = choice
                .program
                .clone()
                .context("prepare rootfs: fuse-overlayfs was not found")?;
            let (rootfs, overlay) = overlay_rootfs(store, image, diff_ids, c, maps)?;
            let fuse = FuseMount {
                program,
                options: fuse::options(&overlay)?,
                target: rootfs.clone(),
                log: c.run_dir.join("fuse-overlayfs.log"),
            };
            Ok((rootfs, RootfsMount::Fuse(fuse)))
        }
        Driver::Vfs => {
            let rootfs = c.data_dir.join("rootfs");
            std::fs::create_dir(&rootfs)
                .with_context(|| format!("create `{}`", rootfs.display()))?;
            private_copy(store, image, diff_ids, &rootfs, maps)?;
            Ok((rootfs, RootfsMount::Plain))
        }
    }
}

/// The vfs rung: a private copy of the image's layers in `rootfs`,
/// made from the shared unpacked layers (unpacked first if missing, as
/// for overlay) by [`vfs::merge_layers`] inside the user namespace.
pub fn private_copy(
    store: &Store,
    image: &Image,
    diff_ids: &[String],
    rootfs: &Path,
    maps: &IdMaps,
) -> anyhow::Result<()> {
    let key = map_key(maps);
    let (layers, _) = ensure_layers(store, image, diff_ids, &key, maps)?;
    // Every copy has all its layers' changes (flattened owners, skipped
    // devices), so each vfs container reports them, not only the first.
    let mut changed = image::unpack::UnpackReport::default();
    for diff_id in diff_ids {
        changed.add(&recorded_report(&store.unpack_report_path(&key, diff_id)?));
    }
    nsexec::run_in_userns(maps, "copy the image's layers", || {
        vfs::merge_layers(&layers, rootfs).map_err(|e| crate::errors::hint_if_full(e, rootfs))
    })?;
    warn_unpack(maps.helpers.is_some(), &changed);
    Ok(())
}

/// What unpacking a layer changed, as recorded beside it (nothing when
/// the record is missing or unreadable).
fn recorded_report(path: &Path) -> image::unpack::UnpackReport {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// One warning line per kind of change an unpack made, however many
/// layers it spanned: how many entries, why, and how an admin fixes it.
fn warn_unpack(full_map: bool, report: &image::unpack::UnpackReport) {
    let n = report.flattened_owners;
    if n > 0 && full_map {
        eprintln!(
            "warning: {n} files of the image kept root as owner: their ids are outside your \
             subordinate range; an administrator can widen it in /etc/subuid and /etc/subgid"
        );
    } else if n > 0 {
        eprintln!(
            "warning: {n} files of the image lost their owner: under a single-id map they \
             all belong to {user} (container root); `hutch doctor` shows how an administrator \
             adds subordinate ids",
            user = user_name()
        );
    }
    if report.skipped_devices > 0 {
        eprintln!("warning: {} device nodes of the image were skipped: a user namespace cannot create them", report.skipped_devices);
    }
}

/// The caller's login name, for a warning (looked up only when one is
/// printed: a passwd lookup has no place on every start).
fn user_name() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map_or_else(|| "USER".to_owned(), |u| u.name)
}

/// Makes sure every layer of `image` is unpacked; returns the rootfs
/// mount point and the overlay of the layers with the container's own
/// upper and work dirs.
fn overlay_rootfs(
    store: &Store,
    image: &Image,
    diff_ids: &[String],
    c: &Container,
    maps: &IdMaps,
) -> anyhow::Result<(PathBuf, Overlay)> {
    let key = map_key(maps);
    let (mut lower, changed) = ensure_layers(store, image, diff_ids, &key, maps)?;
    // What unpacking the missing layers changed, reported once for all.
    warn_unpack(maps.helpers.is_some(), &changed);
    lower.reverse(); // overlayfs wants the top layer first
    let overlay = Overlay {
        lower,
        upper: c.data_dir.join("upper"),
        work: c.data_dir.join(OVERLAY_WORK),
    };
    let rootfs = c.data_dir.join("rootfs");
    for d in [&overlay.upper, &overlay.work, &rootfs] {
        std::fs::create_dir(d).with_context(|| format!("create `{}`", d.display()))?;
    }
    Ok((rootfs, overlay))
}

/// How many layers are unpacked at once: one per CPU, at most this many
/// (each holds a decompressor and a tar reader; more threads than disks
/// and cores only contend).
const MAX_PARALLEL_UNPACKS: usize = 4;
/// The stack of an unpacking thread: a main thread's 8 MiB, not a spawned
/// thread's 2 MiB, as the unpacker recurses once per directory level of
/// a layer (bounded by `image::tree`'s depth limit, not by this).
const UNPACK_STACK: usize = 8 << 20;

/// One missing layer to unpack: its blob, what its content must hash to,
/// and where it goes (a temporary directory renamed to `dir`).
struct LayerJob<'a> {
    layer: &'a image::Layer,
    want: crate::image::blob::Digest,
    tmp: PathBuf,
    dir: PathBuf,
    report_path: PathBuf,
}

/// The unpacked directories of the layers of `image`, bottom first,
/// unpacking the missing ones first, and what this unpack changed
/// (nothing for layers that were unpacked already).
///
/// A per-layer lock makes concurrent runs unpack a layer once; the locks
/// of the missing layers are taken in one global order (by diff id) so two
/// runs of images that share layers in another order cannot deadlock.
/// Each unpack goes to a temporary directory renamed into place, so a
/// half-unpacked layer is never used, and is removed when it fails. The
/// changes are recorded beside the layer ([`Store::unpack_report_path`]),
/// which is also how they cross back from the unpacking process.
///
/// The missing layers are unpacked in parallel inside ONE user-namespace
/// child ([`unpack_jobs`]): the threads live in that fresh process and
/// never fork. The alternative, a thread per layer each cloning its own
/// child, would fork from a multi-threaded `hutch` (`clone_fork` relies on
/// a single-threaded caller: a lock another thread holds at the fork stays
/// held in the child forever) and pay one clone and map write per layer.
fn ensure_layers(
    store: &Store,
    image: &Image,
    diff_ids: &[String],
    key: &str,
    maps: &IdMaps,
) -> anyhow::Result<(Vec<PathBuf>, image::unpack::UnpackReport)> {
    if diff_ids.len() != image.layers.len() {
        anyhow::bail!(
            "prepare rootfs: the image has {} layers but {} diff_ids",
            image.layers.len(),
            diff_ids.len()
        );
    }
    let mut changed = image::unpack::UnpackReport::default();
    let dirs = diff_ids
        .iter()
        .map(|d| store.layer_dir(key, d))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Each missing diff id once (an image may repeat a layer), with the
    // first layer that has it, in the order the locks are taken.
    let mut missing: Vec<(&String, &image::Layer)> = Vec::new();
    for ((layer, diff_id), dir) in image.layers.iter().zip(diff_ids).zip(&dirs) {
        if !dir.is_dir() && !missing.iter().any(|(d, _)| *d == diff_id) {
            missing.push((diff_id, layer));
        }
    }
    if missing.is_empty() {
        return Ok((dirs, changed));
    }
    missing.sort_by(|a, b| a.0.cmp(b.0));
    let mut locks = Vec::with_capacity(missing.len());
    let mut jobs = Vec::with_capacity(missing.len());
    for (diff_id, layer) in missing {
        let lock = store.layer_lock(key, diff_id)?;
        let dir = store.layer_dir(key, diff_id)?;
        if dir.is_dir() {
            continue; // another run unpacked it while we waited
        }
        let tmp = store.unpack_dir(key, diff_id)?;
        if let Some(parent) = tmp.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("create `{}`", parent.display()))?;
        }
        locks.push(lock);
        jobs.push(LayerJob {
            layer,
            want: crate::image::blob::Digest::parse(diff_id)?,
            tmp,
            dir,
            report_path: store.unpack_report_path(key, diff_id)?,
        });
    }
    if jobs.is_empty() {
        return Ok((dirs, changed));
    }
    // Jobs in image order, so the bottom layers start first and the first
    // failure reported is the lowest failing layer.
    jobs.sort_by_key(|j| image.layers.iter().position(|l| std::ptr::eq(l, j.layer)));
    let unpacked = nsexec::run_in_userns(maps, "unpack layers", || unpack_jobs(&jobs));
    if let Err(e) = unpacked {
        // The child removes what it fails on; this is for a child that
        // died (killed, out of memory) before it could.
        let left: Vec<&PathBuf> = jobs.iter().map(|j| &j.tmp).filter(|t| t.exists()).collect();
        if !left.is_empty() {
            let _ = nsexec::run_in_userns(maps, "remove a half-unpacked layer", || {
                for t in &left {
                    std::fs::remove_dir_all(t)
                        .with_context(|| format!("remove `{}`", t.display()))?;
                }
                Ok(())
            });
        }
        return Err(e); // unpack_one names the layer
    }
    for job in &jobs {
        changed.add(&recorded_report(&job.report_path));
    }
    drop(locks);
    Ok((dirs, changed))
}

/// Runs in the user-namespace child: unpacks `jobs` on up to
/// [`MAX_PARALLEL_UNPACKS`] threads (this one included), each taking the
/// next job in order. After a failure no new job starts; the jobs already
/// running finish (or fail) and clean up. Returns the error of the lowest
/// failing job: every job before it was started, so it is the first
/// failure in image order whatever the timing.
fn unpack_jobs(jobs: &[LayerJob<'_>]) -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let errors: Mutex<Vec<(usize, anyhow::Error)>> = Mutex::new(Vec::new());
    let work = || loop {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let i = next.fetch_add(1, Ordering::SeqCst);
        let Some(job) = jobs.get(i) else {
            return;
        };
        if let Err(e) = unpack_job(job) {
            stop.store(true, Ordering::SeqCst);
            if let Ok(mut errs) = errors.lock() {
                errs.push((i, e));
            }
        }
    };
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let threads = cpus.min(MAX_PARALLEL_UNPACKS).min(jobs.len());
    let panicked = std::thread::scope(|s| {
        // A thread that cannot be started leaves its share to the others.
        let helpers: Vec<_> = (1..threads)
            .map_while(|n| {
                std::thread::Builder::new()
                    .name(format!("unpack-{n}"))
                    .stack_size(UNPACK_STACK)
                    .spawn_scoped(s, work)
                    .ok()
            })
            .collect();
        work();
        helpers.into_iter().any(|h| h.join().is_err())
    });
    let mut errs = errors.into_inner().unwrap_or_default();
    errs.sort_by_key(|(i, _)| *i);
    if let Some((_, e)) = errs.into_iter().next() {
        return Err(e);
    }
    if panicked {
        anyhow::bail!("unpack layers: an unpacking thread stopped unexpectedly");
    }
    Ok(())
}

/// Unpacks one layer into its temporary directory, records what changed
/// and renames it into place; removes the temporary directory on failure.
fn unpack_job(job: &LayerJob<'_>) -> anyhow::Result<()> {
    let parent = job.tmp.parent().unwrap_or(&job.tmp);
    // Hinted here: only the chain's text crosses back to the parent.
    let full = |e| crate::errors::hint_if_full(e, parent);
    if job.tmp.exists() {
        // A dead process of the same pid left it; the layer lock is ours.
        std::fs::remove_dir_all(&job.tmp)
            .with_context(|| format!("remove `{}`", job.tmp.display()))?;
    }
    std::fs::create_dir(&job.tmp)
        .with_context(|| format!("create `{}`", job.tmp.display()))
        .map_err(full)?;
    let opts = UnpackOptions {
        preserve_ownership: true,
        overlay_whiteouts: true,
    };
    let done = (|| {
        let report = image::unpack::unpack_one(job.layer, &job.want, &job.tmp, &opts)?;
        let json = serde_json::to_vec(&report).context("encode the unpack report")?;
        crate::store::write_file_atomic(&job.report_path, &json)?;
        std::fs::rename(&job.tmp, &job.dir)
            .with_context(|| format!("rename `{}`", job.tmp.display()))
    })();
    if let Err(e) = done {
        let _ = std::fs::remove_dir_all(&job.tmp);
        return Err(full(e));
    }
    Ok(())
}

/// A short fingerprint of the id maps layers are unpacked under.
fn map_key(maps: &IdMaps) -> String {
    let text = format!(
        "{}|{}",
        idmap::to_proc_text(&maps.uid_map),
        idmap::to_proc_text(&maps.gid_map)
    );
    Sha256::digest(text.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Removes unpacked layers that no image and no container (running or
/// stopped) refers to; returns how many. Their files belong to
/// subordinate ids, so the removal runs in a user namespace with the
/// caller's maps; each layer's lock keeps a concurrent unpack out.
pub fn remove_unused_layers(store: &Store, dirs: &Dirs, maps: &IdMaps) -> anyhow::Result<usize> {
    let mut keep: std::collections::HashSet<String> = store
        .images()?
        .into_iter()
        .flat_map(|r| r.diff_ids)
        .collect();
    keep.extend(state::list(dirs)?.into_iter().flat_map(|c| c.layers));
    let mut unused: Vec<(String, String)> = store
        .unpacked_layers()?
        .into_iter()
        .filter(|(_, diff_id)| !keep.contains(diff_id))
        .collect();
    // Locked in the order `ensure_layers` takes layer locks, before any
    // other lock is held: a run holds several at once, so waiting for one
    // while holding another out of that order could deadlock with it.
    unused.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    let mut locks = Vec::with_capacity(unused.len());
    let mut paths = Vec::with_capacity(unused.len());
    for (key, diff_id) in &unused {
        locks.push(store.layer_lock(key, diff_id)?);
        paths.push(store.layer_dir(key, diff_id)?);
    }
    // Half-unpacked layers a killed unpack left behind go too (not counted:
    // they were never layers); each stays locked until removed (a try-lock:
    // it never waits).
    let stale = store.stale_unpacks()?;
    if unused.is_empty() && stale.is_empty() {
        return Ok(0);
    }
    nsexec::run_in_userns(maps, "remove unused layers", || {
        for p in paths.iter().chain(stale.iter().map(|s| &s.path)) {
            std::fs::remove_dir_all(p).with_context(|| format!("remove `{}`", p.display()))?;
        }
        for (key, diff_id) in &unused {
            let report = store.unpack_report_path(key, diff_id)?;
            match std::fs::remove_file(&report) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("remove `{}`", report.display()))
                }
                _ => {}
            }
        }
        Ok(())
    })?;
    drop(locks);
    drop(stale);
    Ok(paths.len())
}

/// A container's overlay work dir, below its data dir.
const OVERLAY_WORK: &str = "work";

/// Kernel overlayfs leaves its `work/work` directory with mode 0: the
/// caller's own, but unreadable, so removing it directly failed and every
/// `run --rm` of an image paid for the user-namespace fallback. The work
/// dir is in none of the container's mounts, so nothing there was planted
/// by it; still, it is opened without following links, and given back its
/// owner's rights through the descriptor.
pub fn open_overlay_workdir(data: &Path) {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let Ok(dir) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(data.join(OVERLAY_WORK).join("work"))
    else {
        return;
    };
    let via = format!("/proc/self/fd/{}", dir.as_raw_fd());
    let _ = std::fs::set_permissions(via, std::fs::Permissions::from_mode(0o700));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs(containers: &str) -> Dirs {
        Dirs {
            runtime: "/run/user/1/hutch".into(),
            data: "/nfs/home/a/.local/share/hutch".into(),
            containers: containers.into(),
        }
    }

    #[test]
    fn mutable_parts_on_local_disk_are_probed_and_announced() {
        let local = dirs("/nfs/home/a/.local/share/hutch/containers");
        assert_eq!(probe_dir(&local), local.data);
        assert_eq!(network_warning(&local), None);
        let away = dirs("/var/tmp/hutch-1/containers");
        assert_eq!(probe_dir(&away), Path::new("/var/tmp/hutch-1"));
        let w = network_warning(&away).unwrap();
        assert!(
            w.starts_with("warning: the store `/nfs/home/a/.local/share/hutch` is on "),
            "{w}"
        );
        assert!(
            w.ends_with("kept on local disk in `/var/tmp/hutch-1/containers`"),
            "{w}"
        );
        assert!(!w.contains("  ") && !w.contains('\n'), "{w}");
        assert!(w.contains("writable files (upper and work dirs"), "{w}");
    }
}
