//! Replays the committed fuzz corpus (`fuzz/corpus/TARGET/`) through the
//! fuzz entry points, so every seed and every crash turned into a seed
//! stays a regression test of plain `cargo test`, without libFuzzer.

use std::path::Path;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read `{}`: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seeds in `{}`", dir.display());
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

fn text(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes).ok()
}

#[test]
fn corpus_reference() {
    corpus("reference")
        .iter()
        .filter_map(|b| text(b))
        .for_each(super::reference);
}

#[test]
fn corpus_subid() {
    corpus("subid")
        .iter()
        .filter_map(|b| text(b))
        .for_each(super::subid);
}

#[test]
fn corpus_registries_conf() {
    corpus("registries_conf")
        .iter()
        .filter_map(|b| text(b))
        .for_each(super::registries_conf);
}

#[test]
fn corpus_port() {
    corpus("port")
        .iter()
        .filter_map(|b| text(b))
        .for_each(super::port);
}

#[test]
fn corpus_manifest() {
    for seed in corpus("manifest") {
        if let Some((kind, body)) = seed.split_first() {
            super::manifest(*kind, body);
        }
    }
}

#[test]
fn corpus_image_config() {
    corpus("image_config")
        .iter()
        .for_each(|b| super::image_config(b));
}

#[test]
fn corpus_layout() {
    for seed in corpus("layout") {
        let dir = tempfile::tempdir().unwrap();
        super::layout(&seed, dir.path());
    }
}

#[test]
fn corpus_unpack() {
    corpus("unpack").iter().for_each(|b| super::unpack(b));
}

/// Control: the canaries do catch a write outside the root.
#[test]
#[should_panic(expected = "a file outside the root changed")]
fn unpack_harness_catches_a_write_outside() {
    super::unpack::confined(b"#\n", |_, root, _| {
        std::fs::write(root.join("../../outside/secret"), "pwned").unwrap();
    });
}

/// Control: the script writer makes tar streams the unpacker applies.
#[test]
fn unpack_scripts_are_real_tar_streams() {
    let script = b"#g\nd etc\nf etc/passwd root\nl etc/ln passwd\nh etc/hard etc/passwd\n";
    let mut seen = Vec::new();
    super::unpack::confined(script, |stream, root, _| {
        let opts = crate::image::UnpackOptions::default();
        crate::image::unpack::unpack_tar(stream, root, &opts).unwrap();
        for name in ["etc/passwd", "etc/ln", "etc/hard"] {
            seen.push(std::fs::read_to_string(root.join(name)).unwrap());
        }
    });
    assert_eq!(seen, ["root", "root", "root"]);
}
