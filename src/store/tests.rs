//! Unit tests of the store: blobs, records, names, rmi, prune, load, save.

use std::path::Path;

use serde_json::json;

use super::digest::{self, Digest};
use super::record::{ImageRecord, LayerRecord};
use super::{names, Format, Store};

pub(super) fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_at(&dir.path().join("storage")).unwrap();
    (dir, store)
}

pub(super) fn put(store: &Store, bytes: &[u8]) -> String {
    let d = digest::of_bytes(bytes).to_string();
    store
        .put_blob(&d, Some(bytes.len() as u64), &mut &bytes[..])
        .unwrap();
    d
}

/// Stores blobs for an image with uncompressed `layers` and returns its
/// record (not yet added). `salt` makes the config (and id) unique.
pub(super) fn make_image(
    store: &Store,
    salt: &str,
    layers: &[&[u8]],
    names: &[&str],
) -> ImageRecord {
    let layer_digests: Vec<String> = layers.iter().map(|l| put(store, l)).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["sh"], "Env": [format!("SALT={salt}")]},
        "rootfs": {"type": "layers", "diff_ids": layer_digests},
    }))
    .unwrap();
    let id = put(store, &config);
    let manifest =
        serde_json::to_vec(&json!({"schemaVersion": 2, "config": {"digest": id}})).unwrap();
    let manifest_digest = put(store, &manifest);
    ImageRecord {
        id,
        config_size: config.len() as u64,
        manifest_digest,
        manifest_size: manifest.len() as u64,
        manifest_media_type: super::load::OCI_MANIFEST.to_owned(),
        layers: layers
            .iter()
            .zip(&layer_digests)
            .map(|(l, d)| LayerRecord {
                media_type: "application/vnd.oci.image.layer.v1.tar".to_owned(),
                digest: d.clone(),
                size: l.len() as u64,
            })
            .collect(),
        diff_ids: layer_digests,
        names: names.iter().map(|n| names::normalize(n).unwrap()).collect(),
        created: Some("2024-01-01T00:00:00Z".to_owned()),
        added: 1,
        size: layers.iter().map(|l| l.len() as u64).sum(),
        source: "test".to_owned(),
    }
}

fn blob_files(store: &Store) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(store.blob_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn put_blob_verifies_and_stores_nothing_on_mismatch() {
    let (_d, store) = store();
    let good = put(&store, b"hello");
    assert!(store.has_blob(&good));
    assert_eq!(
        std::fs::read(store.blob_path(&good).unwrap()).unwrap(),
        b"hello"
    );
    // Putting the same blob again is fine.
    put(&store, b"hello");

    let other = digest::of_bytes(b"other").to_string();
    let err = store
        .put_blob(&other, None, &mut &b"not other"[..])
        .unwrap_err();
    assert!(format!("{err:#}").contains("has digest"), "{err:#}");
    let err = store
        .put_blob(&other, Some(4), &mut &b"other"[..])
        .unwrap_err();
    assert!(format!("{err:#}").contains("more than 4 bytes"), "{err:#}");
    let err = store
        .put_blob(&other, Some(9), &mut &b"other"[..])
        .unwrap_err();
    assert!(format!("{err:#}").contains("expected 9"), "{err:#}");
    assert!(!store.has_blob(&other));
    // Only the good blob; no temp file survives a failed put.
    assert_eq!(blob_files(&store), [good.trim_start_matches("sha256:")]);
}

#[test]
fn hostile_digests_never_become_paths() {
    let (_d, store) = store();
    for bad in [
        "sha256:../../../../etc/passwd",
        "sha256:/etc/passwd",
        "../blobs",
        "sha256:",
        "sha512:00",
        &format!("sha256:{}", "A".repeat(64)),
    ] {
        assert!(store.blob_path(bad).is_err(), "{bad}");
        assert!(!store.has_blob(bad), "{bad}");
        assert!(store.put_blob(bad, None, &mut &b"x"[..]).is_err(), "{bad}");
    }
}

#[test]
fn open_removes_leftover_temp_files() {
    let (_d, store) = store();
    let leftover = store.blob_dir().join(".tmp-1-2-3");
    std::fs::write(&leftover, b"partial").unwrap();
    std::fs::write(store.images_dir().join(".tmp-9"), b"{").unwrap();
    let again = Store::open_at(&store.root).unwrap();
    assert!(!leftover.exists());
    assert!(again.images().unwrap().is_empty());
}

#[test]
fn find_by_names_ids_and_prefixes() {
    let (_d, store) = store();
    let rec = make_image(
        &store,
        "a",
        &[b"l1"],
        &["alpine", "quay.io/x/y:1", "localhost:5000/app:v2"],
    );
    store.add_image(rec.clone()).unwrap();
    let hex = rec.id.trim_start_matches("sha256:").to_owned();
    for key in [
        "alpine",
        "alpine:latest",
        "library/alpine",
        "docker.io/library/alpine:latest",
        "quay.io/x/y:1",
        "localhost:5000/app:v2",
        &rec.id,
        &hex,
        &hex[..3],
        &hex[..12],
        &format!("sha256:{}", &hex[..5]),
    ] {
        assert_eq!(store.find(key).unwrap().id, rec.id, "{key}");
    }
    for key in ["alpine:3", "quay.io/x/y", &hex[..2], "", "nosuch", "ALPINE"] {
        let err = store.find(key).unwrap_err();
        assert!(
            format!("{err:#}").contains("no such image"),
            "{key}: {err:#}"
        );
    }
    let found = store.find("alpine").unwrap();
    assert_eq!(found.names.len(), 3);
}

#[test]
fn ambiguous_prefix_is_an_error() {
    let (_d, store) = store();
    // Find two configs whose ids share their first three hex digits.
    let mut seen = std::collections::HashMap::new();
    let (a, b) = (0..100_000)
        .find_map(|i| {
            let salt = i.to_string();
            let rec = make_image_id_only(&salt);
            seen.insert(rec[..3].to_owned(), salt.clone())
                .map(|other| (other, salt))
        })
        .unwrap();
    let ra = make_image(&store, &a, &[], &[]);
    let rb = make_image(&store, &b, &[], &[]);
    store.add_image(ra.clone()).unwrap();
    store.add_image(rb.clone()).unwrap();
    let prefix = &ra.id["sha256:".len()..][..3];
    assert_eq!(prefix, &rb.id["sha256:".len()..][..3]);
    let err = store.find(prefix).unwrap_err();
    assert!(format!("{err:#}").contains("matches 2 images"), "{err:#}");
    assert_eq!(store.find(&ra.id[7..][..20]).unwrap().id, ra.id);
}

/// The id `make_image` gives an image with no layers and this salt.
fn make_image_id_only(salt: &str) -> String {
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["sh"], "Env": [format!("SALT={salt}")]},
        "rootfs": {"type": "layers", "diff_ids": Vec::<String>::new()},
    }))
    .unwrap();
    digest::of_bytes(&config).hex().to_owned()
}

#[test]
fn names_move_between_images() {
    let (_d, store) = store();
    let a = make_image(&store, "a", &[b"a"], &["app:1", "app:latest"]);
    let b = make_image(&store, "b", &[b"b"], &["app:latest"]);
    store.add_image(a.clone()).unwrap();
    store.add_image(b.clone()).unwrap();
    assert_eq!(store.find("app").unwrap().id, b.id);
    assert_eq!(
        store.find("app:1").unwrap().names,
        ["docker.io/library/app:1"]
    );
    store.tag("app:1", "other/name:x").unwrap();
    assert_eq!(store.find("other/name:x").unwrap().id, a.id);
    store.tag(&b.id, "app:1").unwrap();
    assert_eq!(store.find("app:1").unwrap().id, b.id);
    assert_eq!(store.find(&a.id).unwrap().names, ["docker.io/other/name:x"]);
    assert!(store.tag(&a.id, "Bad Name").is_err());
    assert!(store.tag("nosuch", "x").is_err());
}

#[test]
fn rmi_untags_names_and_removes_ids() {
    let (_d, store) = store();
    let shared: &[u8] = b"shared layer";
    let a = make_image(&store, "a", &[shared, b"only a"], &["a:1", "a:2"]);
    let b = make_image(&store, "b", &[shared], &["b"]);
    store.add_image(a.clone()).unwrap();
    store.add_image(b.clone()).unwrap();

    let r = store.untag_or_remove("a:1", false).unwrap();
    assert_eq!(r.untagged, ["docker.io/library/a:1"]);
    assert_eq!(r.deleted, None);
    store.tag("a:2", "a:3").unwrap();

    let err = store.untag_or_remove(&a.id[7..19], false).unwrap_err();
    assert!(
        format!("{err:#}").contains("referenced by 2 names"),
        "{err:#}"
    );
    let r = store.untag_or_remove(&a.id[7..19], true).unwrap();
    assert_eq!(r.untagged.len(), 2);
    assert_eq!(r.deleted.as_deref(), Some(a.id.as_str()));
    // a's own layer went; the shared one stays for b.
    assert!(!store.has_blob(&a.layers[1].digest));
    assert!(!store.has_blob(&a.id));
    assert!(store.has_blob(&a.layers[0].digest));

    let r = store.untag_or_remove("b", false).unwrap();
    assert_eq!(r.deleted.as_deref(), Some(b.id.as_str()));
    assert!(store.images().unwrap().is_empty());
    assert!(blob_files(&store).is_empty());
    assert!(store.untag_or_remove("b", false).is_err());
}

#[test]
fn prune_removes_dangling_images_and_unreferenced_blobs() {
    let (_d, store) = store();
    let kept = make_image(&store, "kept", &[b"k"], &["kept"]);
    let dangling = make_image(&store, "dangling", &[b"d", b"k"], &[]);
    store.add_image(kept.clone()).unwrap();
    store.add_image(dangling.clone()).unwrap();
    let orphan = put(&store, b"orphan");
    // This store holds its own lease; its prune ignores it.
    let report = store.prune().unwrap();
    assert_eq!(report.images, std::slice::from_ref(&dangling.id));
    assert!(!report.kept_for_writers);
    assert_eq!(report.blobs, 4); // config, manifest, layer d, orphan
    assert!(!store.has_blob(&orphan));
    for blob in kept.blobs() {
        assert!(store.has_blob(blob), "{blob}");
    }
    assert_eq!(store.images().unwrap().len(), 1);
    assert_eq!(store.prune().unwrap(), super::ops::PruneReport::default());
}

#[test]
fn prune_keeps_blobs_while_another_writer_holds_a_lease() {
    let (_d, store) = store();
    let writer = Store::open_at(&store.root).unwrap();
    let pending = put(&writer, b"not yet referenced");
    let report = store.prune().unwrap();
    assert!(report.kept_for_writers);
    assert!(store.has_blob(&pending));
    drop(writer);
    let report = store.prune().unwrap();
    assert!(!report.kept_for_writers);
    assert!(!store.has_blob(&pending));
}

#[test]
fn add_image_refuses_missing_blobs_and_bad_records() {
    let (_d, store) = store();
    let mut rec = make_image(&store, "x", &[b"x"], &["x"]);
    std::fs::remove_file(store.blob_path(&rec.layers[0].digest).unwrap()).unwrap();
    assert!(format!("{:#}", store.add_image(rec.clone()).unwrap_err()).contains("missing"));
    rec.layers[0].digest = "sha256:../../x".to_owned();
    assert!(store.add_image(rec.clone()).is_err());
    rec.names = vec!["NotCanonical".to_owned()];
    assert!(store.add_image(rec).is_err());
    assert!(store.images().unwrap().is_empty());
}

#[test]
fn planted_records_are_rejected() {
    let (_d, store) = store();
    let rec = make_image(&store, "p", &[b"p"], &["p"]);
    store.add_image(rec.clone()).unwrap();
    let path = store.record_path(&Digest::parse(&rec.id).unwrap());
    let text = std::fs::read_to_string(&path).unwrap();
    let hostile = text.replacen(&rec.layers[0].digest, "sha256:../../../../etc/passwd", 1);
    std::fs::write(&path, hostile).unwrap();
    assert!(store.images().is_err());
    std::fs::write(&path, text).unwrap();
    std::fs::write(store.names_path(), r#"{"../x": "sha256:00"}"#).unwrap();
    assert!(store.images().is_err());
}

#[test]
fn to_image_points_layers_at_blobs() {
    let (_d, store) = store();
    let rec = make_image(&store, "run", &[b"one", b"two"], &["run"]);
    store.add_image(rec.clone()).unwrap();
    let image = store.to_image(&store.find("run").unwrap()).unwrap();
    assert_eq!(image.id, rec.id[7..]);
    assert_eq!(image.config.cmd, ["sh"]);
    assert_eq!(image.layers.len(), 2);
    assert_eq!(std::fs::read(&image.layers[1].path).unwrap(), b"two");
    assert!(image.layers[0].path.starts_with(&store.root));
}

const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn a_digest_finds_the_image_with_that_manifest_in_that_repository() {
    let (_d, store) = store();
    let rec = make_image(&store, "by-digest", &[b"l"], &["h:5000/x:1"]);
    store.add_image(rec.clone()).unwrap();
    let wanted = format!("h:5000/x@{}", rec.manifest_digest);
    assert_eq!(store.find(&wanted).unwrap().id, rec.id);
    // Another repository with the same manifest digest is not it.
    let other = format!("h:5000/y@{}", rec.manifest_digest);
    assert!(store.find(&other).is_err());
    // A digest name is stored as such, shows no tag, and untags by itself.
    store.tag(&rec.id, "h:5000/x:2").unwrap();
    let err = store.tag(&rec.id, &wanted).unwrap_err();
    assert!(format!("{err:#}").contains("cannot be a digest"), "{err:#}");
    let removed = store.untag_or_remove("h:5000/x:2", false).unwrap();
    assert_eq!(removed.untagged, ["h:5000/x:2"]);
    assert_eq!(names::split(&wanted), ("h:5000/x", None));
    assert_eq!(names::split("[::1]:5/x:t"), ("[::1]:5/x", Some("t")));
    assert_eq!(names::split("[::1]:5/x"), ("[::1]:5/x", None));
}

#[test]
fn normalize_follows_docker() {
    for (input, want) in [
        ("alpine", "docker.io/library/alpine:latest"),
        ("alpine:3.19", "docker.io/library/alpine:3.19"),
        ("user/app", "docker.io/user/app:latest"),
        ("docker.io/alpine", "docker.io/library/alpine:latest"),
        ("index.docker.io/user/app:v1", "docker.io/user/app:v1"),
        ("localhost/app", "localhost/app:latest"),
        ("host:5000/x", "host:5000/x:latest"),
        ("host:5000/x:y", "host:5000/x:y"),
        ("quay.io/a/b/c:t_1.2-x", "quay.io/a/b/c:t_1.2-x"),
        ("my-app__x.y", "docker.io/library/my-app__x.y:latest"),
        ("[::1]:5000/x", "[::1]:5000/x:latest"),
        ("docker://alpine", "docker.io/library/alpine:latest"),
        (&format!("x@{D}"), &format!("docker.io/library/x@{D}")),
        (&format!("h:1/x:t@{D}"), &format!("h:1/x@{D}")),
    ] {
        assert_eq!(names::normalize(input).unwrap(), want, "{input}");
    }
    for bad in [
        "",
        "Alpine",
        "a b",
        "a/../b",
        "/abs",
        "a//b",
        "a:",
        "a:-x",
        "alpine@sha256:00",
        "-a",
        "a-",
        "a...b",
        "a___b",
        "host:port/x",
        &"a".repeat(300),
        &format!("a:{}", "t".repeat(129)),
    ] {
        assert!(names::normalize(bad).is_err(), "{bad}");
    }
}

/// Writes a tar of `members` (name, bytes) and symlinks (name, target).
pub(super) fn write_tar(path: &Path, members: &[(&str, &[u8])], links: &[(&str, &str)]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, bytes) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, *bytes).unwrap();
    }
    for (name, target) in links {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, name, target).unwrap();
    }
    b.finish().unwrap();
}

fn docker_config(diff_ids: &[String]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["sh"]}, "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap()
}

#[test]
fn load_docker_archive_then_save_round_trips() {
    let (dir, store) = store();
    let layer: &[u8] = b"pretend this is a tar";
    let config = docker_config(&[digest::of_bytes(layer).to_string()]);
    let manifest =
        json!([{"Config": "c.json", "RepoTags": ["test/app:1"], "Layers": ["id/layer.tar"]}]);
    let archive = dir.path().join("in.tar");
    let manifest = serde_json::to_vec(&manifest).unwrap();
    write_tar(
        &archive,
        &[
            ("manifest.json", &manifest),
            ("c.json", &config),
            ("abc.tar", layer),
        ],
        &[("id/layer.tar", "../abc.tar")],
    );
    let loaded = store.load_archive(&archive).unwrap();
    assert_eq!(loaded[0].names, ["docker.io/test/app:1"]);
    let id = digest::of_bytes(&config).to_string();
    assert_eq!(loaded[0].id, id);
    assert_eq!(
        store.find("test/app:1").unwrap().layers[0].digest,
        digest::of_bytes(layer).to_string()
    );

    for format in [Format::DockerArchive, Format::OciArchive] {
        let out = dir.path().join(format!("out-{format:?}.tar"));
        store
            .save(&["test/app:1".to_owned()], format, &out)
            .unwrap();
        let (_d2, second) = super::tests::store();
        let again = second.load_archive(&out).unwrap();
        assert_eq!(again[0].id, id, "{format:?}");
        assert_eq!(again[0].names, ["docker.io/test/app:1"], "{format:?}");
        let image = second
            .to_image(&second.find("test/app:1").unwrap())
            .unwrap();
        assert_eq!(std::fs::read(&image.layers[0].path).unwrap(), layer);
    }
}

#[test]
fn hostile_archives_store_no_image() {
    let (dir, store) = store();
    let layer: &[u8] = b"layer";
    let good_config = docker_config(&[digest::of_bytes(layer).to_string()]);
    let wrong_config = docker_config(&[digest::of_bytes(b"something else").to_string()]);
    let m = |config: &str, layers: &[&str], tags: &[&str]| {
        serde_json::to_vec(&json!([{"Config": config, "RepoTags": tags, "Layers": layers}]))
            .unwrap()
    };
    type Case<'a> = (&'a str, Vec<u8>, Vec<(&'a str, &'a str)>);
    let cases: Vec<Case> = vec![
        (
            "outside the archive",
            m("c.json", &["../../etc/passwd"], &["x"]),
            vec![],
        ),
        (
            "symlink out",
            m("c.json", &["evil"], &["x"]),
            vec![("evil", "../../../etc/passwd")],
        ),
        (
            "absolute symlink",
            m("c.json", &["evil"], &["x"]),
            vec![("evil", "/etc/passwd")],
        ),
        (
            "link loop",
            m("c.json", &["a"], &["x"]),
            vec![("a", "b"), ("b", "a")],
        ),
        ("diff_id mismatch", m("w.json", &["l.tar"], &["x"]), vec![]),
        ("layer count", m("c.json", &[], &["x"]), vec![]),
        ("bad tag", m("c.json", &["l.tar"], &["../../x"]), vec![]),
    ];
    for (what, manifest, links) in cases {
        let archive = dir.path().join("hostile.tar");
        write_tar(
            &archive,
            &[
                ("manifest.json", &manifest),
                ("c.json", &good_config),
                ("w.json", &wrong_config),
                ("l.tar", layer),
            ],
            &links,
        );
        assert!(store.load_archive(&archive).is_err(), "{what}");
        assert!(store.images().unwrap().is_empty(), "{what}");
    }
    let archive = dir.path().join("empty.tar");
    write_tar(&archive, &[("hello", b"x")], &[]);
    assert!(store.load_archive(&archive).is_err());
}

#[test]
fn oci_archive_blobs_are_verified() {
    let (dir, store) = store();
    let layer: &[u8] = b"layer";
    let layer_d = digest::of_bytes(layer);
    let config = docker_config(&[layer_d.to_string()]);
    let config_d = digest::of_bytes(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": super::load::OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_d.to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_d.to_string(), "size": layer.len()}],
    }))
    .unwrap();
    let manifest_d = digest::of_bytes(&manifest);
    let index = serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [{
        "mediaType": super::load::OCI_MANIFEST, "digest": manifest_d.to_string(), "size": manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": "example.com/app:v1"}}]}))
    .unwrap();
    let blob = |d: &Digest| format!("blobs/sha256/{}", d.hex());
    let (mb, cb, lb) = (blob(&manifest_d), blob(&config_d), blob(&layer_d));
    let archive = dir.path().join("oci.tar");
    let layout: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
    write_tar(
        &archive,
        &[
            ("oci-layout", layout),
            ("index.json", &index),
            (&mb, &manifest),
            (&cb, &config),
            (&lb, b"LAYER"),
        ],
        &[],
    );
    assert!(store.load_archive(&archive).is_err());
    assert!(!store.has_blob(&layer_d.to_string()));
    write_tar(
        &archive,
        &[
            ("oci-layout", layout),
            ("index.json", &index),
            (&mb, &manifest),
            (&cb, &config),
            (&lb, layer),
        ],
        &[],
    );
    let loaded = store.load_archive(&archive).unwrap();
    assert_eq!(loaded[0].names, ["example.com/app:v1"]);
    assert_eq!(
        store.find("example.com/app:v1").unwrap().manifest_digest,
        manifest_d.to_string()
    );
}

#[test]
fn only_unpacks_nobody_runs_are_stale() {
    let (_d, store) = store();
    let hex = |c: &str| c.repeat(64);
    let diff = |c: &str| format!("sha256:{}", hex(c));
    let key = "00ff";
    let mk = |name: &str| {
        let p = store.root.join("layers").join(key).join(name);
        std::fs::create_dir_all(p.join("etc")).unwrap();
        p
    };
    // A dead unpack of layer a: its lock is free.
    let dead = mk(&format!(".tmp-{}-123", hex("a")));
    // A live one of layer b: this test holds b's lock, as an unpack does.
    let live = mk(&format!(".tmp-{}-456", hex("b")));
    let _b = store.layer_lock(key, &diff("b")).unwrap();
    // Older names: one of this (live) process, one of a process now gone.
    let own = mk(&format!(".tmp-{}", std::process::id()));
    let mut child = std::process::Command::new("true").spawn().unwrap();
    child.wait().unwrap();
    let gone = mk(&format!(".tmp-{}", child.id()));
    let _layer = mk(&hex("c"));
    let mut stale: Vec<_> = store
        .stale_unpacks()
        .unwrap()
        .into_iter()
        .map(|s| s.path)
        .collect();
    stale.sort();
    let mut want = vec![dead.clone(), gone];
    want.sort();
    assert_eq!(stale, want);
    assert!(live.exists() && own.exists());
    // While a stale unpack is held for removal, its layer stays locked.
    let held = store.stale_unpacks().unwrap();
    assert!(held.iter().any(|s| s.path == dead));
    assert!(store
        .stale_unpacks()
        .unwrap()
        .iter()
        .all(|s| s.path != dead));
    // The name an unpack of this process would use.
    let mine = store.unpack_dir(key, &diff("d")).unwrap();
    let name = mine.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(name, format!(".tmp-{}-{}", hex("d"), std::process::id()));
}
