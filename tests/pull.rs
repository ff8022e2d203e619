//! `hutch pull` and `run --pull` against a real OCI registry (Debian's
//! docker-registry on 127.0.0.1, started per test by
//! tests/registry-fixture.sh), as the unprivileged user hutch-t1.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;

/// A registry on loopback holding test/busybox:latest and test/entry:1;
/// stopped on drop.
struct Registry {
    dir: PathBuf,
    addr: String,
}

impl Registry {
    fn start(u: &TestUser) -> Option<Registry> {
        for tool in ["docker-registry", "skopeo"] {
            if !require(tool, have_tool(tool), "needed for registry tests") {
                return None;
            }
        }
        let dir = u.root_scratch("registry");
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/registry-fixture.sh");
        let (ok, out) = host(fixture.to_str()?, &["start", dir.to_str()?]);
        assert!(ok, "start registry: {out}");
        let addr = out.lines().last()?.trim().to_string();
        let reg = Registry { dir, addr };
        reg.push("latest", "test/busybox:latest");
        reg.push("entry", "test/entry:1");
        Some(reg)
    }

    fn push(&self, tag: &str, name: &str) {
        let dest = format!("docker://{}/{name}", self.addr);
        let src = images().oci_ref(tag);
        let (ok, out) = host(
            "skopeo",
            &["copy", "-q", "--dest-tls-verify=false", &src, &dest],
        );
        assert!(ok, "push {name}: {out}");
    }

    fn name(&self, repo: &str) -> String {
        format!("{}/{repo}", self.addr)
    }

    /// Every stored blob file of the registry (layers, configs, manifests).
    fn blob_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![self.dir.clone()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.file_name().is_some_and(|n| n == "data")
                    && p.to_string_lossy().contains("/blobs/")
                {
                    out.push(p);
                }
            }
        }
        out
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/registry-fixture.sh");
        let _ = host(
            fixture.to_str().unwrap_or_default(),
            &["stop", self.dir.to_str().unwrap_or_default()],
        );
    }
}

fn store_blobs(u: &TestUser) -> usize {
    fs::read_dir(u.data_dir.join("hutch/storage/blobs/sha256")).map_or(0, |d| d.count())
}

#[test]
fn pull_then_run_by_name_and_reuse_shared_layers() {
    let Some(u) = TestUser::t1() else { return };
    let Some(reg) = Registry::start(&u) else {
        return;
    };
    let busybox = reg.name("test/busybox:latest");
    let r = hutch_run(&u, &["pull", "--tls-verify=false", &busybox]);
    assert_eq!(r.code(), Some(0), "{r}");
    assert!(r.stderr.contains("Copying blob"), "{r}");
    let id = r.stdout.trim().to_string();
    assert_eq!(id.len(), 64, "{r}");
    // Two layers, the config and the manifest (also proves store_blobs' path).
    assert_eq!(store_blobs(&u), 4, "{r}");
    let listed = hutch_ok(&u, &["images", "--no-trunc"]);
    assert!(
        listed.contains(&format!("{}/test/busybox", reg.addr)) && listed.contains(&id[..12]),
        "{listed}"
    );
    // The second image shares both layers: nothing is fetched twice.
    let entry = reg.name("test/entry:1");
    let r = hutch_run(&u, &["pull", "--tls-verify=false", &entry]);
    assert_eq!(r.code(), Some(0), "{r}");
    assert_eq!(
        r.stderr.matches("skipped: already exists").count(),
        2,
        "{r}"
    );
    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            &busybox,
            "sh",
            "-c",
            "cat /etc/layer2; stat -c %u /home/tester/owned-by-tester",
        ],
    );
    assert_eq!(out, "layer2\n1000\n");
}

#[test]
fn run_pulls_missing_images_and_honours_pull_never() {
    let Some(u) = TestUser::t1() else { return };
    let Some(reg) = Registry::start(&u) else {
        return;
    };
    let entry = reg.name("test/entry:1");
    let r = hutch_run(&u, &["run", "--rm", "--pull=never", &entry]);
    assert_eq!(r.code(), Some(125), "{r}");
    let r = hutch_run(
        &u,
        &["run", "--rm", "--tls-verify=false", "-q", &entry, "hi"],
    );
    assert_eq!(
        (r.code(), r.stdout.as_str()),
        (Some(0), "entry: hi\n"),
        "{r}"
    );
    assert!(
        !r.stderr.contains("Copying blob"),
        "-q prints no progress: {r}"
    );
    assert!(u.leftover_containers().is_empty());
}

#[test]
fn plain_http_registry_needs_tls_verify_false_with_a_hint() {
    let Some(u) = TestUser::t1() else { return };
    let Some(reg) = Registry::start(&u) else {
        return;
    };
    let r = hutch_run(&u, &["pull", &reg.name("test/busybox:latest")]);
    assert_eq!(r.code(), Some(125), "{r}");
    assert!(r.stderr.contains("--tls-verify=false"), "{r}");
    assert_eq!(store_blobs(&u), 0, "nothing stored: {r}");
}

#[test]
fn a_corrupted_blob_fails_the_pull_and_stores_nothing() {
    let Some(u) = TestUser::t1() else { return };
    let Some(reg) = Registry::start(&u) else {
        return;
    };
    // Flip one byte in the middle of the largest blob (the busybox layer):
    // same size, wrong digest.
    let big = reg
        .blob_files()
        .into_iter()
        .max_by_key(|p| fs::metadata(p).map_or(0, |m| m.len()))
        .unwrap();
    let mut bytes = fs::read(&big).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&big, &bytes).unwrap();
    let r = hutch_run(
        &u,
        &[
            "pull",
            "--tls-verify=false",
            &reg.name("test/busybox:latest"),
        ],
    );
    assert_eq!(r.code(), Some(125), "{r}");
    assert!(r.stderr.contains("digest"), "{r}");
    let listed = hutch_ok(&u, &["images", "-q"]);
    assert!(listed.trim().is_empty(), "no image recorded: {listed}");
    // Only the small, intact blobs (config, the tiny layer) may be stored.
    let stored = fs::read_dir(u.data_dir.join("hutch/storage/blobs/sha256")).map(|d| {
        d.flatten()
            .map(|e| e.metadata().map_or(0, |m| m.len()))
            .max()
            .unwrap_or(0)
    });
    assert!(
        stored.unwrap_or(0) < bytes.len() as u64,
        "the corrupt layer was not stored"
    );
}

#[test]
fn concurrent_pulls_of_one_image_fetch_each_layer_once() {
    let Some(u) = TestUser::t1() else { return };
    let Some(reg) = Registry::start(&u) else {
        return;
    };
    let name = reg.name("test/busybox:latest");
    let pulls: Vec<_> = (0..4)
        .map(|_| spawn_hutch(&u, &["pull", "--tls-verify=false", &name], &Opts::default()))
        .collect();
    let runs: Vec<Run> = pulls.into_iter().map(|p| p.wait()).collect();
    for r in &runs {
        assert_eq!(r.code(), Some(0), "{r}");
        assert_eq!(r.stdout.trim(), runs[0].stdout.trim(), "same image id");
    }
    // Two layers: across all four pulls each is downloaded exactly once,
    // the other pulls wait for it and skip it.
    let done: usize = runs
        .iter()
        .map(|r| r.stderr.matches(" done  ").count())
        .sum();
    let skipped: usize = runs
        .iter()
        .map(|r| r.stderr.matches("skipped: already exists").count())
        .sum();
    assert_eq!((done, skipped), (2, 6), "{runs:?}");
    let out = hutch_ok(&u, &["run", "--rm", &name, "cat", "/etc/layer2"]);
    assert_eq!(out, "layer2\n");
}
