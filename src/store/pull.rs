//! Recording an image fetched from a registry (`hutch pull`): the
//! manifest and config become blobs, the layers are already stored, and
//! the record is checked the way `load` checks one (diff_ids per layer).

use super::digest::Digest;
use super::load::config_facts;
use super::record::{ImageRecord, LayerRecord};
use super::{names, Store};

/// What a registry gave for one image.
pub struct Pulled<'a> {
    /// The full name it is stored under (`docker.io/library/alpine:3.20`).
    pub name: &'a str,
    pub manifest_digest: &'a str,
    pub manifest_media_type: &'a str,
    pub manifest_bytes: &'a [u8],
    pub config_digest: &'a str,
    pub config_bytes: &'a [u8],
    /// (media type, digest, size), bottom first, already in the store.
    pub layers: Vec<(String, String, u64)>,
    /// Where it came from, for `image inspect`.
    pub source: &'a str,
}

impl Store {
    /// Stores the manifest and config and adds the image under its name.
    pub fn add_pulled(&self, p: &Pulled<'_>) -> anyhow::Result<ImageRecord> {
        let facts = config_facts(p.config_bytes, p.layers.len())?;
        let len = |b: &[u8]| u64::try_from(b.len()).unwrap_or(u64::MAX);
        self.put_blob(
            p.config_digest,
            Some(len(p.config_bytes)),
            &mut &p.config_bytes[..],
        )?;
        self.put_blob(
            p.manifest_digest,
            Some(len(p.manifest_bytes)),
            &mut &p.manifest_bytes[..],
        )?;
        let layers: Vec<LayerRecord> = p
            .layers
            .iter()
            .map(|(media_type, digest, size)| LayerRecord {
                media_type: media_type.clone(),
                digest: digest.clone(),
                size: *size,
            })
            .collect();
        let rec = ImageRecord {
            id: Digest::parse(p.config_digest)?.to_string(),
            config_size: len(p.config_bytes),
            manifest_digest: Digest::parse(p.manifest_digest)?.to_string(),
            manifest_size: len(p.manifest_bytes),
            manifest_media_type: p.manifest_media_type.to_owned(),
            size: layers.iter().fold(0u64, |a, l| a.saturating_add(l.size)),
            layers,
            diff_ids: facts.diff_ids.iter().map(Digest::to_string).collect(),
            names: vec![names::normalize(p.name)?],
            created: facts.created,
            added: crate::state::now(),
            source: p.source.to_owned(),
        };
        self.add_image(rec.clone())?;
        Ok(rec)
    }
}
