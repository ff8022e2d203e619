//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz): each takes
//! untrusted bytes, runs one parser or the unpacker, and panics when a
//! property that must hold for every input is broken (a round trip that
//! does not, an unpacked file outside its root). An `Err` is a fine
//! answer to hostile input; a panic, a hang or a write outside is a bug.
//!
//! Not part of hutch's interface: the binary never calls these. They run
//! in the fuzzer's process.

use std::path::Path;

use crate::image::registry::conf::RegistriesConf;
use crate::image::registry::manifest::Document;
use crate::image::registry::Reference;
use crate::image::{ImageConfig, ImageRef};

/// Registry references (`[HOST/]PATH[:TAG][@DIGEST]`) and transport
/// references (`oci:PATH[:TAG]`): a parsed reference prints as a string
/// that parses back to itself.
pub fn reference(input: &str) {
    if let Ok(r) = Reference::parse(input) {
        let again = Reference::parse(&r.to_string());
        assert_eq!(again.ok().as_ref(), Some(&r), "round trip of `{input}`");
        let _ = r.name();
        let _ = r.tag_or_digest();
    }
    let _ = Reference::is_short_name(input);
    if let Ok(r) = ImageRef::parse(input) {
        let _ = (r.tag(), r.path(), r.to_string());
    }
    let _ = crate::image::reference::is_valid_tag(input);
}

/// /etc/subuid content: every range returned is non-empty and fits in
/// a u32, and a user's ranges are a subset of all ranges.
pub fn subid(input: &str) {
    use crate::userns::subid;
    let all = subid::all_ranges(input);
    for r in &all {
        assert!(r.count > 0, "empty range from {input:?}");
        assert!(r.start.checked_add(r.count).is_some(), "overflow {r:?}");
        let _ = r.overlaps(r);
    }
    for (user, uid) in [("alice", 1000), ("0", 0), ("root", 0)] {
        let mine = subid::parse(input, user, uid);
        assert!(mine.iter().all(|r| all.contains(r)), "foreign range");
    }
}

/// registries.conf text, then the lookups a pull does with it.
pub fn registries_conf(input: &str) {
    let Ok(conf) = RegistriesConf::parse(input, Path::new("fuzz.conf")) else {
        return;
    };
    for name in ["busybox", "example.com/a/b:1", "localhost:5000/x/y"] {
        let Ok(candidates) = conf.candidates(name) else {
            continue;
        };
        for r in candidates.iter().take(8) {
            let _ = conf.endpoints(r);
        }
    }
}

/// A manifest or index as a registry serves it; `kind` picks the
/// `Content-Type` header it came with.
pub fn manifest(kind: u8, bytes: &[u8]) {
    use crate::image::registry::manifest as m;
    let types = [
        m::OCI_INDEX,
        m::OCI_MANIFEST,
        m::DOCKER_LIST,
        m::DOCKER_MANIFEST,
        "",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "text/plain",
    ];
    let content_type = types[usize::from(kind) % types.len()];
    if let Ok(doc) = Document::decode(bytes, content_type, "fuzz") {
        // Every digest that decoding accepted must be safe as a path.
        let digests: Vec<String> = match &doc {
            Document::Index(entries) => entries
                .iter()
                .map(|e| e.descriptor.digest.clone())
                .collect(),
            Document::Manifest(man) => std::iter::once(&man.config)
                .chain(&man.layers)
                .map(|d| d.digest.clone())
                .collect(),
        };
        for d in digests {
            assert!(
                crate::digest::Digest::parse(&d).is_ok(),
                "accepted digest `{d}`"
            );
        }
    }
}

/// An image config blob.
pub fn image_config(bytes: &[u8]) {
    let _ = ImageConfig::from_json(bytes);
}

/// One `-p` value: a parsed mapping prints and never spans past port
/// 65535.
pub fn port(input: &str) {
    let Ok(m) = crate::net::ports::parse(input) else {
        return;
    };
    assert!(m.count > 0, "empty range from `{input}`");
    assert!(
        u32::from(m.container_port) + u32::from(m.count) - 1 <= 65535,
        "container range past 65535 from `{input}`"
    );
    assert!(
        m.host_port == 0 || u32::from(m.host_port) + u32::from(m.count) - 1 <= 65535,
        "host range past 65535 from `{input}`"
    );
    let _ = m.to_string();
    let _ = crate::net::ports::check_overlap(&[m, m]);
}

pub use layout::layout;
pub use unpack::unpack;

mod layout;
mod unpack;

#[cfg(test)]
mod replay_tests;
