//! The client against a real registry: Debian's docker-registry started by
//! tests/registry-fixture.sh on 127.0.0.1, images pushed with skopeo from
//! the test images (`$HUTCH_TEST_IMAGES`, default /var/tmp/hutchdev-images,
//! built by rootfs-tools/build-images.sh).
//!
//! These live inside the crate, not in tests/, because hutch is a binary
//! crate: an integration test cannot call the client's API. Harness rule:
//! a missing tool or image skips with a reason, and fails when `CI` is set.
//! Every external command runs under `timeout`.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::conf::RegistriesConf;
use super::manifest::Manifest;
use super::*;
use crate::image::registry::auth::{self, Credentials};
use crate::image::registry::manifest::{Document, OCI_INDEX, OCI_MANIFEST};

const TOOLS: &[&str] = &["docker-registry", "skopeo", "htpasswd", "timeout"];
const PACKAGES: &str = "docker-registry skopeo apache2-utils";

/// The test images, or `None` (after saying why) when the test must skip.
fn prerequisites() -> Option<PathBuf> {
    let images = std::env::var_os("HUTCH_TEST_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/hutchdev-images"));
    let missing: Vec<&str> = TOOLS.iter().copied().filter(|t| !on_path(t)).collect();
    let why = if !missing.is_empty() {
        format!(
            "missing {} (apt-get install {PACKAGES})",
            missing.join(", ")
        )
    } else if !images.join("oci/index.json").is_file() {
        format!(
            "no test images at `{}` (set HUTCH_TEST_IMAGES or run rootfs-tools/build-images.sh)",
            images.display()
        )
    } else {
        return Some(images);
    };
    assert!(std::env::var_os("CI").is_none(), "CI must not skip: {why}");
    eprintln!("skip: {why}");
    None
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A running docker-registry; stopped on drop.
struct Registry {
    dir: tempfile::TempDir,
    addr: String,
}

impl Registry {
    fn start(user_pass: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/registry-fixture.sh");
        let mut cmd = Command::new("timeout");
        cmd.arg("30").arg(&script).arg("start").arg(dir.path());
        if let Some((u, p)) = user_pass {
            cmd.args([u, p]);
        }
        let addr = run(&mut cmd);
        Registry { dir, addr }
    }

    fn reference(&self, rest: &str) -> Reference {
        Reference::parse(&format!("{}/{rest}", self.addr)).unwrap()
    }

    /// `skopeo copy` of `src` to `docker://ADDR/dest`.
    fn push(&self, src: &str, dest: &str, extra: &[&str]) {
        let mut cmd = Command::new("timeout");
        cmd.args([
            "120",
            "skopeo",
            "--insecure-policy",
            "copy",
            "-q",
            "--dest-tls-verify=false",
        ]);
        cmd.args(extra)
            .arg(src)
            .arg(format!("docker://{}/{dest}", self.addr));
        run(&mut cmd);
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/registry-fixture.sh");
        let _ = Command::new("timeout")
            .arg("30")
            .arg(script)
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

fn client(platform: &str, auth_files: Vec<PathBuf>) -> Client {
    Client::new(ClientOptions {
        tls_verify: false,
        platform: Platform::parse(platform).unwrap(),
        user_agent: "hutch-test".into(),
        conf: RegistriesConf::default(),
        auth_files,
        timeout: super::client::DEFAULT_TIMEOUT,
    })
}

fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// The digest and decoded manifest of `tag` in an OCI layout.
fn layout_manifest(layout: &Path, tag: &str) -> (String, Manifest) {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap();
    let digest = entry["digest"].as_str().unwrap().to_owned();
    let bytes = std::fs::read(blob_path(layout, &digest)).unwrap();
    let Document::Manifest(m) = Document::decode(&bytes, OCI_MANIFEST, "layout").unwrap() else {
        panic!("{digest} is not a manifest");
    };
    (digest, m)
}

/// Fetches every layer and checks it against the layout's copy.
fn fetch_layers(c: &Client, r: &Reference, m: &Manifest, layout: &Path) {
    for layer in &m.layers {
        let mut out = Vec::new();
        c.fetch_blob(r, &layer.digest, layer.size, &mut out)
            .unwrap();
        assert!(
            out == std::fs::read(blob_path(layout, &layer.digest)).unwrap(),
            "{}",
            layer.digest
        );
    }
}

#[test]
fn pulls_a_pushed_image_from_docker_registry() {
    let Some(images) = prerequisites() else {
        return;
    };
    let layout = images.join("oci");
    let reg = Registry::start(None);
    reg.push(
        &format!("oci:{}:latest", layout.display()),
        "test/busybox:latest",
        &[],
    );
    let (digest, want) = layout_manifest(&layout, "latest");

    let c = client("linux/amd64", vec![]);
    let r = reg.reference("test/busybox:latest");
    let res = c.resolve(&r).unwrap();
    assert_eq!(res.manifest_digest, digest);
    assert_eq!(res.manifest, want);
    assert_eq!(res.config_digest, want.config.digest);
    fetch_layers(&c, &r, &res.manifest, &layout);
    let by_digest = reg.reference(&format!("test/busybox@{digest}"));
    assert_eq!(c.resolve(&by_digest).unwrap().manifest_digest, digest);

    let err = c.resolve(&reg.reference("test/busybox:nope")).unwrap_err();
    let (chain, hints, _) = crate::errors::split(&err);
    assert!(
        chain.join(": ").contains("HTTP 404 (MANIFEST_UNKNOWN"),
        "{chain:?}"
    );
    assert!(hints[0].contains("check the image name"), "{hints:?}");
    let verified = Client::new(ClientOptions {
        tls_verify: true,
        platform: Platform::host(),
        user_agent: "hutch-test".into(),
        conf: RegistriesConf::default(),
        auth_files: vec![],
        timeout: super::client::DEFAULT_TIMEOUT,
    });
    let err = verified.resolve(&r).unwrap_err();
    let (_, hints, _) = crate::errors::split(&err);
    assert!(
        hints.iter().any(|h| h.contains("--tls-verify=false")),
        "{err:#}"
    );
}

/// Writes `bytes` as a blob of `layout`; returns its descriptor JSON.
fn add_blob(layout: &Path, media_type: &str, bytes: &[u8]) -> serde_json::Value {
    use sha2::{Digest as _, Sha256};
    let digest = format!("sha256:{}", crate::image::blob::hex(&Sha256::digest(bytes)));
    std::fs::write(blob_path(layout, &digest), bytes).unwrap();
    serde_json::json!({"mediaType": media_type, "digest": digest, "size": bytes.len()})
}

/// A copy of the busybox layout whose tag `multi` is an index of an
/// amd64 and an arm64 manifest sharing the same layers.
fn multi_platform_layout(images: &Path, dir: &Path) -> (PathBuf, String, String) {
    let layout = dir.join("multi");
    run(Command::new("cp")
        .arg("-r")
        .arg(images.join("oci"))
        .arg(&layout));
    let (amd_digest, m) = layout_manifest(&layout, "latest");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob_path(&layout, &m.config.digest)).unwrap())
            .unwrap();
    config["architecture"] = "arm64".into();
    let config = add_blob(&layout, &m.config.media_type, config.to_string().as_bytes());
    let amd_bytes = std::fs::read(blob_path(&layout, &amd_digest)).unwrap();
    let mut arm: serde_json::Value = serde_json::from_slice(&amd_bytes).unwrap();
    arm["config"] = config.clone();
    let mut arm_desc = add_blob(&layout, OCI_MANIFEST, arm.to_string().as_bytes());
    let mut amd_desc = serde_json::json!({"mediaType": OCI_MANIFEST, "digest": amd_digest, "size": amd_bytes.len()});
    amd_desc["platform"] = serde_json::json!({"os": "linux", "architecture": "amd64"});
    arm_desc["platform"] =
        serde_json::json!({"os": "linux", "architecture": "arm64", "variant": "v8"});
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [amd_desc, arm_desc]});
    let mut index_desc = add_blob(&layout, OCI_INDEX, index.to_string().as_bytes());
    index_desc["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "multi"});
    let top = serde_json::json!({"schemaVersion": 2, "manifests": [index_desc]});
    std::fs::write(layout.join("index.json"), top.to_string()).unwrap();
    (
        layout,
        config["digest"].as_str().unwrap().to_owned(),
        m.config.digest,
    )
}

#[test]
fn chooses_the_platform_of_a_pushed_index() {
    let Some(images) = prerequisites() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (layout, arm_config, amd_config) = multi_platform_layout(&images, tmp.path());
    let reg = Registry::start(None);
    reg.push(
        &format!("oci:{}:multi", layout.display()),
        "test/multi:latest",
        &["--all"],
    );
    let r = reg.reference("test/multi:latest");
    for (platform, config) in [("linux/arm64", &arm_config), ("linux/amd64", &amd_config)] {
        let c = client(platform, vec![]);
        let res = c.resolve(&r).unwrap();
        assert_eq!(&res.config_digest, config, "{platform}");
        let arch = serde_json::from_slice::<serde_json::Value>(&res.config_bytes).unwrap()
            ["architecture"]
            .clone();
        assert_eq!(format!("linux/{}", arch.as_str().unwrap()), platform);
        fetch_layers(&c, &r, &res.manifest, &layout);
    }
    let err = client("linux/riscv64", vec![]).resolve(&r).unwrap_err();
    assert!(
        format!("{err:#}").contains("linux/amd64, linux/arm64"),
        "{err:#}"
    );
}

#[test]
fn basic_auth_registry_needs_credentials() {
    let Some(images) = prerequisites() else {
        return;
    };
    let layout = images.join("oci");
    let reg = Registry::start(Some(("alice", "s3cret")));
    reg.push(
        &format!("oci:{}:latest", layout.display()),
        "test/private:1",
        &["--dest-creds", "alice:s3cret"],
    );
    let r = reg.reference("test/private:1");

    let err = client("linux/amd64", vec![]).resolve(&r).unwrap_err();
    let (chain, hints, _) = crate::errors::split(&err);
    assert!(
        chain.join(": ").contains("user name and password"),
        "{chain:?}"
    );
    assert!(
        hints[0].contains(&format!("hutch login {}", reg.addr)),
        "{hints:?}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("auth.json");
    let wrong = Credentials {
        username: "alice".into(),
        password: "nope".into(),
    };
    auth::add(&file, &reg.addr, &wrong).unwrap();
    let err = client("linux/amd64", vec![file.clone()])
        .resolve(&r)
        .unwrap_err();
    assert!(format!("{err:#}").contains("HTTP 401"), "{err:#}");

    let right = Credentials {
        username: "alice".into(),
        password: "s3cret".into(),
    };
    auth::add(&file, &reg.addr, &right).unwrap();
    let c = client("linux/amd64", vec![file]);
    let res = c.resolve(&r).unwrap();
    fetch_layers(&c, &r, &res.manifest, &layout);
}
