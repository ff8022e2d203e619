//! `hutch pull`: resolve a name (short names through registries.conf),
//! fetch the manifest and config, stream the layers into the store (a few
//! at a time, each verified against its digest and size while it
//! streams), and record the image. `run` calls [`pull_image`] for a
//! missing image. The download threads end before `run` clones anything
//! (DESIGN.md: no threads exist at clone).

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context};

use super::progress::{Board, Counting, Finished};
use crate::cli::{PullArgs, RegistryArgs};
use crate::image::registry::{Client, ClientOptions, Descriptor, Platform, Reference, Resolved};
use crate::state::Dirs;
use crate::store::{ImageRecord, Pulled, Store};

/// Layers fetched at once: enough to fill a link, few enough for a
/// 2-core machine to decompress-check what arrives.
const PARALLEL_LAYERS: usize = 3;

pub struct PullOptions {
    pub tls_verify: bool,
    pub platform: Platform,
    pub quiet: bool,
}

impl PullOptions {
    pub fn new(r: &RegistryArgs, quiet: bool) -> anyhow::Result<PullOptions> {
        Ok(PullOptions {
            tls_verify: r.tls_verify.unwrap_or(true),
            platform: match &r.platform {
                Some(p) => Platform::parse(p)?,
                None => Platform::host(),
            },
            quiet,
        })
    }

    fn say(&self, line: &str) {
        if !self.quiet {
            let _ = writeln!(std::io::stderr(), "{line}");
        }
    }
}

pub fn pull(args: PullArgs) -> anyhow::Result<i32> {
    let dirs = Dirs::new()?;
    let store = Store::open(&dirs)?;
    let opts = PullOptions::new(&args.registry, args.quiet)?;
    let rec = pull_image(&store, &args.image, &opts)?;
    println!("{}", rec.id.trim_start_matches("sha256:"));
    Ok(0)
}

/// Pulls `name`, trying each registry a short name may live in, in order.
pub(crate) fn pull_image(
    store: &Store,
    name: &str,
    opts: &PullOptions,
) -> anyhow::Result<ImageRecord> {
    if let Some(rec) = from_archive(store, name)? {
        return Ok(rec);
    }
    let client_opts = ClientOptions::from_env(opts.tls_verify, opts.platform.clone())?;
    let candidates = client_opts.conf.candidates(name)?;
    let client = Client::new(client_opts);
    let mut failures = Vec::new();
    for r in &candidates {
        match pull_one(&client, store, r, opts) {
            Ok(rec) => return Ok(rec),
            Err(e) if candidates.len() == 1 => return Err(e),
            Err(e) => failures.push(format!("{r}: {e:#}")),
        }
    }
    bail!(
        "pull `{name}`: no search registry has it ({})",
        failures.join("; ")
    )
}

fn pull_one(
    client: &Client,
    store: &Store,
    r: &Reference,
    opts: &PullOptions,
) -> anyhow::Result<ImageRecord> {
    opts.say(&format!("Trying to pull {r}..."));
    let resolved = client.resolve(r)?;
    // Blobs this pull wrote: a failed pull removes them, storing nothing.
    let written = Mutex::new(Vec::new());
    let result = fetch_layers(client, store, &resolved, opts, &written)
        .and_then(|()| record(store, r, &resolved, opts, &written));
    if result.is_err() {
        let written = written.into_inner().unwrap_or_default();
        if let Err(e) = store.discard_blobs(&written) {
            crate::errors::warn(&crate::errors::hint(
                e.context("remove the blobs of the failed pull"),
                "`hutch image prune` removes them",
            ));
        }
    }
    result
}

/// Stores the manifest and config and records the image under `r`.
fn record(
    store: &Store,
    r: &Reference,
    resolved: &Resolved,
    opts: &PullOptions,
    written: &Mutex<Vec<String>>,
) -> anyhow::Result<ImageRecord> {
    for d in [&resolved.config_digest, &resolved.manifest_digest] {
        if !store.has_blob(d) {
            if let Ok(mut w) = written.lock() {
                w.push(d.clone());
            }
        }
    }
    opts.say(&format!(
        "Copying config {} done",
        short(&resolved.config_digest)
    ));
    opts.say("Writing manifest to image destination");
    let layers = resolved
        .manifest
        .layers
        .iter()
        .map(|l| (l.media_type.clone(), l.digest.clone(), l.size))
        .collect();
    store
        .add_pulled(&Pulled {
            name: &r.to_string(),
            manifest_digest: &resolved.manifest_digest,
            manifest_media_type: &resolved.manifest.media_type,
            manifest_bytes: &resolved.manifest_bytes,
            config_digest: &resolved.config_digest,
            config_bytes: &resolved.config_bytes,
            layers,
            source: &format!("docker://{}", resolved.source),
        })
        .with_context(|| format!("store image `{r}`"))
}

/// Fetches every missing layer, [`PARALLEL_LAYERS`] at a time, while
/// the progress board redraws.
fn fetch_layers(
    client: &Client,
    store: &Store,
    resolved: &Resolved,
    opts: &PullOptions,
    written: &Mutex<Vec<String>>,
) -> anyhow::Result<()> {
    let layers = &resolved.manifest.layers;
    let board = Board::new(
        layers
            .iter()
            .map(|l| (short(&l.digest).to_string(), l.size))
            .collect(),
        opts.quiet,
    );
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    // After one layer fails, the other workers start no new one.
    let failed = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| board.run(&stop));
        let workers: Vec<_> = (0..layers.len().min(PARALLEL_LAYERS))
            .map(|_| {
                s.spawn(|| loop {
                    if failed.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(layer) = layers.get(i) else {
                        return Ok(());
                    };
                    match fetch_layer(client, store, &resolved.source, layer, &board, i) {
                        Ok(()) => {
                            if let Ok(mut w) = written.lock() {
                                w.push(layer.digest.clone());
                            }
                            board.finish(i, Finished::Done)
                        }
                        Err(e) if e.downcast_ref::<Skipped>().is_some() => {
                            board.finish(i, Finished::Skipped)
                        }
                        Err(e) => {
                            failed.store(true, Ordering::Relaxed);
                            board.finish(i, Finished::Failed);
                            return Err(e);
                        }
                    }
                })
            })
            .collect();
        let result = workers.into_iter().try_for_each(|w| {
            w.join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("a download thread panicked")))
        });
        stop.store(true, Ordering::Relaxed);
        result
    })
}

/// Not an error: the layer was already stored.
#[derive(Debug)]
struct Skipped;

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("already stored")
    }
}

impl std::error::Error for Skipped {}

/// Streams one layer from the registry into the store through a pipe:
/// nothing is written twice, and nothing is stored unless it verifies.
/// Another pull downloading the same layer is waited for, not repeated.
fn fetch_layer(
    client: &Client,
    store: &Store,
    r: &Reference,
    layer: &Descriptor,
    board: &Board,
    row: usize,
) -> anyhow::Result<()> {
    store.ensure_lease()?;
    let _once = store.download_lock(&layer.digest)?;
    if store.has_blob(&layer.digest) {
        return Err(Skipped.into());
    }
    board.start(row);
    let (mut rd, wr) = std::io::pipe().context("create a pipe for a layer download")?;
    let (fetched, stored) = std::thread::scope(|s| {
        let fetch = s.spawn(move || {
            let mut out = Counting {
                inner: wr,
                board,
                row,
            };
            client.fetch_blob(r, &layer.digest, layer.size, &mut out)
        });
        let stored = store.put_blob(&layer.digest, Some(layer.size), &mut rd);
        // A store that stopped reading must not leave the fetch blocked.
        drop(rd);
        let fetched = fetch
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the download thread panicked")));
        (fetched, stored)
    });
    layer_outcome(&layer.digest, fetched, stored)
}

/// What one layer's download comes to. The store holds only verified
/// content: once it has the blob, the layer is done, whatever the fetch
/// said after the last byte. Else the fetch's error explains (a network
/// failure shows in the store only as a short read), unless the fetch
/// failed only because the store stopped reading: then the store's error
/// (a full disk, with its hint) is the cause, not the broken pipe.
fn layer_outcome(
    digest: &str,
    fetched: anyhow::Result<()>,
    stored: anyhow::Result<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let Err(stored) = stored else {
        return Ok(());
    };
    match fetched {
        Err(f) if !is_broken_pipe(&f) => Err(f.context(format!("fetch layer `{digest}`"))),
        _ => Err(stored.context(format!("store layer `{digest}`"))),
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// `docker-archive:PATH` and `oci-archive:PATH` pull from a file, as in
/// Podman: the archive is loaded into the store. A `:NAME` or `:TAG`
/// suffix picks one of several images by name.
fn from_archive(store: &Store, name: &str) -> anyhow::Result<Option<ImageRecord>> {
    let Some(rest) = ["docker-archive:", "oci-archive:"]
        .iter()
        .find_map(|t| name.strip_prefix(t))
    else {
        if name.starts_with("oci:") {
            return Err(crate::errors::hint(
                anyhow::anyhow!("pull `{name}`: an image layout directory is not stored"),
                "run it directly: `hutch run oci:PATH[:TAG]`",
            ));
        }
        return Ok(None);
    };
    // The path may hold colons: take a suffix only when no file has the whole name.
    let (path, pick) = match rest.rsplit_once(':') {
        Some((p, sel)) if !std::path::Path::new(rest).exists() => (p, Some(sel)),
        _ => (rest, None),
    };
    let loaded = store.load_archive(std::path::Path::new(path))?;
    let matches = |n: &String, sel: &str| {
        n == sel || n.ends_with(&format!("/{sel}")) || n.ends_with(&format!(":{sel}"))
    };
    let chosen = match pick {
        None => loaded.first(),
        Some(sel) => loaded
            .iter()
            .find(|l| l.names.iter().any(|n| matches(n, sel))),
    }
    .with_context(|| format!("pull `{name}`: the archive has no such image"))?;
    store.find(&chosen.id).map(Some)
}

/// The first 12 hex digits of a digest, as podman prints them.
fn short(digest: &str) -> &str {
    let hex = digest.trim_start_matches("sha256:");
    hex.get(..12).unwrap_or(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn full_disk() -> anyhow::Error {
        let io = std::io::Error::from_raw_os_error(libc::ENOSPC);
        let err = anyhow::Error::new(io).context("write blob");
        crate::errors::hint_if_full(err, std::path::Path::new("/store"))
    }

    fn broken_pipe() -> anyhow::Error {
        let io = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        anyhow::Error::new(io).context("write the blob")
    }

    #[test]
    fn a_full_store_is_reported_not_the_broken_pipe_it_causes() {
        let err = layer_outcome(D, Err(broken_pipe()), Err(full_disk())).unwrap_err();
        let (chain, hints, _) = crate::errors::split(&err);
        let text = chain.join(": ");
        assert!(text.starts_with(&format!("store layer `{D}`")), "{text}");
        assert!(!text.to_lowercase().contains("broken pipe"), "{text}");
        assert!(text.contains("No space left on device"), "{text}");
        assert_eq!(hints.len(), 1, "{hints:?}");
        // The store failing while the fetch ended well is the store's error too.
        let err = layer_outcome(D, Ok(()), Err(full_disk())).unwrap_err();
        assert!(format!("{err:#}").contains("No space left"), "{err:#}");
    }

    #[test]
    fn a_network_failure_is_reported_over_the_short_read_it_causes() {
        let fetched = Err(anyhow::anyhow!("connection reset"));
        let stored = Err(anyhow::anyhow!("verify blob: it has 3 bytes, expected 9"));
        let err = layer_outcome(D, fetched, stored).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.starts_with("fetch layer") && text.contains("reset"),
            "{text}"
        );
        // Once the blob is stored, a late fetch error does not matter.
        let ok = layer_outcome(D, Err(broken_pipe()), Ok("/b".into()));
        assert!(ok.is_ok());
    }
}
