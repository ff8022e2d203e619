//! `hutch load`: importing a docker-archive (`docker save`: manifest.json
//! with Config, RepoTags, Layers) or an oci-archive (`oci-layout`,
//! `index.json`, `blobs/`), optionally gzip-compressed as a whole.
//!
//! The archive is hostile: members are read in place through
//! [`ArchiveIndex`] (no extraction), JSON documents are size-capped, every
//! blob is verified against its digest while it is stored, and each
//! layer's uncompressed digest is checked against the config's diff_ids,
//! which is what ties a docker-archive's layers to the image id.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::Context;
use flate2::read::MultiGzDecoder;

use crate::image::compression::Compression;
use serde::Deserialize;
use serde_json::json;

use super::archive::ArchiveIndex;
use super::digest::{self, Digest};
use super::record::{ImageRecord, LayerRecord};
use super::{fsutil, names, Store, MAX_BLOB};
use crate::image::layout::{host_arch, Descriptor, REF_NAME};

/// Largest JSON document read from an archive.
const MAX_JSON: u64 = 4 * 1024 * 1024;
/// Most images in one archive, and layers in one image.
const MAX_ITEMS: usize = 1000;
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
pub(super) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(super) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// One image added by a load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// `sha256:HEX` of the config.
    pub id: String,
    pub names: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct ConfigFacts {
    #[serde(default)]
    created: Option<String>,
    rootfs: RootFs,
}

#[derive(Debug, Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

impl Store {
    /// Loads every image of the archive at `path` and returns them.
    pub fn load_archive(&self, path: &Path) -> anyhow::Result<Vec<Loaded>> {
        let label = path.display().to_string();
        let file = open_regular(path).with_context(|| format!("open archive `{label}`"))?;
        self.load_file(file, &label)
    }

    /// Loads every image of an archive read from `r` (`hutch load` without
    /// `-i`: standard input, which cannot seek): it is first copied into
    /// the store's scratch space, removed again when done.
    pub fn load_stream(&self, r: &mut dyn Read, label: &str) -> anyhow::Result<Vec<Loaded>> {
        self.ensure_lease()?; // keeps `open`'s cleanup off the scratch file
        let tmp = fsutil::TempFile::create(&self.tmp_dir(), 0o600)?;
        let mut file = tmp.file.try_clone().context("reopen scratch archive")?;
        digest::copy_hashed(r, &mut file, MAX_BLOB)
            .with_context(|| format!("read archive from {label}"))
            .map_err(|e| crate::errors::hint_if_full(e, &self.root))?;
        std::io::Seek::rewind(&mut file).context("rewind scratch archive")?;
        let loaded = self.load_file(file, label);
        drop(tmp);
        loaded
    }

    fn load_file(&self, file: std::fs::File, label: &str) -> anyhow::Result<Vec<Loaded>> {
        let (index, _scratch) = self
            .open_archive(file)
            .with_context(|| format!("open archive `{label}`"))?;
        let loaded = if index.has("manifest.json") {
            self.load_docker(&index, &format!("docker-archive:{label}"))
        } else if index.has("index.json") && index.has("oci-layout") {
            self.load_oci(&index, &format!("oci-archive:{label}"))
        } else {
            return Err(crate::errors::hint(
                anyhow::anyhow!(
                    "load `{label}`: neither a docker-archive (manifest.json) nor an oci-archive (index.json)"
                ),
                "make one with `hutch save`, `docker save` or `skopeo copy ... docker-archive:FILE`",
            ));
        };
        loaded.with_context(|| format!("load `{label}`"))
    }

    /// Indexes the archive, first decompressing it into the store's
    /// scratch space when it is gzip-compressed as a whole.
    fn open_archive(
        &self,
        file: std::fs::File,
    ) -> anyhow::Result<(ArchiveIndex, Option<fsutil::TempFile>)> {
        let mut head = BufReader::new(file);
        let gz = head
            .fill_buf()
            .context("read archive")?
            .starts_with(GZIP_MAGIC);
        if !gz {
            let mut file = head.into_inner();
            std::io::Seek::rewind(&mut file).context("rewind archive")?;
            return Ok((ArchiveIndex::open(file)?, None));
        }
        self.ensure_lease()?; // keeps `open`'s cleanup off the scratch file
        let mut tmp = fsutil::TempFile::create(&self.tmp_dir(), 0o600)?;
        digest::copy_hashed(&mut MultiGzDecoder::new(head), &mut tmp.file, MAX_BLOB)
            .context("decompress archive")?;
        let mut file = tmp
            .file
            .try_clone()
            .context("reopen decompressed archive")?;
        std::io::Seek::rewind(&mut file).context("rewind decompressed archive")?;
        Ok((ArchiveIndex::open(file)?, Some(tmp)))
    }

    fn load_docker(&self, index: &ArchiveIndex, source: &str) -> anyhow::Result<Vec<Loaded>> {
        let bytes = index.read_small("manifest.json", MAX_JSON)?;
        let entries: Vec<DockerEntry> =
            serde_json::from_slice(&bytes).context("decode `manifest.json`")?;
        if entries.len() > MAX_ITEMS {
            anyhow::bail!("read `manifest.json`: more than {MAX_ITEMS} images");
        }
        let mut out = Vec::new();
        for entry in &entries {
            let loaded = self
                .load_docker_image(index, entry, source)
                .with_context(|| format!("load image `{}`", entry.config))?;
            out.push(loaded);
        }
        Ok(out)
    }

    fn load_docker_image(
        &self,
        index: &ArchiveIndex,
        entry: &DockerEntry,
        source: &str,
    ) -> anyhow::Result<Loaded> {
        let names = normalize_all(entry.repo_tags.as_deref().unwrap_or_default())?;
        let config = index.read_small(&entry.config, MAX_JSON)?;
        let config_digest = digest::of_bytes(&config);
        let facts = config_facts(&config, entry.layers.len())?;
        self.put_blob(
            &config_digest.to_string(),
            Some(len(&config)),
            &mut &config[..],
        )?;
        let mut layers = Vec::new();
        for (name, diff_id) in entry.layers.iter().zip(&facts.diff_ids) {
            let (mut r, size) = index.reader(name)?;
            let (d, _, path) = self
                .write_blob(None, Some(size), &mut r)
                .with_context(|| format!("store layer `{name}`"))?;
            let compression = verify_diff_id(&path, &d, diff_id)
                .with_context(|| format!("check layer `{name}`"))?;
            layers.push(LayerRecord {
                media_type: compression.oci_layer_media_type().to_owned(),
                digest: d.to_string(),
                size,
            });
        }
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest.to_string(), "size": len(&config)},
            "layers": layers.iter().map(|l| json!({"mediaType": l.media_type, "digest": l.digest, "size": l.size})).collect::<Vec<_>>(),
        }))
        .context("encode manifest")?;
        let manifest_digest = digest::of_bytes(&manifest);
        self.put_blob(
            &manifest_digest.to_string(),
            Some(len(&manifest)),
            &mut &manifest[..],
        )?;
        let rec = ImageRecord {
            id: config_digest.to_string(),
            config_size: len(&config),
            manifest_digest: manifest_digest.to_string(),
            manifest_size: len(&manifest),
            manifest_media_type: OCI_MANIFEST.to_owned(),
            size: layers.iter().fold(0u64, |a, l| a.saturating_add(l.size)),
            layers,
            diff_ids: facts.diff_ids.iter().map(Digest::to_string).collect(),
            names: names.clone(),
            created: facts.created,
            added: crate::state::now(),
            source: source.to_owned(),
        };
        self.add_image(rec)?;
        Ok(Loaded {
            id: config_digest.to_string(),
            names,
        })
    }

    fn load_oci(&self, index: &ArchiveIndex, source: &str) -> anyhow::Result<Vec<Loaded>> {
        let bytes = index.read_small("index.json", MAX_JSON)?;
        let top: Index = serde_json::from_slice(&bytes).context("decode `index.json`")?;
        if top.manifests.len() > MAX_ITEMS {
            anyhow::bail!("read `index.json`: more than {MAX_ITEMS} manifests");
        }
        let mut by_manifest: HashMap<String, Loaded> = HashMap::new();
        let mut order = Vec::new();
        for desc in &top.manifests {
            let desc = resolve_index(index, desc)?;
            let name = ref_name_to_name(desc.1.as_deref())?;
            let loaded = match by_manifest.get_mut(&desc.0.digest) {
                Some(l) => l,
                None => {
                    let l = self
                        .load_oci_image(index, &desc.0, source)
                        .with_context(|| format!("load manifest `{}`", desc.0.digest))?;
                    order.push(desc.0.digest.clone());
                    by_manifest.entry(desc.0.digest.clone()).or_insert(l)
                }
            };
            if let Some(name) = name {
                self.tag(&loaded.id, &name)?;
                loaded.names.push(name);
            }
        }
        Ok(order.iter().filter_map(|d| by_manifest.remove(d)).collect())
    }

    fn load_oci_image(
        &self,
        index: &ArchiveIndex,
        desc: &Descriptor,
        source: &str,
    ) -> anyhow::Result<Loaded> {
        let manifest_bytes = self.copy_json_blob(index, desc)?;
        let manifest: Manifest =
            serde_json::from_slice(&manifest_bytes).context("decode manifest")?;
        if manifest.layers.len() > MAX_ITEMS {
            anyhow::bail!("read manifest: more than {MAX_ITEMS} layers");
        }
        let config = self.copy_json_blob(index, &manifest.config)?;
        let facts = config_facts(&config, manifest.layers.len())?;
        let mut layers = Vec::new();
        for (l, diff_id) in manifest.layers.iter().zip(&facts.diff_ids) {
            let d = Digest::parse(&l.digest)?;
            let (mut r, _) = index.reader(&format!("blobs/sha256/{}", d.hex()))?;
            let path = self.put_blob(&l.digest, Some(l.size), &mut r)?;
            verify_diff_id(&path, &d, diff_id).with_context(|| format!("check layer `{d}`"))?;
            layers.push(LayerRecord {
                media_type: l.media_type.clone(),
                digest: l.digest.clone(),
                size: l.size,
            });
        }
        let rec = ImageRecord {
            id: Digest::parse(&manifest.config.digest)?.to_string(),
            config_size: manifest.config.size,
            manifest_digest: desc.digest.clone(),
            manifest_size: desc.size,
            manifest_media_type: manifest
                .media_type
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| OCI_MANIFEST.to_owned()),
            size: layers.iter().fold(0u64, |a, l| a.saturating_add(l.size)),
            layers,
            diff_ids: facts.diff_ids.iter().map(Digest::to_string).collect(),
            names: Vec::new(),
            created: facts.created,
            added: crate::state::now(),
            source: source.to_owned(),
        };
        let id = rec.id.clone();
        self.add_image(rec)?;
        Ok(Loaded {
            id,
            names: Vec::new(),
        })
    }

    /// Copies a small blob of the archive's layout into the store,
    /// verified, and returns its bytes.
    fn copy_json_blob(&self, index: &ArchiveIndex, desc: &Descriptor) -> anyhow::Result<Vec<u8>> {
        let d = Digest::parse(&desc.digest)?;
        if desc.size > MAX_JSON {
            anyhow::bail!(
                "read blob `{d}`: {} bytes is over the {MAX_JSON}-byte limit",
                desc.size
            );
        }
        let bytes = index.read_small(&format!("blobs/sha256/{}", d.hex()), MAX_JSON)?;
        self.put_blob(&desc.digest, Some(desc.size), &mut &bytes[..])?;
        Ok(bytes)
    }
}

/// Follows nested indexes to the host platform's manifest; returns it with
/// the ref name of the top-level descriptor.
fn resolve_index(
    index: &ArchiveIndex,
    top: &Descriptor,
) -> anyhow::Result<(Descriptor, Option<String>)> {
    let name = top
        .annotations
        .as_ref()
        .and_then(|a| a.get(REF_NAME).cloned());
    let mut desc = top.clone();
    for _ in 0..4 {
        if desc.media_type != OCI_INDEX && desc.media_type != DOCKER_LIST {
            return Ok((desc, name));
        }
        let d = Digest::parse(&desc.digest)?;
        let bytes = index.read_small(&format!("blobs/sha256/{}", d.hex()), MAX_JSON)?;
        if digest::of_bytes(&bytes) != d {
            anyhow::bail!("verify image index `{d}`: its content does not match");
        }
        let nested: Index = serde_json::from_slice(&bytes).context("decode image index")?;
        desc = nested
            .manifests
            .into_iter()
            .find(|m| {
                m.platform
                    .as_ref()
                    .is_some_and(|p| p.os == "linux" && p.architecture == host_arch())
            })
            .with_context(|| format!("find a linux/{} manifest in index `{d}`", host_arch()))?;
    }
    anyhow::bail!("read image index `{}`: indexes nest too deeply", top.digest)
}

/// An OCI ref name that is a whole image name becomes one; a bare tag
/// (`latest`, as `skopeo copy oci-archive:F:latest` writes) names nothing.
fn ref_name_to_name(r: Option<&str>) -> anyhow::Result<Option<String>> {
    match r {
        Some(r) if r.contains(['/', ':']) => Ok(Some(names::normalize(r)?)),
        _ => Ok(None),
    }
}

fn normalize_all(tags: &[String]) -> anyhow::Result<Vec<String>> {
    if tags.len() > MAX_ITEMS {
        anyhow::bail!("read RepoTags: more than {MAX_ITEMS} names");
    }
    tags.iter().map(|t| names::normalize(t)).collect()
}

/// The config's creation time and diff_ids, which must match the layers.
pub(super) fn config_facts(config: &[u8], layers: usize) -> anyhow::Result<ParsedFacts> {
    let facts: ConfigFacts = serde_json::from_slice(config).context("decode image config")?;
    if facts.rootfs.diff_ids.len() != layers {
        anyhow::bail!(
            "check image config: it lists {} diff_ids for {layers} layers",
            facts.rootfs.diff_ids.len()
        );
    }
    let diff_ids = facts
        .rootfs
        .diff_ids
        .iter()
        .map(|d| Digest::parse(d))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(ParsedFacts {
        created: facts.created,
        diff_ids,
    })
}

pub(super) struct ParsedFacts {
    pub(super) created: Option<String>,
    pub(super) diff_ids: Vec<Digest>,
}

/// Checks that the layer blob at `path` (digest `blob`) uncompresses to
/// `diff_id`; returns its compression.
pub(super) fn verify_diff_id(
    path: &Path,
    blob: &Digest,
    diff_id: &Digest,
) -> anyhow::Result<Compression> {
    let file = open_regular(path)?;
    let mut r = BufReader::new(file);
    let compression = Compression::detect("", r.fill_buf().context("read layer")?);
    if compression == Compression::None && blob == diff_id {
        return Ok(compression);
    }
    let mut plain = compression.reader(r)?;
    let (got, _) = digest::copy_hashed(&mut plain, &mut std::io::sink(), u64::MAX)
        .context("decompress layer")?;
    if got != *diff_id {
        anyhow::bail!(
            "verify layer: its content has diff_id `{got}` but the config says `{diff_id}`"
        );
    }
    Ok(compression)
}

/// Opens a regular file without blocking on a fifo.
pub(super) fn open_regular(path: &Path) -> anyhow::Result<std::fs::File> {
    crate::image::blob::open_regular(path, None)
}

fn len(b: &[u8]) -> u64 {
    u64::try_from(b.len()).unwrap_or(u64::MAX)
}
