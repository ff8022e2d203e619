//! Escape probes (issue 7, first part): each asserts that an attack from
//! inside a container fails, with a control run showing that the same
//! probe does work where it should, so a probe that cannot work at all
//! never passes silently. All run as the unprivileged user hutch-t1.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use common::*;

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
    })
    .display()
    .to_string();
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
    })
    .display()
    .to_string();
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

/// The classic chroot escape (mkdir x; chroot x; chdir .. many times;
/// chroot .) as container root, which holds CAP_SYS_CHROOT: the climb stops
/// at the container's root (pivot_root, a mount namespace of its own), so
/// files that exist only on the host stay invisible.
#[test]
fn the_chroot_escape_stops_at_the_container_root() {
    let Some(u) = TestUser::t1() else { return };
    let marker = unique("chroot-marker");
    fs::write(&marker, "host only\n").unwrap();
    let bin = hutch_bin().display().to_string();
    let r = hutch_run(
        &u,
        &[
            "run",
            "--rm",
            "--rootfs",
            &images().rootfs(),
            "sh",
            "-c",
            &format!("chrootprobe {marker} && chrootprobe {bin}"),
        ],
    );
    // Control: the same probe, run by host root in a plain chroot(1) into
    // a copy of the rootfs, does reach the host's root and sees the marker.
    let copy = own_rootfs(&u, "chroot-control", |_| {})
        .display()
        .to_string();
    let (ok, control) = host("chroot", &[&copy, "/usr/local/bin/chrootprobe", &marker]);
    let _ = fs::remove_file(&marker);
    assert_eq!(r.code(), Some(0), "{r}");
    // The attempt itself ran: both chroot calls succeeded in the container.
    assert_eq!(r.stdout.matches("chroot .: ok").count(), 2, "{r}");
    assert!(
        r.stdout
            .contains(&format!("marker {marker}: absent errno=2")),
        "the host marker is visible after the chroot escape\n{r}"
    );
    assert!(
        r.stdout.contains(&format!("marker {bin}: absent errno=2")),
        "the hutch binary is visible after the chroot escape\n{r}"
    );
    assert!(
        ok && control.contains(&format!("marker {marker}: visible")),
        "control: a plain chroot is escapable\n{control}"
    );
}

/// ptrace from container root: hutch's reaper (pid 1 under --init) is
/// non-dumpable and its memory belongs to the initial user namespace, so
/// attaching fails, even with CAP_SYS_PTRACE added in the container. (A
/// host process of the same user is not in the container's pid namespace
/// at all: see the kill probe above.)
#[test]
fn container_root_cannot_ptrace_the_init_process() {
    let Some(u) = TestUser::t1() else { return };
    let rootfs = images().rootfs();
    for extra in [&[][..], &["--cap-add", "SYS_PTRACE"][..]] {
        let mut args = vec!["run", "--rm", "--init"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[
            "--rootfs",
            &rootfs,
            "sh",
            "-c",
            "ptraceprobe 1; ptraceprobe child",
        ]);
        let out = hutch_ok(&u, &args);
        // Control (second line): the default seccomp profile allows ptrace
        // (kernel >= 4.8, as Docker's), and the probe attaches to its own
        // child.
        assert_eq!(
            out, "attach 1: errno=1 (Operation not permitted)\nattach child: ok\n",
            "with {extra:?}"
        );
    }
}

/// The "shocker" escape: open_by_handle_at on guessed handles reads host
/// files past any chroot or mount namespace. Refused by seccomp by default;
/// and since the kernel wants CAP_DAC_READ_SEARCH in the *initial* user
/// namespace, still refused with that capability added and seccomp off.
#[test]
fn open_by_handle_at_is_refused_even_with_dac_read_search_and_no_seccomp() {
    let Some(u) = TestUser::t1() else { return };
    let rootfs = images().rootfs();
    for extra in [
        &[][..],
        &[
            "--cap-add",
            "DAC_READ_SEARCH",
            "--security-opt",
            "seccomp=unconfined",
        ][..],
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--rootfs", &rootfs, "handleprobe", "/etc/passwd"]);
        let out = hutch_ok(&u, &args);
        // name_to_handle_at needs no privilege: the probe gets a real
        // handle, so the refusal is about open_by_handle_at itself.
        assert_eq!(
            out,
            "name_to_handle_at /etc/passwd: ok\nopen_by_handle_at: errno=1 (Operation not permitted)\n",
            "with {extra:?}"
        );
    }
    // Control: host root (CAP_DAC_READ_SEARCH in the initial namespace)
    // runs the same probe binary and opens the file by its handle.
    let probe = format!("{rootfs}/usr/local/bin/handleprobe");
    let (ok, out) = host(&probe, &["/etc/passwd"]);
    assert!(
        ok && out.contains("open_by_handle_at: ok"),
        "control: {out}"
    );
}

/// Container root cannot make /proc/sys or /sys writable, nor bind over or
/// unmount a masked path (no CAP_SYS_ADMIN; seccomp refuses mount).
#[test]
fn container_root_cannot_remount_proc_sys_or_unmask_paths() {
    let Some(u) = TestUser::t1() else { return };
    let rootfs = images().rootfs();
    let probe = "touch /tmp/f; mkdir -p /tmp/d; \
                 for t in /proc/sys /sys /proc; do \
                   mount -o remount,rw $t 2>/dev/null && echo RW:$t; done; \
                 mount --bind /tmp/f /proc/keys 2>/dev/null && echo BIND:keys; \
                 mount --bind /tmp/d /sys/firmware 2>/dev/null && echo BIND:firmware; \
                 umount /proc/keys 2>/dev/null && echo UMOUNT:keys; \
                 umount /proc/timer_list 2>/dev/null && echo UMOUNT:timer_list; \
                 cat /proc/sys/vm/swappiness 2>/dev/null > /proc/sys/vm/swappiness && echo SYSCTL; \
                 awk '$5==\"/proc/sys\"||$5==\"/sys\"{print $5, substr($6,1,2)}' /proc/self/mountinfo; \
                 echo end";
    let out = hutch_ok(&u, &["run", "--rm", "--rootfs", &rootfs, "sh", "-c", probe]);
    assert_eq!(out, "/sys ro\n/proc/sys ro\nend\n");
    // Control: --privileged (CAP_SYS_ADMIN in the container's own user
    // namespace, no seccomp) shows the mount probes do work. As in Docker,
    // a privileged container gets no masked or read-only /proc paths and a
    // read-write /sys, so there is no /proc/sys mount to remount and
    // nothing to unmask (timer_list is not a mount point); the binds land
    // in the container's own mount namespace and /proc/keys' bind comes
    // off again. Remounting /proc works: it is the container's own procfs
    // instance, whose superblock belongs to the container's user namespace.
    // Remounting /sys does not: it is the host's sysfs superblock (owned by
    // the initial user namespace), so even privileged container root lacks
    // CAP_SYS_ADMIN over it. Host-global sysctls stay unwritable: their
    // files belong to host root, which is unmapped (nobody) in the
    // container.
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
    assert_eq!(
        out, "RW:/proc\nBIND:keys\nBIND:firmware\nUMOUNT:keys\n/sys rw\nend\n",
        "control"
    );
}

/// Docker's default seccomp profile: keyctl and add_key (keyrings are not
/// namespaced), unshare(CLONE_NEWUSER) and clone3 (whose flags seccomp
/// cannot see) are refused.
#[test]
fn keyctl_add_key_nested_userns_and_clone3_are_refused() {
    let Some(u) = TestUser::t1() else { return };
    let rootfs = images().rootfs();
    let out = hutch_ok(&u, &["run", "--rm", "--rootfs", &rootfs, "nsprobe"]);
    assert_eq!(
        out,
        "keyctl: errno=1 (Operation not permitted)\n\
         add_key: errno=1 (Operation not permitted)\n\
         unshare: errno=1 (Operation not permitted)\n\
         clone3: errno=38 (Function not implemented)\n"
    );
    // Control: without the filter the kernel allows a nested user
    // namespace and clone3, so the refusals above are seccomp's.
    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            "--security-opt",
            "seccomp=unconfined",
            "--rootfs",
            &rootfs,
            "nsprobe",
        ],
    );
    assert!(
        out.contains("unshare: ok\n") && out.contains("clone3: ok\n"),
        "control: {out}"
    );
}

/// KiB used on the host's /dev/shm.
fn host_shm_used_kib() -> u64 {
    let (ok, out) = host("df", &["-k", "--output=used", "/dev/shm"]);
    assert!(ok, "{out}");
    out.lines().nth(1).unwrap().trim().parse().unwrap()
}

/// Filling /dev/shm in a container stops at its 64 MiB and costs the
/// host's /dev/shm nothing.
#[test]
fn filling_dev_shm_stops_at_64_mib_and_spares_the_hosts() {
    let Some(u) = TestUser::t1() else { return };
    let (ok, fstype) = host("stat", &["-f", "-c", "%T", "/dev/shm"]);
    if !require(
        "host /dev/shm",
        ok && fstype.trim() == "tmpfs",
        "host /dev/shm is not a tmpfs",
    ) {
        return;
    }
    let before = host_shm_used_kib();
    let mut running = spawn_hutch(
        &u,
        &[
            "run",
            "--rm",
            "--rootfs",
            &images().rootfs(),
            "sh",
            "-c",
            "df -k /dev/shm | tail -1; shmfill /dev/shm/fill 5",
        ],
        &Opts {
            timeout: Duration::from_secs(60),
            ..Opts::default()
        },
    );
    let full = running.wait_for_stdout("full\n", Duration::from_secs(30));
    // Measured while the container holds its 64 MiB.
    let during = host_shm_used_kib();
    let r = running.wait();
    assert!(full, "{r}");
    assert_eq!(r.code(), Some(0), "{r}");
    // Control: the container's /dev/shm is a tmpfs of its own, 64 MiB.
    let df: Vec<&str> = r
        .stdout
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(df[..2], ["tmpfs", "65536"], "{r}");
    assert!(
        r.stdout
            .contains("wrote 67108864 errno=28 (No space left on device)\n"),
        "{r}"
    );
    // Tolerance for other users of the host's /dev/shm: well under the 64
    // MiB the container wrote.
    assert!(
        during < before + 16 * 1024,
        "host /dev/shm grew from {before} to {during} KiB"
    );
}

/// setgroups and the id maps cannot be rewritten from inside: not by
/// default container root, and not with --privileged for the single-id
/// fallback, where setgroups is "deny" (re-allowing it would let the
/// container drop groups that deny it access on the host).
#[test]
fn setgroups_and_id_maps_cannot_be_rewritten_from_inside() {
    let Some(u) = TestUser::t1() else { return };
    let rootfs = images().rootfs();
    let probe = "cat /proc/1/setgroups; \
                 echo allow 2>/dev/null > /proc/1/setgroups && echo ALLOW; \
                 echo deny 2>/dev/null > /proc/self/setgroups && echo DENY; \
                 echo '0 0 1' 2>/dev/null > /proc/1/uid_map && echo UIDMAP; \
                 echo '0 0 1' 2>/dev/null > /proc/1/gid_map && echo GIDMAP; \
                 echo end";
    let out = hutch_ok(&u, &["run", "--rm", "--rootfs", &rootfs, "sh", "-c", probe]);
    assert_eq!(out, "allow\nend\n");
    // With subordinate ids setgroups is already "allow": with --privileged
    // writing "allow" again is the kernel's accepted no-op, but "deny"
    // (after the gid map is written) and the maps stay refused.
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
    assert_eq!(out, "allow\nALLOW\nend\n", "privileged");
    let Some(u2) = TestUser::t2() else { return };
    for extra in [&[][..], &["--privileged"][..]] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--rootfs", &rootfs, "sh", "-c", probe]);
        let out = hutch_ok(&u2, &args);
        assert_eq!(out, "deny\nend\n", "single-id map with {extra:?}");
    }
    // Control: the write works where the kernel allows it: host root
    // writes setgroups of a fresh user namespace whose maps are unwritten.
    let (ok, out) = host(
        "sh",
        &[
            "-c",
            "unshare -U sleep 10 & pid=$!; \
             while [ -d /proc/$pid ] && [ \"$(readlink /proc/$pid/ns/user)\" = \"$(readlink /proc/self/ns/user)\" ]; \
             do sleep 0.05; done; \
             echo deny > /proc/$pid/setgroups && cat /proc/$pid/setgroups; kill $pid",
        ],
    );
    assert!(ok && out == "deny\n", "control: {out}");
}

/// A copy of hutch owned by the test user, as in `~/.local/bin`: the
/// container's root is that user, so only hutch's guard stands between a
/// container and this file.
fn own_hutch(u: &TestUser) -> std::path::PathBuf {
    let bin = u.scratch("bin").join("hutch");
    fs::copy(hutch_bin(), &bin).unwrap();
    std::os::unix::fs::chown(&bin, Some(u.uid), Some(u.gid)).unwrap();
    bin
}

/// CVE-2019-5736: the image's `/bin/evil` is `#!/proc/self/exe`, so when
/// the user runs `hutch exec CTR /bin/evil` the kernel runs hutch itself
/// in the container. A probe waiting there catches its /proc/PID/exe and
/// tries to rewrite it after it exits. It only reaches hutch's sealed
/// memfd copy; the user's binary is unchanged.
#[test]
fn a_container_cannot_overwrite_the_callers_own_hutch_binary() {
    let Some(u) = TestUser::t1() else { return };
    let bin = own_hutch(&u);
    let before = fs::read(&bin).unwrap();
    let rootfs = evil_rootfs(&u);
    let attack = [
        "run", "--name", "victim", "--rootfs", &rootfs, "exeprobe", "attack", "30",
    ];
    let mut ctr = spawn_hutch_bin(&u, &bin, &attack, &Opts::default());
    assert!(
        ctr.wait_for_stdout("WAITING", Duration::from_secs(30)),
        "{}",
        ctr.stderr_now()
    );
    // The hutch of `run` runs from the sealed copy too (its clone is the
    // container's init until execve): even host root cannot write it.
    let exe = fs::read_link(format!("/proc/{}/exe", hutch_child(ctr.pid()))).unwrap();
    assert!(exe.to_string_lossy().starts_with("/memfd:hutch"), "{exe:?}");
    let w = fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{}/exe", hutch_child(ctr.pid())))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"PWNED"));
    // ETXTBSY while it runs; the seals refuse writes once it has exited.
    let err = w.map_err(|e| e.raw_os_error());
    assert!(
        matches!(err, Err(Some(libc::ETXTBSY | libc::EPERM))),
        "{err:?}"
    );
    let exe = fs::File::open(format!("/proc/{}/exe", hutch_child(ctr.pid()))).unwrap();
    let seals = nix::fcntl::fcntl(
        std::os::fd::AsRawFd::as_raw_fd(&exe),
        nix::fcntl::FcntlArg::F_GET_SEALS,
    );
    let want = libc::F_SEAL_WRITE | libc::F_SEAL_GROW | libc::F_SEAL_SHRINK | libc::F_SEAL_SEAL;
    assert_eq!(seals.map(|s| s & want), Ok(want));
    let r = exec_evil_until_caught(&u, &bin, ctr);
    assert!(
        r.stdout.contains("CAUGHT /memfd:hutch"),
        "the probe caught hutch: {r}"
    );
    assert!(
        r.stdout.contains("DENIED EPERM") && !r.stdout.contains("WROTE"),
        "{r}"
    );
    assert!(
        fs::read(&bin).unwrap() == before,
        "the user's hutch binary changed"
    );

    // Control: the same technique rewrites an executable the container owns.
    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            "--rootfs",
            &rootfs,
            "sh",
            "-c",
            "mkdir /tmp/own && cp /bin/busybox /tmp/own/busybox && \
             exeprobe control /tmp/own/busybox; head -c 5 /tmp/own/busybox; echo",
        ],
    );
    assert_eq!(out, "CAUGHT /tmp/own/busybox\nWROTE\nPWNED\n", "control");
}

/// The same attack against a binary owned by root that nobody else may
/// write (a packaged install): hutch runs it in place, without the memfd
/// copy, and the probe that catches it is refused by the file's owner and
/// mode, since container root is only the caller.
#[test]
fn a_root_owned_hutch_runs_in_place_and_stays_out_of_reach() {
    let Some(u) = TestUser::t1() else { return };
    let bin = hutch_bin().to_path_buf();
    let meta = fs::metadata(&bin).unwrap();
    assert!(
        meta.uid() == 0 && meta.mode() & 0o022 == 0,
        "the harness copy is root's, 0755"
    );
    let before = fs::read(&bin).unwrap();
    let rootfs = evil_rootfs(&u);
    let attack = [
        "run", "--name", "victim", "--rootfs", &rootfs, "exeprobe", "attack", "30",
    ];
    let mut ctr = spawn_hutch(&u, &attack, &Opts::default());
    assert!(
        ctr.wait_for_stdout("WAITING", Duration::from_secs(30)),
        "{}",
        ctr.stderr_now()
    );
    let exe = fs::read_link(format!("/proc/{}/exe", hutch_child(ctr.pid()))).unwrap();
    assert_eq!(exe, bin, "run in place, not from a copy");
    let r = exec_evil_until_caught(&u, &bin, ctr);
    assert!(
        r.stdout.contains(&format!("CAUGHT {}", bin.display())),
        "{r}"
    );
    assert!(
        r.stdout.contains("DENIED") && !r.stdout.contains("WROTE"),
        "{r}"
    );
    assert!(
        fs::read(&bin).unwrap() == before,
        "the hutch binary changed"
    );
}

/// A rootfs of the user's whose `/bin/evil` is `#!/proc/self/exe`.
fn evil_rootfs(u: &TestUser) -> String {
    own_rootfs(u, "evil-rootfs", |d| {
        let evil = d.join("bin/evil");
        fs::write(&evil, "#!/proc/self/exe\n").unwrap();
        fs::set_permissions(&evil, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    })
    .display()
    .to_string()
}

/// Runs `hutch exec victim /bin/evil` (hutch as the script's interpreter
/// in the container) until the waiting probe has caught it; returns the
/// container's run.
fn exec_evil_until_caught(u: &TestUser, bin: &Path, ctr: Running) -> Run {
    for _ in 0..20 {
        let r = run_hutch_bin(u, bin, &["exec", "victim", "/bin/evil"]);
        assert_ne!(r.code(), Some(0), "hutch as an interpreter fails: {r}");
        if ctr.stdout_now().contains("CAUGHT") {
            break;
        }
    }
    ctr.wait()
}

/// The hutch process of a `spawn_hutch` (the wrapper execs into it, so it
/// is the spawned pid itself).
fn hutch_child(pid: u32) -> u32 {
    pid
}

fn run_hutch_bin(u: &TestUser, bin: &Path, args: &[&str]) -> Run {
    spawn_hutch_bin(u, bin, args, &Opts::default()).wait()
}

/// CVE-2024-21626: with a host directory leaked on fd 7, a working
/// directory of `/proc/self/fd/7` would put the command on the host.
/// Both `run` and `exec` refuse it (126) and show only stdio.
#[test]
fn a_leaked_descriptor_cannot_become_the_working_directory() {
    let Some(u) = TestUser::t1() else { return };
    let fd7 = Opts {
        fd7: Some("/etc".into()),
        ..Opts::default()
    };
    let rootfs = images().rootfs();
    let base = ["run", "--rm", "--rootfs", rootfs.as_str()];
    for wd in ["/proc/self/fd/7", "/proc/1/cwd/../../etc"] {
        let args = [&base[..], &["-w", wd, "pwd"]].concat();
        let r = run_hutch(&u, &args, &fd7);
        assert_eq!(r.code(), Some(126), "run -w {wd}: {r}");
        assert!(r.stderr.contains("enter working directory"), "{r}");
    }
    // Control: an ordinary directory and `..` past the root stay inside.
    let args = [&base[..], &["-w", "/../../tmp", "pwd"]].concat();
    let r = run_hutch(&u, &args, &fd7);
    assert_eq!((r.code(), r.stdout.as_str()), (Some(0), "/tmp\n"), "{r}");

    let mut ctr = spawn_hutch(
        &u,
        &[
            "run",
            "--name",
            "fds",
            "--rootfs",
            &rootfs,
            "sh",
            "-c",
            "echo up; exec sleep 60",
        ],
        &Opts::default(),
    );
    assert!(ctr.wait_for_stdout("up", Duration::from_secs(30)));
    let exec = |args: &[&str]| run_hutch(&u, &[&["exec"], args].concat(), &fd7);
    let r = exec(&["-w", "/proc/self/fd/7", "fds", "pwd"]);
    assert_eq!(r.code(), Some(126), "exec -w: {r}");
    let r = exec(&["fds", "ls", "/proc/self/fd"]);
    assert_eq!(r.stdout, "0\n1\n2\n3\n", "exec's fds: {r}");
    let r = exec(&["-w", "/tmp", "fds", "pwd"]);
    assert_eq!(r.stdout, "/tmp\n", "control: {r}");
    ctr.signal(Signal::SIGKILL);
    let _ = ctr.wait();
}
