//! The `layout` fuzz target: an OCI image layout assembled from the
//! input, then opened as `hutch run oci:DIR[:TAG]` opens one.
//!
//! The input is sections separated by a line `--`: the tag (empty for
//! none), `index.json`, a manifest, a config and a layer. So that mutated
//! documents still point at each other, `@M`, `@C`, `@L` in the text
//! become the digests of the manifest, config and layer blobs and `#M`,
//! `#C`, `#L` their sizes. Each blob is stored under its real digest.

use std::fs;
use std::path::Path;

use crate::digest;

const SEPARATOR: &[u8] = b"\n--\n";

/// Builds the layout below the empty directory `dir` and opens it.
pub fn layout(input: &[u8], dir: &Path) {
    let mut sections = split(input).into_iter();
    let tag = sections.next().unwrap_or_default();
    let index = sections.next().unwrap_or_default();
    let manifest_raw = sections.next().unwrap_or_default();
    let config = sections.next().unwrap_or_default().to_vec();
    let layer = sections.next().unwrap_or_default().to_vec();
    let config_subs = [("C", &config[..]), ("L", &layer[..])];
    let manifest = substitute(manifest_raw, &config_subs);
    let index = substitute(
        index,
        &[("M", &manifest[..]), ("C", &config[..]), ("L", &layer[..])],
    );
    if write_layout(dir, &index, &[&manifest, &config, &layer]).is_err() {
        return;
    }
    let tag = std::str::from_utf8(tag).ok().filter(|t| !t.is_empty());
    let _ = crate::image::layout::open_layout(dir, tag);
}

fn split(input: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = input;
    while let Some(at) = rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
        let (head, tail) = rest.split_at(at);
        out.push(head);
        rest = tail.get(SEPARATOR.len()..).unwrap_or_default();
    }
    out.push(rest);
    out
}

/// Replaces `@X` with the digest and `#X` with the size of each blob.
fn substitute(text: &[u8], blobs: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = text.to_vec();
    for (name, bytes) in blobs {
        let digest = digest::of_bytes(bytes).to_string();
        out = replace(&out, format!("@{name}").as_bytes(), digest.as_bytes());
        out = replace(
            &out,
            format!("#{name}").as_bytes(),
            bytes.len().to_string().as_bytes(),
        );
    }
    out
}

fn replace(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay.get(i..i + from.len()) == Some(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.extend_from_slice(hay.get(i..=i).unwrap_or_default());
            i += 1;
        }
    }
    out
}

fn write_layout(dir: &Path, index: &[u8], blobs: &[&[u8]]) -> std::io::Result<()> {
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    fs::write(dir.join("index.json"), index)?;
    let blob_dir = dir.join("blobs/sha256");
    fs::create_dir_all(&blob_dir)?;
    for b in blobs {
        let d = digest::of_bytes(b);
        fs::write(blob_dir.join(d.hex()), b)?;
    }
    Ok(())
}
