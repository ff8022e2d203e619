//! `hutch load|images|image inspect|tag|save|rmi|image prune` through the
//! real binary, each test with its own XDG directories (so its own store).
//!
//! Needs skopeo and the test images (`/var/tmp/hutchdev-images`, or
//! `HUTCH_TEST_IMAGES`); without them a test is skipped with a reason,
//! or fails when `CI` is set.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("run")).unwrap();
        Env { dir }
    }

    fn hutch(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_hutch"))
            .args(args)
            .env("XDG_DATA_HOME", self.dir.path().join("data"))
            .env("XDG_RUNTIME_DIR", self.dir.path().join("run"))
            .output()
            .unwrap()
    }

    /// Runs hutch and returns stdout; panics with stderr on failure.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.hutch(args);
        assert!(
            out.status.success(),
            "hutch {args:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Skips (or, under CI, fails) when a prerequisite is missing.
fn require(what: &str, present: bool) -> bool {
    if !present {
        if std::env::var_os("CI").is_some() {
            panic!("{what} is required under CI");
        }
        eprintln!("skipped: {what} is not available");
    }
    present
}

/// A docker-archive of the test busybox image, named `test/busybox:latest`.
fn docker_archive(env: &Env) -> Option<PathBuf> {
    let images = std::env::var_os("HUTCH_TEST_IMAGES")
        .map_or_else(|| PathBuf::from("/var/tmp/hutchdev-images"), PathBuf::from);
    let layout = images.join("oci");
    if !require(
        "skopeo",
        Command::new("skopeo").arg("--version").output().is_ok(),
    ) || !require(
        &format!("test image `{}`", layout.display()),
        layout.join("index.json").is_file(),
    ) {
        return None;
    }
    let archive = env.path("busybox.tar");
    let status = Command::new("skopeo")
        .args(["copy", "-q"])
        .arg(format!("oci:{}:latest", layout.display()))
        .arg(format!(
            "docker-archive:{}:test/busybox:latest",
            archive.display()
        ))
        .status()
        .unwrap();
    assert!(status.success(), "skopeo copy failed");
    Some(archive)
}

fn full_id(env: &Env, name: &str) -> String {
    let out = env.ok(&["image", "inspect", name]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0]["Id"].as_str().unwrap().to_owned()
}

#[test]
fn load_list_save_round_trip_rmi_prune() {
    let env = Env::new();
    let Some(archive) = docker_archive(&env) else {
        return;
    };
    let archive = archive.to_str().unwrap();
    let out = env.ok(&["load", "-i", archive]);
    assert_eq!(out, "Loaded image: docker.io/test/busybox:latest\n");

    let list = env.ok(&["images"]);
    let mut lines = list.lines();
    let header = lines.next().unwrap();
    for col in ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"] {
        assert!(header.contains(col), "{header}");
    }
    let row: Vec<&str> = lines
        .next()
        .unwrap()
        .split("   ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(row[0], "docker.io/test/busybox");
    assert_eq!(row[1], "latest");
    assert_eq!(row[2].len(), 12);
    assert!(row[3].ends_with(" ago"), "{row:?}");
    assert!(row[4].ends_with("MB"), "{row:?}");

    let id = full_id(&env, "test/busybox");
    assert!(id.starts_with(row[2]));
    assert_eq!(env.ok(&["images", "-q"]).trim(), row[2]);
    assert_eq!(
        env.ok(&["images", "-q", "--no-trunc"]).trim(),
        format!("sha256:{id}")
    );
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["images", "--format", "json"])).unwrap();
    assert_eq!(json[0]["Id"], id.as_str());
    let inspect: serde_json::Value =
        serde_json::from_str(&env.ok(&["image", "inspect", &id[..5]])).unwrap();
    assert_eq!(inspect[0]["Os"], "linux");
    assert_eq!(inspect[0]["RootFS"]["Layers"].as_array().unwrap().len(), 2);

    env.ok(&["tag", "test/busybox", "example.com/copy:v1"]);
    assert!(env.ok(&["image", "ls"]).contains("example.com/copy"));

    for format in ["docker-archive", "oci-archive"] {
        let saved = env.path(&format!("saved-{format}.tar"));
        let saved = saved.to_str().unwrap();
        env.ok(&[
            "save",
            "--format",
            format,
            "-o",
            saved,
            "example.com/copy:v1",
        ]);
        let second = Env::new();
        let out = second.ok(&["load", "-i", saved]);
        assert_eq!(out, "Loaded image: example.com/copy:v1\n", "{format}");
        assert_eq!(full_id(&second, "example.com/copy:v1"), id, "{format}");
        // Other tools read what we write.
        let status = Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("{format}:{saved}"))
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "skopeo inspect {format}: {}",
            String::from_utf8_lossy(&status.stderr)
        );
    }

    let out = env.hutch(&["rmi", &id[..12]]);
    assert!(!out.status.success(), "an id with two names needs -f");
    assert!(String::from_utf8_lossy(&out.stderr).contains("hint:"));
    assert_eq!(
        env.ok(&["rmi", "example.com/copy:v1"]),
        "Untagged: example.com/copy:v1\n"
    );
    let out = env.ok(&["rmi", "test/busybox"]);
    assert_eq!(
        out,
        format!("Untagged: docker.io/test/busybox:latest\nDeleted: sha256:{id}\n")
    );
    assert_eq!(env.ok(&["images", "-q"]), "");
    let out = env.hutch(&["rmi", "test/busybox"]);
    assert_eq!(out.status.code(), Some(1));

    let out = env.ok(&["image", "prune", "-f"]);
    assert!(out.contains("Total reclaimed space: "), "{out}");
    let blobs = env.path("data/hutch/storage/blobs/sha256");
    assert_eq!(std::fs::read_dir(blobs).unwrap().count(), 0);
}

#[test]
fn parallel_loads_removals_and_prunes() {
    let env = Env::new();
    let Some(archive) = docker_archive(&env) else {
        return;
    };
    let archive = archive.to_str().unwrap().to_owned();
    env.ok(&["load", "-i", &archive]);
    let bin = env!("CARGO_BIN_EXE_hutch");
    let spawn = |args: &[&str]| {
        Command::new(bin)
            .args(args)
            .env("XDG_DATA_HOME", env.path("data"))
            .env("XDG_RUNTIME_DIR", env.path("run"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut loads = Vec::new();
    let mut others = Vec::new();
    for i in 0..4 {
        loads.push(spawn(&["load", "-i", &archive]));
        others.push(spawn(&["image", "prune", "-f"]));
        others.push(spawn(&["tag", "test/busybox", &format!("copy:{i}")]));
        others.push(spawn(&["rmi", &format!("copy:{i}")]));
    }
    for child in loads {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "load: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for child in others {
        // tag/rmi may find nothing to act on; they must not corrupt anything.
        let _ = child.wait_with_output().unwrap();
    }
    let id = full_id(&env, "test/busybox");
    let saved = env.path("check.tar");
    env.ok(&["save", "-o", saved.to_str().unwrap(), "test/busybox"]);
    let second = Env::new();
    second.ok(&["load", "-i", saved.to_str().unwrap()]);
    assert_eq!(full_id(&second, "test/busybox"), id);
    assert!(Path::new(&env.path("data/hutch/storage/leases"))
        .read_dir()
        .unwrap()
        .next()
        .is_none());
}
