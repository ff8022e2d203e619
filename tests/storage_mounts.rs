//! Mounts around the storage: `--read-only`, `--tmpfs` and named volumes
//! (`-v NAME:/path`, `hutch volume ...`). As the unprivileged user hutch-t1.

mod common;

use std::fs;

use common::*;

fn load_busybox(u: &TestUser) -> bool {
    let Some(archive) = docker_archive(u, "test/busybox:latest") else {
        return false;
    };
    hutch_ok(u, &["load", "-i", &archive.display().to_string()]);
    true
}

// ---- --read-only and --tmpfs -------------------------------------------------

#[test]
fn read_only_rootfs_keeps_tmpfs_and_dev_writable() {
    let Some(u) = TestUser::t1() else { return };
    if !load_busybox(&u) {
        return;
    }
    let script = "touch /etc/x 2>/dev/null && echo ETC-WRITABLE || echo ETC-RO; \
                  for d in /tmp /var/tmp /run /dev/shm /scratch; do touch $d/f || echo FAIL $d; done; \
                  echo ok > /dev/null && test -r /proc/self/status && echo PROC; \
                  grep ' /scratch ' /proc/mounts";
    for d in ["overlay", "vfs"] {
        let args = [
            "run",
            "--rm",
            "--read-only",
            "--tmpfs",
            "/scratch:size=1m,mode=700",
            "--storage-driver",
            d,
            "test/busybox",
            "sh",
            "-c",
            script,
        ];
        let out = hutch_ok(&u, &args);
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some("ETC-RO"), "{d}: {out}");
        assert_eq!(lines.next(), Some("PROC"), "{d}: {out}");
        let scratch = lines.next().unwrap_or_default();
        for opt in [
            "tmpfs",
            "rw",
            "nosuid",
            "nodev",
            "noexec",
            "size=1024k",
            "mode=700",
        ] {
            assert!(scratch.contains(opt), "{d}: {opt} missing in {scratch}");
        }
    }
    // Control: without --read-only the rootfs is writable.
    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            "--tmpfs",
            "/scratch",
            "test/busybox",
            "sh",
            "-c",
            script,
        ],
    );
    assert!(out.starts_with("ETC-WRITABLE\nPROC\n"), "{out}");
    // Docker's option syntax, checked as hostile input.
    for bad in [
        "/x:bogus",
        "/x:size=1t",
        "/x:mode=9",
        "rel",
        "/x:size=1k\u{1b}[2J",
    ] {
        let r = hutch_run(&u, &["run", "--rm", "--tmpfs", bad, "test/busybox", "true"]);
        assert_eq!(r.code(), Some(125), "{bad}: {r}");
        assert!(r.stderr.contains("parse tmpfs"), "{bad}: {r}");
        assert!(!r.stderr.contains('\u{1b}'), "{bad}: {r}");
    }
    u.assert_no_leftover_containers();
}

// ---- named volumes -----------------------------------------------------------

#[test]
fn named_volumes_are_created_shared_and_guarded_while_in_use() {
    let Some(u) = TestUser::t1() else { return };
    if !load_busybox(&u) {
        return;
    }
    let script = "echo hello > /data/f && chown 100:100 /data/f && mkdir /data/d";
    hutch_ok(
        &u,
        &[
            "run",
            "--name",
            "writer",
            "-v",
            "vol-1:/data",
            "test/busybox",
            "sh",
            "-c",
            script,
        ],
    );
    let data = u.data_dir.join("hutch/volumes/vol-1/_data");
    assert_eq!(fs::read_to_string(data.join("f")).unwrap(), "hello\n");
    // Another container sees it; `:ro` keeps it from writing.
    let r = hutch_run(
        &u,
        &[
            "run",
            "--rm",
            "-v",
            "vol-1:/v:ro",
            "test/busybox",
            "sh",
            "-c",
            "cat /v/f; stat -c %u /v/f; touch /v/g",
        ],
    );
    assert_eq!(r.code(), Some(1), "{r}");
    assert_eq!(r.stdout, "hello\n100\n", "{r}");
    assert!(r.stderr.contains("Read-only file system"), "{r}");
    assert!(!data.join("g").exists());
    let ls = hutch_ok(&u, &["volume", "ls"]);
    assert_eq!(ls, "DRIVER    VOLUME NAME\nlocal     vol-1\n");
    let inspect = hutch_ok(&u, &["volume", "inspect", "vol-1"]);
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v[0]["Mountpoint"], data.display().to_string(), "{inspect}");
    assert_eq!(
        v[0]["UsedBy"].as_array().map(Vec::len),
        Some(1),
        "{inspect}"
    );
    // In use by the stopped container `writer`: refused, then prune keeps it.
    let r = hutch_run(&u, &["volume", "rm", "vol-1"]);
    assert_eq!(r.code(), Some(125), "{r}");
    assert!(
        r.stderr.contains("in use by container") && r.stderr.contains("-f"),
        "{r}"
    );
    hutch_ok(&u, &["volume", "create", "spare"]);
    let pruned = hutch_ok(&u, &["volume", "prune", "-f"]);
    assert_eq!(pruned, "spare\nRemoved 1 unused volumes\n");
    assert!(data.join("f").exists(), "prune removed a volume in use");
    // Once the container is gone, rm works and leaves nothing behind
    // (the subordinate-owned file included).
    hutch_ok(&u, &["rm", "writer"]);
    assert_eq!(hutch_ok(&u, &["volume", "rm", "vol-1"]), "vol-1\n");
    assert!(!u.data_dir.join("hutch/volumes/vol-1").exists());
    assert_eq!(hutch_ok(&u, &["volume", "ls", "-q"]), "");
    // -f removes a volume in use.
    hutch_ok(
        &u,
        &[
            "run",
            "--name",
            "user2",
            "-v",
            "vol-2:/d",
            "test/busybox",
            "true",
        ],
    );
    let r = hutch_run(&u, &["volume", "rm", "-f", "vol-2"]);
    assert_eq!(r.code(), Some(0), "{r}");
    assert!(!u.data_dir.join("hutch/volumes/vol-2").exists());
    hutch_ok(&u, &["rm", "user2"]);
    // Docker's name rule.
    for bad in ["_x:/d", "a b:/d", "x\u{1b}]0;t:/d"] {
        let r = hutch_run(&u, &["run", "--rm", "-v", bad, "test/busybox", "true"]);
        assert_eq!(r.code(), Some(125), "{bad}: {r}");
        assert!(r.stderr.contains("volume name"), "{bad}: {r}");
        assert!(!r.stderr.contains('\u{1b}'), "{bad}: {r}");
    }
    let r = hutch_run(&u, &["volume", "create", "../escape"]);
    assert_eq!(r.code(), Some(125), "{r}");
    assert!(!u.data_dir.join("hutch/escape").exists());
    u.assert_no_leftover_containers();
}

/// A layer holding `/appdata` owned by uid 1000 (0750) with a file
/// `seed` (1000, 0640) and a symlink `link -> /etc/passwd`.
fn appdata_layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, kind: tar::EntryType, mode: u32, data: &[u8], link: Option<&str>| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(1000);
        h.set_gid(1000);
        h.set_mtime(1_704_067_200);
        h.set_size(data.len() as u64);
        if let Some(l) = link {
            h.set_link_name(l).unwrap();
        }
        h.set_path(name).unwrap();
        h.set_cksum();
        b.append(&h, data).unwrap();
    };
    add("appdata/", tar::EntryType::Directory, 0o750, b"", None);
    add(
        "appdata/seed",
        tar::EntryType::Regular,
        0o640,
        b"seed\n",
        None,
    );
    add(
        "appdata/link",
        tar::EntryType::Symlink,
        0o777,
        b"",
        Some("/etc/passwd"),
    );
    b.into_inner().unwrap()
}

#[test]
fn a_new_named_volume_is_filled_from_the_image_once() {
    use common::layout::Layout;
    let Some(u) = TestUser::t1() else { return };
    let l = Layout::new(&u.root_scratch("copyup-layout"));
    let mut image = l.base(&images().oci, "latest");
    l.add_layer(&mut image, &appdata_layer());
    let m = l.manifest(&image);
    l.tag_latest(&m);
    let (ok, out) = host("chmod", &["-R", "a+rX", &l.dir.display().to_string()]);
    assert!(ok, "{out}");
    let img = l.oci_ref();
    // First mount: the image's directory, owners and modes included; the
    // symlink stays a symlink.
    let script = "stat -c '%u %g %a' /appdata /appdata/seed; cat /appdata/seed; \
                  readlink /appdata/link; echo mine > /appdata/w; rm /appdata/seed";
    let r = hutch_run(
        &u,
        &[
            "run",
            "--name",
            "cu1",
            "-v",
            "cu-vol:/appdata",
            &img,
            "sh",
            "-c",
            script,
        ],
    );
    assert_eq!(r.code(), Some(0), "{r}");
    assert_eq!(
        r.stdout, "1000 1000 750\n1000 1000 640\nseed\n/etc/passwd\n",
        "{r}"
    );
    hutch_ok(&u, &["rm", "cu1"]);
    // The volume outlives the container, with the container's writes.
    let data = u.data_dir.join("hutch/volumes/cu-vol/_data");
    assert_eq!(fs::read_to_string(data.join("w")).unwrap(), "mine\n");
    assert!(fs::symlink_metadata(data.join("link"))
        .unwrap()
        .file_type()
        .is_symlink());
    // A second container sees the first one's writes, not a fresh copy;
    // even emptied, the volume is not filled again.
    // A throwaway container of the image with volume spec `vol` runs `cmd`.
    let run_rm = |vol: &str, cmd: &[&str]| {
        let mut args = vec!["run", "--rm", "-v", vol, &img];
        args.extend_from_slice(cmd);
        hutch_run(&u, &args)
    };
    let r = run_rm(
        "cu-vol:/appdata",
        &["sh", "-c", "ls -A /appdata; rm -f /appdata/*"],
    );
    assert_eq!((r.code(), r.stdout.as_str()), (Some(0), "link\nw\n"), "{r}");
    let r = run_rm("cu-vol:/appdata", &["ls", "-A", "/appdata"]);
    assert_eq!((r.code(), r.stdout.as_str()), (Some(0), ""), "{r}");
    // `nocopy`: a new volume stays empty, and root's as created.
    let r = run_rm(
        "cu-empty:/appdata:nocopy",
        &["sh", "-c", "ls -A /appdata; stat -c '%u %a' /appdata"],
    );
    assert_eq!((r.code(), r.stdout.as_str()), (Some(0), "0 755\n"), "{r}");
    for v in ["cu-vol", "cu-empty"] {
        hutch_ok(&u, &["volume", "rm", v]);
    }
    u.assert_no_leftover_containers();
}
