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
    assert!(
        u.leftover_containers().is_empty(),
        "{:?}",
        u.leftover_containers()
    );
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
    assert!(
        u.leftover_containers().is_empty(),
        "{:?}",
        u.leftover_containers()
    );
}
