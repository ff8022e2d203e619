//! Tests for opening OCI layouts and archives, built in temp directories.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use super::blob::hex;
use super::layout::{host_arch, REF_NAME};
use super::unpack::unpack;
use super::unpack_tests::RawTar;
use super::{open, ImageRef, UnpackOptions};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

struct Layout {
    dir: PathBuf,
}

impl Layout {
    fn new(dir: &Path) -> Layout {
        fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Layout {
            dir: dir.to_path_buf(),
        }
    }

    /// Stores a blob and returns its descriptor.
    fn blob(&self, media_type: &str, bytes: &[u8]) -> Value {
        let hex = hex(&Sha256::digest(bytes));
        fs::write(self.dir.join("blobs/sha256").join(&hex), bytes).unwrap();
        json!({"mediaType": media_type, "digest": format!("sha256:{hex}"), "size": bytes.len()})
    }

    fn json_blob(&self, media_type: &str, value: &Value) -> Value {
        self.blob(media_type, &serde_json::to_vec(value).unwrap())
    }

    /// An image with one config (Cmd = `cmd`) and the given layers.
    fn image(&self, cmd: &str, layers: &[Vec<u8>]) -> Value {
        let diff_ids: Vec<String> = layers
            .iter()
            .map(|l| format!("sha256:{}", hex(&Sha256::digest(l))))
            .collect();
        let config = json!({"architecture": host_arch(), "os": "linux",
            "config": {"Cmd": [cmd], "Env": ["A=1"], "WorkingDir": "/w", "User": "u"},
            "rootfs": {"type": "layers", "diff_ids": diff_ids}});
        let config = self.json_blob("application/vnd.oci.image.config.v1+json", &config);
        let layers: Vec<Value> = layers
            .iter()
            .map(|l| self.blob("application/vnd.oci.image.layer.v1.tar", l))
            .collect();
        let manifest = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": config, "layers": layers});
        self.json_blob(OCI_MANIFEST, &manifest)
    }

    fn index(&self, manifests: &[Value]) {
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
        fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
    }

    fn oci(&self, tag: Option<&str>) -> ImageRef {
        ImageRef::Oci {
            path: self.dir.clone(),
            tag: tag.map(str::to_owned),
        }
    }
}

fn tagged(mut desc: Value, tag: &str) -> Value {
    desc["annotations"] = json!({ REF_NAME: tag });
    desc
}

fn layer(name: &str, data: &[u8]) -> Vec<u8> {
    let mut t = RawTar::default();
    t.file(name, data, 0o644);
    t.finish()
}

fn open_err(r: &ImageRef, scratch: &Path) -> String {
    format!("{:#}", open(r, scratch).unwrap_err())
}

#[test]
fn opens_a_layout_and_unpacks_it() {
    let tmp = tempfile::tempdir().unwrap();
    let l = Layout::new(&tmp.path().join("img"));
    let manifest = l.image("sh", &[layer("a", b"lower"), layer("a", b"upper")]);
    l.index(&[tagged(manifest, "latest")]);
    for tag in [Some("latest"), None] {
        let image = open(&l.oci(tag), tmp.path()).unwrap();
        assert_eq!(image.config.cmd, ["sh"]);
        assert_eq!(image.config.env, ["A=1"]);
        assert_eq!(image.config.working_dir.as_deref(), Some("/w"));
        assert_eq!(image.config.user.as_deref(), Some("u"));
        assert_eq!(image.id.len(), 64);
        assert_eq!(image.layers.len(), 2);
        let dest = tempfile::tempdir().unwrap();
        unpack(&image, dest.path(), &UnpackOptions::default()).unwrap();
        assert_eq!(fs::read(dest.path().join("a")).unwrap(), b"upper");
    }
}

#[test]
fn selects_by_tag_and_lists_tags_when_ambiguous_or_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let l = Layout::new(&tmp.path().join("img"));
    let a = tagged(l.image("a", &[]), "a");
    let b = tagged(l.image("b", &[]), "b");
    l.index(&[a, b]);
    assert_eq!(
        open(&l.oci(Some("b")), tmp.path()).unwrap().config.cmd,
        ["b"]
    );
    assert_eq!(
        open(&l.oci(Some("a")), tmp.path()).unwrap().config.cmd,
        ["a"]
    );
    let err = open_err(&l.oci(None), tmp.path());
    assert!(err.contains("several") && err.contains("`a`, `b`"), "{err}");
    let err = open_err(&l.oci(Some("nope")), tmp.path());
    assert!(
        err.contains("find tag `nope`") && err.contains("`a`, `b`"),
        "{err}"
    );
    assert!(err.starts_with("open image `oci:"), "{err}");
}

#[test]
fn refuses_blobs_that_do_not_match_their_descriptor() {
    let tmp = tempfile::tempdir().unwrap();
    let l = Layout::new(&tmp.path().join("img"));
    let manifest = l.image("sh", &[layer("a", b"x")]);
    let path = l
        .dir
        .join("blobs/sha256")
        .join(&manifest["digest"].as_str().unwrap()[7..]);
    let mut bytes = fs::read(&path).unwrap();
    bytes[0] = b' '; // same size, different digest
    fs::write(&path, &bytes).unwrap();
    l.index(std::slice::from_ref(&manifest));
    let err = open_err(&l.oci(None), tmp.path());
    assert!(
        err.contains("read manifest") && err.contains("has digest"),
        "{err}"
    );

    let mut wrong_size = manifest;
    wrong_size["size"] = json!(3);
    l.index(&[wrong_size]);
    let err = open_err(&l.oci(None), tmp.path());
    assert!(err.contains("descriptor says 3"), "{err}");
}

#[test]
fn refuses_digests_that_could_name_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let l = Layout::new(&tmp.path().join("img"));
    for digest in [
        "sha256:../../etc",
        "sha256:../../../../etc/passwd",
        "md5:abc",
    ] {
        l.index(&[json!({"mediaType": OCI_MANIFEST, "digest": digest, "size": 10})]);
        let err = open_err(&l.oci(None), tmp.path());
        assert!(err.contains(&format!("check digest `{digest}`")), "{err}");
    }
    let huge = json!({"mediaType": OCI_MANIFEST,
        "digest": format!("sha256:{}", "0".repeat(64)), "size": 1u64 << 40});
    l.index(&[huge]);
    assert!(open_err(&l.oci(None), tmp.path()).contains("limit"));
}

#[test]
fn layer_digest_is_checked_when_unpacking() {
    let tmp = tempfile::tempdir().unwrap();
    let l = Layout::new(&tmp.path().join("img"));
    l.index(&[l.image("sh", &[layer("a", b"x")])]);
    let image = open(&l.oci(None), tmp.path()).unwrap();
    let mut bytes = fs::read(&image.layers[0].path).unwrap();
    bytes[600] = b'y';
    fs::write(&image.layers[0].path, &bytes).unwrap();
    let dest = tempfile::tempdir().unwrap();
    let err = format!(
        "{:#}",
        unpack(&image, dest.path(), &UnpackOptions::default()).unwrap_err()
    );
    assert!(
        err.starts_with("unpack layer `sha256:") && err.contains("has digest"),
        "{err}"
    );
}

#[test]
fn picks_the_host_platform_from_a_nested_index() {
    let tmp = tempfile::tempdir().unwrap();
    let l = Layout::new(&tmp.path().join("img"));
    let mut other = l.image("other", &[]);
    other["platform"] = json!({"os": "linux", "architecture": "not-an-arch"});
    let mut mine = l.image("mine", &[]);
    mine["platform"] = json!({"os": "linux", "architecture": host_arch()});
    let mut attest = l.image("attest", &[]);
    attest["platform"] = json!({"os": "unknown", "architecture": "unknown"});
    let nested = json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [other.clone(), attest, mine]});
    let nested = l.json_blob(OCI_INDEX, &nested);
    l.index(&[tagged(nested, "multi")]);
    let image = open(&l.oci(Some("multi")), tmp.path()).unwrap();
    assert_eq!(image.config.cmd, ["mine"]);

    let only_other = json!({"schemaVersion": 2, "manifests": [other]});
    l.index(&[l.json_blob(OCI_INDEX, &only_other)]);
    let err = open_err(&l.oci(None), tmp.path());
    assert!(err.contains("linux/not-an-arch"), "{err}");
}

#[test]
fn reads_docker_schema2_manifests() {
    let tmp = tempfile::tempdir().unwrap();
    let l = Layout::new(&tmp.path().join("img"));
    let bytes = layer("d", b"d");
    let diff_id = format!("sha256:{}", hex(&Sha256::digest(&bytes)));
    let config = json!({"config": {"Entrypoint": ["/init"], "Cmd": null, "Env": null},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]}});
    let config = l.json_blob("application/vnd.docker.container.image.v1+json", &config);
    let layer = l.blob("application/vnd.docker.image.rootfs.diff.tar.gzip", &bytes);
    let mt = "application/vnd.docker.distribution.manifest.v2+json";
    let manifest =
        json!({"schemaVersion": 2, "mediaType": mt, "config": config, "layers": [layer]});
    l.index(&[l.json_blob(mt, &manifest)]);
    let image = open(&l.oci(None), tmp.path()).unwrap();
    assert_eq!(image.config.entrypoint, ["/init"]);
    assert!(image.config.cmd.is_empty());
    assert_eq!(image.layers.len(), 1);
}

#[test]
fn checks_the_layout_version() {
    let tmp = tempfile::tempdir().unwrap();
    let l = Layout::new(&tmp.path().join("img"));
    l.index(&[l.image("sh", &[])]);
    fs::write(
        l.dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"2.0.0"}"#,
    )
    .unwrap();
    assert!(open_err(&l.oci(None), tmp.path()).contains("imageLayoutVersion `2.0.0`"));
    fs::remove_file(l.dir.join("oci-layout")).unwrap();
    assert!(open_err(&l.oci(None), tmp.path()).contains("oci-layout"));
}

#[test]
fn opens_an_archive_in_a_private_scratch_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let l = Layout::new(&tmp.path().join("img"));
    l.index(&[tagged(
        l.image("arch", &[layer("f", b"from archive")]),
        "v1",
    )]);
    let archive = tmp.path().join("img.tar");
    let mut builder = tar::Builder::new(fs::File::create(&archive).unwrap());
    builder.append_dir_all(".", &l.dir).unwrap();
    builder.into_inner().unwrap();
    let scratch = tmp.path().join("scratch");
    let r = ImageRef::parse(&format!("oci-archive:{}:v1", archive.display())).unwrap();
    let image = open(&r, &scratch).unwrap();
    assert_eq!(image.config.cmd, ["arch"]);
    let extracted = image.extracted.as_ref().unwrap().path().to_path_buf();
    assert!(extracted.starts_with(&scratch));
    assert_eq!(
        fs::metadata(&extracted).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let dest = tempfile::tempdir().unwrap();
    unpack(&image, dest.path(), &UnpackOptions::default()).unwrap();
    assert_eq!(fs::read(dest.path().join("f")).unwrap(), b"from archive");
    drop(image);
    assert!(!extracted.exists(), "removed with the image");
}

#[test]
fn archives_may_hold_only_files_and_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let mut t = RawTar::default();
    t.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#, 0o644)
        .entry(
            tar::EntryType::Symlink,
            "index.json",
            "/etc/passwd",
            0o777,
            b"",
        );
    let archive = tmp.path().join("evil.tar");
    fs::write(&archive, t.finish()).unwrap();
    let r = ImageRef::OciArchive {
        path: archive,
        tag: None,
    };
    let err = open_err(&r, &tmp.path().join("scratch"));
    assert!(
        err.contains("entry `index.json`") && err.contains("not supported"),
        "{err}"
    );
    let left = fs::read_dir(tmp.path().join("scratch")).unwrap().count();
    assert_eq!(left, 0, "the scratch dir is removed on failure");
}

#[test]
fn diff_ids_are_read_and_must_match_the_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let l = Layout::new(&tmp.path().join("img"));
    let bytes = layer("a", b"x");
    l.index(&[l.image("sh", std::slice::from_ref(&bytes))]);
    let image = open(&l.oci(None), tmp.path()).unwrap();
    assert_eq!(
        image.diff_ids,
        [format!("sha256:{}", hex(&Sha256::digest(&bytes)))]
    );
    // A config without them (or with too few) cannot key shared layers.
    let config = json!({"architecture": host_arch(), "os": "linux", "config": {}});
    let config = l.json_blob("application/vnd.oci.image.config.v1+json", &config);
    let layer = l.blob("application/vnd.oci.image.layer.v1.tar", &bytes);
    let manifest = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": config, "layers": [layer]});
    l.index(&[l.json_blob(OCI_MANIFEST, &manifest)]);
    let err = open_err(&l.oci(None), tmp.path());
    assert!(
        err.contains("check `rootfs.diff_ids`: the config lists 0 for 1 layers"),
        "{err}"
    );
}
