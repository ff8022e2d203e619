//! Image records (`images/<config-hex>.json`) and the name table
//! (`names.json`, name → image id).
//!
//! `names.json` is the authority for names: a tag moves with one atomic
//! write of it, and the `names` a record carries on disk are only what it
//! had when added. Both are validated when read, so a damaged or planted
//! file cannot turn a name or digest into a path.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::digest::Digest;
use super::names;

/// Largest record or name table read into memory.
pub const MAX_RECORD: u64 = 4 * 1024 * 1024;

/// One layer blob of an image, bottom first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

/// What the store knows about one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// `sha256:HEX` of the config blob.
    pub id: String,
    pub config_size: u64,
    /// `sha256:HEX` of the manifest blob (kept in the store too).
    pub manifest_digest: String,
    pub manifest_size: u64,
    pub manifest_media_type: String,
    pub layers: Vec<LayerRecord>,
    /// The config's `rootfs.diff_ids`, bottom first.
    pub diff_ids: Vec<String>,
    /// Normalised names (`docker.io/library/alpine:latest`).
    pub names: Vec<String>,
    /// The config's `created` time (RFC 3339), when it has one.
    pub created: Option<String>,
    /// When the image entered the store, seconds since the epoch.
    pub added: u64,
    /// Sum of the layer blob sizes.
    pub size: u64,
    /// Where it came from (`docker-archive:/path`, ...).
    pub source: String,
}

impl ImageRecord {
    /// Checks every digest and name; sizes are checked against the blobs
    /// when they are used.
    pub fn validate(&self) -> anyhow::Result<()> {
        Digest::parse(&self.id)?;
        Digest::parse(&self.manifest_digest)?;
        for l in &self.layers {
            Digest::parse(&l.digest)?;
        }
        for d in &self.diff_ids {
            Digest::parse(d)?;
        }
        for n in &self.names {
            if names::normalize(n)? != *n {
                anyhow::bail!("check image name `{n}`: not in canonical form");
            }
        }
        Ok(())
    }

    pub fn digest(&self) -> anyhow::Result<Digest> {
        Digest::parse(&self.id)
    }

    /// Every blob the image needs: config, manifest, layers.
    pub fn blobs(&self) -> Vec<&str> {
        let mut all = vec![self.id.as_str(), self.manifest_digest.as_str()];
        all.extend(self.layers.iter().map(|l| l.digest.as_str()));
        all
    }
}

/// Reads and validates one record file.
pub fn read(path: &Path) -> anyhow::Result<ImageRecord> {
    let bytes = read_capped(path)?;
    let rec: ImageRecord = serde_json::from_slice(&bytes)
        .with_context(|| format!("decode image record `{}`", path.display()))?;
    rec.validate()
        .with_context(|| format!("check image record `{}`", path.display()))?;
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    if rec.digest()?.hex() != stem {
        anyhow::bail!(
            "check image record `{}`: it describes image `{}`",
            path.display(),
            rec.id
        );
    }
    Ok(rec)
}

/// Reads `names.json`; a missing file is an empty table.
pub fn read_names(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let bytes = match read_capped(path) {
        Ok(b) => b,
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound) =>
        {
            return Ok(BTreeMap::new())
        }
        Err(e) => return Err(e),
    };
    let table: BTreeMap<String, String> = serde_json::from_slice(&bytes)
        .with_context(|| format!("decode name table `{}`", path.display()))?;
    for (name, id) in &table {
        Digest::parse(id).with_context(|| format!("check name table `{}`", path.display()))?;
        if names::normalize(name).ok().as_ref() != Some(name) {
            anyhow::bail!(
                "check name table `{}`: `{name}` is not a canonical name",
                path.display()
            );
        }
    }
    Ok(table)
}

fn read_capped(path: &Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path).with_context(|| format!("open `{}`", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_RECORD.saturating_add(1))
        .read_to_end(&mut bytes)
        .with_context(|| format!("read `{}`", path.display()))?;
    if u64::try_from(bytes.len()).map_or(true, |n| n > MAX_RECORD) {
        anyhow::bail!("read `{}`: larger than {MAX_RECORD} bytes", path.display());
    }
    Ok(bytes)
}
