//! Image names as Docker spells them, and resolving what the user typed.
//!
//! A small, private normaliser (`alpine` → `docker.io/library/alpine:latest`,
//! `user/app` → `docker.io/user/app:latest`, `host:5000/x` keeps its host);
//! the full reference grammar lives in `image/registry/reference.rs` and
//! replaces this one when both land.

use std::collections::BTreeMap;

use crate::errors::hint;

const DOCKER_IO: &str = "docker.io";
const MAX_NAME: usize = 255;
const MAX_TAG: usize = 128;

/// The canonical `domain/path:tag` form of a Docker image name.
pub fn normalize(name: &str) -> anyhow::Result<String> {
    let bad = |why: &str| anyhow::anyhow!("check image name `{name}`: {why}");
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(bad("it must have 1 to 255 characters"));
    }
    if name.contains('@') {
        return Err(bad("digests (`@sha256:...`) are not accepted here"));
    }
    let (domain, rest) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => (first, rest),
        _ => (DOCKER_IO, name),
    };
    let domain = if domain == "index.docker.io" {
        DOCKER_IO
    } else {
        domain
    };
    if !valid_domain(domain) {
        return Err(bad("the registry host is not valid"));
    }
    let (path, tag) = match rest.rsplit_once(':') {
        Some((path, tag)) if !tag.contains('/') => (path, tag),
        _ => (rest, "latest"),
    };
    if !valid_tag(tag) {
        return Err(bad("a tag has up to 128 letters, digits, `_`, `.` or `-`"));
    }
    if !path.split('/').all(valid_component) {
        return Err(bad(
            "repository names are lowercase letters and digits, separated by `.`, `_`, `__` or `-`",
        ));
    }
    let path = if domain == DOCKER_IO && !path.contains('/') {
        format!("library/{path}")
    } else {
        path.to_owned()
    };
    Ok(format!("{domain}/{path}:{tag}"))
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    let host_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

fn valid_tag(t: &str) -> bool {
    let mut bytes = t.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    first_ok
        && t.len() <= MAX_TAG
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `[a-z0-9]+` runs joined by `.`, `_`, `__` or any number of `-`.
fn valid_component(c: &str) -> bool {
    let alnum = |ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit();
    let valid_sep = |s: &str| matches!(s, "." | "_" | "__") || s.chars().all(|ch| ch == '-');
    let mut sep = String::new();
    let mut seen_alnum = false;
    for ch in c.chars() {
        if !alnum(ch) {
            sep.push(ch);
            continue;
        }
        if !sep.is_empty() {
            if !seen_alnum || !valid_sep(&sep) {
                return false;
            }
            sep.clear();
        }
        seen_alnum = true;
    }
    seen_alnum && sep.is_empty()
}

/// Finds the image id (`sha256:HEX`) that `key` means, by Docker's rules:
/// a full id, then a name, then a unique id prefix of at least 3 digits.
pub fn resolve(
    key: &str,
    names: &BTreeMap<String, String>,
    ids: &[String],
) -> anyhow::Result<String> {
    let hex = key.strip_prefix("sha256:").unwrap_or(key);
    let is_hex = !hex.is_empty() && super::digest::is_lower_hex(hex);
    if is_hex && hex.len() == 64 {
        let full = format!("sha256:{hex}");
        if ids.contains(&full) {
            return Ok(full);
        }
    }
    if let Ok(name) = normalize(key) {
        if let Some(id) = names.get(&name).filter(|id| ids.contains(id)) {
            return Ok(id.clone());
        }
    }
    if is_hex && hex.len() >= 3 {
        let matches: Vec<&String> = ids
            .iter()
            .filter(|id| {
                id.strip_prefix("sha256:")
                    .is_some_and(|h| h.starts_with(hex))
            })
            .collect();
        match matches.as_slice() {
            [one] => return Ok((*one).clone()),
            [] => {}
            _ => anyhow::bail!(
                "find image `{key}`: the id prefix matches {} images; give more digits",
                matches.len()
            ),
        }
    }
    Err(hint(
        anyhow::anyhow!("find image `{key}`: no such image in the local store"),
        "list images with `hutch images`, or add one with `hutch load -i FILE`",
    ))
}
