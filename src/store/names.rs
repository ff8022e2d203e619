//! Image names as the store keeps them, and resolving what the user typed.
//!
//! The grammar is `image/registry/reference.rs`'s, the one source of
//! truth for names (`[::1]:5000/x`, `docker://alpine`, digests); this
//! module only chooses the canonical stored form and the order in which
//! a name is looked up locally, which is the order a pull tries
//! registries in (registries.conf's search registries for a short name).

use std::collections::BTreeMap;

use super::record::ImageRecord;
use crate::errors::hint;
use crate::image::registry::conf::RegistriesConf;
use crate::image::registry::reference::{Parts, DOCKER_HUB};
use crate::image::registry::Reference;

/// The canonical stored form of an image name: `domain/path:tag`, or
/// `domain/path@sha256:HEX` for a name given by digest (a tag beside
/// the digest is dropped, as Podman does).
pub fn normalize(name: &str) -> anyhow::Result<String> {
    Ok(canonical(&Reference::parse(name)?))
}

/// The canonical stored form of `r` (see [`normalize`]).
pub fn canonical(r: &Reference) -> String {
    match &r.digest {
        Some(d) => format!("{}@{d}", r.name()),
        None => r.to_string(),
    }
}

/// A stored name split into repository and tag; a digest name has no tag.
pub fn split(name: &str) -> (&str, Option<&str>) {
    if let Some((repo, _)) = name.split_once('@') {
        return (repo, None);
    }
    let last_slash = name.rfind('/').map_or(0, |i| i.saturating_add(1));
    match name.get(last_slash..).and_then(|t| t.rfind(':')) {
        Some(i) => {
            let at = last_slash.saturating_add(i);
            (
                name.get(..at).unwrap_or(name),
                name.get(at.saturating_add(1)..),
            )
        }
        None => (name, None),
    }
}

/// The canonical names `key` may mean, in the order to look them up: a
/// name with a registry means itself; a short name means itself on each
/// of registries.conf's `unqualified-search-registries` (where a pull
/// would have stored it), then on Docker Hub. Empty when `key` is not a
/// valid name (it may still be an id).
pub fn candidates(key: &str) -> anyhow::Result<Vec<String>> {
    let Ok(parts) = Parts::parse(key) else {
        return Ok(Vec::new());
    };
    // A full id is never a name worth reading registries.conf for.
    let hex = key.strip_prefix("sha256:").unwrap_or(key);
    if hex.len() == 64 && super::digest::is_lower_hex(hex) {
        return Ok(Vec::new());
    }
    if let Some(registry) = &parts.registry {
        return Ok(parts
            .on(registry)
            .map(|r| canonical(&r))
            .into_iter()
            .collect());
    }
    let conf = RegistriesConf::load()?;
    let mut out: Vec<String> = Vec::new();
    let registries = conf
        .unqualified_search_registries
        .iter()
        .map(String::as_str)
        .chain([DOCKER_HUB]);
    for registry in registries {
        if let Ok(name) = parts.on(registry).map(|r| canonical(&r)) {
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    Ok(out)
}

/// An image `resolve` found, and the name it was found by (None for an
/// id, or a digest that matched an image stored under another name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub id: String,
    pub name: Option<String>,
}

/// Finds the image `key` means, by Docker's and Podman's rules: a full
/// id; then each of `candidates` (see [`candidates`]) as a stored name,
/// or, for `REPO@sha256:...`, an image of that repository whose manifest
/// has that digest; then a unique id prefix of at least 3 digits.
/// `images` carry their current names.
pub fn resolve(
    key: &str,
    candidates: &[String],
    names: &BTreeMap<String, String>,
    images: &[ImageRecord],
) -> anyhow::Result<Found> {
    let known = |id: &String| images.iter().any(|r| r.id == *id);
    let hex = key.strip_prefix("sha256:").unwrap_or(key);
    let is_hex = !hex.is_empty() && super::digest::is_lower_hex(hex);
    if is_hex && hex.len() == 64 {
        let full = format!("sha256:{hex}");
        if known(&full) {
            return Ok(Found {
                id: full,
                name: None,
            });
        }
    }
    for name in candidates {
        if let Some(id) = names.get(name).filter(|id| known(id)) {
            return Ok(Found {
                id: id.clone(),
                name: Some(name.clone()),
            });
        }
        if let Some((repo, digest)) = name.split_once('@') {
            let same_repo = |r: &ImageRecord| r.names.iter().any(|n| split(n).0 == repo);
            if let Some(rec) = images
                .iter()
                .find(|r| r.manifest_digest == digest && same_repo(r))
            {
                return Ok(Found {
                    id: rec.id.clone(),
                    name: None,
                });
            }
        }
    }
    if is_hex && hex.len() >= 3 {
        let matches: Vec<&String> = images
            .iter()
            .map(|r| &r.id)
            .filter(|id| {
                id.strip_prefix("sha256:")
                    .is_some_and(|h| h.starts_with(hex))
            })
            .collect();
        match matches.as_slice() {
            [one] => {
                return Ok(Found {
                    id: (*one).clone(),
                    name: None,
                })
            }
            [] => {}
            _ => anyhow::bail!(
                "find image `{key}`: the id prefix matches {} images; give more digits",
                matches.len()
            ),
        }
    }
    Err(hint(
        anyhow::anyhow!("find image `{key}`: no such image in the local store"),
        "list images with `hutch images`, pull one with `hutch pull NAME`, \
         or add one with `hutch load -i FILE`",
    ))
}
