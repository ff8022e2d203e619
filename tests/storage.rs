//! Layered storage for images in the store: each layer unpacked once and
//! shared; a container's writes land in its own upper directory. As the
//! unprivileged user hutch-t1.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;

fn load_busybox(u: &TestUser) -> bool {
    let Some(archive) = docker_archive(u, "test/busybox:latest") else {
        return false;
    };
    hutch_ok(u, &["load", "-i", &archive.display().to_string()]);
    true
}

/// Every unpacked layer directory of the user's store.
fn layer_dirs(u: &TestUser) -> Vec<PathBuf> {
    let root = u.data_dir.join("hutch/storage/layers");
    let mut out = Vec::new();
    for key in fs::read_dir(&root).into_iter().flatten().flatten() {
        for layer in fs::read_dir(key.path()).into_iter().flatten().flatten() {
            let name = layer.file_name();
            if !name.to_string_lossy().starts_with('.') {
                out.push(layer.path());
            }
        }
    }
    out
}

fn find(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_name() == name {
                found.push(p.clone());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            }
        }
    }
    found
}

#[test]
fn layers_are_unpacked_once_and_writes_stay_in_each_container() {
    let Some(u) = TestUser::t1() else { return };
    if !load_busybox(&u) {
        return;
    }
    hutch_ok(
        &u,
        &[
            "run",
            "--name",
            "a",
            "test/busybox",
            "sh",
            "-c",
            "echo a > /etc/written-by-a",
        ],
    );
    let layers = layer_dirs(&u);
    assert_eq!(layers.len(), 2, "one directory per layer: {layers:?}");
    // A second container of the same image: shares the layers, not the writes.
    let out = hutch_ok(&u, &["run", "--rm", "test/busybox", "sh", "-c", "cat /etc/layer2; test -e /etc/written-by-a && echo SEEN || echo ISOLATED; test -e /etc/removed-by-whiteout && echo WHITEOUT-LOST || echo HIDDEN"]);
    assert_eq!(out, "layer2\nISOLATED\nHIDDEN\n");
    assert_eq!(layer_dirs(&u), layers, "no layer unpacked twice");
    // a's write is in its own upper directory, not in a shared layer.
    let containers = u.data_dir.join("hutch/containers");
    let uppers = find(&containers, "written-by-a");
    assert_eq!(uppers.len(), 1, "{uppers:?}");
    assert!(
        uppers[0].to_string_lossy().contains("/upper/"),
        "{uppers:?}"
    );
    for l in &layers {
        assert!(
            find(l, "written-by-a").is_empty(),
            "a write reached shared layer {l:?}"
        );
    }
    // Removing the container leaves no directory of it; the layers stay.
    hutch_ok(&u, &["rm", "a"]);
    assert!(
        u.leftover_containers().is_empty(),
        "{:?}",
        u.leftover_containers()
    );
    assert_eq!(layer_dirs(&u), layers);
}

#[test]
fn prune_removes_layers_only_when_no_image_or_container_uses_them() {
    let Some(u) = TestUser::t1() else { return };
    if !load_busybox(&u) {
        return;
    }
    hutch_ok(&u, &["run", "--name", "keep", "test/busybox", "true"]);
    assert_eq!(layer_dirs(&u).len(), 2);
    hutch_ok(&u, &["rmi", "test/busybox"]);
    // The stopped container still stands on the layers.
    hutch_ok(&u, &["image", "prune", "-f"]);
    assert_eq!(
        layer_dirs(&u).len(),
        2,
        "layers of an existing container were removed"
    );
    hutch_ok(&u, &["rm", "keep"]);
    let out = hutch_ok(&u, &["image", "prune", "-f"]);
    assert!(out.contains("Removed 2 unpacked layers"), "{out}");
    assert!(layer_dirs(&u).is_empty());
}

#[test]
fn archive_transports_pull_and_run() {
    let Some(u) = TestUser::t1() else { return };
    let Some(archive) = docker_archive(&u, "test/arch:1") else {
        return;
    };
    let src = format!("docker-archive:{}", archive.display());
    let out = hutch_ok(&u, &["run", "--rm", "-q", &src, "cat", "/etc/layer2"]);
    assert_eq!(out, "layer2\n");
    let listed = hutch_ok(&u, &["images"]);
    assert!(listed.contains("docker.io/test/arch"), "{listed}");
    let oci_archive = format!("oci-archive:{}", images().archive.display());
    let id = hutch_ok(&u, &["pull", "-q", &oci_archive]);
    assert_eq!(id.trim().len(), 64, "{id}");
    let r = hutch_run(&u, &["pull", &images().oci_ref("latest")]);
    assert_eq!(r.code(), Some(125), "{r}");
    assert!(r.stderr.contains("hutch run oci:"), "{r}");
}
