//! Safe unpacking of layer tars (plain, gzip or zstd) with OCI whiteouts.
//!
//! Owns the layer loop: opening each layer blob, detecting compression
//! (media type and magic bytes), hashing the compressed bytes as they are
//! read so the blob is checked against its descriptor, and handing the
//! tar stream to [`Applier`](super::entry::Applier).

use std::io::{self, BufReader, Read};
use std::path::Path;

use super::compression::Compression;
use anyhow::Context;

use super::blob::{self, Digest, HashingReader};
use super::entry::{Applier, Policy};
use super::tree::Root;
use super::Layer;

#[derive(Debug, Clone, Default)]
pub struct UnpackOptions {
    /// Apply the uid/gid from the tar headers (inside a user namespace).
    pub preserve_ownership: bool,
    /// Keep whiteouts as overlayfs markers: for one layer unpacked alone,
    /// to be mounted as a lowerdir.
    pub overlay_whiteouts: bool,
}

/// What unpacking had to change, to report once to the user.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UnpackReport {
    /// Entries whose owner could not be applied (not mapped): left as root.
    pub flattened_owners: u64,
    /// Device nodes that could not be created (mknod is not allowed).
    pub skipped_devices: u64,
}

impl UnpackReport {
    /// Adds another unpack's changes to these.
    pub fn add(&mut self, other: &UnpackReport) {
        self.flattened_owners = self.flattened_owners.saturating_add(other.flattened_owners);
        self.skipped_devices = self.skipped_devices.saturating_add(other.skipped_devices);
    }
}

/// Unpacks every layer of `image` into `dest`, bottom first (tests: the
/// vfs rung copies the store's unpacked layers, `rootfs::vfs`).
#[cfg(test)]
pub fn unpack(
    image: &super::Image,
    dest: &Path,
    opts: &UnpackOptions,
) -> anyhow::Result<UnpackReport> {
    let root = Root::open(dest)?;
    let mut report = UnpackReport::default();
    for layer in &image.layers {
        unpack_layer(&root, layer, None, opts, &mut report)
            .with_context(|| format!("unpack layer `{}`", layer.digest))?;
    }
    Ok(report)
}

/// Unpacks one layer alone into the empty directory `dest`, whiteouts
/// kept as overlayfs markers (`opts.overlay_whiteouts` is implied). The
/// uncompressed stream must have `diff_id`: the store shares unpacked
/// layers between images by diff_id, so an image whose config names
/// another layer's diff_id must not get its own content stored as that
/// layer.
pub fn unpack_one(
    layer: &Layer,
    diff_id: &Digest,
    dest: &Path,
    opts: &UnpackOptions,
) -> anyhow::Result<UnpackReport> {
    let root = Root::open(dest)?;
    let mut report = UnpackReport::default();
    let opts = UnpackOptions {
        overlay_whiteouts: true,
        ..opts.clone()
    };
    unpack_layer(&root, layer, Some(diff_id), &opts, &mut report)
        .with_context(|| format!("unpack layer `{}`", layer.digest))?;
    Ok(report)
}

/// Applies one layer blob; its bytes are verified against the descriptor
/// (and the uncompressed bytes against `diff_id`, when given). A digest
/// mismatch is reported in preference to what a corrupt stream made the
/// tar reader say.
fn unpack_layer(
    root: &Root,
    layer: &Layer,
    diff_id: Option<&Digest>,
    opts: &UnpackOptions,
    report: &mut UnpackReport,
) -> anyhow::Result<()> {
    let digest = Digest::parse(&layer.digest)?;
    let file = blob::open_regular(&layer.path, Some(layer.size))?;
    let mut hashed = HashingReader::new(BufReader::new(file));
    let head = hashed.peek().context("read layer")?.to_vec();
    let compression = Compression::detect(&layer.media_type, &head);
    let policy = Policy::Layer {
        preserve_ownership: opts.preserve_ownership,
    };
    let applied = apply_stream(
        root,
        policy,
        report,
        &mut hashed,
        compression,
        opts.overlay_whiteouts,
        diff_id,
    );
    let drained = io::copy(&mut hashed, &mut io::sink()).context("read layer");
    hashed.verify(&digest, layer.size)?;
    drained?;
    applied
}

/// Decompresses (if needed) and applies one tar stream.
fn apply_stream<R: Read>(
    root: &Root,
    policy: Policy,
    report: &mut UnpackReport,
    reader: R,
    compression: Compression,
    overlay_whiteouts: bool,
    diff_id: Option<&Digest>,
) -> anyhow::Result<()> {
    let mut applier = Applier::new(root, policy, report).with_overlay_whiteouts(overlay_whiteouts);
    let mut plain = HashingReader::new(compression.reader(reader)?);
    applier.apply_tar(&mut plain)?;
    let Some(want) = diff_id else {
        return Ok(());
    };
    // What follows the end of the archive counts too (tar's padding).
    io::copy(&mut plain, &mut io::sink()).context("read layer")?;
    let got = plain.digest();
    if got != want.to_string() {
        anyhow::bail!(
            "verify layer: its content has diff_id `{got}` but the image config says `{want}`"
        );
    }
    Ok(())
}

/// Applies a tar stream below `dest` as a layer (tests and callers that
/// already have the bytes). `dest` must be an existing directory.
// Used by `hutch load` of docker-archives (issue 3, landing next).
#[allow(dead_code)]
pub fn unpack_tar<R: Read>(
    reader: R,
    dest: &Path,
    opts: &UnpackOptions,
) -> anyhow::Result<UnpackReport> {
    let root = Root::open(dest)?;
    let mut report = UnpackReport::default();
    let mut reader = BufReader::new(reader);
    let head = io::BufRead::fill_buf(&mut reader)
        .context("read layer")?
        .to_vec();
    let compression = Compression::detect("", &head);
    let policy = Policy::Layer {
        preserve_ownership: opts.preserve_ownership,
    };
    apply_stream(
        &root,
        policy,
        &mut report,
        reader,
        compression,
        opts.overlay_whiteouts,
        None,
    )?;
    Ok(report)
}

/// Extracts an OCI archive (a tar of an image layout) into `dest` with the
/// same confinement as layers; only files and directories are accepted.
pub(crate) fn extract_archive<R: Read>(reader: R, dest: &Path) -> anyhow::Result<()> {
    let root = Root::open(dest)?;
    let mut report = UnpackReport::default();
    let mut reader = BufReader::new(reader);
    let head = io::BufRead::fill_buf(&mut reader)
        .context("read archive")?
        .to_vec();
    let compression = Compression::detect("", &head);
    apply_stream(
        &root,
        Policy::Archive,
        &mut report,
        reader,
        compression,
        false,
        None,
    )
}
