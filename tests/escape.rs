//! Escape probes (issue 7, first part): each asserts that an attack from
//! inside a container fails, with a control run showing that the same
//! probe does work where it should, so a probe that cannot work at all
//! never passes silently. All run as the unprivileged user hutch-t1.

mod common;

use std::fs;
use std::path::Path;

use common::*;

/// A copy of the test rootfs the user owns (so hutch may create mount
/// points in it), with `edit` applied as root.
fn own_rootfs(u: &TestUser, name: &str, edit: impl FnOnce(&Path)) -> String {
    let dir = u.scratch(name);
    let (ok, out) = host(
        "cp",
        &[
            "-a",
            &format!("{}/.", images().rootfs()),
            &dir.display().to_string(),
        ],
    );
    assert!(ok, "{out}");
    edit(&dir);
    let (ok, out) = host(
        "chown",
        &[
            "-hR",
            &format!("{}:{}", u.uid, u.gid),
            &dir.display().to_string(),
        ],
    );
    assert!(ok, "{out}");
    dir.display().to_string()
}

fn unique(tag: &str) -> String {
    format!("/var/tmp/hutch-escape-{tag}-{}", std::process::id())
}

/// CVE-2019-5736 class: with --init, pid 1 is hutch's own code; the
/// container must not be able to open the hutch binary through it.
#[test]
fn the_init_process_binary_cannot_be_opened_or_overwritten() {
    let Some(u) = TestUser::t1() else { return };
    let before = fs::read(hutch_bin()).unwrap();
    let probe = "cat /proc/1/exe > /dev/null 2>&1 && echo READ; \
                 echo x 2>/dev/null >> /proc/1/exe && echo WROTE; \
                 readlink /proc/1/exe > /dev/null 2>&1 && echo LINK; echo end";
    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            "--init",
            "--rootfs",
            &images().rootfs(),
            "sh",
            "-c",
            probe,
        ],
    );
    assert_eq!(out, "end\n", "pid 1 (hutch's reaper) must be out of reach");
    assert_eq!(
        fs::read(hutch_bin()).unwrap(),
        before,
        "the hutch binary changed"
    );
    // Control: without --init, pid 1 is the shell itself, whose binary
    // (busybox, inside the container) the same probe reads.
    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            "--rootfs",
            &images().rootfs(),
            "sh",
            "-c",
            probe,
        ],
    );
    assert!(
        out.contains("READ") && out.contains("LINK"),
        "control: {out}"
    );
}

/// CVE-2024-21626 class: a descriptor hutch inherited (here fd 7 on a
/// host directory) must not reach the container's command.
#[test]
fn descriptors_hutch_inherited_do_not_reach_the_container() {
    let Some(u) = TestUser::t1() else { return };
    let opts = Opts {
        fd7: Some("/etc".into()),
        ..Opts::default()
    };
    let r = run_hutch(
        &u,
        &[
            "run",
            "--rm",
            "--rootfs",
            &images().rootfs(),
            "sh",
            "-c",
            "ls /proc/self/fd; readlink /proc/self/cwd",
        ],
        &opts,
    );
    assert_eq!(r.code(), Some(0), "{r}");
    let fds: Vec<&str> = r.stdout.lines().collect();
    // ls itself holds fd 3 for the directory it lists.
    assert_eq!(fds, ["0", "1", "2", "3", "/"], "{r}");
    // Control: the harness really hands hutch fd 7 (seen by a host
    // process started the same way).
    let (ok, out) = host("sh", &["-c", "exec 7</etc; ls /proc/self/fd"]);
    assert!(ok && out.lines().any(|l| l == "7"), "control: {out}");
}

/// Symlinks in the image that point out of the rootfs must not redirect
/// hutch's mounts or the files it creates (/etc/hosts) to the host.
#[test]
fn mount_points_symlinked_out_of_the_rootfs_stay_inside_it() {
    let Some(u) = TestUser::t1() else { return };
    let (outside_dir, outside_hosts) = (unique("mnt"), unique("hosts"));
    let _ = fs::remove_dir_all(&outside_dir);
    let _ = fs::remove_file(&outside_hosts);
    let rootfs = own_rootfs(&u, "symlinked", |d| {
        let _ = fs::remove_dir_all(d.join("mnt"));
        std::os::unix::fs::symlink(&outside_dir, d.join("mnt")).unwrap();
        let _ = fs::remove_file(d.join("etc/hosts"));
        std::os::unix::fs::symlink(&outside_hosts, d.join("etc/hosts")).unwrap();
    });
    // Control: on the host, these links do lead outside the rootfs.
    assert_eq!(
        fs::read_link(Path::new(&rootfs).join("mnt")).unwrap(),
        Path::new(&outside_dir)
    );
    let vol = u.scratch("vol");
    let v = format!("{}:/mnt", vol.display());
    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            "-v",
            &v,
            "--rootfs",
            &rootfs,
            "sh",
            "-c",
            "echo inside > /mnt/f; cat /etc/hosts | head -1",
        ],
    );
    assert!(out.starts_with("127.0.0.1"), "{out}");
    assert_eq!(fs::read_to_string(vol.join("f")).unwrap(), "inside\n");
    assert!(
        !Path::new(&outside_dir).exists(),
        "a mount point was created on the host"
    );
    assert!(
        !Path::new(&outside_hosts).exists(),
        "/etc/hosts was created on the host"
    );
    // The targets were made inside the rootfs instead.
    assert!(Path::new(&rootfs)
        .join(outside_dir.trim_start_matches('/'))
        .is_dir());
}

/// With XDG_RUNTIME_DIR unset hutch uses /tmp/hutch-UID; one planted by
/// another user (a symlink into a place they control) is refused.
#[test]
fn a_planted_runtime_dir_under_tmp_is_refused() {
    let Some(u) = TestUser::t1() else { return };
    let planted = std::path::PathBuf::from(format!("/tmp/hutch-{}", u.uid));
    let target = unique("planted");
    let _ = fs::remove_dir_all(&planted).or_else(|_| fs::remove_file(&planted));
    fs::create_dir_all(&target).unwrap();
    std::os::unix::fs::symlink(&target, &planted).unwrap();
    let opts = Opts {
        env: vec![("XDG_RUNTIME_DIR".into(), String::new())],
        ..Opts::default()
    };
    let r = run_hutch(
        &u,
        &["run", "--rm", "--rootfs", &images().rootfs(), "true"],
        &opts,
    );
    let _ = fs::remove_file(&planted);
    assert_eq!(r.code(), Some(125), "{r}");
    assert!(r.stderr.contains("must be a directory owned by you"), "{r}");
    assert_eq!(
        fs::read_dir(&target).unwrap().count(),
        0,
        "nothing written through the plant"
    );
    let _ = fs::remove_dir_all(&target);
    // Control: without the plant the same run works and makes it 0700.
    let r = run_hutch(
        &u,
        &["run", "--rm", "--rootfs", &images().rootfs(), "true"],
        &opts,
    );
    assert_eq!(r.code(), Some(0), "{r}");
    let meta = fs::symlink_metadata(&planted).unwrap();
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert!(meta.is_dir() && meta.uid() == u.uid && meta.permissions().mode() & 0o777 == 0o700);
    let _ = fs::remove_dir_all(&planted);
}

/// Container root cannot make devices, mount, rewrite its id maps or
/// signal host processes; each control shows the probe itself works.
#[test]
fn container_root_cannot_mknod_mount_remap_or_signal_the_host() {
    let Some(u) = TestUser::t1() else { return };
    let rootfs = images().rootfs();
    let probe = "mknod /tmp/null c 1 3 2>/dev/null && echo MKNOD; \
                 mount -t tmpfs none /mnt 2>/dev/null && echo MOUNT; \
                 echo '0 0 1' 2>/dev/null > /proc/self/uid_map && echo REMAP; \
                 echo end";
    let out = hutch_ok(&u, &["run", "--rm", "--rootfs", &rootfs, "sh", "-c", probe]);
    assert_eq!(out, "end\n");
    // Control: with --privileged (CAP_SYS_ADMIN in the container's user
    // namespace, no seccomp) the mount probe succeeds; mknod and the map
    // stay refused by the kernel for any user namespace.
    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            "--privileged",
            "--rootfs",
            &rootfs,
            "sh",
            "-c",
            probe,
        ],
    );
    assert_eq!(out, "MOUNT\nend\n", "control");
    // A process of the same user outside the container is invisible.
    let mut outside = std::process::Command::new("setpriv")
        .args([
            &format!("--reuid={}", u.uid),
            &format!("--regid={}", u.gid),
            "--init-groups",
            "sleep",
            "30",
        ])
        .spawn()
        .unwrap();
    let pid = outside.id().to_string();
    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            "--rootfs",
            &rootfs,
            "sh",
            "-c",
            &format!("kill -9 {pid} 2>/dev/null && echo KILLED; echo end"),
        ],
    );
    let alive = outside.try_wait().unwrap().is_none();
    let _ = outside.kill();
    let _ = outside.wait();
    assert_eq!(out, "end\n");
    assert!(alive, "the host process was killed from the container");
}

/// Ubuntu's /etc/resolv.conf is a relative link to a file that does not
/// exist in a container (`../run/systemd/resolve/stub-resolv.conf`): the
/// target is created inside the rootfs and the container starts.
#[test]
fn dangling_relative_links_get_their_target_inside_the_rootfs() {
    let Some(u) = TestUser::t1() else { return };
    let rootfs = own_rootfs(&u, "ubuntu-like", |d| {
        let _ = fs::remove_file(d.join("etc/resolv.conf"));
        std::os::unix::fs::symlink(
            "../run/systemd/resolve/stub-resolv.conf",
            d.join("etc/resolv.conf"),
        )
        .unwrap();
        // `..` above the root stays at the root, as in the kernel.
        let _ = fs::remove_file(d.join("etc/hostname"));
        std::os::unix::fs::symlink(
            "../../../../../../etc/hostname-real",
            d.join("etc/hostname"),
        )
        .unwrap();
    });
    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            "-h",
            "boxname",
            "--rootfs",
            &rootfs,
            "cat",
            "/etc/hostname",
        ],
    );
    assert_eq!(out, "boxname\n");
    let root = Path::new(&rootfs);
    assert!(root.join("run/systemd/resolve/stub-resolv.conf").is_file());
    assert!(root.join("etc/hostname-real").is_file());
    assert!(
        !Path::new("/etc/hostname-real").exists(),
        "created on the host"
    );
}
