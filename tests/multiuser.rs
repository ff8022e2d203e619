//! Two unprivileged users on one host: hutch-t1 and hutch-t2 keep their
//! stores and container data under one shared parent (a 1777 directory
//! under /var/tmp, as `XDG_DATA_HOME=/var/tmp/$USER/share` on a network
//! home would), and neither can read the other's. Directories another
//! user planted for hutch's data or runtime dirs are refused. What
//! tests/lifecycle.rs shows (containers invisible across users) is not
//! repeated here.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;

static N: AtomicUsize = AtomicUsize::new(0);

/// A root-owned 1777 directory under /var/tmp, like /tmp; removed on drop.
struct Shared(PathBuf);

impl Shared {
    fn new(tag: &str) -> Shared {
        let n = N.fetch_add(1, Ordering::SeqCst);
        let p = PathBuf::from(format!(
            "/var/tmp/hutch-mu-{tag}-{}-{n}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o1777)).unwrap();
        Shared(p)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs `args` on the host as `user` (runuser), bounded.
fn as_user(user: &TestUser, args: &[&str]) -> (bool, String) {
    let mut all = vec!["-u", user.name.as_str(), "--"];
    all.extend(args);
    host("runuser", &all)
}

fn with_data(dir: &Path) -> Opts {
    Opts {
        env: vec![("XDG_DATA_HOME".into(), dir.display().to_string())],
        ..Opts::default()
    }
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn users_sharing_a_parent_cannot_read_each_others_store_or_containers() {
    let (Some(t1), Some(t2)) = (TestUser::t1(), TestUser::t2()) else {
        return;
    };
    let shared = Shared::new("store");
    let mut data = Vec::new();
    for (u, who) in [(&t1, "t1"), (&t2, "t2")] {
        let Some(archive) = docker_archive(u, "test/busybox:latest") else {
            return;
        };
        let dir = shared.0.join(format!("{who}-share"));
        let name = format!("mu-{who}-{}", std::process::id());
        let r = run_hutch(
            u,
            &["load", "-i", archive.to_str().unwrap()],
            &with_data(&dir),
        );
        assert_eq!(r.code(), Some(0), "{who}: {r}");
        let r = run_hutch(
            u,
            &[
                "run",
                "-d",
                "--name",
                &name,
                "test/busybox",
                "echo",
                &format!("log of {who}"),
            ],
            &with_data(&dir),
        );
        assert_eq!(r.code(), Some(0), "{who}: {r}");
        let r = run_hutch(u, &["wait", &name], &with_data(&dir));
        assert_eq!(r.stdout.trim(), "0", "{who}: {r}");
        // The store, the records and the dirs above them are the user's
        // alone: created 0700.
        let hutch = dir.join("hutch");
        for d in [
            dir.clone(),
            hutch.clone(),
            hutch.join("storage"),
            hutch.join("containers"),
        ] {
            let m = fs::symlink_metadata(&d).unwrap();
            assert_eq!((m.uid(), mode(&d)), (u.uid, 0o700), "{}", d.display());
        }
        for e in fs::read_dir(hutch.join("storage")).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                assert_eq!(mode(&p) & 0o077, 0, "{} is open to others", p.display());
            }
        }
        data.push((dir, name));
    }
    let (d1, name1) = &data[0];
    let (d2, _) = &data[1];
    // Even if a user opens their XDG_DATA_HOME, hutch's own dir stays shut.
    fs::set_permissions(d1, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(d2, fs::Permissions::from_mode(0o755)).unwrap();
    for (reader, dir) in [(&t2, d1), (&t1, d2)] {
        for sub in ["hutch", "hutch/storage", "hutch/containers"] {
            let p = dir.join(sub);
            let (ok, out) = as_user(reader, &["ls", p.to_str().unwrap()]);
            assert!(
                !ok && out.contains("Permission denied"),
                "{}: {out}",
                p.display()
            );
        }
        // Control: the owner lists its own.
        let owner = if std::ptr::eq(reader, &t2) { &t1 } else { &t2 };
        let (ok, out) = as_user(owner, &["ls", dir.join("hutch/storage").to_str().unwrap()]);
        assert!(ok, "{out}");
    }
    // Nor can t2 point hutch at t1's data: it is refused, not read.
    for args in [
        vec!["images"],
        vec!["logs", name1.as_str()],
        vec!["ps", "-a"],
    ] {
        let r = run_hutch(&t2, &args, &with_data(d1));
        assert_eq!(r.code(), Some(125), "{args:?}: {r}");
        let refused = [
            "must be a directory owned by you",
            "belongs to another user",
        ];
        assert!(refused.iter().any(|m| r.stderr.contains(m)), "{r}");
        assert!(!r.stdout.contains("log of t1"), "{r}");
    }
    // Control: t1 reads its own log.
    let r = run_hutch(&t1, &["logs", name1], &with_data(d1));
    assert_eq!(r.stdout, "log of t1\n", "{r}");
    for ((dir, name), u) in data.iter().zip([&t1, &t2]) {
        let r = run_hutch(u, &["rm", name], &with_data(dir));
        assert_eq!(r.code(), Some(0), "{r}");
    }
}

#[test]
fn a_data_dir_planted_by_another_user_is_refused() {
    let (Some(t1), Some(t2)) = (TestUser::t1(), TestUser::t2()) else {
        return;
    };
    let victim_run = |data: &Path| run_hutch(&t1, &["images"], &with_data(data));
    // 1. XDG_DATA_HOME is the shared dir itself and t2 planted `hutch`
    //    there: as a symlink to a dir t2 owns, then as t2's own 0777 dir.
    let shared = Shared::new("plant");
    let theirs = shared.0.join("theirs");
    fs::create_dir(&theirs).unwrap();
    fs::set_permissions(&theirs, fs::Permissions::from_mode(0o777)).unwrap();
    std::os::unix::fs::chown(&theirs, Some(t2.uid), Some(t2.gid)).unwrap();
    let planted = shared.0.join("hutch");
    std::os::unix::fs::symlink(&theirs, &planted).unwrap();
    std::os::unix::fs::lchown(&planted, Some(t2.uid), Some(t2.gid)).unwrap();
    let r = victim_run(&shared.0);
    assert_eq!(r.code(), Some(125), "{r}");
    assert!(r.stderr.contains("must be a directory owned by you"), "{r}");
    assert_eq!(
        fs::read_dir(&theirs).unwrap().count(),
        0,
        "written through the plant"
    );
    fs::remove_file(&planted).unwrap();
    fs::rename(&theirs, &planted).unwrap();
    let r = victim_run(&shared.0);
    assert_eq!(r.code(), Some(125), "{r}");
    assert_eq!(
        fs::read_dir(&planted).unwrap().count(),
        0,
        "written into the plant"
    );
    // 2. XDG_DATA_HOME names a dir t2 made (t2 could swap `hutch` in it).
    let parent = shared.0.join("t1-share");
    fs::create_dir(&parent).unwrap();
    fs::set_permissions(&parent, fs::Permissions::from_mode(0o777)).unwrap();
    std::os::unix::fs::chown(&parent, Some(t2.uid), Some(t2.gid)).unwrap();
    let r = victim_run(&parent);
    assert_eq!(r.code(), Some(125), "{r}");
    assert!(r.stderr.contains("belongs to another user"), "{r}");
    assert_eq!(
        fs::read_dir(&parent).unwrap().count(),
        0,
        "nothing made in it"
    );
    // Control: a fresh path under the same shared dir works, made 0700.
    let own = shared.0.join("t1-own");
    let r = victim_run(&own);
    assert_eq!(r.code(), Some(0), "{r}");
    assert_eq!(mode(&own.join("hutch")), 0o700);
    assert_eq!(fs::metadata(own.join("hutch")).unwrap().uid(), t1.uid);
}

/// The /tmp/hutch-UID runtime fallback planted as a real directory that
/// belongs to another user (tests/escape.rs covers the symlink).
#[test]
fn a_runtime_dir_under_tmp_owned_by_another_user_is_refused() {
    let (Some(t1), Some(t2)) = (TestUser::t1(), TestUser::t2()) else {
        return;
    };
    let planted = PathBuf::from(format!("/tmp/hutch-{}", t1.uid));
    let _ = fs::remove_dir_all(&planted).or_else(|_| fs::remove_file(&planted));
    fs::create_dir(&planted).unwrap();
    fs::set_permissions(&planted, fs::Permissions::from_mode(0o777)).unwrap();
    std::os::unix::fs::chown(&planted, Some(t2.uid), Some(t2.gid)).unwrap();
    let opts = Opts {
        env: vec![("XDG_RUNTIME_DIR".into(), String::new())],
        ..Opts::default()
    };
    let args = ["run", "--rm", "--rootfs", &images().rootfs(), "true"];
    let r = run_hutch(&t1, &args, &opts);
    let left = fs::read_dir(&planted).unwrap().count();
    let _ = fs::remove_dir_all(&planted);
    assert_eq!(r.code(), Some(125), "{r}");
    assert!(r.stderr.contains("must be a directory owned by you"), "{r}");
    assert_eq!(left, 0, "nothing written into the plant");
    // Control: without the plant the run works.
    let r = run_hutch(&t1, &args, &opts);
    assert_eq!(r.code(), Some(0), "{r}");
    let _ = fs::remove_dir_all(&planted);
}
