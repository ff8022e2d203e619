//! `hutch save`: writing images as a docker-archive (what `docker save`
//! writes: `HEX.json` configs, uncompressed `DIFFID.tar` layers and a
//! `manifest.json`) or as an oci-archive (an OCI image layout in a tar,
//! the stored manifests and blobs as they are, one `ref.name` per name).
//!
//! The output is written to a temp file beside it and renamed into place,
//! so an interrupted save never leaves a half archive under the name.

use std::collections::BTreeSet;
use std::io::{Read, Seek, Write};
use std::path::Path;

use crate::image::compression::Compression;
use anyhow::Context;
use serde_json::json;

use super::digest::{self, Digest};
use super::load::{open_regular, OCI_INDEX};
use super::record::ImageRecord;
use super::{fsutil, Store, MAX_BLOB};
use crate::image::layout::REF_NAME;

/// The archive formats `save` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    DockerArchive,
    OciArchive,
}

/// One image to save and the name (if any) it is saved under.
struct Item {
    rec: ImageRecord,
    name: Option<String>,
}

impl Store {
    /// Saves the images `names` (names or ids) to `out` in `format`.
    pub fn save(&self, keys: &[String], format: Format, out: &Path) -> anyhow::Result<()> {
        let dir = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        let tmp = fsutil::TempFile::create(&dir, 0o644)?;
        let mut file = tmp.file.try_clone().context("reopen output")?;
        self.save_to(keys, format, &mut file)?;
        tmp.persist(out)
            .with_context(|| format!("write `{}`", out.display()))
    }

    /// Writes the images `keys` (names or ids) as one archive in `format`
    /// to `w` (`hutch save` without `-o`: standard output).
    pub fn save_to(
        &self,
        keys: &[String],
        format: Format,
        w: &mut dyn Write,
    ) -> anyhow::Result<()> {
        // Shared: blobs cannot be pruned while they are copied.
        let _lock = self.lock_shared()?;
        let mut items = Vec::new();
        for key in keys {
            let (rec, name) = self.find_named(key)?;
            // An archive names images by tag; a digest name is not one.
            let name = name.filter(|n| !n.contains('@'));
            items.push(Item { rec, name });
        }
        let mut builder = tar::Builder::new(std::io::BufWriter::new(w));
        match format {
            Format::DockerArchive => self.write_docker(&mut builder, &items)?,
            Format::OciArchive => self.write_oci(&mut builder, &items)?,
        }
        let mut w = builder.into_inner().context("finish archive")?;
        w.flush().context("write archive")?;
        Ok(())
    }

    fn write_docker<W: Write>(
        &self,
        b: &mut tar::Builder<W>,
        items: &[Item],
    ) -> anyhow::Result<()> {
        let mut written = BTreeSet::new();
        let mut manifest = Vec::new();
        for item in items {
            let id = item.rec.digest()?;
            let config_name = format!("{}.json", id.hex());
            if written.insert(config_name.clone()) {
                let config = self.read_json_blob(&id, Some(item.rec.config_size))?;
                append_bytes(b, &config_name, &config)?;
            }
            let mut layers = Vec::new();
            for (layer, diff_id) in item.rec.layers.iter().zip(&item.rec.diff_ids) {
                let diff = Digest::parse(diff_id)?;
                let name = format!("{}.tar", diff.hex());
                if written.insert(name.clone()) {
                    self.append_plain_layer(b, &name, &Digest::parse(&layer.digest)?, &diff)?;
                }
                layers.push(name);
            }
            manifest.push(json!({
                "Config": config_name,
                "RepoTags": item.name.iter().collect::<Vec<_>>(),
                "Layers": layers,
            }));
        }
        let bytes = serde_json::to_vec(&manifest).context("encode manifest.json")?;
        append_bytes(b, "manifest.json", &bytes)
    }

    /// Appends a layer uncompressed (docker-archive layers are plain
    /// tars); a gzip blob is decompressed to scratch space first, since a
    /// tar header needs the size, and checked against its diff_id.
    fn append_plain_layer<W: Write>(
        &self,
        b: &mut tar::Builder<W>,
        name: &str,
        blob: &Digest,
        diff_id: &Digest,
    ) -> anyhow::Result<()> {
        let path = self.blob_dir().join(blob.hex());
        let compression = super::load::verify_diff_id(&path, blob, diff_id)?;
        if compression == Compression::None {
            return append_file(b, name, &path);
        }
        let mut tmp = fsutil::TempFile::create(&self.tmp_dir(), 0o600)?;
        let mut plain = compression.reader(open_regular(&path)?)?;
        let (got, _) = digest::copy_hashed(&mut plain, &mut tmp.file, MAX_BLOB)
            .with_context(|| format!("decompress layer `{blob}`"))?;
        if got != *diff_id {
            anyhow::bail!("decompress layer `{blob}`: got `{got}`, expected `{diff_id}`");
        }
        tmp.file.rewind().context("rewind scratch layer")?;
        let size = tmp.file.metadata().context("stat scratch layer")?.len();
        append_reader(b, name, size, &mut tmp.file)
    }

    fn write_oci<W: Write>(&self, b: &mut tar::Builder<W>, items: &[Item]) -> anyhow::Result<()> {
        append_bytes(b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        let mut written = BTreeSet::new();
        let mut manifests = Vec::new();
        for item in items {
            for blob in item.rec.blobs() {
                let d = Digest::parse(blob)?;
                if written.insert(d.clone()) {
                    let path = self.blob_dir().join(d.hex());
                    append_file(b, &format!("blobs/sha256/{}", d.hex()), &path)?;
                }
            }
            let mut desc = json!({
                "mediaType": item.rec.manifest_media_type,
                "digest": item.rec.manifest_digest,
                "size": item.rec.manifest_size,
            });
            if let Some(name) = &item.name {
                desc["annotations"] = json!({ REF_NAME: name });
            }
            manifests.push(desc);
        }
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
        let bytes = serde_json::to_vec(&index).context("encode index.json")?;
        append_bytes(b, "index.json", &bytes)
    }
}

fn header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o444);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mtime(0);
    h
}

fn append_bytes<W: Write>(b: &mut tar::Builder<W>, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    append_reader(b, name, size, &mut &bytes[..])
}

fn append_file<W: Write>(b: &mut tar::Builder<W>, name: &str, path: &Path) -> anyhow::Result<()> {
    let mut file = open_regular(path)?;
    let size = file.metadata().context("stat blob")?.len();
    append_reader(b, name, size, &mut file)
}

fn append_reader<W: Write>(
    b: &mut tar::Builder<W>,
    name: &str,
    size: u64,
    r: &mut dyn Read,
) -> anyhow::Result<()> {
    let mut h = header(size);
    b.append_data(&mut h, name, r.take(size))
        .with_context(|| format!("write `{name}` to the archive"))
}
