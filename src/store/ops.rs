//! Image-level operations of the store: add, list, find, tag, remove,
//! prune, and turning a record into an [`Image`](crate::image::Image)
//! that `run` unpacks. Each takes the store lock for its whole duration.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;

use super::digest::Digest;
use super::record::{self, ImageRecord};
use super::{fsutil, lock, names, Store};
use crate::errors::hint;
use crate::image::{Image, ImageConfig, Layer};

/// Largest config blob read into memory.
const MAX_CONFIG: u64 = 4 * 1024 * 1024;

/// What `rmi` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Removed {
    /// Names removed, in canonical form.
    pub untagged: Vec<String>,
    /// The image id when the image itself went away.
    pub deleted: Option<String>,
}

/// What `image prune` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PruneReport {
    /// Ids of the dangling images removed.
    pub images: Vec<String>,
    pub blobs: usize,
    /// Bytes of the blobs removed.
    pub reclaimed: u64,
    /// Unreferenced blobs kept because a writer is adding an image.
    pub kept_for_writers: bool,
}

impl Store {
    /// Records an image whose blobs are all in the store; its names move
    /// here from whichever image had them.
    pub fn add_image(&self, rec: ImageRecord) -> anyhow::Result<()> {
        rec.validate()?;
        let id = rec.digest()?;
        let _lock = self.lock()?;
        for blob in rec.blobs() {
            if !self.has_blob(blob) {
                return Err(hint(
                    anyhow::anyhow!("add image `{id}`: blob `{blob}` is missing from the store"),
                    "a concurrent `hutch image prune` may have removed it; try again",
                ));
            }
        }
        let bytes = serde_json::to_vec_pretty(&rec).context("encode image record")?;
        fsutil::write_atomic(&self.record_path(&id), &bytes)?;
        let mut table = record::read_names(&self.names_path())?;
        for name in &rec.names {
            table.insert(name.clone(), rec.id.clone());
        }
        self.write_names(&table)
    }

    /// Every image, with its current names (sorted), newest first.
    pub fn images(&self) -> anyhow::Result<Vec<ImageRecord>> {
        let _lock = self.lock_shared()?;
        let table = record::read_names(&self.names_path())?;
        let mut all = self.read_records()?;
        for rec in &mut all {
            rec.names = table
                .iter()
                .filter(|(_, id)| **id == rec.id)
                .map(|(n, _)| n.clone())
                .collect();
        }
        all.sort_by(|a, b| b.added.cmp(&a.added).then_with(|| a.id.cmp(&b.id)));
        Ok(all)
    }

    /// Finds an image by full or short name, name by digest, id, or
    /// unique id prefix (see [`names::resolve`]).
    pub fn find(&self, name_or_id: &str) -> anyhow::Result<ImageRecord> {
        self.find_named(name_or_id).map(|(rec, _)| rec)
    }

    /// [`Store::find`], also giving the stored name it was found by.
    pub(super) fn find_named(
        &self,
        name_or_id: &str,
    ) -> anyhow::Result<(ImageRecord, Option<String>)> {
        let candidates = names::candidates(name_or_id)?;
        let _lock = self.lock_shared()?;
        let all = self.images()?;
        let table = record::read_names(&self.names_path())?;
        let found = names::resolve(name_or_id, &candidates, &table, &all)?;
        let rec = all
            .into_iter()
            .find(|r| r.id == found.id)
            .with_context(|| format!("find image `{name_or_id}`: its record vanished"))?;
        Ok((rec, found.name))
    }

    /// Gives the image `id` (any form `find` accepts) the name `name`.
    pub fn tag(&self, id: &str, name: &str) -> anyhow::Result<()> {
        let name = names::normalize(name)?;
        if name.contains('@') {
            return Err(hint(
                anyhow::anyhow!("tag image as `{name}`: a tag cannot be a digest"),
                "give a name with a tag, e.g. `NAME:TAG`",
            ));
        }
        let _lock = self.lock()?;
        let rec = self.find(id)?;
        let mut table = record::read_names(&self.names_path())?;
        table.insert(name, rec.id);
        self.write_names(&table)
    }

    /// `rmi` semantics: a name is untagged (and the image removed when it
    /// was its last name); an id removes the image, which needs `force`
    /// when it still has several names.
    pub fn untag_or_remove(&self, name_or_id: &str, force: bool) -> anyhow::Result<Removed> {
        let _lock = self.lock()?;
        let mut table = record::read_names(&self.names_path())?;
        let (rec, by_name) = self.find_named(name_or_id)?;
        let mut removed = Removed::default();
        if let Some(name) = by_name {
            table.remove(&name);
            removed.untagged.push(name);
        } else {
            let own: Vec<String> = names_of(&table, &rec.id);
            if own.len() > 1 && !force {
                return Err(hint(
                    anyhow::anyhow!(
                        "remove image `{}`: it is referenced by {} names ({})",
                        short(&rec.id),
                        own.len(),
                        own.join(", ")
                    ),
                    "remove it by name, or force with `hutch rmi -f`",
                ));
            }
            for n in &own {
                table.remove(n);
            }
            removed.untagged = own;
        }
        self.write_names(&table)?;
        if names_of(&table, &rec.id).is_empty() {
            self.delete_records(std::slice::from_ref(&rec))?;
            self.sweep_blobs()?;
            removed.deleted = Some(rec.id);
        }
        Ok(removed)
    }

    /// Removes `blobs` that a failed pull wrote, so that it stores nothing:
    /// each one no image refers to goes, unless another writer holds a
    /// lease (it may be about to record an image using them; `prune`
    /// removes them later then). Returns how many were removed.
    pub fn discard_blobs(&self, blobs: &[String]) -> anyhow::Result<usize> {
        if blobs.is_empty() {
            return Ok(0);
        }
        let _lock = self.lock()?;
        let own = self.own_lease();
        if lock::live_leases(&self.leases_dir(), own.as_deref())? > 0 {
            return Ok(0);
        }
        let records = self.read_records()?;
        let used: BTreeSet<&str> = records.iter().flat_map(ImageRecord::blobs).collect();
        let mut count = 0usize;
        for blob in blobs {
            if used.contains(blob.as_str()) {
                continue;
            }
            let path = self.blob_path(blob)?;
            match std::fs::remove_file(&path) {
                Ok(()) => count += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("remove blob `{blob}`")),
            }
        }
        if count > 0 {
            fsutil::sync_dir(&self.blob_dir())?;
        }
        Ok(count)
    }

    /// Removes dangling images (no names) and blobs no image refers to.
    pub fn prune(&self) -> anyhow::Result<PruneReport> {
        let _lock = self.lock()?;
        let table = record::read_names(&self.names_path())?;
        let dangling: Vec<ImageRecord> = self
            .read_records()?
            .into_iter()
            .filter(|r| names_of(&table, &r.id).is_empty())
            .collect();
        self.delete_records(&dangling)?;
        let (blobs, reclaimed, kept) = self.sweep_blobs()?;
        Ok(PruneReport {
            images: dangling.into_iter().map(|r| r.id).collect(),
            blobs,
            reclaimed,
            kept_for_writers: kept,
        })
    }

    /// The image `run` unpacks: layers are the store's blob files.
    pub fn to_image(&self, rec: &ImageRecord) -> anyhow::Result<Image> {
        let id = rec.digest()?;
        let config = self.read_json_blob(&id, Some(rec.config_size))?;
        let config = ImageConfig::from_json(&config)
            .with_context(|| format!("read config of image `{}`", short(&rec.id)))?;
        let layers = rec
            .layers
            .iter()
            .map(|l| {
                Ok(Layer {
                    path: self.blob_path(&l.digest)?,
                    media_type: l.media_type.clone(),
                    digest: l.digest.clone(),
                    size: l.size,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Image {
            id: id.hex().to_owned(),
            config,
            layers,
            diff_ids: rec.diff_ids.clone(),
            extracted: None,
        })
    }

    /// Reads a small blob (config, manifest), checking size and digest.
    pub(crate) fn read_json_blob(&self, d: &Digest, size: Option<u64>) -> anyhow::Result<Vec<u8>> {
        use std::io::Read;
        if size.is_some_and(|s| s > MAX_CONFIG) {
            anyhow::bail!("read blob `{d}`: over the {MAX_CONFIG}-byte limit");
        }
        let path = self.blob_dir().join(d.hex());
        let file = std::fs::File::open(&path).with_context(|| format!("open blob `{d}`"))?;
        let mut bytes = Vec::new();
        file.take(MAX_CONFIG.saturating_add(1))
            .read_to_end(&mut bytes)
            .with_context(|| format!("read blob `{d}`"))?;
        let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        if len > MAX_CONFIG || size.is_some_and(|s| s != len) {
            anyhow::bail!("read blob `{d}`: unexpected size {len}");
        }
        let got = super::digest::of_bytes(&bytes);
        if got != *d {
            anyhow::bail!("verify blob `{d}`: its content has digest `{got}`");
        }
        Ok(bytes)
    }

    /// Every record on disk (names as written when added).
    fn read_records(&self) -> anyhow::Result<Vec<ImageRecord>> {
        let dir = self.images_dir();
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("list `{}`", dir.display()))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.with_context(|| format!("list `{}`", dir.display()))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || !name.ends_with(".json") {
                continue;
            }
            out.push(record::read(&entry.path())?);
        }
        Ok(out)
    }

    fn write_names(&self, table: &BTreeMap<String, String>) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec_pretty(table).context("encode name table")?;
        fsutil::write_atomic(&self.names_path(), &bytes)
    }

    fn delete_records(&self, recs: &[ImageRecord]) -> anyhow::Result<()> {
        for rec in recs {
            let path = self.record_path(&rec.digest()?);
            std::fs::remove_file(&path).with_context(|| format!("remove `{}`", path.display()))?;
        }
        if !recs.is_empty() {
            fsutil::sync_dir(&self.images_dir())?;
        }
        Ok(())
    }

    /// Removes blobs no record refers to, unless another writer holds a
    /// lease. Returns (blobs removed, bytes, kept for a writer). Call with
    /// the exclusive lock held.
    fn sweep_blobs(&self) -> anyhow::Result<(usize, u64, bool)> {
        let own = self.own_lease();
        if lock::live_leases(&self.leases_dir(), own.as_deref())? > 0 {
            return Ok((0, 0, true));
        }
        let records = self.read_records()?;
        let used: BTreeSet<&str> = records.iter().flat_map(ImageRecord::blobs).collect();
        let dir = self.blob_dir();
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("list `{}`", dir.display()))?;
        let (mut count, mut bytes) = (0usize, 0u64);
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(d) = name.to_str().and_then(Digest::from_hex) else {
                continue; // temp files and strangers are not blobs
            };
            if used.contains(d.to_string().as_str()) {
                continue;
            }
            let len = entry.metadata().map(|m| m.len()).unwrap_or_default();
            std::fs::remove_file(entry.path()).with_context(|| format!("remove blob `{d}`"))?;
            count += 1;
            bytes = bytes.saturating_add(len);
        }
        if count > 0 {
            fsutil::sync_dir(&dir)?;
        }
        Ok((count, bytes, false))
    }
}

fn names_of(table: &BTreeMap<String, String>, id: &str) -> Vec<String> {
    table
        .iter()
        .filter(|(_, v)| v.as_str() == id)
        .map(|(n, _)| n.clone())
        .collect()
}

/// The 12-digit form of an id, for messages.
pub fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.get(..12).unwrap_or(hex)
}
