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
    u.assert_no_leftover_containers();
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
    // rmi frees unused layers, but the stopped container stands on these.
    hutch_ok(&u, &["rmi", "test/busybox"]);
    assert_eq!(layer_dirs(&u).len(), 2, "rmi removed a container's layers");
    // What an unpack killed midway leaves: a half-filled temp directory.
    let key_dir = layer_dirs(&u)[0].parent().unwrap().to_path_buf();
    let half = key_dir.join(format!(".tmp-{}-4000000", "ab".repeat(32)));
    let (ok, out) = u.sh(&format!(
        "mkdir -p {0}/etc && echo x > {0}/etc/half",
        half.display()
    ));
    assert!(ok, "{out}");
    hutch_ok(&u, &["image", "prune", "-f"]);
    assert_eq!(
        layer_dirs(&u).len(),
        2,
        "layers of an existing container were removed"
    );
    assert!(!half.exists(), "prune removes a killed unpack's leftovers");
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

// ---- the storage ladder ------------------------------------------------------

const DRIVERS: [&str; 3] = ["overlay", "fuse-overlayfs", "vfs"];

/// A fingerprint of every path, mode, owner and content under `dir`.
fn tree_sum(dir: &Path) -> u64 {
    use std::hash::{Hash, Hasher};
    use std::os::unix::fs::MetadataExt;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut seen = Vec::new();
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let Ok(m) = fs::symlink_metadata(&p) else {
                continue;
            };
            let content = if m.is_file() {
                fs::read(&p).unwrap_or_default()
            } else {
                Vec::new()
            };
            seen.push((p.clone(), m.mode(), m.uid(), m.gid(), m.rdev(), content));
            if m.is_dir() {
                stack.push(p);
            }
        }
    }
    seen.sort();
    seen.hash(&mut h);
    h.finish()
}

fn container_dir(u: &TestUser, name: &str) -> (PathBuf, serde_json::Value) {
    // Records live beside the container's files, in the data dir.
    let root = u.data_dir.join("hutch/containers");
    for e in fs::read_dir(&root).into_iter().flatten().flatten() {
        let Ok(text) = fs::read_to_string(e.path().join("state.json")) else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        if v["name"] == name {
            let id = v["id"].as_str().unwrap().to_string();
            return (u.data_dir.join("hutch/containers").join(id), v);
        }
    }
    panic!("no container named {name} in {}", root.display());
}

/// The session's processes (hutch, helpers, fuse-overlayfs) are all gone.
fn assert_session_ended(r: &Run) {
    let s = r.session.expect("session id");
    let left = wait_session_empty(s, std::time::Duration::from_secs(5));
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

#[test]
fn each_driver_runs_isolates_writes_and_keeps_layers_intact() {
    let Some(u) = TestUser::t1() else { return };
    if !load_busybox(&u) {
        return;
    }
    hutch_ok(&u, &["run", "--rm", "test/busybox", "true"]);
    let layers = layer_dirs(&u);
    // Control: the lower layer really has the file the upper one whites out.
    assert_eq!(
        layers
            .iter()
            .filter(|l| l.join("etc/removed-by-whiteout").is_file())
            .count(),
        1,
        "the test image must carry a whiteout over a lower file"
    );
    let before: Vec<u64> = layers.iter().map(|l| tree_sum(l)).collect();
    for d in DRIVERS {
        let name = format!("w-{d}");
        let script = format!(
            "cat /etc/layer2; test -e /etc/removed-by-whiteout && echo LOST || echo HIDDEN; \
             echo {d} > /etc/written; rm /etc/layer2; cat /etc/written"
        );
        let r = hutch_run(
            &u,
            &[
                "run",
                "--name",
                &name,
                "--storage-driver",
                d,
                "test/busybox",
                "sh",
                "-c",
                &script,
            ],
        );
        assert_eq!(r.code(), Some(0), "{d}: {r}");
        assert_eq!(r.stdout, format!("layer2\nHIDDEN\n{d}\n"), "{d}: {r}");
        assert_session_ended(&r);
        let (dir, state) = container_dir(&u, &name);
        assert_eq!(state["storage"]["driver"], d, "{d}: {state}");
        // The write is in this container's own directory.
        let private = if d == "vfs" { "rootfs" } else { "upper" };
        let written = find(&dir, "written");
        assert_eq!(written.len(), 1, "{d}: {written:?}");
        assert!(
            written[0].starts_with(dir.join(private)),
            "{d}: {written:?}"
        );
        assert_eq!(fs::read_to_string(&written[0]).unwrap(), format!("{d}\n"));
        // A second container of the image, same driver, sees none of it.
        let out = hutch_ok(
            &u,
            &[
                "run",
                "--rm",
                "--storage-driver",
                d,
                "test/busybox",
                "sh",
                "-c",
                "cat /etc/layer2; test -e /etc/written && echo SEEN || echo ISOLATED",
            ],
        );
        assert_eq!(out, "layer2\nISOLATED\n", "{d}");
    }
    let after: Vec<u64> = layer_dirs(&u).iter().map(|l| tree_sum(l)).collect();
    assert_eq!(layer_dirs(&u), layers, "no layer added or removed");
    assert_eq!(before, after, "a shared layer changed");
    for d in DRIVERS {
        hutch_ok(&u, &["rm", &format!("w-{d}")]);
    }
    u.assert_no_leftover_containers();
}

/// `hutch doctor`'s storage driver line (its exit status depends on the
/// host's network helpers, not on storage).
fn doctor_storage_line(u: &TestUser, env: &[(&str, &str)]) -> String {
    let r = with_env(u, &["doctor"], env);
    assert!(matches!(r.code(), Some(0 | 1)), "{r}");
    let line = r.stdout.lines().find(|l| l.contains(" storage driver "));
    line.unwrap_or_else(|| panic!("no storage driver line: {r}"))
        .to_string()
}

fn with_env(u: &TestUser, args: &[&str], env: &[(&str, &str)]) -> Run {
    let opts = Opts {
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Opts::default()
    };
    let r = run_hutch(u, args, &opts);
    assert!(!r.timed_out, "{args:?} timed out\n{r}");
    r
}

#[test]
fn automatic_choice_explicit_choice_and_a_hidden_fuse_overlayfs() {
    let Some(u) = TestUser::t1() else { return };
    if !load_busybox(&u) {
        return;
    }
    let cfg = u.scratch("config");
    let cfg_s = cfg.display().to_string();
    let env = [("XDG_CONFIG_HOME", cfg_s.as_str())];
    // This host can do kernel overlay: the documented first rung.
    let info = with_env(&u, &["info"], &env);
    assert_eq!(info.code(), Some(0), "{info}");
    assert!(info.stdout.contains("storageDriver: overlay\n"), "{info}");
    let json = with_env(&u, &["info", "--format", "json"], &env);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["store"]["storage_driver"], "overlay", "{json}");
    assert_eq!(v["host"]["cgroups"], "disabled");
    // A local store keeps containers' writable files beside the layers.
    assert_eq!(v["store"]["network_filesystem"], false, "{json}");
    let containers = u.data_dir.join("hutch/containers");
    assert_eq!(
        v["store"]["containers_dir"],
        containers.display().to_string()
    );
    assert!(v["store"]["storage_driver_reason"]
        .as_str()
        .unwrap()
        .contains("works"));
    // doctor reports the driver run uses, probed on the same directory.
    let line = doctor_storage_line(&u, &env);
    assert!(
        line.trim_start().starts_with("ok") && line.contains("overlay: kernel overlayfs works"),
        "{line}"
    );
    let r = with_env(
        &u,
        &["run", "--rm", "--name", "auto", "test/busybox", "true"],
        &env,
    );
    assert_eq!(r.code(), Some(0), "{r}");
    // Asked for explicitly, a missing fuse-overlayfs is an error with a hint...
    let hidden = [
        ("XDG_CONFIG_HOME", cfg_s.as_str()),
        ("PATH", "/nonexistent"),
    ];
    let args = [
        "run",
        "--rm",
        "--storage-driver",
        "fuse-overlayfs",
        "test/busybox",
        "true",
    ];
    let r = with_env(&u, &args, &hidden);
    assert_eq!(r.code(), Some(125), "{r}");
    assert!(r.stderr.contains("fuse-overlayfs is not on PATH"), "{r}");
    assert!(
        r.stderr.contains("hint:") && r.stderr.contains("apt install fuse-overlayfs"),
        "{r}"
    );
    // ...and the same through the config file, which the error names.
    let file = cfg.join("hutch/config.toml");
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    fs::write(&file, "[storage]\ndriver = \"fuse-overlayfs\"\n").unwrap();
    let r = with_env(&u, &["run", "--rm", "test/busybox", "true"], &hidden);
    assert_eq!(r.code(), Some(125), "{r}");
    assert!(
        r.stderr.contains("config.toml") && r.stderr.contains("not on PATH"),
        "{r}"
    );
    // Control: with fuse-overlayfs on PATH the config file's choice is used.
    let out = with_env(
        &u,
        &["run", "--rm", "test/busybox", "sh", "-c", "mount | head -1"],
        &env,
    );
    assert!(out.stdout.contains("fuse-overlayfs"), "{out}");
    let info = with_env(&u, &["info"], &env);
    assert!(
        info.stdout.contains("storageDriver: fuse-overlayfs\n"),
        "{info}"
    );
    assert!(info.stdout.contains("chosen by"), "{info}");
    // Invalid values are clear errors, from the flag and from the file.
    let r = with_env(
        &u,
        &[
            "run",
            "--rm",
            "--storage-driver",
            "zfs",
            "test/busybox",
            "true",
        ],
        &env,
    );
    assert_eq!(r.code(), Some(125), "{r}");
    assert!(
        r.stderr.contains("expected overlay, fuse-overlayfs or vfs"),
        "{r}"
    );
    fs::write(&file, "[storage]\ndriver = \"btrfs\"\n").unwrap();
    let r = with_env(&u, &["run", "--rm", "test/busybox", "true"], &env);
    assert_eq!(r.code(), Some(125), "{r}");
    assert!(
        r.stderr.contains("config.toml") && r.stderr.contains("expected overlay"),
        "{r}"
    );
}

/// An overlayfs mounted by root, as the user's data dir: the kernel
/// refuses it as an upper dir, as it does NFS.
struct OverlayDataDir {
    merged: PathBuf,
}

impl OverlayDataDir {
    fn new(u: &TestUser) -> OverlayDataDir {
        let base = u.root_scratch("ovl");
        for d in ["l", "u", "w", "merged"] {
            fs::create_dir_all(base.join(d)).unwrap();
        }
        let merged = base.join("merged");
        let opts = format!(
            "lowerdir={0}/l,upperdir={0}/u,workdir={0}/w",
            base.display()
        );
        let (ok, out) = host(
            "mount",
            &[
                "-t",
                "overlay",
                "overlay",
                "-o",
                &opts,
                &merged.display().to_string(),
            ],
        );
        assert!(ok, "mount overlay: {out}");
        std::os::unix::fs::chown(&merged, Some(u.uid), Some(u.gid)).unwrap();
        fs::set_permissions(&merged, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        OverlayDataDir { merged }
    }
}

impl Drop for OverlayDataDir {
    fn drop(&mut self) {
        let _ = host("umount", &["-l", &self.merged.display().to_string()]);
    }
}

#[test]
fn every_driver_works_under_a_single_id_map() {
    let Some(u) = TestUser::t2() else { return };
    if !load_busybox(&u) {
        return;
    }
    let script = "cat /etc/layer2; test -e /etc/removed-by-whiteout && echo LOST || echo HIDDEN; \
                  echo x > /w && cat /w";
    for d in DRIVERS {
        let r = hutch_run(
            &u,
            &[
                "run",
                "--rm",
                "--storage-driver",
                d,
                "test/busybox",
                "sh",
                "-c",
                script,
            ],
        );
        assert_eq!(
            (r.code(), r.stdout.as_str()),
            (Some(0), "layer2\nHIDDEN\nx\n"),
            "{d}: {r}"
        );
        assert_session_ended(&r);
        // The image has files owned by uid 1000, which a single-id map
        // cannot give: one line for the whole unpack says how many and
        // where the fix is (the map's own warning gives it). Shared layers are unpacked (and the loss
        // reported) once; vfs unpacks a private copy each time.
        let lines: Vec<&str> = r
            .stderr
            .lines()
            .filter(|l| l.contains("lost their owner"))
            .collect();
        let want = if d == "fuse-overlayfs" { 0 } else { 1 };
        assert_eq!(lines.len(), want, "{d}: {r}");
        for l in lines {
            let n: u64 = l
                .strip_prefix("warning: ")
                .and_then(|l| l.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            assert!(n >= 1, "{d}: a count of entries: {l}");
            assert!(
                l.contains("single-id map") && l.contains("hutch doctor"),
                "{d}: {l}"
            );
            assert!(
                l.contains(&format!("belong to {} ", u.name)),
                "{d}: names the user: {l}"
            );
        }
    }
    u.assert_no_leftover_containers();
    // What each shared layer's unpack changed is recorded beside it.
    let reports: Vec<String> = fs::read_dir(layer_dirs(&u)[0].parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".unpack-"))
        .collect();
    assert_eq!(reports.len(), 2, "{reports:?}");
}

#[test]
fn a_store_kernel_overlay_refuses_falls_back_to_fuse_overlayfs_then_vfs() {
    let Some(u) = TestUser::t1() else { return };
    let Some(archive) = docker_archive(&u, "test/busybox:latest") else {
        return;
    };
    let ovl = OverlayDataDir::new(&u);
    let data = ovl.merged.display().to_string();
    let env = [("XDG_DATA_HOME", data.as_str())];
    let hidden = [("XDG_DATA_HOME", data.as_str()), ("PATH", "/nonexistent")];
    let r = with_env(&u, &["load", "-i", &archive.display().to_string()], &env);
    assert_eq!(r.code(), Some(0), "{r}");
    let script = "test -e /etc/removed-by-whiteout && echo LOST || echo HIDDEN; \
                  echo x > /root/w && cat /root/w; mount | head -1";
    for (env, want, reason) in [
        (
            &env[..],
            "fuse-overlayfs",
            "kernel overlayfs is unavailable",
        ),
        (&hidden[..], "vfs", "fuse-overlayfs is not on PATH"),
    ] {
        let info = with_env(&u, &["info"], env);
        assert!(
            info.stdout.contains(&format!("storageDriver: {want}\n")),
            "{info}"
        );
        assert!(info.stdout.contains(reason), "{info}");
        assert!(info.stdout.contains("filesystem: overlayfs"), "{info}");
        let line = doctor_storage_line(&u, env);
        assert!(
            line.contains(&format!(" {want}: ")) && line.contains(reason),
            "{want}: {line}"
        );
        let r = with_env(
            &u,
            &["run", "--rm", "test/busybox", "sh", "-c", script],
            env,
        );
        assert_eq!(r.code(), Some(0), "{want}: {r}");
        let mut lines = r.stdout.lines();
        assert_eq!(lines.next(), Some("HIDDEN"), "{want}: {r}");
        assert_eq!(lines.next(), Some("x"), "{want}: {r}");
        let root_mount = lines.next().unwrap_or_default();
        let fuse = root_mount.contains("fuse-overlayfs");
        assert_eq!(fuse, want == "fuse-overlayfs", "{want}: {root_mount}");
        assert_session_ended(&r);
    }
    // Explicitly asked for, kernel overlay fails with the doctor hint.
    let r = with_env(
        &u,
        &[
            "run",
            "--rm",
            "--storage-driver",
            "overlay",
            "test/busybox",
            "true",
        ],
        &env,
    );
    assert_eq!(r.code(), Some(125), "{r}");
    assert!(
        r.stderr.contains("overlayfs") && r.stderr.contains("hutch doctor"),
        "{r}"
    );
}

#[test]
fn separators_in_store_paths_are_escaped_for_overlay_and_refused_for_fuse() {
    let Some(u) = TestUser::t1() else { return };
    let Some(archive) = docker_archive(&u, "test/busybox:latest") else {
        return;
    };
    let data = u.scratch("da,ta:x\\y");
    let data_s = data.display().to_string();
    let env = [("XDG_DATA_HOME", data_s.as_str())];
    let r = with_env(&u, &["load", "-i", &archive.display().to_string()], &env);
    assert_eq!(r.code(), Some(0), "{r}");
    let script = "cat /etc/layer2; test -e /etc/removed-by-whiteout && echo LOST || echo HIDDEN";
    for d in ["overlay", "vfs"] {
        let r = with_env(
            &u,
            &[
                "run",
                "--rm",
                "--storage-driver",
                d,
                "test/busybox",
                "sh",
                "-c",
                script,
            ],
            &env,
        );
        assert_eq!(
            (r.code(), r.stdout.as_str()),
            (Some(0), "layer2\nHIDDEN\n"),
            "{d}: {r}"
        );
    }
    let args = [
        "run",
        "--rm",
        "--storage-driver",
        "fuse-overlayfs",
        "test/busybox",
        "true",
    ];
    let r = with_env(&u, &args, &env);
    assert_eq!(r.code(), Some(125), "{r}");
    assert!(
        r.stderr.contains("for fuse-overlayfs: the path holds"),
        "{r}"
    );
    assert!(r.stderr.contains("hint:"), "{r}");
    assert!(!data
        .join("hutch/containers")
        .read_dir()
        .is_ok_and(|mut d| d.next().is_some()));
}

fn ns_of(pid: u32, ns: &str) -> String {
    fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

#[test]
fn fuse_overlayfs_daemon_is_outside_the_container() {
    let Some(u) = TestUser::t1() else { return };
    if !load_busybox(&u) {
        return;
    }
    let script = "sleep 100 & echo READY; sleep 3; kill -9 -1; sleep 0.2; \
                  cat /etc/layer2; kill -0 $! 2>/dev/null && echo SLEEP-ALIVE || echo SLEEP-KILLED";
    let args = [
        "run",
        "--rm",
        "--storage-driver",
        "fuse-overlayfs",
        "test/busybox",
        "sh",
        "-c",
        script,
    ];
    let mut run = spawn_hutch(&u, &args, &Opts::default());
    assert!(run.wait_for_stdout("READY", std::time::Duration::from_secs(30)));
    let comm = |p: u32| proc_read(p, "comm").unwrap_or_default();
    let procs = run.descendants();
    let daemon = procs.iter().copied().find(|p| comm(*p) == "fuse-overlayfs");
    let sleeper = procs.iter().copied().find(|p| comm(*p) == "sleep");
    let (Some(daemon), Some(sleeper)) = (daemon, sleeper) else {
        panic!("no daemon or container process among {procs:?}");
    };
    // Same user namespace (it serves as container root), not the same pid
    // or mount namespace.
    assert_eq!(ns_of(daemon, "user"), ns_of(sleeper, "user"));
    assert_ne!(ns_of(daemon, "pid"), ns_of(sleeper, "pid"));
    assert_ne!(ns_of(daemon, "mnt"), ns_of(sleeper, "mnt"));
    let r = run.wait();
    assert_eq!(r.code(), Some(0), "{r}");
    // Control: kill -1 did kill what it could reach; the rootfs still works.
    assert_eq!(r.stdout, "READY\nlayer2\nSLEEP-KILLED\n", "{r}");
    assert_session_ended(&r);
    assert!(!Path::new(&format!("/proc/{daemon}")).exists() || comm(daemon) != "fuse-overlayfs");
}

#[test]
fn fuse_overlayfs_daemon_ends_when_hutch_is_killed() {
    let Some(u) = TestUser::t1() else { return };
    if !load_busybox(&u) {
        return;
    }
    let args = [
        "run",
        "--rm",
        "--storage-driver",
        "fuse-overlayfs",
        "test/busybox",
        "sh",
        "-c",
        "echo READY; sleep 60",
    ];
    let mut run = spawn_hutch(&u, &args, &Opts::default());
    assert!(run.wait_for_stdout("READY", std::time::Duration::from_secs(30)));
    let comm = |p: u32| proc_read(p, "comm").unwrap_or_default();
    let daemon = run
        .descendants()
        .into_iter()
        .find(|p| comm(*p) == "fuse-overlayfs");
    let Some(daemon) = daemon else {
        panic!("no fuse-overlayfs among {:?}", run.descendants());
    };
    let session = run.session().expect("session id");
    run.signal(Signal::SIGKILL);
    let r = run.wait();
    assert_eq!(r.status.code(), None, "{r}");
    // PDEATHSIG ends the daemon and the container with hutch.
    let left = wait_session_empty(session, std::time::Duration::from_secs(10));
    assert!(left.is_empty(), "left after hutch was killed: {left:?}");
    // Gone, or a zombie waiting for whoever inherited it.
    let stat = proc_read(daemon, "stat").unwrap_or_default();
    let alive = comm(daemon) == "fuse-overlayfs" && !stat.contains(") Z ");
    assert!(!alive, "the daemon survived: {stat}");
}

#[test]
fn oci_images_share_the_stores_layers_and_obey_the_driver() {
    let Some(u) = TestUser::t1() else { return };
    let oci = images().oci_ref("latest");
    let archive = images().archive_ref("latest");
    let script = "cat /etc/layer2; test -e /etc/removed-by-whiteout && echo LOST || echo HIDDEN; \
                  echo x > /w; cat /w; mount | head -1";
    for d in DRIVERS {
        for (i, image) in [&oci, &archive].into_iter().enumerate() {
            let name = format!("o-{d}-{i}");
            let r = hutch_run(
                &u,
                &[
                    "run",
                    "--name",
                    &name,
                    "--storage-driver",
                    d,
                    image,
                    "sh",
                    "-c",
                    script,
                ],
            );
            assert_eq!(r.code(), Some(0), "{d} {image}: {r}");
            let mut lines = r.stdout.lines();
            assert_eq!(lines.next(), Some("layer2"), "{d}: {r}");
            assert_eq!(lines.next(), Some("HIDDEN"), "{d}: {r}");
            assert_eq!(lines.next(), Some("x"), "{d}: {r}");
            let root_mount = lines.next().unwrap_or_default();
            assert_eq!(
                (
                    root_mount.contains("fuse-overlayfs"),
                    root_mount.starts_with("overlay ")
                ),
                (d == "fuse-overlayfs", d == "overlay"),
                "{d}: {root_mount}"
            );
            assert_session_ended(&r);
            let (dir, state) = container_dir(&u, &name);
            assert_eq!(state["storage"]["driver"], d, "{d}: {state}");
            let private = if d == "vfs" { "rootfs" } else { "upper" };
            let w = dir.join(private).join("w");
            assert_eq!(fs::read_to_string(&w).unwrap_or_default(), "x\n", "{d}");
            hutch_ok(&u, &["rm", &name]);
        }
    }
    // The overlay rungs unpacked each layer once, into the store, where
    // `image prune` finds them once no container uses them.
    let layers = layer_dirs(&u);
    assert_eq!(layers.len(), 2, "{layers:?}");
    u.assert_no_leftover_containers();
    let out = hutch_ok(&u, &["image", "prune", "-f"]);
    assert!(out.contains("Removed 2 unpacked layers"), "{out}");
}

#[test]
fn an_opaque_directory_hides_the_lower_ones_files_under_every_driver() {
    use common::layout::{self, Entry, Layout};
    let Some(u) = TestUser::t1() else { return };
    // The test image plus a layer with /opq/{lower,sub/deep} and one above
    // it that makes /opq opaque and adds /opq/upper.
    let l = Layout::new(&u.root_scratch("opaque-layout"));
    let mut image = l.base(&images().oci, "latest");
    let lower = layout::tar(&[
        Entry::Dir("opq/"),
        Entry::File("opq/lower", b"lower\n"),
        Entry::Dir("opq/sub/"),
        Entry::File("opq/sub/deep", b"deep\n"),
        Entry::File("kept", b"kept\n"),
    ]);
    let upper = layout::tar(&[
        Entry::Dir("opq/"),
        Entry::File("opq/.wh..wh..opq", b""),
        Entry::File("opq/upper", b"upper\n"),
    ]);
    l.add_layer(&mut image, &lower);
    l.add_layer(&mut image, &upper);
    let m = l.manifest(&image);
    l.tag_latest(&m);
    let (ok, out) = host("chmod", &["-R", "a+rX", &l.dir.display().to_string()]);
    assert!(ok, "{out}");
    let script = "ls -A /opq; cat /kept; test -e /opq/sub/deep && echo LOST || echo HIDDEN";
    for d in DRIVERS {
        let name = format!("opq-{d}");
        let r = hutch_run(
            &u,
            &[
                "run",
                "--name",
                &name,
                "--storage-driver",
                d,
                &l.oci_ref(),
                "sh",
                "-c",
                script,
            ],
        );
        assert_eq!(
            (r.code(), r.stdout.as_str()),
            (Some(0), "upper\nkept\nHIDDEN\n"),
            "{d}: {r}"
        );
        let (_, state) = container_dir(&u, &name);
        assert_eq!(state["storage"]["driver"], d, "{d}: {state}");
        hutch_ok(&u, &["rm", &name]);
    }
    // Control: the lower layer really holds what the opaque dir hides.
    let held = layer_dirs(&u)
        .iter()
        .filter(|dir| dir.join("opq/sub/deep").is_file())
        .count();
    assert_eq!(held, 1, "{:?}", layer_dirs(&u));
}

/// The test image plus `extra` layers of a few hundred files each, as an
/// OCI layout the test users can read; `bad` layers (indexes into
/// `extra`) get a diff id that is not their content's.
fn layered_image(u: &TestUser, name: &str, extra: usize, bad: &[usize]) -> (String, Vec<String>) {
    use common::layout::{self, Entry, Layout};
    let l = Layout::new(&u.root_scratch(name));
    let mut image = l.base(&images().oci, "latest");
    let base = image.layers.len();
    let mut digests = Vec::new();
    for i in 0..extra {
        let files: Vec<(String, Vec<u8>)> = (0..300)
            .map(|f| {
                (
                    format!("l{i}/f{f}"),
                    format!("{name} layer {i} file {f}\n")
                        .repeat(64)
                        .into_bytes(),
                )
            })
            .collect();
        let dir = format!("l{i}/");
        let mut entries = vec![Entry::Dir(&dir)];
        entries.extend(files.iter().map(|(n, d)| Entry::File(n, d)));
        l.add_layer(&mut image, &layout::tar(&entries));
        digests.push(
            image.layers[base + i]["digest"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    for &i in bad {
        image.config["rootfs"]["diff_ids"][base + i] =
            serde_json::json!(layout::sha256(format!("{name} {i}").as_bytes()));
    }
    let m = l.manifest(&image);
    l.tag_latest(&m);
    let (ok, out) = host("chmod", &["-R", "a+rX", &l.dir.display().to_string()]);
    assert!(ok, "{out}");
    (l.oci_ref(), digests)
}

#[test]
fn layers_unpacked_in_parallel_report_the_first_failing_layer_and_leave_no_half_layer() {
    let Some(u) = TestUser::t1() else { return };
    // Layers 1 and 3 of 4 added ones lie about their diff id.
    let (image, digests) = layered_image(&u, "bad-layers", 4, &[1, 3]);
    for d in DRIVERS {
        let r = hutch_run(&u, &["run", "--rm", "--storage-driver", d, &image, "true"]);
        assert_eq!(r.code(), Some(125), "{d}: {r}");
        assert!(
            r.stderr.contains(&format!("unpack layer `{}`", digests[1])),
            "{d}: the lowest failing layer is named: {r}"
        );
        assert!(!r.stderr.contains(&digests[3]), "{d}: one error: {r}");
        assert!(r.stderr.contains("diff_id"), "{d}: says why: {r}");
        let store = u.data_dir.join("hutch");
        assert!(temps(&store).is_empty(), "{d}: left {:?}", temps(&store));
        assert!(u.leftover_containers().is_empty(), "{d}");
    }
    // What did unpack is whole and used by an image without the liars.
    let (good, _) = layered_image(&u, "good-layers", 4, &[]);
    for d in DRIVERS {
        let out = hutch_ok(
            &u,
            &[
                "run",
                "--rm",
                "--storage-driver",
                d,
                &good,
                "sh",
                "-c",
                "cat /etc/layer2 /l0/f0 /l3/f299 | sort -u",
            ],
        );
        assert_eq!(
            out, "good-layers layer 0 file 0\ngood-layers layer 3 file 299\nlayer2\n",
            "{d}"
        );
    }
}

#[test]
fn concurrent_runs_of_a_new_multi_layer_image_unpack_each_layer_once() {
    let Some(u) = TestUser::t1() else { return };
    let (image, _) = layered_image(&u, "many-layers", 6, &[]);
    let runs: Vec<Running> = (0..3)
        .map(|_| {
            spawn_hutch(
                &u,
                &["run", "--rm", &image, "sh", "-c", "ls /l0 /l5 | wc -l"],
                &Opts::default(),
            )
        })
        .collect();
    for r in runs {
        let r = r.wait();
        assert_eq!((r.code(), r.stdout.trim()), (Some(0), "603"), "{r}");
    }
    assert_eq!(layer_dirs(&u).len(), 8, "{:?}", layer_dirs(&u));
    let store = u.data_dir.join("hutch");
    assert!(temps(&store).is_empty(), "left {:?}", temps(&store));
    u.assert_no_leftover_containers();
}
