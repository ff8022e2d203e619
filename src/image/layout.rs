//! Reading an OCI image layout: index.json → manifest → config and layers.
//!
//! Owns choosing the manifest (by tag, by being the only one, or by host
//! platform inside an image index), decoding OCI and Docker schema2
//! manifests, and checking every JSON blob against its descriptor before
//! use. Layer blobs are checked for existence and size here and for their
//! digest while unpacking.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use super::archive::{self, ScratchDir};
use super::blob::{self, Digest, MAX_JSON};
use super::{ImageConfig, ImageRef};

/// One layer blob on disk.
#[derive(Debug, Clone)]
pub struct Layer {
    pub path: PathBuf,
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

/// An opened image, ready to unpack.
#[derive(Debug, Default)]
pub struct Image {
    /// Hex digest of the config blob (the image id).
    pub id: String,
    pub config: ImageConfig,
    /// Bottom layer first.
    pub layers: Vec<Layer>,
    /// The config's `rootfs.diff_ids`, one per layer, bottom first: the
    /// keys of the store's shared unpacked layers.
    pub diff_ids: Vec<String>,
    /// For `oci-archive:`, the extracted layout; removed on drop.
    pub extracted: Option<ScratchDir>,
}

pub(crate) const REF_NAME: &str = "org.opencontainers.image.ref.name";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// How deep image indexes may nest.
const MAX_NESTING: usize = 4;

#[derive(Debug, Deserialize)]
struct LayoutFile {
    #[serde(rename = "imageLayoutVersion")]
    version: String,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub(crate) media_type: String,
    pub(crate) digest: String,
    pub(crate) size: u64,
    #[serde(default)]
    pub(crate) annotations: Option<HashMap<String, String>>,
    #[serde(default)]
    pub(crate) platform: Option<Platform>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Platform {
    pub(crate) architecture: String,
    pub(crate) os: String,
}

#[derive(Debug, Deserialize)]
struct Index {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    config: Descriptor,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
}

impl Descriptor {
    fn ref_name(&self) -> Option<&str> {
        self.annotations.as_ref()?.get(REF_NAME).map(String::as_str)
    }

    fn is_index(&self) -> bool {
        self.media_type == OCI_INDEX || self.media_type == DOCKER_LIST
    }

    fn is_host_platform(&self) -> bool {
        self.platform
            .as_ref()
            .is_some_and(|p| p.os == "linux" && p.architecture == host_arch())
    }
}

/// Opens an image; an archive is extracted below `scratch` first.
pub fn open(r: &ImageRef, scratch: &Path) -> anyhow::Result<Image> {
    let opened = match r {
        ImageRef::Oci { path, tag } => open_layout(path, tag.as_deref()),
        ImageRef::OciArchive { path, tag } => archive::extract(path, scratch).and_then(|dir| {
            let mut image = open_layout(dir.path(), tag.as_deref())?;
            image.extracted = Some(dir);
            Ok(image)
        }),
    };
    opened.with_context(|| format!("open image `{r}`"))
}

/// Opens the image layout directory `layout`.
pub(crate) fn open_layout(layout: &Path, tag: Option<&str>) -> anyhow::Result<Image> {
    check_layout_version(layout)?;
    let index_path = layout.join("index.json");
    let index: Index = decode(&blob::read_capped(&index_path, MAX_JSON)?, "index.json")?;
    check_schema(index.schema_version, "index.json")?;
    let chosen = select(index.manifests.as_deref().unwrap_or_default(), tag)?;
    let desc = resolve_index(layout, chosen)?;
    read_image(layout, &desc)
}

fn check_layout_version(layout: &Path) -> anyhow::Result<()> {
    let path = layout.join("oci-layout");
    let bytes = blob::read_capped(&path, MAX_JSON)
        .context("read `oci-layout` (is this an OCI image layout directory?)")?;
    let file: LayoutFile = decode(&bytes, "oci-layout")?;
    if file.version.split('.').next() != Some("1") {
        anyhow::bail!(
            "check `oci-layout`: unsupported imageLayoutVersion `{}`",
            file.version
        );
    }
    Ok(())
}

fn check_schema(version: u32, what: &str) -> anyhow::Result<()> {
    if version != 2 {
        anyhow::bail!("check `{what}`: unsupported schemaVersion `{version}`");
    }
    Ok(())
}

fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: &str) -> anyhow::Result<T> {
    serde_json::from_slice(bytes).with_context(|| format!("decode `{what}`"))
}

/// Picks the descriptor for `tag`, or the only one when there is no tag.
fn select<'d>(manifests: &'d [Descriptor], tag: Option<&str>) -> anyhow::Result<&'d Descriptor> {
    let candidates: Vec<&Descriptor> = match tag {
        Some(tag) => manifests
            .iter()
            .filter(|d| d.ref_name() == Some(tag))
            .collect(),
        None => manifests.iter().collect(),
    };
    match (candidates.as_slice(), tag) {
        ([one], _) => return Ok(one),
        ([], Some(tag)) => anyhow::bail!("find tag `{tag}`: the layout has {}", tags(manifests)),
        ([], None) => anyhow::bail!("find a manifest: `index.json` lists none"),
        _ => {}
    }
    if candidates.iter().all(|d| d.platform.is_some()) {
        if let Some(d) = candidates.iter().find(|d| d.is_host_platform()) {
            return Ok(d);
        }
        anyhow::bail!(
            "find a manifest for linux/{}: the layout has {}",
            host_arch(),
            platforms(&candidates)
        );
    }
    match tag {
        Some(tag) => anyhow::bail!("find tag `{tag}`: {} manifests carry it", candidates.len()),
        None => anyhow::bail!(
            "choose a manifest: the layout has several, name one with `:TAG` ({})",
            tags(manifests)
        ),
    }
}

/// Follows nested image indexes to the manifest for the host platform.
fn resolve_index(layout: &Path, chosen: &Descriptor) -> anyhow::Result<Descriptor> {
    let mut desc = chosen.clone();
    for _ in 0..MAX_NESTING {
        if !desc.is_index() {
            return Ok(desc);
        }
        let digest = Digest::parse(&desc.digest)?;
        let bytes = blob::read_json_blob(layout, &digest, desc.size)
            .with_context(|| format!("read image index `{digest}`"))?;
        let index: Index = decode(&bytes, &desc.digest)?;
        check_schema(index.schema_version, &desc.digest)?;
        let manifests = index.manifests.unwrap_or_default();
        let found = manifests.iter().find(|d| d.is_host_platform());
        let Some(found) = found else {
            let all: Vec<&Descriptor> = manifests.iter().collect();
            anyhow::bail!(
                "find a manifest for linux/{} in index `{digest}`: it has {}",
                host_arch(),
                platforms(&all)
            );
        };
        desc = found.clone();
    }
    anyhow::bail!(
        "read image index `{}`: indexes nest too deeply",
        chosen.digest
    )
}

#[derive(Debug, Default, Deserialize)]
struct ConfigRootfs {
    #[serde(default)]
    rootfs: RootfsSection,
}

#[derive(Debug, Default, Deserialize)]
struct RootfsSection {
    #[serde(default)]
    diff_ids: Vec<String>,
}

/// The config's diff_ids, checked: one well-formed digest per layer (each
/// layer's content is verified against its own when it is unpacked).
fn diff_ids(config: &[u8], layers: usize) -> anyhow::Result<Vec<String>> {
    let parsed: ConfigRootfs = decode(config, "config")?;
    let ids = parsed.rootfs.diff_ids;
    if ids.len() != layers {
        anyhow::bail!(
            "check `rootfs.diff_ids`: the config lists {} for {layers} layers",
            ids.len()
        );
    }
    for d in &ids {
        Digest::parse(d)?;
    }
    Ok(ids)
}

/// Reads the manifest, the config and the layer list.
fn read_image(layout: &Path, desc: &Descriptor) -> anyhow::Result<Image> {
    let digest = Digest::parse(&desc.digest)?;
    if !matches!(
        desc.media_type.as_str(),
        OCI_MANIFEST | DOCKER_MANIFEST | ""
    ) {
        anyhow::bail!(
            "read manifest `{digest}`: unsupported media type `{}`",
            desc.media_type
        );
    }
    let bytes = blob::read_json_blob(layout, &digest, desc.size)
        .with_context(|| format!("read manifest `{digest}`"))?;
    let manifest: Manifest = decode(&bytes, &desc.digest)?;
    check_schema(manifest.schema_version, &desc.digest)?;
    let config_desc = &manifest.config;
    if !matches!(config_desc.media_type.as_str(), OCI_CONFIG | DOCKER_CONFIG) {
        anyhow::bail!(
            "read manifest `{digest}`: config media type `{}` is not a container image",
            config_desc.media_type
        );
    }
    let config_digest = Digest::parse(&config_desc.digest)?;
    let config_bytes = blob::read_json_blob(layout, &config_digest, config_desc.size)
        .with_context(|| format!("read config `{config_digest}`"))?;
    let config = ImageConfig::from_json(&config_bytes)
        .with_context(|| format!("read config `{config_digest}`"))?;
    let layers = manifest
        .layers
        .unwrap_or_default()
        .iter()
        .map(|l| layer(layout, l))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let diff_ids = diff_ids(&config_bytes, layers.len())
        .with_context(|| format!("read config `{config_digest}`"))?;
    Ok(Image {
        id: config_digest.hex().to_owned(),
        config,
        layers,
        diff_ids,
        extracted: None,
    })
}

/// Checks a layer descriptor and that its blob exists with the right size.
fn layer(layout: &Path, desc: &Descriptor) -> anyhow::Result<Layer> {
    let digest = Digest::parse(&desc.digest)?;
    let media_type = desc.media_type.as_str();
    let known = media_type.starts_with("application/vnd.oci.image.layer.")
        || media_type.starts_with("application/vnd.docker.image.rootfs.");
    if !known {
        anyhow::bail!("check layer `{digest}`: unsupported media type `{media_type}`");
    }
    let path = digest.path_in(layout);
    blob::open_regular(&path, Some(desc.size))
        .with_context(|| format!("check layer `{digest}`"))?;
    Ok(Layer {
        path,
        media_type: media_type.to_owned(),
        digest: digest.to_string(),
        size: desc.size,
    })
}

fn tags(manifests: &[Descriptor]) -> String {
    let names: Vec<String> = manifests
        .iter()
        .filter_map(|d| d.ref_name())
        .map(|t| format!("`{t}`"))
        .collect();
    if names.is_empty() {
        "no tags".to_owned()
    } else {
        format!("tags {}", names.join(", "))
    }
}

fn platforms(descs: &[&Descriptor]) -> String {
    let names: Vec<String> = descs
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .map(|p| format!("{}/{}", p.os, p.architecture))
        .collect();
    if names.is_empty() {
        "no platforms".to_owned()
    } else {
        names.join(", ")
    }
}

/// The host architecture in OCI (GOARCH) spelling.
pub(crate) fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "loongarch64" => "loong64",
        "mips64" if cfg!(target_endian = "little") => "mips64le",
        "mips" if cfg!(target_endian = "little") => "mipsle",
        other => other,
    }
}
