//! Building OCI image layouts by hand in tests: layer tars (including
//! hostile ones the `tar` crate's safe API refuses to write), blobs,
//! manifests and indexes. Push the result with
//! `skopeo copy oci:DIR:latest docker://...`; skopeo does not look inside
//! layers.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// A short random-enough suffix for host paths a test must not create.
pub fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{}-{nanos}", std::process::id())
}

/// One entry of a hand-built layer tar. Names are written verbatim
/// (`../x` and absolute names included) into the header.
pub enum Entry<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
    /// A hard link to a path named as it is in the tar.
    Hardlink(&'a str, &'a str),
}

/// An uncompressed tar of `entries` (root-owned, mode 0755/0644). The
/// header name is set raw so tests can build what a hostile image holds.
pub fn tar(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_old();
        let (name, data): (&str, &[u8]) = match e {
            Entry::Dir(n) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                (n, b"")
            }
            Entry::File(n, d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                (n, d)
            }
            Entry::Symlink(n, target) | Entry::Hardlink(n, target) => {
                let (kind, mode) = match e {
                    Entry::Symlink(..) => (tar::EntryType::Symlink, 0o777),
                    _ => (tar::EntryType::Link, 0o644),
                };
                h.set_entry_type(kind);
                h.set_mode(mode);
                let t = target.as_bytes();
                assert!(
                    t.len() < 100,
                    "link target too long for a v7 header: {target}"
                );
                h.as_old_mut().linkname[..t.len()].copy_from_slice(t);
                (n, b"")
            }
        };
        let raw = name.as_bytes();
        assert!(raw.len() < 100, "tar name too long for a v7 header: {name}");
        h.as_old_mut().name[..raw.len()].copy_from_slice(raw);
        h.set_size(data.len() as u64);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_704_067_200);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[allow(dead_code)] // not every test binary reads layers back
pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// An OCI image layout being written at `dir`.
pub struct Layout {
    pub dir: PathBuf,
}

/// An image (manifest) pieces: its layer descriptors, diff ids and config.
#[derive(Clone)]
pub struct Image {
    pub layers: Vec<Value>,
    pub config: Value,
}

impl Layout {
    /// Creates an empty layout at `dir` (world-readable).
    pub fn new(dir: &Path) -> Layout {
        fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Layout {
            dir: dir.to_path_buf(),
        }
    }

    /// `oci:DIR:latest` for skopeo.
    pub fn oci_ref(&self) -> String {
        format!("oci:{}:latest", self.dir.display())
    }

    /// Stores `bytes` as a blob; returns its descriptor.
    pub fn blob(&self, media_type: &str, bytes: &[u8]) -> Value {
        let digest = sha256(bytes);
        let hex = digest.trim_start_matches("sha256:");
        fs::write(self.dir.join("blobs/sha256").join(hex), bytes).unwrap();
        json!({"mediaType": media_type, "digest": digest, "size": bytes.len()})
    }

    /// Copies the layers and config of `tag` in the OCI layout `src` (the
    /// test images) into this layout, as a base to add layers to.
    pub fn base(&self, src: &Path, tag: &str) -> Image {
        let read = |digest: &str| {
            let hex = digest.trim_start_matches("sha256:");
            fs::read(src.join("blobs/sha256").join(hex)).unwrap()
        };
        let index: Value =
            serde_json::from_slice(&fs::read(src.join("index.json")).unwrap()).unwrap();
        let desc = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
            .unwrap_or_else(|| panic!("no tag {tag} in {}", src.display()));
        let manifest: Value =
            serde_json::from_slice(&read(desc["digest"].as_str().unwrap())).unwrap();
        let layers = manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                let bytes = read(l["digest"].as_str().unwrap());
                self.blob(l["mediaType"].as_str().unwrap(), &bytes)
            })
            .collect();
        let config =
            serde_json::from_slice(&read(manifest["config"]["digest"].as_str().unwrap())).unwrap();
        Image { layers, config }
    }

    /// Adds a gzip layer made of `tar_bytes` to `image` (descriptor and diff id).
    pub fn add_layer(&self, image: &mut Image, tar_bytes: &[u8]) {
        image
            .layers
            .push(self.blob(OCI_LAYER_GZIP, &gzip(tar_bytes)));
        image.config["rootfs"]["diff_ids"]
            .as_array_mut()
            .unwrap()
            .push(json!(sha256(tar_bytes)));
    }

    /// Stores the config and manifest of `image`; returns the manifest's
    /// descriptor (without platform).
    pub fn manifest(&self, image: &Image) -> Value {
        let config = self.blob(OCI_CONFIG, image.config.to_string().as_bytes());
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config,
            "layers": image.layers,
        });
        self.blob(OCI_MANIFEST, manifest.to_string().as_bytes())
    }

    /// Stores an image index of `manifests`; returns its descriptor.
    pub fn index(&self, manifests: &[Value]) -> Value {
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
        self.blob(OCI_INDEX, index.to_string().as_bytes())
    }

    /// Writes index.json naming `desc` (a manifest or an index) `latest`.
    pub fn tag_latest(&self, desc: &Value) {
        let mut desc = desc.clone();
        desc["annotations"] = json!({"org.opencontainers.image.ref.name": "latest"});
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [desc]});
        fs::write(self.dir.join("index.json"), index.to_string()).unwrap();
    }
}
