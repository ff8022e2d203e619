//! `hutch pull` and `run --pull` against a real OCI registry (Debian's
//! docker-registry on 127.0.0.1, started per test by
//! tests/registry-fixture.sh), as the unprivileged user hutch-t1.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::layout::{self, Entry, Layout};
use common::registry::Registry;
use common::*;
use serde_json::{json, Value};

/// A registry on loopback holding test/busybox:latest and test/entry:1;
/// stopped on drop.
fn start_registry(u: &TestUser) -> Option<Registry> {
    let reg = Registry::start(u, "needed for registry tests")?;
    reg.copy(&images().oci_ref("latest"), "test/busybox:latest", &[]);
    reg.copy(&images().oci_ref("entry"), "test/entry:1", &[]);
    Some(reg)
}

fn store_blobs(u: &TestUser) -> usize {
    fs::read_dir(u.data_dir.join("hutch/storage/blobs/sha256")).map_or(0, |d| d.count())
}

/// `run --rm FLAGS... IMAGE cat /etc/layer2` succeeds and prints the
/// second test layer's file: the image ran with both layers.
#[track_caller]
fn assert_runs_with_layer2(u: &TestUser, flags: &[&str], image: &str) {
    let mut args = vec!["run", "--rm"];
    args.extend(flags);
    args.extend([image, "cat", "/etc/layer2"]);
    let out = hutch_ok(u, &args);
    assert_eq!(out, "layer2\n", "{image}");
}

#[test]
fn pull_then_run_by_name_and_reuse_shared_layers() {
    let Some(u) = TestUser::t1() else { return };
    let Some(reg) = start_registry(&u) else {
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
    let Some(reg) = start_registry(&u) else {
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
    u.assert_no_leftover_containers();
}

#[test]
fn plain_http_registry_needs_tls_verify_false_with_a_hint() {
    let Some(u) = TestUser::t1() else { return };
    let Some(reg) = start_registry(&u) else {
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
    let Some(reg) = start_registry(&u) else {
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
    // Nothing at all: not the corrupt layer, and not the intact one that
    // this pull fetched beside it (no image refers to it), nor a temp file.
    let left: Vec<_> = fs::read_dir(u.data_dir.join("hutch/storage/blobs/sha256"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "the failed pull left blobs: {left:?}\n{r}");
}

#[test]
fn concurrent_pulls_of_one_image_fetch_each_layer_once() {
    let Some(u) = TestUser::t1() else { return };
    let Some(reg) = start_registry(&u) else {
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
    assert_runs_with_layer2(&u, &[], &name);
}

// ---------------------------------------------------------------------------
// The image kinds of issue 3: zstd, Docker schema 2, multi-platform
// indexes, and hostile layers and registries.

/// `hutch image inspect NAME` as JSON (the one element).
fn inspect(u: &TestUser, name: &str) -> Value {
    let out = hutch_ok(u, &["image", "inspect", name]);
    let mut all: Vec<Value> = serde_json::from_str(&out).expect("inspect prints JSON");
    assert_eq!(all.len(), 1, "{out}");
    all.remove(0)
}

/// A layout (in a root scratch dir) holding the test image plus one layer
/// per tar in `extra`, tagged latest.
fn layout_with_layers(u: &TestUser, name: &str, extra: &[Vec<u8>]) -> Layout {
    let l = Layout::new(&u.root_scratch(name));
    let mut image = l.base(&images().oci, "latest");
    for t in extra {
        l.add_layer(&mut image, t);
    }
    let m = l.manifest(&image);
    l.tag_latest(&m);
    l
}

/// Host paths named `name` below `dir` (bounded depth), for "nothing
/// escaped" checks.
fn find_named(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), 0)];
    while let Some((d, depth)) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_name().to_string_lossy().starts_with(name) {
                found.push(p.clone());
            }
            if depth < 12 && e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push((p, depth + 1));
            }
        }
    }
    found
}

#[test]
fn zstd_image_pulls_and_runs() {
    let Some(u) = TestUser::t1() else { return };
    let Some(reg) = start_registry(&u) else {
        return;
    };
    // Recompress into a local layout first, then push it unchanged: a
    // direct `copy --dest-compress-format zstd` to the registry lets skopeo
    // reuse the gzip layers it already holds (from test/busybox).
    let zstd_dir = u.root_scratch("zstd");
    let zstd_ref = format!("oci:{}:latest", zstd_dir.display());
    let (ok, out) = host(
        "skopeo",
        &[
            "copy",
            "-q",
            "--dest-compress-format",
            "zstd",
            "--dest-compress",
            &images().oci_ref("latest"),
            &zstd_ref,
        ],
    );
    assert!(ok, "recompress with zstd: {out}");
    reg.copy(&zstd_ref, "test/zstd:1", &["--preserve-digests"]);
    let name = reg.name("test/zstd:1");
    let r = hutch_run(&u, &["pull", "--tls-verify=false", &name]);
    assert_eq!(r.code(), Some(0), "{r}");
    let id = r.stdout.trim().to_string();
    let i = inspect(&u, &name);
    assert_eq!(i["Id"], id.as_str(), "{i}");
    // The registry really served zstd layers.
    let zstd_blobs = fs::read_dir(u.data_dir.join("hutch/storage/blobs/sha256"))
        .unwrap()
        .flatten()
        .filter(|e| fs::read(e.path()).is_ok_and(|b| b.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])))
        .count();
    assert_eq!(zstd_blobs, 2, "both layers stored as zstd");
    assert_runs_with_layer2(&u, &[], &name);
    // The whiteout in the zstd layer 2 applied too.
    let r = hutch_run(
        &u,
        &[
            "run",
            "--rm",
            &name,
            "test",
            "-e",
            "/etc/removed-by-whiteout",
        ],
    );
    assert_eq!(r.code(), Some(1), "{r}");
    u.assert_no_leftover_containers();
}

#[test]
fn docker_schema2_image_pulls_runs_and_inspects() {
    let Some(u) = TestUser::t1() else { return };
    let Some(reg) = start_registry(&u) else {
        return;
    };
    reg.copy(
        &images().oci_ref("entry"),
        "test/v2s2:1",
        &["--format", "v2s2"],
    );
    let name = reg.name("test/v2s2:1");
    let r = hutch_run(&u, &["pull", "--tls-verify=false", &name]);
    assert_eq!(r.code(), Some(0), "{r}");
    let i = inspect(&u, &name);
    assert_eq!(
        i["ManifestType"], "application/vnd.docker.distribution.manifest.v2+json",
        "{i}"
    );
    assert_eq!(
        i["Config"]["Entrypoint"],
        json!(["/bin/echo", "entry:"]),
        "{i}"
    );
    assert_eq!(i["Config"]["Cmd"], json!(["default-arg"]), "{i}");
    assert_eq!(i["Config"]["WorkingDir"], "/tmp", "{i}");
    assert_eq!(i["Config"]["User"], "1000:1000", "{i}");
    assert_eq!(
        i["RootFS"]["Layers"].as_array().map(Vec::len),
        Some(2),
        "{i}"
    );
    let out = hutch_ok(&u, &["run", "--rm", &name]);
    assert_eq!(out, "entry: default-arg\n");
    let out = hutch_ok(
        &u,
        &["run", "--rm", "--entrypoint", "cat", &name, "/etc/layer2"],
    );
    assert_eq!(out, "layer2\n");
    u.assert_no_leftover_containers();
}

#[test]
fn multi_platform_index_picks_the_host_or_the_asked_platform() {
    let Some(u) = TestUser::t1() else { return };
    let Some(reg) = start_registry(&u) else {
        return;
    };
    let (host_arch, other) = if cfg!(target_arch = "aarch64") {
        ("arm64", "amd64")
    } else {
        ("amd64", "arm64")
    };
    // The same layers, two configs differing only in `architecture`.
    let l = Layout::new(&u.root_scratch("multi"));
    let image = l.base(&images().oci, "latest");
    let entries: Vec<Value> = ["amd64", "arm64"]
        .iter()
        .map(|arch| {
            let mut img = image.clone();
            img.config["architecture"] = json!(arch);
            let mut d = l.manifest(&img);
            d["platform"] = json!({"os": "linux", "architecture": arch});
            d
        })
        .collect();
    let index = l.index(&entries);
    l.tag_latest(&index);
    reg.copy(&l.oci_ref(), "test/multi:1", &["--all"]);
    let name = reg.name("test/multi:1");

    let r = hutch_run(&u, &["pull", "--tls-verify=false", &name]);
    assert_eq!(r.code(), Some(0), "{r}");
    let host_id = r.stdout.trim().to_string();
    let i = inspect(&u, &host_id);
    assert_eq!(i["Architecture"], host_arch, "{i}");
    let want = if host_arch == "amd64" {
        &entries[0]
    } else {
        &entries[1]
    };
    assert_eq!(i["Digest"], want["digest"], "{i}");
    assert_runs_with_layer2(&u, &[], &host_id);

    let r = hutch_run(
        &u,
        &[
            "pull",
            "--tls-verify=false",
            "--platform",
            &format!("linux/{other}"),
            &name,
        ],
    );
    assert_eq!(r.code(), Some(0), "{r}");
    let other_id = r.stdout.trim().to_string();
    assert_ne!(other_id, host_id);
    assert_eq!(
        r.stderr.matches("skipped: already exists").count(),
        2,
        "the layers are shared: {r}"
    );
    let i = inspect(&u, &other_id);
    assert_eq!(i["Architecture"], other, "{i}");
    // The kernel's name for the architecture picks the same entry.
    let alias = if other == "arm64" {
        "linux/aarch64"
    } else {
        "linux/x86_64"
    };
    let r = hutch_run(
        &u,
        &[
            "pull",
            "-q",
            "--tls-verify=false",
            "--platform",
            alias,
            &name,
        ],
    );
    assert_eq!(
        (r.code(), r.stdout.trim()),
        (Some(0), other_id.as_str()),
        "{r}"
    );

    // The same index as a Docker manifest list of schema 2 manifests.
    reg.copy(
        &l.oci_ref(),
        "test/multi-list:1",
        &["--all", "--format", "v2s2"],
    );
    let list = reg.name("test/multi-list:1");
    let platform = format!("linux/{other}");
    let r = hutch_run(
        &u,
        &["pull", "--tls-verify=false", "--platform", &platform, &list],
    );
    assert_eq!(r.code(), Some(0), "{r}");
    let i = inspect(&u, r.stdout.trim());
    assert_eq!(i["Architecture"], other, "{i}");
    assert_eq!(
        i["ManifestType"], "application/vnd.docker.distribution.manifest.v2+json",
        "{i}"
    );

    // A platform the index does not offer names what it does.
    let r = hutch_run(
        &u,
        &[
            "pull",
            "--tls-verify=false",
            "--platform",
            "linux/s390x",
            &name,
        ],
    );
    assert_eq!(r.code(), Some(125), "{r}");
    assert!(
        r.stderr.contains("linux/amd64") && r.stderr.contains("linux/arm64"),
        "{r}"
    );
}

#[test]
fn a_tar_slip_layer_pulls_but_never_unpacks_outside_the_container() {
    let Some(u) = TestUser::t1() else { return };
    let Some(reg) = start_registry(&u) else {
        return;
    };
    let target = format!("hutch-slip-{}", layout::unique());
    let entry = format!("../../../../tmp/{target}");
    let evil = layout::tar(&[Entry::File(&entry, b"escaped\n")]);
    let l = layout_with_layers(&u, "slip", &[evil]);
    reg.copy(&l.oci_ref(), "test/slip:1", &[]);
    let name = reg.name("test/slip:1");

    let r = hutch_run(&u, &["pull", "--tls-verify=false", &name]);
    assert_eq!(
        r.code(),
        Some(0),
        "pull stores blobs, it does not unpack: {r}"
    );
    let r = hutch_run(&u, &["run", "--rm", &name, "echo", "ran"]);
    assert_eq!(r.code(), Some(125), "{r}");
    assert!(!r.stdout.contains("ran"), "{r}");
    assert!(r.stderr.contains(&target), "the error names the entry: {r}");
    assert!(!Path::new("/tmp").join(&target).exists());
    assert!(find_named(Path::new("/tmp"), &target).is_empty());
    assert!(
        find_named(&u.dir, &target).is_empty(),
        "nothing below the test dirs: {:?}",
        find_named(&u.dir, &target)
    );
    assert!(find_named(&u.root_dir, &target).is_empty());
    u.assert_no_leftover_containers();
}

#[test]
fn a_layer_writing_through_an_earlier_symlink_stays_in_the_rootfs() {
    let Some(u) = TestUser::t1() else { return };
    let Some(reg) = start_registry(&u) else {
        return;
    };
    let target = format!("hutch-owned-{}", layout::unique());
    let links = layout::tar(&[
        Entry::Symlink("etc/evil", "/tmp"),
        Entry::Symlink("etc/evil-rel", "../../../../../../../../tmp"),
    ]);
    let (abs, rel) = (
        format!("etc/evil/{target}"),
        format!("etc/evil-rel/{target}-rel"),
    );
    let writes = layout::tar(&[Entry::File(&abs, b"owned\n"), Entry::File(&rel, b"owned\n")]);
    let l = layout_with_layers(&u, "symlink", &[links, writes]);
    reg.copy(&l.oci_ref(), "test/symlink:1", &[]);
    let name = reg.name("test/symlink:1");

    let r = hutch_run(&u, &["pull", "--tls-verify=false", &name]);
    assert_eq!(r.code(), Some(0), "{r}");
    let r = hutch_run(
        &u,
        &[
            "run",
            "--rm",
            &name,
            "sh",
            "-c",
            "cat /tmp/hutch-owned-* /etc/evil/hutch-owned-* /etc/evil-rel/hutch-owned-* 2>/dev/null; exit 0",
        ],
    );
    // Refusing is fine; writing inside the rootfs is fine: through the
    // link into the container's /tmp when layers are applied in one tree,
    // or into a directory that covers the link when each layer is
    // unpacked alone for overlayfs (as Docker's overlay2 does).
    match r.code() {
        Some(0) => assert_eq!(r.stdout, "owned\nowned\n", "{r}"),
        Some(125) => assert!(r.stderr.contains("evil"), "{r}"),
        _ => panic!("neither ran nor refused: {r}"),
    }
    assert!(
        find_named(Path::new("/tmp"), &target).is_empty(),
        "written through the symlink onto the host: {:?}",
        find_named(Path::new("/tmp"), &target)
    );
    u.assert_no_leftover_containers();
}

#[test]
fn hostile_hardlinks_and_whiteouts_never_touch_host_files() {
    let Some(u) = TestUser::t1() else { return };
    let Some(reg) = start_registry(&u) else {
        return;
    };
    // A file hutch-t1 owns outside every container, on the same file
    // system: a hard link to it would succeed if unpacking let one out.
    let secret_name = format!("hutch-secret-{}", layout::unique());
    let secret = Path::new("/tmp").join(&secret_name);
    fs::write(&secret, "host secret\n").unwrap();
    std::os::unix::fs::chown(&secret, Some(u.uid), Some(u.gid)).unwrap();
    struct Cleanup<'a>(&'a Path);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            let _ = fs::remove_file(self.0);
        }
    }
    let _cleanup = Cleanup(&secret);

    let up = "../../../../../../../../../..";
    let rel_target = format!("{up}/tmp/{secret_name}");
    let abs_target = format!("/tmp/{secret_name}");
    let via_symlink = format!("etc/up/{secret_name}");
    let whiteout_via_symlink = format!("etc/up/.wh.{secret_name}");
    let symlink_layer = layout::tar(&[Entry::Symlink("etc/up", "/tmp")]);
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        (
            "hardlink-dotdot",
            vec![layout::tar(&[Entry::Hardlink("etc/hl", &rel_target)])],
        ),
        (
            "hardlink-absolute",
            vec![layout::tar(&[Entry::Hardlink("etc/hl", &abs_target)])],
        ),
        (
            "hardlink-via-symlink",
            vec![
                symlink_layer.clone(),
                layout::tar(&[Entry::Hardlink("etc/hl", &via_symlink)]),
            ],
        ),
        (
            "whiteout-via-symlink",
            vec![
                symlink_layer.clone(),
                layout::tar(&[Entry::File(&whiteout_via_symlink, b"")]),
            ],
        ),
        (
            "whiteout-dotdot",
            vec![layout::tar(&[Entry::File("etc/.wh..", b"")])],
        ),
    ];
    for (case, layers) in cases {
        let l = layout_with_layers(&u, case, &layers);
        let repo = format!("test/{case}:1");
        reg.copy(&l.oci_ref(), &repo, &[]);
        let name = reg.name(&repo);
        let r = hutch_run(&u, &["pull", "-q", "--tls-verify=false", &name]);
        assert_eq!(r.code(), Some(0), "{case}: {r}");
        let r = hutch_run(
            &u,
            &["run", "--rm", &name, "sh", "-c", "cat /etc/hl; ls /etc"],
        );
        // Refusing the layer (125) or keeping it inside the rootfs (0).
        assert!(matches!(r.code(), Some(0 | 125)), "{case}: {r}");
        assert!(!r.stdout.contains("host secret"), "{case}: {r}");
        assert_eq!(
            fs::read_to_string(&secret).ok().as_deref(),
            Some("host secret\n"),
            "{case}: the host file is intact: {r}"
        );
        let links = std::os::unix::fs::MetadataExt::nlink(&fs::metadata(&secret).unwrap());
        assert_eq!(links, 1, "{case}: no hard link to the host file: {r}");
        assert!(u.leftover_containers().is_empty(), "{case}");
    }
}

/// `PUT /v2/REPO/manifests/TAG` on the loopback registry; bounded.
fn put_manifest(addr: &str, repo: &str, tag: &str, media_type: &str, body: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let t = Some(std::time::Duration::from_secs(10));
    s.set_read_timeout(t).unwrap();
    s.set_write_timeout(t).unwrap();
    let head = format!(
        "PUT /v2/{repo}/manifests/{tag} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: {media_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    resp
}

#[test]
fn a_manifest_lying_about_a_layer_size_fails_the_pull() {
    let Some(u) = TestUser::t1() else { return };
    let Some(reg) = start_registry(&u) else {
        return;
    };
    // Upload honest blobs, then a manifest whose big layer claims 10 bytes
    // more (tag 1) or less (tag 2) than it has. The registry checks only
    // that the blobs exist.
    let l = layout_with_layers(&u, "lie", &[]);
    reg.copy(&l.oci_ref(), "test/lie:honest", &[]);
    let image = l.base(&images().oci, "latest");
    let config = l.blob(layout::OCI_CONFIG, image.config.to_string().as_bytes());
    for (tag, delta) in [("1", 10i64), ("2", -10)] {
        let mut layers = image.layers.clone();
        let size = layers[0]["size"].as_i64().unwrap();
        layers[0]["size"] = json!(size + delta);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": layout::OCI_MANIFEST,
            "config": config,
            "layers": layers,
        });
        let resp = put_manifest(
            &reg.addr,
            "test/lie",
            tag,
            layout::OCI_MANIFEST,
            manifest.to_string().as_bytes(),
        );
        assert!(
            resp.starts_with("HTTP/1.0 201") || resp.starts_with("HTTP/1.1 201"),
            "{resp}"
        );
        let r = hutch_run(
            &u,
            &[
                "pull",
                "--tls-verify=false",
                &reg.name(&format!("test/lie:{tag}")),
            ],
        );
        assert_eq!(r.code(), Some(125), "size {delta:+}: {r}");
        assert!(
            r.stderr.contains("the descriptor says"),
            "size {delta:+}: {r}"
        );
        let listed = hutch_ok(&u, &["images", "-q"]);
        assert!(listed.trim().is_empty(), "no image recorded: {listed}");
        let hex = layers[0]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:");
        assert!(
            !u.data_dir
                .join("hutch/storage/blobs/sha256")
                .join(hex)
                .exists(),
            "the lied-about layer is not stored"
        );
    }
}

/// The manifest digest the registry serves for `name`, as skopeo sees it.
fn registry_digest(name: &str) -> String {
    let src = format!("docker://{name}");
    let (ok, out) = host(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            "--format",
            "{{.Digest}}",
            &src,
        ],
    );
    assert!(ok, "skopeo inspect {name}: {out}");
    let digest = out.lines().last().unwrap_or_default().trim().to_string();
    assert!(digest.starts_with("sha256:"), "{out}");
    digest
}

/// `images` rows as (REPOSITORY, TAG, IMAGE ID).
fn image_rows(u: &TestUser) -> Vec<(String, String, String)> {
    hutch_ok(u, &["images"])
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), f[1].to_string(), f[2].to_string())
        })
        .collect()
}

#[test]
fn pull_run_inspect_and_rmi_by_digest() {
    let Some(u) = TestUser::t1() else { return };
    let Some(reg) = start_registry(&u) else {
        return;
    };
    let digest = registry_digest(&reg.name("test/busybox:latest"));
    let by_digest = format!("{}@{digest}", reg.name("test/busybox"));
    let r = hutch_run(&u, &["pull", "--tls-verify=false", &by_digest]);
    assert_eq!(r.code(), Some(0), "{r}");
    let id = r.stdout.trim().to_string();
    assert_eq!(id.len(), 64, "{r}");
    // Podman's listing of a digest-only pull: the repository, no tag.
    assert_eq!(
        image_rows(&u),
        [(reg.name("test/busybox"), "<none>".into(), id[..12].into())]
    );
    assert_runs_with_layer2(&u, &["--pull=never"], &by_digest);
    for key in [by_digest.clone(), format!("docker://{by_digest}")] {
        let got = inspect(&u, &key);
        assert_eq!(got["Id"], json!(id), "{key}: {got}");
        assert_eq!(got["Digest"], json!(digest), "{key}: {got}");
        assert_eq!(got["RepoTags"], json!([]), "{key}: {got}");
        assert_eq!(got["RepoDigests"], json!([by_digest]), "{key}: {got}");
    }
    let r = hutch_run(&u, &["rmi", &by_digest]);
    assert_eq!(r.code(), Some(0), "{r}");
    assert_eq!(
        r.stdout,
        format!("Untagged: {by_digest}\nDeleted: sha256:{id}\n"),
        "{r}"
    );
    assert!(image_rows(&u).is_empty());
    assert_eq!(store_blobs(&u), 0, "rmi removed every blob");
}

#[test]
fn short_names_from_search_registries_are_found_locally_too() {
    let Some(u) = TestUser::t1() else { return };
    let Some(reg) = start_registry(&u) else {
        return;
    };
    // The loopback registry is the only search registry, plain HTTP.
    let conf = u.root_scratch("containers").join("registries.conf");
    fs::write(
        &conf,
        format!(
            "unqualified-search-registries = [\"{0}\"]\n\n[[registry]]\nlocation = \"{0}\"\ninsecure = true\n",
            reg.addr
        ),
    )
    .unwrap();
    let opts = Opts {
        env: vec![(
            "CONTAINERS_REGISTRIES_CONF".into(),
            conf.display().to_string(),
        )],
        ..Opts::default()
    };
    let hutch = |args: &[&str]| {
        let r = run_hutch(&u, args, &opts);
        assert!(!r.timed_out, "{args:?} timed out: {r}");
        r
    };
    let r = hutch(&["pull", "-q", "test/busybox"]);
    assert_eq!(r.code(), Some(0), "{r}");
    let id = r.stdout.trim().to_string();
    let stored = reg.name("test/busybox:latest");
    let r = hutch(&["images", "--format", "json"]);
    assert!(
        r.stdout.contains(&stored),
        "stored under the search registry: {r}"
    );
    // Every local lookup of the short name finds it, with no registry hit.
    let r = hutch(&[
        "run",
        "--rm",
        "--pull=never",
        "test/busybox",
        "cat",
        "/etc/layer2",
    ]);
    assert_eq!((r.code(), r.stdout.as_str()), (Some(0), "layer2\n"), "{r}");
    let r = hutch(&["run", "--rm", "-q", "test/busybox", "true"]);
    assert_eq!(r.code(), Some(0), "{r}");
    assert!(
        !r.stderr.contains("Trying to pull"),
        "found, not pulled: {r}"
    );
    let r = hutch(&["image", "inspect", "test/busybox:latest"]);
    assert_eq!(r.code(), Some(0), "{r}");
    assert!(r.stdout.contains(&id) && r.stdout.contains(&stored), "{r}");
    let r = hutch(&["tag", "test/busybox", "localhost/mine:1"]);
    assert_eq!(r.code(), Some(0), "{r}");
    // Without the search registry, the short name means Docker Hub's.
    let r = hutch_run(&u, &["image", "inspect", "test/busybox"]);
    assert_eq!(r.code(), Some(125), "{r}");
    let r = hutch(&["rmi", "test/busybox"]);
    assert_eq!(
        (r.code(), r.stdout.as_str()),
        (Some(0), format!("Untagged: {stored}\n").as_str()),
        "{r}"
    );
    hutch_ok(&u, &["rmi", "localhost/mine:1"]);
    assert!(image_rows(&u).is_empty());
}

/// Unpacked layer directories in the store (`layers/KEY/HEX`), and any
/// leftovers beside them (`.tmp-*` unpacks, `.unpack-*` reports); the
/// `.locks` directories are not counted.
fn layer_entries(u: &TestUser) -> Vec<PathBuf> {
    let root = u.data_dir.join("hutch/storage/layers");
    let mut out = Vec::new();
    for key in fs::read_dir(&root).into_iter().flatten().flatten() {
        for e in fs::read_dir(key.path()).into_iter().flatten().flatten() {
            if e.file_name() != ".locks" {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// As Docker's, `rmi` of the last image using a layer frees its unpacked
/// copy too, not only the compressed blob; a layer another image still
/// uses stays.
#[test]
fn rmi_frees_the_unpacked_layers_no_image_uses() {
    let Some(u) = TestUser::t1() else { return };
    rmi_frees_layers_of(&u);
    // hutch-t2 has no subordinate ids: layers unpacked under the single-id map.
    let Some(u) = TestUser::t2() else { return };
    rmi_frees_layers_of(&u);
}

fn rmi_frees_layers_of(u: &TestUser) {
    let Some(reg) = start_registry(u) else {
        return;
    };
    let busybox = reg.name("test/busybox:latest");
    let entry = reg.name("test/entry:1");
    for name in [&busybox, &entry] {
        hutch_ok(u, &["pull", "-q", "--tls-verify=false", name]);
    }
    assert_runs_with_layer2(u, &["--pull=never"], &busybox);
    // Control: the run unpacked both layers (shared with test/entry).
    let unpacked = layer_entries(u);
    assert_eq!(
        unpacked.iter().filter(|p| p.is_dir()).count(),
        2,
        "{unpacked:?}"
    );
    // test/entry still uses both layers: they stay.
    hutch_ok(u, &["rmi", &busybox]);
    let dirs: Vec<_> = layer_entries(u)
        .into_iter()
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 2, "{dirs:?}");
    // The last image using them: gone, with nothing left beside them.
    let t = std::time::Instant::now();
    let out = hutch_ok(u, &["rmi", &entry]);
    eprintln!("rmi with two layers to free took {:?}", t.elapsed());
    assert!(out.contains("Deleted: "), "{out}");
    assert_eq!(layer_entries(u), Vec::<PathBuf>::new());
    assert_eq!(store_blobs(u), 0);
    // The store still works: pulled and unpacked again.
    assert_runs_with_layer2(u, &["--tls-verify=false"], &busybox);
}

/// `run --pull=always` asks the registry again: after a new image is
/// pushed under the same tag, the run sees the new content, where the
/// default (`missing`) keeps running the stored one (the control).
#[test]
fn run_pull_always_fetches_an_image_pushed_again_under_the_same_tag() {
    let Some(u) = TestUser::t1() else { return };
    let Some(reg) = start_registry(&u) else {
        return;
    };
    let name = reg.name("test/mutable:1");
    let push = |version: &str| {
        let marker = format!("{version}\n");
        let t = layout::tar(&[Entry::File("marker", marker.as_bytes())]);
        let l = layout_with_layers(&u, &format!("mutable-{version}"), &[t]);
        reg.copy(&l.oci_ref(), "test/mutable:1", &[]);
    };
    let cat = |pull: &str| {
        hutch_ok(
            &u,
            &[
                "run",
                "--rm",
                "--tls-verify=false",
                pull,
                &name,
                "cat",
                "/marker",
            ],
        )
    };
    push("v1");
    assert_eq!(cat("--pull=missing"), "v1\n");
    let first = inspect(&u, &name)["Id"].clone();
    push("v2");
    assert_eq!(cat("--pull=missing"), "v1\n", "missing: the stored image");
    assert_eq!(cat("--pull=always"), "v2\n", "always: pulled again");
    let second = inspect(&u, &name)["Id"].clone();
    assert_ne!(first, second, "the tag names the new image");
    assert_eq!(cat("--pull=never"), "v2\n");
}

/// `image inspect` shows the config's labels, exposed ports and history
/// (Podman's fields); an image without them shows null there.
#[test]
fn image_inspect_shows_labels_exposed_ports_and_history() {
    let Some(u) = TestUser::t1() else { return };
    let Some(reg) = start_registry(&u) else {
        return;
    };
    let l = Layout::new(&u.root_scratch("labelled"));
    let mut image = l.base(&images().oci, "latest");
    image.config["config"]["Labels"] = json!({"org.example.team": "hutch", "tier": "test"});
    image.config["config"]["ExposedPorts"] = json!({"8080/tcp": {}, "53/udp": {}});
    let history = json!([
        {"created": "2026-01-01T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD busybox"},
        {"created": "2026-01-02T00:00:00Z", "created_by": "LABEL tier=test", "empty_layer": true},
    ]);
    image.config["history"] = history.clone();
    let m = l.manifest(&image);
    l.tag_latest(&m);
    reg.copy(&l.oci_ref(), "test/labelled:1", &[]);
    let plain = Layout::new(&u.root_scratch("plain"));
    let mut bare = plain.base(&images().oci, "latest");
    for k in ["Labels", "ExposedPorts"] {
        if let Some(c) = bare.config["config"].as_object_mut() {
            c.remove(k);
        }
    }
    if let Some(c) = bare.config.as_object_mut() {
        c.remove("history");
    }
    let m = plain.manifest(&bare);
    plain.tag_latest(&m);
    reg.copy(&plain.oci_ref(), "test/plain:1", &[]);

    let name = reg.name("test/labelled:1");
    hutch_ok(&u, &["pull", "-q", "--tls-verify=false", &name]);
    let v = inspect(&u, &name);
    let labels = json!({"org.example.team": "hutch", "tier": "test"});
    assert_eq!(v["Config"]["Labels"], labels, "{v:#}");
    assert_eq!(v["Labels"], labels, "{v:#}");
    assert_eq!(
        v["Config"]["ExposedPorts"],
        json!({"8080/tcp": {}, "53/udp": {}}),
        "{v:#}"
    );
    assert_eq!(v["History"], history, "{v:#}");

    let name = reg.name("test/plain:1");
    hutch_ok(&u, &["pull", "-q", "--tls-verify=false", &name]);
    let v = inspect(&u, &name);
    for field in [
        &v["Labels"],
        &v["Config"]["Labels"],
        &v["Config"]["ExposedPorts"],
        &v["History"],
    ] {
        assert!(field.is_null(), "{v:#}");
    }
}

/// As Docker: `load` without `-i` reads standard input and `save`
/// without `-o` writes standard output; neither touches a terminal
/// (an archive cannot come from one, and would garble one).
#[test]
fn load_reads_stdin_and_save_writes_stdout_but_not_to_a_terminal() {
    let Some(u) = TestUser::t1() else { return };
    let Some(reg) = start_registry(&u) else {
        return;
    };
    let name = reg.name("test/busybox:latest");
    hutch_ok(&u, &["pull", "-q", "--tls-verify=false", &name]);
    let id = inspect(&u, &name)["Id"].clone();
    // `hutch save NAME > FILE`, by a shell of the user.
    let out = u.scratch("saved").join("busybox.tar");
    let script = format!(
        "env -i HOME={} XDG_DATA_HOME={} XDG_RUNTIME_DIR={} PATH=/usr/bin:/bin {} save {} > {}",
        u.home.display(),
        u.data_dir.display(),
        u.runtime_dir.display(),
        hutch_bin().display(),
        name,
        out.display()
    );
    let (ok, text) = u.sh(&script);
    assert!(ok, "save to stdout: {text}");
    let archive = fs::read(&out).unwrap();
    // Another tool reads it: a docker-archive, the default format.
    let src = format!("docker-archive:{}", out.display());
    let (ok, text) = host("skopeo", &["inspect", "--raw", &src]);
    assert!(ok, "skopeo reads the saved archive: {text}");

    hutch_ok(&u, &["rmi", &name]);
    let r = hutch_as_stdin(&u, &["load"], &archive);
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(
        r.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert_eq!(stdout, format!("Loaded image: {name}\n"));
    assert_eq!(inspect(&u, &name)["Id"], id);
    assert_runs_with_layer2(&u, &["--pull=never"], &name);
    let scratch: Vec<_> = fs::read_dir(u.data_dir.join("hutch/storage/tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(scratch.is_empty(), "the stdin copy was left: {scratch:?}");

    // On a terminal (stdin and stdout both), both refuse with a hint.
    let tty = Opts {
        tty: true,
        ..Opts::default()
    };
    let r = run_hutch(&u, &["save", &name], &tty);
    assert_eq!(r.code(), Some(125), "{r}");
    assert!(
        r.stdout
            .contains("refusing to write an archive to a terminal"),
        "{r}"
    );
    assert!(
        r.stdout.contains("hint:") && r.stdout.contains("-o FILE"),
        "{r}"
    );
    assert!(
        !r.stdout.contains("manifest.json"),
        "no archive on the terminal: {r}"
    );
    let r = run_hutch(&u, &["load"], &tty);
    assert_eq!(r.code(), Some(125), "{r}");
    assert!(r.stdout.contains("standard input is a terminal"), "{r}");
    assert!(r.stdout.contains("-i FILE"), "{r}");
    // Control: on a terminal, `-o FILE` and `-i FILE` work.
    let file = u.scratch("tty").join("again.tar");
    let file = file.to_str().unwrap();
    let r = run_hutch(&u, &["save", "-o", file, &name], &tty);
    assert_eq!(r.code(), Some(0), "{r}");
    let r = run_hutch(&u, &["load", "-i", file], &tty);
    assert_eq!(r.code(), Some(0), "{r}");
    assert!(r.stdout.contains(&format!("Loaded image: {name}")), "{r}");
}

// The pull output (issue 3): a progress board on a terminal, quiet lines
// otherwise, nothing with -q; credentials from ~/.docker/config.json;
// uncompressed layers.

/// The 12-digit short ids of the layers of `tag` in the test images'
/// OCI layout (pushed unchanged, they are the registry's too).
fn test_layer_ids(tag: &str) -> Vec<String> {
    let dir = &images().oci;
    let read = |digest: &str| -> Value {
        let hex = digest.trim_start_matches("sha256:");
        serde_json::from_slice(&fs::read(dir.join("blobs/sha256").join(hex)).unwrap()).unwrap()
    };
    let index: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let desc = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap();
    let manifest = read(desc["digest"].as_str().unwrap());
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap()[7..19].to_string())
        .collect()
}

/// Whether `s` looks like a size as hutch prints it (`1.02kB`, `845B`).
fn is_size(s: &str) -> bool {
    let num = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    !num.is_empty()
        && num.len() < s.len()
        && num.chars().all(|c| c.is_ascii_digit() || c == '.')
        && s.ends_with('B')
}

/// Checks a finished layer line: `Copying blob ID done  SIZE in SECSs (RATE/s)`.
fn assert_done_line(line: &str, id: &str) {
    let rest = line
        .trim_end_matches('\r')
        .strip_prefix(&format!("Copying blob {id} done  "))
        .unwrap_or_else(|| panic!("not a done line for {id}: {line:?}"));
    let (size, rest) = rest
        .split_once(" in ")
        .unwrap_or_else(|| panic!("{line:?}"));
    assert!(is_size(size), "size in {line:?}");
    let (secs, rate) = rest.split_once("s (").unwrap_or_else(|| panic!("{line:?}"));
    assert!(secs.parse::<f64>().is_ok(), "seconds in {line:?}");
    let rate = rate
        .strip_suffix("/s)")
        .unwrap_or_else(|| panic!("rate in {line:?}"));
    assert!(is_size(rate), "rate in {line:?}");
}

#[test]
fn pull_shows_progress_on_a_terminal_quiet_lines_otherwise_and_nothing_with_q() {
    let Some(u) = TestUser::t1() else { return };
    if !require(
        "script",
        have_tool("script"),
        "util-linux gives the terminal",
    ) {
        return;
    }
    let Some(reg) = start_registry(&u) else {
        return;
    };
    let name = reg.name("test/busybox:latest");
    let layers = test_layer_ids("latest");
    assert_eq!(layers.len(), 2);

    // On a terminal: the board, drawn in place (each row erased first),
    // ending with each layer done, its bytes and a rate. (Whether a
    // redraw with the cursor moved up happens depends on timing: a pull
    // this small may end before the board's first tick.)
    let r = run_hutch(
        &u,
        &["pull", "--tls-verify=false", &name],
        &Opts {
            tty: true,
            ..Opts::default()
        },
    );
    assert_eq!(r.code(), Some(0), "{r}");
    let screen = &r.stdout;
    assert!(screen.contains("\x1b[2KCopying blob "), "{screen:?}");
    for id in &layers {
        let last = screen
            .split("\x1b[2K")
            .filter(|s| s.starts_with(&format!("Copying blob {id} ")))
            .last()
            .unwrap_or_else(|| panic!("no row for {id}: {screen:?}"));
        assert_done_line(last.lines().next().unwrap(), id);
    }
    assert!(screen.contains(&format!("Trying to pull {name}...")), "{r}");
    let id = screen
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .find(|l| l.len() == 64 && l.chars().all(|c| c.is_ascii_hexdigit()))
        .unwrap_or_else(|| panic!("no image id: {r}"))
        .to_string();

    // Without a terminal: one plain line per step, no escape sequences;
    // the id alone on stdout.
    let Some(plain) = TestUser::t1() else { return };
    let r = hutch_run(&plain, &["pull", "--tls-verify=false", &name]);
    assert_eq!(r.code(), Some(0), "{r}");
    assert_eq!(r.stdout, format!("{id}\n"), "{r}");
    assert!(!r.stderr.contains('\x1b'), "{r}");
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 5, "{r}");
    assert_eq!(lines[0], format!("Trying to pull {name}..."), "{r}");
    // Layers finish in any order (they download in parallel).
    for id in &layers {
        let line = lines[1..3]
            .iter()
            .find(|l| l.starts_with(&format!("Copying blob {id} ")))
            .unwrap_or_else(|| panic!("no line for {id}: {r}"));
        assert_done_line(line, id);
    }
    assert!(
        lines[3].starts_with("Copying config ") && lines[3].ends_with(" done"),
        "{r}"
    );
    assert_eq!(lines[4], "Writing manifest to image destination", "{r}");

    // -q: the image id on stdout and nothing else, as Podman's -q.
    let Some(quiet) = TestUser::t1() else { return };
    let r = hutch_run(&quiet, &["pull", "-q", "--tls-verify=false", &name]);
    assert_eq!(r.code(), Some(0), "{r}");
    assert_eq!(r.stdout, format!("{id}\n"), "{r}");
    assert_eq!(r.stderr, "", "{r}");
    // ... on a terminal too.
    let Some(quiet_tty) = TestUser::t1() else {
        return;
    };
    let r = run_hutch(
        &quiet_tty,
        &["pull", "-q", "--tls-verify=false", &name],
        &Opts {
            tty: true,
            ..Opts::default()
        },
    );
    assert_eq!(r.code(), Some(0), "{r}");
    assert_eq!(r.stdout.trim_end(), id, "{r}");
}

#[test]
fn credentials_from_the_docker_config_in_home_are_used() {
    use base64::Engine;
    const USER: &str = "tester";
    const PASS: &str = "s3cret-pass";
    let Some(u) = TestUser::t1() else { return };
    for tool in ["docker-registry", "skopeo", "htpasswd"] {
        if !require(tool, have_tool(tool), "needed for registry auth tests") {
            return;
        }
    }
    let dir = u.root_scratch("registry");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/registry-fixture.sh");
    let (ok, out) = host(
        fixture.to_str().unwrap(),
        &["start", dir.to_str().unwrap(), USER, PASS],
    );
    assert!(ok, "start registry: {out}");
    // Stopped on drop.
    let reg = Registry {
        dir,
        addr: out.lines().last().unwrap().trim().to_string(),
    };
    reg.copy(
        &images().oci_ref("latest"),
        "test/busybox:latest",
        &["--dest-creds", &format!("{USER}:{PASS}")],
    );
    let name = reg.name("test/busybox:latest");

    // A home of the test's own (the shared one is the test user's across
    // tests), with no auth.json anywhere.
    let home = u.scratch("home");
    let with_home = Opts {
        env: vec![("HOME".into(), home.display().to_string())],
        ..Opts::default()
    };
    let pull = ["pull", "-q", "--tls-verify=false", &name];
    // Control: no credentials, refused with the way to log in.
    let r = run_hutch(&u, &pull, &with_home);
    assert_eq!(r.code(), Some(125), "{r}");
    assert!(r.stderr.contains("hutch login"), "{r}");

    let docker = home.join(".docker");
    fs::create_dir(&docker).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}"));
    let config = json!({"auths": {reg.addr.clone(): {"auth": auth}}});
    let file = docker.join("config.json");
    fs::write(&file, config.to_string()).unwrap();
    for p in [&docker, &file] {
        std::os::unix::fs::chown(p, Some(u.uid), Some(u.gid)).unwrap();
    }
    let r = run_hutch(&u, &pull, &with_home);
    assert_eq!(r.code(), Some(0), "{r}");
    assert_eq!(r.stdout.trim().len(), 64, "{r}");
    assert!(
        !u.runtime_dir.join("containers/auth.json").exists()
            && !home.join(".config/containers/auth.json").exists(),
        "no auth.json was involved"
    );
    assert_runs_with_layer2(&u, &[], &name);
}

#[test]
fn an_image_with_uncompressed_layers_pulls_and_runs() {
    let Some(u) = TestUser::t1() else { return };
    let Some(reg) = start_registry(&u) else {
        return;
    };
    // The test image with every layer stored as a plain tar
    // (application/vnd.oci.image.layer.v1.tar), plus one more.
    let l = Layout::new(&u.root_scratch("plain"));
    let mut image = l.base(&images().oci, "latest");
    let mut tars = Vec::new();
    for layer in &mut image.layers {
        assert_eq!(layer["mediaType"], layout::OCI_LAYER_GZIP);
        let hex = layer["digest"].as_str().unwrap()[7..].to_string();
        let gz = fs::read(l.dir.join("blobs/sha256").join(hex)).unwrap();
        let tar = layout::gunzip(&gz);
        *layer = l.blob("application/vnd.oci.image.layer.v1.tar", &tar);
        tars.push(tar);
    }
    let extra = layout::tar(&[
        Entry::Dir("plain/"),
        Entry::File("plain/hello", b"from-a-plain-tar\n"),
    ]);
    image
        .layers
        .push(l.blob("application/vnd.oci.image.layer.v1.tar", &extra));
    image.config["rootfs"]["diff_ids"]
        .as_array_mut()
        .unwrap()
        .push(json!(layout::sha256(&extra)));
    tars.push(extra);
    let m = l.manifest(&image);
    l.tag_latest(&m);
    reg.copy(&l.oci_ref(), "test/plain:1", &["--preserve-digests"]);
    let name = reg.name("test/plain:1");

    let r = hutch_run(&u, &["pull", "--tls-verify=false", &name]);
    assert_eq!(r.code(), Some(0), "{r}");
    // The registry served the plain tars: each is stored under its own
    // digest, which is also its diff id.
    let i = inspect(&u, &name);
    let diff_ids: Vec<String> = tars.iter().map(|t| layout::sha256(t)).collect();
    assert_eq!(i["RootFS"]["Layers"], json!(diff_ids), "{i}");
    for d in &diff_ids {
        let blob = u
            .data_dir
            .join("hutch/storage/blobs/sha256")
            .join(d.trim_start_matches("sha256:"));
        assert!(blob.is_file(), "{d} stored: {r}");
    }
    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            &name,
            "sh",
            "-c",
            "cat /plain/hello /etc/layer2; test -e /etc/removed-by-whiteout || echo whited-out",
        ],
    );
    assert_eq!(out, "from-a-plain-tar\nlayer2\nwhited-out\n");
    u.assert_no_leftover_containers();
}
