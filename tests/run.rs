//! Integration tests of `hutch run`, run as the unprivileged users hutch-t1
//! (with subordinate id ranges) and hutch-t2 (without). See tests/common.
//! Run them with `sudo tests/run.sh`.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use common::*;

/// Parses an id map (/proc/PID/uid_map) into (inside, outside, count) triples.
fn parse_map(text: &str) -> Vec<(u32, u32, u32)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<u32> = l
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            (f.len() == 3).then(|| (f[0], f[1], f[2]))
        })
        .collect()
}

/// The section of `text` between `--name--` and the next `--` marker line.
fn section<'a>(text: &'a str, name: &str) -> &'a str {
    let start = format!("--{name}--\n");
    let i = text
        .find(&start)
        .unwrap_or_else(|| panic!("no section {name} in:\n{text}"))
        + start.len();
    let rest = &text[i..];
    &rest[..rest.find("\n--").map(|j| j + 1).unwrap_or(rest.len())]
}

fn line_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
}

// ---------------------------------------------------------------------------
// identity: user namespace maps, loginuid, sessionid, audit

#[test]
fn container_root_is_the_caller_and_ids_map_to_subid_ranges() {
    let Some(u) = TestUser::t1() else { return };
    let (su, sg) = (u.subuid.unwrap(), u.subgid.unwrap());
    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            "--rootfs",
            &images().rootfs(),
            "sh",
            "-c",
            "echo --id--; id -u; id -g; echo --uid--; cat /proc/self/uid_map; echo --gid--; cat /proc/self/gid_map; echo --end--",
        ],
    );
    assert_eq!(section(&out, "id").trim(), "0\n0", "{out}");
    assert_eq!(
        parse_map(section(&out, "uid")),
        vec![(0, u.uid, 1), (1, su.0, su.1)],
        "uid_map: {out}"
    );
    assert_eq!(
        parse_map(section(&out, "gid")),
        vec![(0, u.gid, 1), (1, sg.0, sg.1)],
        "gid_map: {out}"
    );
}

/// Starts a long sleep in a container, finds it from the host among hutch's
/// descendants, and returns (run, host pid of sleep, stdout so far).
fn start_sleeper(u: &TestUser, extra: &[&str]) -> (Running, u32) {
    let rootfs = images().rootfs();
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[
        "--rootfs",
        &rootfs,
        "sh",
        "-c",
        "read l < /proc/self/loginuid; echo loginuid=$l; exec sleep 30",
    ]);
    let (r, sleeper) = spawn_to_sleep(u, &args, "loginuid=");
    let Some(pid) = sleeper else {
        let out = r.wait();
        panic!("no sleep process found under hutch\n{out}");
    };
    (r, pid)
}

/// Spawns hutch with `args`, waits for `marker` on its stdout, then finds
/// the container's `sleep` among hutch's descendants: its host pid, or None
/// when the marker or the sleep never came.
fn spawn_to_sleep(u: &TestUser, args: &[&str], marker: &str) -> (Running, Option<u32>) {
    let mut r = spawn_hutch(
        u,
        args,
        &Opts {
            timeout: Duration::from_secs(60),
            ..Opts::default()
        },
    );
    let started = r.wait_for_stdout(marker, Duration::from_secs(30));
    let mut sleeper = None;
    for _ in 0..200 {
        if !started {
            break;
        }
        sleeper = r
            .descendants()
            .into_iter()
            .find(|p| proc_read(*p, "comm").as_deref() == Some("sleep"));
        if sleeper.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (r, sleeper)
}

#[test]
fn loginuid_and_sessionid_of_the_caller_reach_container_processes() {
    let Some(u) = TestUser::t1() else { return };
    let (mut r, pid) = start_sleeper(&u, &[]);
    let session = r.session().expect("session id of the caller");
    let host_loginuid = proc_read(pid, "loginuid");
    let host_session = proc_read(pid, "sessionid");
    let host_uid = proc_read(pid, "status").and_then(|s| line_value(&s, "Uid:"));
    // The container's command was started as pid 1 of its namespace, so only
    // a signal from outside can kill sleep (which has no handler).
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    let out = r.wait();
    assert_eq!(
        host_loginuid.as_deref(),
        Some(u.uid.to_string().as_str()),
        "loginuid on the host\n{out}"
    );
    assert_eq!(
        host_session.as_deref(),
        Some(session.to_string().as_str()),
        "sessionid on the host\n{out}"
    );
    // Container root is the caller: real uid of the process on the host.
    let host_uid = host_uid.unwrap_or_default();
    assert_eq!(
        host_uid.split_whitespace().next(),
        Some(u.uid.to_string().as_str()),
        "host uid of container root: {host_uid}"
    );
    assert!(out.stdout.contains("loginuid=0\n"), "inside: {out}");
    assert!(!out.stdout.contains("4294967295"), "{out}");
    assert_eq!(out.code(), Some(137), "killed by SIGKILL -> 137\n{out}");
}

#[test]
fn loginuid_inside_with_keep_id_is_the_callers_uid() {
    let Some(u) = TestUser::t1() else { return };
    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            "--userns",
            "keep-id",
            "--rootfs",
            &images().rootfs(),
            "sh",
            "-c",
            "read l < /proc/self/loginuid; echo loginuid=$l; echo uid=$(id -u)",
        ],
    );
    assert!(out.contains(&format!("loginuid={}\n", u.uid)), "{out}");
    assert!(out.contains(&format!("uid={}\n", u.uid)), "{out}");
}

/// Removes an audit watch when dropped (also when the test fails).
struct AuditWatch {
    path: String,
    key: String,
}

impl Drop for AuditWatch {
    fn drop(&mut self) {
        let (ok, out) = host("auditctl", &["-W", &self.path, "-p", "wa", "-k", &self.key]);
        if !ok {
            eprintln!("removing audit watch {}: {out}", self.path);
        }
    }
}

fn audit_available() -> (bool, String) {
    if !have_tool("auditctl") || !have_tool("ausearch") {
        return (false, "auditctl/ausearch not installed (auditd)".into());
    }
    let (ok, status) = host("auditctl", &["-s"]);
    if !ok || !status.contains("enabled 1") {
        return (false, format!("audit not enabled: {status}"));
    }
    let (running, _) = host("pgrep", &["-x", "auditd"]);
    if !running {
        return (false, "auditd not running".into());
    }
    (true, String::new())
}

#[test]
fn audit_log_names_the_caller_for_writes_from_the_container() {
    let Some(u) = TestUser::t1() else { return };
    let (ok, why) = audit_available();
    if !require("audit", ok, &why) {
        return;
    }
    let vol = u.scratch("audited");
    let file = vol.join("file");
    fs::write(&file, "before\n").unwrap();
    std::os::unix::fs::chown(&file, Some(u.uid), Some(u.gid)).unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let key = format!("hutch-{}-{nanos}", std::process::id());
    let path = file.display().to_string();
    let (ok, out) = host("auditctl", &["-w", &path, "-p", "wa", "-k", &key]);
    assert!(ok, "auditctl -w: {out}");
    let _guard = AuditWatch {
        path: path.clone(),
        key: key.clone(),
    };

    let volarg = format!("{}:/mnt", vol.display());
    let r = hutch_run(
        &u,
        &[
            "run",
            "--rm",
            "-v",
            &volarg,
            "--rootfs",
            &images().rootfs(),
            "sh",
            "-c",
            "echo written-in-container >> /mnt/file",
        ],
    );
    assert_eq!(r.code(), Some(0), "{r}");
    assert!(fs::read_to_string(&file)
        .unwrap()
        .contains("written-in-container"));

    let mut found = String::new();
    for _ in 0..20 {
        let (_, out) = host("ausearch", &["-k", &key, "-i"]);
        if out.contains("auid=") {
            found = out;
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        found.contains(&format!("auid={}", u.name)),
        "ausearch -k {key} -i should name {}:\n{found}\n{r}",
        u.name
    );
    let session = r.session.expect("session id");
    assert!(
        found.contains(&format!("ses={session}")),
        "audit session should be the caller's ({session}):\n{found}"
    );
}

// ---------------------------------------------------------------------------
// namespaces and kernel interfaces

#[test]
fn the_command_is_pid_1() {
    let Some(u) = TestUser::t1() else { return };
    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            "--rootfs",
            &images().rootfs(),
            "sh",
            "-c",
            "echo $$",
        ],
    );
    assert_eq!(out.trim(), "1");
}

#[test]
fn hostname_is_set_and_isolated_from_the_host() {
    let Some(u) = TestUser::t1() else { return };
    let before = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            "--hostname",
            "hutchbox",
            "--rootfs",
            &images().rootfs(),
            "hostname",
        ],
    );
    assert_eq!(out, "hutchbox\n");
    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            "-h",
            "short",
            "--rootfs",
            &images().rootfs(),
            "cat",
            "/etc/hostname",
        ],
    );
    assert_eq!(out.trim(), "short", "/etc/hostname follows --hostname");
    // Changing it needs CAP_SYS_ADMIN (not in the default set, as in Docker);
    // with it, the change stays in the container's UTS namespace.
    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            "--cap-add",
            "SYS_ADMIN",
            "--rootfs",
            &images().rootfs(),
            "sh",
            "-c",
            "hostname changed-inside && hostname",
        ],
    );
    assert_eq!(out, "changed-inside\n");
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        before,
        "host name must not change"
    );
}

#[test]
fn sensitive_proc_files_are_masked_and_proc_sys_and_sys_are_read_only() {
    let Some(u) = TestUser::t1() else { return };
    // Docker's masked paths: the OCI defaults and powercap.
    const MASKED: [&str; 11] = [
        "/proc/acpi",
        "/proc/asound",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/proc/scsi",
        "/sys/firmware",
        "/sys/devices/virtual/powercap",
    ];
    let script = format!(
        "for f in {}; do [ -e $f ] && echo \"exists $f\"; done; sed 's/^/mountinfo /' /proc/self/mountinfo\n{}",
        MASKED.join(" "),
        r#"
if echo hacked > /proc/sys/kernel/hostname 2>/dev/null; then echo "procsys writable"; else echo "procsys ro"; fi
echo "hostname $(hostname)"
if echo 1 > /proc/sys/net/ipv4/ip_forward 2>/dev/null; then echo "netsys writable"; else echo "netsys ro"; fi
if mkdir /sys/fs/cgroup/hutch-test 2>/dev/null || touch /sys/hutch-test 2>/dev/null; then echo "sys writable"; else echo "sys ro"; fi
grep -E '^[^ ]+ /sys ' /proc/mounts
echo "firmware $(ls /sys/firmware 2>/dev/null | wc -l)"
"#
    );
    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "--hostname",
            "box",
            "--rootfs",
            &images().rootfs(),
            "sh",
            "-c",
            &script,
        ],
    );
    // Each masked path that exists is a mount of its own, the topmost
    // there: a read-only empty tmpfs on a directory, /dev/null bound on
    // a file. (Mount point, options, fstype, root.)
    let mounts: Vec<(&str, &str, &str, &str)> = out
        .lines()
        .filter_map(|l| l.strip_prefix("mountinfo "))
        .filter_map(|l| {
            let (a, b) = l.split_once(" - ")?;
            let a: Vec<&str> = a.split_whitespace().collect();
            let fstype = b.split_whitespace().next()?;
            Some((*a.get(4)?, *a.get(5)?, fstype, *a.get(3)?))
        })
        .collect();
    let existing: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("exists "))
        .collect();
    assert!(existing.contains(&"/proc/keys"), "{out}");
    for path in existing {
        let top = mounts
            .iter()
            .rev()
            .find(|m| m.0 == path)
            .unwrap_or_else(|| panic!("{path} is not masked by a mount of its own:\n{out}"));
        let (_, opts, fstype, root) = *top;
        let ro_tmpfs = fstype == "tmpfs" && opts.split(',').any(|o| o == "ro");
        let dev_null = root == "/null" && matches!(fstype, "devtmpfs" | "tmpfs");
        assert!(
            ro_tmpfs || dev_null,
            "{path}: masked by {top:?}, neither a read-only tmpfs nor /dev/null\n{out}"
        );
    }
    assert!(out.contains("procsys ro\n"), "{out}");
    assert!(out.contains("hostname box\n"), "{out}");
    assert!(out.contains("netsys ro\n"), "{out}");
    assert!(out.contains("sys ro\n"), "{out}");
    let sys_line = out
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("/sys"))
        .unwrap_or_else(|| panic!("/sys not mounted: {out}"));
    let opts = sys_line.split_whitespace().nth(3).unwrap_or("");
    assert!(
        opts.split(',').any(|o| o == "ro"),
        "/sys not ro: {sys_line}"
    );
    assert!(out.contains("firmware 0\n"), "/sys/firmware visible: {out}");
}

/// (mount point, fstype, source, root) of each mount in a mountinfo text.
fn mount_table(mountinfo: &str) -> std::collections::BTreeSet<(String, String, String, String)> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let (a, b) = l.split_once(" - ")?;
            let a: Vec<&str> = a.split_whitespace().collect();
            let b: Vec<&str> = b.split_whitespace().collect();
            Some((
                a.get(4)?.to_string(),
                b.first()?.to_string(),
                b.get(1)?.to_string(),
                a.get(3)?.to_string(),
            ))
        })
        .collect()
}

/// The host's mounts, as root in the initial mount namespace sees them;
/// without mounts below other hutch test directories (other test runs
/// on the same host may mount there meanwhile).
fn host_mounts(
    base: &std::path::Path,
) -> std::collections::BTreeSet<(String, String, String, String)> {
    let text = fs::read_to_string("/proc/1/mountinfo").unwrap();
    let others = base.parent().unwrap().join("hutch-test");
    let mine = format!("{}/", base.display());
    let others = others.display().to_string();
    mount_table(&text)
        .into_iter()
        .filter(|m| !m.0.starts_with(&others) || m.0.starts_with(&mine))
        .collect()
}

/// Removes a host SysV shared memory segment when dropped.
struct ShmSegment(String);

impl Drop for ShmSegment {
    fn drop(&mut self) {
        let _ = host("ipcrm", &["-m", &self.0]);
    }
}

#[test]
fn dev_holds_only_the_default_devices_and_the_host_is_untouched() {
    let Some(u) = TestUser::t1() else { return };
    if !require(
        "ipcmk (util-linux)",
        have_tool("ipcmk"),
        "ipcmk not installed",
    ) {
        return;
    }
    // A SysV shm segment of the same user on the host, for the IPC namespace.
    let (ok, out) = u.sh("ipcmk -M 4096");
    assert!(ok, "ipcmk: {out}");
    let shmid = out
        .trim()
        .rsplit(' ')
        .next()
        .filter(|id| id.parse::<u32>().is_ok())
        .unwrap_or_else(|| panic!("no shm id in `{out}`"))
        .to_string();
    let _segment = ShmSegment(shmid.clone());
    let host_shm = fs::read_to_string("/proc/sysvipc/shm").unwrap();
    assert!(
        host_shm
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some(shmid.as_str())),
        "control: the segment is on the host: {host_shm}"
    );

    let base = images().dir.parent().unwrap().to_path_buf();
    let before = host_mounts(&base);
    let script = r#"echo --dev--; ls -A /dev
echo --full--; dd if=/dev/zero of=/dev/full bs=1 count=1 2>&1; echo "dd=$?"
echo --paths--; for p in /proc/sysrq-trigger /proc/irq /proc/bus; do [ -e $p ] && echo "exists $p"; done
echo --mounts--; cat /proc/self/mountinfo
echo --shm--; cat /proc/sysvipc/shm
echo --end--; exec sleep 30"#;
    let rootfs = images().rootfs();
    let (r, sleeper) = spawn_to_sleep(
        &u,
        &["run", "--rm", "--rootfs", &rootfs, "sh", "-c", script],
        "--end--",
    );
    let during = host_mounts(&base);
    if let Some(pid) = sleeper {
        // The command is pid 1 of its namespace: only a signal from outside ends it.
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
    let r = r.wait();
    assert!(
        sleeper.is_some(),
        "the container never got to its sleep\n{r}"
    );
    assert_eq!(r.code(), Some(137), "{r}");
    let left = wait_session_empty(r.session.unwrap(), Duration::from_secs(5));
    assert!(left.is_empty(), "processes left behind: {left:?}\n{r}");
    let after = host_mounts(&base);
    let out = &r.stdout;

    let mut dev: Vec<&str> = section(out, "dev").lines().collect();
    dev.sort_unstable();
    assert_eq!(
        dev,
        [
            "core", "fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr",
            "stdin", "stdout", "tty", "urandom", "zero"
        ],
        "{r}"
    );
    let full = section(out, "full");
    assert!(
        full.contains("No space left on device") && full.contains("dd=1"),
        "writing /dev/full fails with ENOSPC: {r}"
    );

    let mounts = section(out, "mounts");
    let fstype = |at: &str| {
        mount_table(mounts)
            .into_iter()
            .find(|m| m.0 == at)
            .map(|m| m.1)
    };
    assert_eq!(fstype("/dev").as_deref(), Some("tmpfs"), "{r}");
    assert_eq!(fstype("/dev/pts").as_deref(), Some("devpts"), "{r}");
    assert_eq!(fstype("/dev/mqueue").as_deref(), Some("mqueue"), "{r}");
    assert_eq!(fstype("/dev/shm").as_deref(), Some("tmpfs"), "{r}");
    // Each of these that the host kernel has is a read-only mount inside.
    let paths = section(out, "paths");
    for p in ["/proc/sysrq-trigger", "/proc/irq", "/proc/bus"] {
        let on_host = std::path::Path::new(p).exists();
        assert_eq!(
            paths.contains(&format!("exists {p}\n")),
            on_host,
            "{p} inside as on the host: {r}"
        );
        if !on_host {
            continue;
        }
        let opts = mounts
            .lines()
            .find(|l| l.split_whitespace().nth(4) == Some(p))
            .and_then(|l| l.split_whitespace().nth(5))
            .unwrap_or_else(|| panic!("{p} is not a mount of its own: {r}"));
        assert!(opts.split(',').any(|o| o == "ro"), "{p} is {opts}: {r}");
    }

    let shm = section(out, "shm");
    assert_eq!(
        shm.lines()
            .filter(|l| !l.trim_start().starts_with("key"))
            .count(),
        0,
        "the host's SysV shm segment {shmid} is visible inside: {r}"
    );

    let diff = |a: &std::collections::BTreeSet<_>, b: &std::collections::BTreeSet<_>| {
        a.symmetric_difference(b).cloned().collect::<Vec<_>>()
    };
    assert_eq!(
        diff(&before, &during),
        vec![],
        "host mounts changed while running"
    );
    assert_eq!(
        diff(&before, &after),
        vec![],
        "host mounts changed after --rm"
    );
}

#[test]
fn network_none_has_only_loopback() {
    let Some(u) = TestUser::t1() else { return };
    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "--rootfs",
            &images().rootfs(),
            "ls",
            "/sys/class/net",
        ],
    );
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), vec!["lo"]);
}

// ---------------------------------------------------------------------------
// exit codes

fn exit_code(u: &TestUser, extra: &[&str], cmd: &[&str]) -> Run {
    let rootfs = images().rootfs();
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--rootfs", &rootfs]);
    args.extend_from_slice(cmd);
    hutch_run(u, &args)
}

#[test]
fn exit_code_is_the_commands() {
    let Some(u) = TestUser::t1() else { return };
    let r = exit_code(&u, &[], &["sh", "-c", "exit 7"]);
    assert_eq!(r.code(), Some(7), "{r}");
    let r = exit_code(&u, &[], &["true"]);
    assert_eq!(r.code(), Some(0), "{r}");
    let r = exit_code(&u, &[], &["false"]);
    assert_eq!(r.code(), Some(1), "{r}");
}

#[test]
fn exit_code_127_when_command_not_found() {
    let Some(u) = TestUser::t1() else { return };
    let r = exit_code(&u, &[], &["/nonexistent"]);
    assert_eq!(r.code(), Some(127), "{r}");
    let r = exit_code(&u, &[], &["no-such-command-anywhere"]);
    assert_eq!(r.code(), Some(127), "{r}");
    // A command that could not start leaves no container behind with --rm.
    u.assert_no_leftover_containers();
}

#[test]
fn exit_code_126_when_not_executable() {
    let Some(u) = TestUser::t1() else { return };
    let r = exit_code(&u, &[], &["/usr/local/bin/not-executable"]);
    assert_eq!(r.code(), Some(126), "{r}");
    let r = exit_code(&u, &[], &["/etc"]);
    assert_eq!(r.code(), Some(126), "a directory: {r}");
}

#[test]
fn exit_code_128_plus_signal_when_killed() {
    let Some(u) = TestUser::t1() else { return };
    // As pid 1 of its namespace a shell cannot SIGKILL itself; with --init it is
    // an ordinary process and dies.
    let r = exit_code(&u, &["--init"], &["sh", "-c", "kill -9 $$"]);
    assert_eq!(r.code(), Some(137), "{r}");
    let r = exit_code(&u, &["--init"], &["sh", "-c", "kill -TERM $$"]);
    assert_eq!(r.code(), Some(143), "{r}");
}

#[test]
fn exit_code_125_when_hutch_itself_fails() {
    let Some(u) = TestUser::t1() else { return };
    let r = hutch_run(
        &u,
        &["run", "--rm", "--rootfs", "/nonexistent-rootfs-dir", "true"],
    );
    assert_eq!(r.code(), Some(125), "{r}");
    let r = hutch_run(&u, &["run", "--no-such-flag", "x"]);
    assert_eq!(r.code(), Some(125), "{r}");
    let bad = format!("oci:{}:no-such-tag", images().oci.display());
    let r = hutch_run(&u, &["run", "--rm", &bad, "true"]);
    assert_eq!(r.code(), Some(125), "{r}");
}

// ---------------------------------------------------------------------------
// signals and init

fn sigprobe(u: &TestUser, init: bool, signals: &[Signal]) -> Run {
    let rootfs = images().rootfs();
    let mut args = vec!["run", "--rm"];
    if init {
        args.push("--init");
    }
    args.extend_from_slice(&["--rootfs", &rootfs, "/usr/local/bin/sigprobe", "30"]);
    let mut r = spawn_hutch(
        u,
        &args,
        &Opts {
            timeout: Duration::from_secs(45),
            ..Opts::default()
        },
    );
    let ready = r.wait_for_stdout("ready", Duration::from_secs(30));
    if ready {
        for s in signals {
            let before = r.stdout_now().len();
            r.signal(*s);
            // Wait for the handler's line before the next signal.
            let want = format!("got {}", &s.as_str()[3..]);
            let end = std::time::Instant::now() + Duration::from_secs(10);
            while !r.stdout_now()[before..].contains(&want) && std::time::Instant::now() < end {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    let out = r.wait();
    assert!(ready, "sigprobe never became ready\n{out}");
    out
}

#[test]
fn sigterm_to_hutch_reaches_the_command_as_pid_1() {
    let Some(u) = TestUser::t1() else { return };
    let out = sigprobe(&u, false, &[Signal::SIGTERM]);
    assert!(out.stdout.contains("got TERM"), "{out}");
    assert_eq!(out.code(), Some(143), "{out}");
    // A signalled hutch still tears everything down.
    let left = wait_session_empty(out.session.unwrap(), Duration::from_secs(5));
    assert!(left.is_empty(), "processes left behind: {left:?}");
    u.assert_no_leftover_containers();
}

#[test]
fn sigterm_to_hutch_reaches_the_command_under_init() {
    let Some(u) = TestUser::t1() else { return };
    let out = sigprobe(&u, true, &[Signal::SIGTERM]);
    assert!(out.stdout.contains("got TERM"), "{out}");
    assert_eq!(out.code(), Some(143), "{out}");
}

#[test]
fn sigusr1_is_forwarded_and_the_command_keeps_running() {
    let Some(u) = TestUser::t1() else { return };
    let out = sigprobe(&u, false, &[Signal::SIGUSR1, Signal::SIGHUP]);
    assert!(out.stdout.contains("got USR1\n"), "{out}");
    assert!(out.stdout.contains("got HUP"), "{out}");
    assert_eq!(out.code(), Some(129), "{out}");
}

/// Every signal the issue lists as forwarded reaches the command, with the
/// command as pid 1 and under `--init`. Those that end sigprobe give
/// 128+signal; after the others it keeps running until a SIGTERM.
#[test]
fn each_forwarded_signal_reaches_the_command_with_and_without_init() {
    let Some(u) = TestUser::t1() else { return };
    let table = [
        (Signal::SIGINT, Some(130)),
        (Signal::SIGTERM, Some(143)),
        (Signal::SIGHUP, Some(129)),
        (Signal::SIGQUIT, Some(131)),
        (Signal::SIGUSR1, None),
        (Signal::SIGUSR2, None),
        (Signal::SIGWINCH, None),
    ];
    for init in [false, true] {
        for (sig, code) in table {
            let sent: &[Signal] = match code {
                Some(_) => &[sig],
                None => &[sig, Signal::SIGTERM],
            };
            let out = sigprobe(&u, init, sent);
            let want = format!("got {}\n", &sig.as_str()[3..]);
            assert!(
                out.stdout.contains(&want),
                "{sig} (--init {init}) never reached the command\n{out}"
            );
            assert_eq!(
                out.code(),
                Some(code.unwrap_or(143)),
                "{sig} (--init {init})\n{out}"
            );
        }
    }
}

#[test]
fn init_reaps_orphaned_zombies() {
    let Some(u) = TestUser::t1() else { return };
    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            "--init",
            "--rootfs",
            &images().rootfs(),
            "/usr/local/bin/zombie",
        ],
    );
    assert!(out.contains("zombies=0"), "{out}");
    assert!(
        !out.contains("pid=1 "),
        "with --init the command is not pid 1: {out}"
    );
}

// ---------------------------------------------------------------------------
// cleanup

#[test]
fn rm_leaves_no_state_and_no_processes() {
    let Some(u) = TestUser::t1() else { return };
    let r = hutch_run(
        &u,
        &[
            "run",
            "--rm",
            "--rootfs",
            &images().rootfs(),
            "sh",
            "-c",
            "sleep 100 & echo started",
        ],
    );
    assert_eq!(r.code(), Some(0), "{r}");
    let left = wait_session_empty(r.session.unwrap(), Duration::from_secs(5));
    assert!(left.is_empty(), "processes left behind: {left:?}\n{r}");
    u.assert_no_leftover_containers();

    // Same with an image.
    let r = hutch_run(&u, &["run", "--rm", &images().oci_ref("latest"), "true"]);
    assert_eq!(r.code(), Some(0), "{r}");
    assert!(wait_session_empty(r.session.unwrap(), Duration::from_secs(5)).is_empty());
    u.assert_no_leftover_containers();
}

/// The parent-death signal survives the switch to `-u` (setresuid clears
/// it): SIGKILL of a foreground hutch ends the container's processes,
/// with the command as pid 1 and under `--init`.
#[test]
fn container_does_not_outlive_a_killed_hutch_after_a_user_switch() {
    let Some(u) = TestUser::t1() else { return };
    let su = u.subuid.unwrap();
    for extra in [&["-u", "1000:1000"][..], &["--init", "-u", "1000:1000"][..]] {
        let (r, pid) = start_sleeper(&u, extra);
        let mut procs = r.descendants();
        procs.retain(|p| *p != pid);
        procs.push(pid);
        let uid = proc_read(pid, "status").and_then(|s| line_value(&s, "Uid:"));
        assert_eq!(
            uid.as_deref().and_then(|l| l.split_whitespace().next()),
            Some((su.0 + 999).to_string().as_str()),
            "{extra:?}: sleep runs as container uid 1000 (host {})",
            su.0 + 999
        );
        r.signal(Signal::SIGKILL);
        let out = r.wait();
        let end = std::time::Instant::now() + Duration::from_secs(10);
        let alive = |p: &u32| {
            proc_read(*p, "stat").is_some_and(|s| !s.contains(") Z ") && !s.contains(") X "))
        };
        while procs.iter().any(alive) && std::time::Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        let left: Vec<u32> = procs.iter().copied().filter(alive).collect();
        assert!(
            left.is_empty(),
            "{extra:?}: container processes outlived hutch: {left:?}\n{out}"
        );
    }
}

// ---------------------------------------------------------------------------
// single-id fallback

/// One warning line saying what the single-id map means, and a hint with
/// the admin's fix for this user.
fn assert_single_id_warning(u: &TestUser, r: &Run) {
    // One warning about the map; an unpack may add its own line about the
    // files that lost their owner, which must not offer another fix.
    let warnings: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning:") && !l.contains("lost their owner"))
        .collect();
    assert_eq!(warnings.len(), 1, "exactly one warning about the map: {r}");
    assert_eq!(r.stderr.matches("usermod").count(), 1, "one fix: {r}");
    assert!(
        warnings[0].contains(&format!("no subordinate id ranges for user `{}`", u.name))
            && warnings[0].contains("single-id map")
            && warnings[0].contains("only your own uid exists"),
        "{r}"
    );
    let hint = r
        .stderr
        .lines()
        .find(|l| l.starts_with("hint: "))
        .unwrap_or_else(|| panic!("no hint: {r}"));
    assert_free_range_fix(u, hint);
}

/// `hint` gives `sudo usermod --add-subuids A-B --add-subgids A-B USER`
/// with a range of 65536 ids that no one has in /etc/subuid or /etc/subgid.
fn assert_free_range_fix(u: &TestUser, hint: &str) {
    let rest = hint
        .split_once("`sudo usermod --add-subuids ")
        .unwrap_or_else(|| panic!("no usermod fix in `{hint}`"))
        .1;
    let f: Vec<&str> = rest.split(['`', ' ']).collect();
    assert!(
        f.len() > 3 && f[1] == "--add-subgids" && f[2] == f[0] && f[3] == u.name,
        "`{hint}`"
    );
    let (a, b) = f[0].split_once('-').unwrap();
    let (a, b): (u64, u64) = (a.parse().unwrap(), b.parse().unwrap());
    assert_eq!(b + 1 - a, 65536, "`{hint}`");
    for file in ["/etc/subuid", "/etc/subgid"] {
        for l in fs::read_to_string(file).unwrap().lines() {
            let p: Vec<&str> = l.trim().split(':').collect();
            let (Some(s), Some(c)) = (
                p.get(1).and_then(|s| s.parse::<u64>().ok()),
                p.get(2).and_then(|c| c.parse::<u64>().ok()),
            ) else {
                continue;
            };
            assert!(
                b < s || a >= s + c,
                "the suggested range {a}-{b} overlaps `{l}` in {file}"
            );
        }
    }
}

#[test]
fn user_without_subids_gets_a_single_id_map_and_a_warning() {
    let Some(u) = TestUser::t2() else { return };
    assert!(u.subuid.is_none(), "hutch-t2 must have no subuid range");
    let r = hutch_run(
        &u,
        &[
            "run",
            "--rm",
            "--rootfs",
            &images().rootfs(),
            "sh",
            "-c",
            "id -u; cat /proc/self/uid_map; read l < /proc/self/loginuid; echo loginuid=$l",
        ],
    );
    assert_eq!(r.code(), Some(0), "{r}");
    assert_single_id_warning(&u, &r);
    let mut lines = r.stdout.lines();
    assert_eq!(lines.next(), Some("0"), "{r}");
    assert_eq!(parse_map(&r.stdout), vec![(0, u.uid, 1)], "{r}");
    assert!(r.stdout.contains("loginuid=0\n"), "{r}");

    // Images work too, and --rm cleans up.
    let r = hutch_run(
        &u,
        &[
            "run",
            "--rm",
            &images().oci_ref("latest"),
            "cat",
            "/etc/layer2",
        ],
    );
    assert_eq!(r.code(), Some(0), "{r}");
    assert_eq!(r.stdout, "layer2\n", "{r}");
    assert_single_id_warning(&u, &r);
    u.assert_no_leftover_containers();
}

/// A root-owned directory holding a fake `newuidmap` (mode `mode`) that
/// complains on stderr and fails; returns a PATH that finds it first.
fn fake_newuidmap(u: &TestUser, mode: u32) -> (std::path::PathBuf, String) {
    let dir = u.root_scratch("fakebin");
    let fake = dir.join("newuidmap");
    fs::write(
        &fake,
        "#!/bin/sh\necho \"fake-newuidmap: refusing to map $*\" >&2\nexit 1\n",
    )
    .unwrap();
    // The kernel ignores the setuid bit of a script: this runs as the user.
    fs::set_permissions(&fake, fs::Permissions::from_mode(mode)).unwrap();
    let path = format!(
        "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        dir.display()
    );
    (fake, path)
}

#[test]
fn a_failing_id_map_helper_fails_the_run_with_its_stderr() {
    let Some(u) = TestUser::t1() else { return };
    let (_, path) = fake_newuidmap(&u, 0o4755);
    let r = run_hutch(
        &u,
        &["run", "--rm", "--rootfs", &images().rootfs(), "true"],
        &Opts {
            env: vec![("PATH".into(), path)],
            ..Opts::default()
        },
    );
    assert!(!r.timed_out, "{r}");
    assert_eq!(r.code(), Some(125), "{r}");
    assert!(
        r.stderr.contains("fake-newuidmap: refusing to map "),
        "the helper's stderr is shown: {r}"
    );
    assert!(r.stderr.contains("hint: "), "{r}");
    assert!(wait_session_empty(r.session.unwrap(), Duration::from_secs(5)).is_empty());
    u.assert_no_leftover_containers();
}

/// `run` and `doctor` judge the helpers alike: one that is neither setuid
/// root nor has file capabilities means the single-id fallback for both.
#[test]
fn a_helper_without_setuid_means_the_single_id_map_for_run_and_doctor() {
    let Some(u) = TestUser::t1() else { return };
    let (fake, path) = fake_newuidmap(&u, 0o755);
    let opts = Opts {
        env: vec![("PATH".into(), path)],
        ..Opts::default()
    };
    let r = run_hutch(
        &u,
        &[
            "run",
            "--rm",
            "--rootfs",
            &images().rootfs(),
            "cat",
            "/proc/self/uid_map",
        ],
        &opts,
    );
    assert_eq!(r.code(), Some(0), "{r}");
    assert_eq!(parse_map(&r.stdout), vec![(0, u.uid, 1)], "{r}");
    let want = format!("`{}` is neither setuid root", fake.display());
    let warnings: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "one warning: {r}");
    assert!(warnings[0].contains(&want), "{r}");
    assert!(
        r.stderr
            .lines()
            .any(|l| l.starts_with("hint: ") && l.contains("setuid root")),
        "the warning says how an admin fixes it: {r}"
    );
    let d = run_hutch(&u, &["doctor"], &opts);
    assert_eq!(d.code(), Some(0), "{d}");
    let line = d
        .stdout
        .lines()
        .find(|l| l.contains(&fake.display().to_string()))
        .unwrap_or_else(|| panic!("doctor names the fake helper: {d}"));
    assert!(
        line.contains("neither setuid root") && line.contains("single-id map"),
        "{d}"
    );
    assert!(d.stdout.contains("chmod u+s"), "doctor gives the fix: {d}");
}

// ---------------------------------------------------------------------------
// run options

#[test]
fn volumes_are_bind_mounted_read_write_and_read_only() {
    let Some(u) = TestUser::t1() else { return };
    let vol = u.scratch("vol");
    fs::write(vol.join("hello"), "from host\n").unwrap();
    std::os::unix::fs::chown(vol.join("hello"), Some(u.uid), Some(u.gid)).unwrap();
    let rw = format!("{}:/data", vol.display());
    let ro = format!("{}:/ro:ro", vol.display());
    let r = hutch_run(
        &u,
        &[
            "run",
            "--rm",
            "-v",
            &rw,
            "-v",
            &ro,
            &images().oci_ref("latest"),
            "sh",
            "-c",
            "cat /data/hello; echo from-container > /data/new; \
             if echo x > /ro/other 2>/dev/null; then echo ro-writable; else echo ro-refused; fi; \
             cat /ro/new",
        ],
    );
    assert_eq!(r.code(), Some(0), "{r}");
    assert_eq!(r.stdout, "from host\nro-refused\nfrom-container\n", "{r}");
    let new = vol.join("new");
    assert_eq!(fs::read_to_string(&new).unwrap(), "from-container\n");
    // Written by container root = the caller.
    assert_eq!(fs::metadata(&new).unwrap().uid(), u.uid);
    assert!(!vol.join("other").exists());
}

#[test]
fn env_flags_and_image_env_are_both_visible() {
    let Some(u) = TestUser::t1() else { return };
    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            "-e",
            "FOO=bar baz",
            "--env",
            "EMPTY=",
            &images().oci_ref("latest"),
            "env",
        ],
    );
    let vars: Vec<&str> = out.lines().collect();
    assert!(vars.contains(&"FOO=bar baz"), "{out}");
    assert!(vars.contains(&"EMPTY="), "{out}");
    assert!(vars.contains(&"IMAGE_VAR=from-image"), "{out}");
    assert!(
        vars.contains(&"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
        "{out}"
    );
    // The host's environment does not leak in.
    assert!(!out.contains("XDG_RUNTIME_DIR="), "{out}");

    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            "-e",
            "IMAGE_VAR=overridden",
            &images().oci_ref("latest"),
            "env",
        ],
    );
    assert!(out.lines().any(|l| l == "IMAGE_VAR=overridden"), "{out}");
}

#[test]
fn workdir_flag_sets_the_working_directory() {
    let Some(u) = TestUser::t1() else { return };
    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            "-w",
            "/tmp",
            "--rootfs",
            &images().rootfs(),
            "pwd",
        ],
    );
    assert_eq!(out, "/tmp\n");
    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            "--workdir",
            "/etc",
            &images().oci_ref("latest"),
            "pwd",
        ],
    );
    assert_eq!(out, "/etc\n");
}

#[test]
fn user_flag_with_numeric_ids() {
    let Some(u) = TestUser::t1() else { return };
    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            "-u",
            "1000:1000",
            "--rootfs",
            &images().rootfs(),
            "sh",
            "-c",
            "id -u; id -g",
        ],
    );
    assert_eq!(out, "1000\n1000\n");
    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            "--user",
            "1234",
            "--rootfs",
            &images().rootfs(),
            "id",
            "-u",
        ],
    );
    assert_eq!(out, "1234\n");
}

#[test]
fn user_flag_with_a_name_uses_the_images_passwd_and_groups() {
    let Some(u) = TestUser::t1() else { return };
    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            "-u",
            "tester",
            "--rootfs",
            &images().rootfs(),
            "sh",
            "-c",
            "id -u; id -g; id -G; echo home=$HOME",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"1000"), "{out}");
    assert_eq!(lines.get(1), Some(&"1000"), "{out}");
    let groups: Vec<&str> = lines.get(2).unwrap_or(&"").split_whitespace().collect();
    assert!(
        groups.contains(&"1000") && groups.contains(&"1001"),
        "supplementary groups: {out}"
    );
    assert!(out.contains("home=/home/tester\n"), "{out}");
}

#[test]
fn interactive_passes_stdin() {
    let Some(u) = TestUser::t1() else { return };
    let out = hutch_as_stdin(
        &u,
        &[
            "run",
            "--rm",
            "-i",
            "--rootfs",
            &images().rootfs(),
            "sh",
            "-c",
            "tr a-z A-Z",
        ],
        b"hello from stdin\n",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "HELLO FROM STDIN\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0));
}

// ---------------------------------------------------------------------------
// privileges

/// The default capability set, exactly: Docker's and Podman's 11
/// (`CAP_NET_RAW`, `CAP_MKNOD` and `CAP_AUDIT_WRITE` are not in it).
const DEFAULT_CAPS: u64 = (1 << 0) // CHOWN
    | (1 << 1) // DAC_OVERRIDE
    | (1 << 3) // FOWNER
    | (1 << 4) // FSETID
    | (1 << 5) // KILL
    | (1 << 6) // SETGID
    | (1 << 7) // SETUID
    | (1 << 8) // SETPCAP
    | (1 << 10) // NET_BIND_SERVICE
    | (1 << 18) // SYS_CHROOT
    | (1 << 31); // SETFCAP

fn cap_eff(text: &str) -> u64 {
    let hex = line_value(text, "CapEff:").unwrap_or_else(|| panic!("no CapEff in {text}"));
    u64::from_str_radix(&hex, 16).unwrap()
}

#[test]
fn setuid_root_in_the_container_is_only_container_root() {
    let Some(u) = TestUser::t1() else { return };
    let dir = u.root_scratch("hostroot");
    let target = dir.join("root-owned");
    fs::write(&target, "host root's file\n").unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).unwrap();
    let vol = format!("{}:/hostroot", dir.display());
    let r = hutch_run(
        &u,
        &[
            "run",
            "--rm",
            "-u",
            "1000:1000",
            "-v",
            &vol,
            &images().oci_ref("latest"),
            "/usr/local/bin/suidprobe",
            "/hostroot/root-owned",
        ],
    );
    assert!(
        r.stdout.contains("ruid=1000 euid=0 "),
        "setuid applies in the container: {r}"
    );
    assert!(
        r.stdout.contains("write /hostroot/root-owned: errno=13"),
        "host root's file must stay read-only: {r}"
    );
    assert_eq!(fs::read_to_string(&target).unwrap(), "host root's file\n");
    let caps = cap_eff(&r.stdout);
    assert_eq!(
        caps, DEFAULT_CAPS,
        "CapEff {caps:#x} of setuid root is the default set {DEFAULT_CAPS:#x}"
    );
}

#[test]
fn no_new_privileges_disables_setuid() {
    let Some(u) = TestUser::t1() else { return };
    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            "-u",
            "1000:1000",
            "--security-opt",
            "no-new-privileges",
            &images().oci_ref("latest"),
            "/usr/local/bin/suidprobe",
        ],
    );
    assert!(out.contains("ruid=1000 euid=1000 "), "{out}");
    assert_eq!(cap_eff(&out), 0, "{out}");
}

#[test]
fn privileged_gives_all_capabilities_but_only_the_callers_rights() {
    let Some(u) = TestUser::t1() else { return };
    let dir = u.root_scratch("hostroot");
    let target = dir.join("root-owned");
    fs::write(&target, "host root's file\n").unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).unwrap();
    let vol = format!("{}:/hostroot", dir.display());
    let r = hutch_run(
        &u,
        &[
            "run",
            "--rm",
            "--privileged",
            "-v",
            &vol,
            &images().oci_ref("latest"),
            "/usr/local/bin/suidprobe",
            "/hostroot/root-owned",
        ],
    );
    let caps = cap_eff(&r.stdout);
    assert_ne!(caps & (1 << 21), 0, "CAP_SYS_ADMIN with --privileged: {r}");
    assert!(
        r.stdout.contains("write /hostroot/root-owned: errno=13"),
        "capabilities in the user namespace give no power over host root's files: {r}"
    );
    assert_eq!(fs::read_to_string(&target).unwrap(), "host root's file\n");
}

#[test]
fn root_capabilities_are_the_default_set_and_can_be_dropped() {
    let Some(u) = TestUser::t1() else { return };
    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            "--rootfs",
            &images().rootfs(),
            "grep",
            "CapEff",
            "/proc/self/status",
        ],
    );
    let caps = cap_eff(&out);
    assert_eq!(
        caps, DEFAULT_CAPS,
        "CapEff {caps:#x} is the default set {DEFAULT_CAPS:#x}"
    );
    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            "--cap-drop",
            "ALL",
            "--rootfs",
            &images().rootfs(),
            "grep",
            "CapEff",
            "/proc/self/status",
        ],
    );
    assert_eq!(cap_eff(&out), 0, "{out}");
    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            "--cap-drop",
            "ALL",
            "--cap-add",
            "CHOWN",
            "--rootfs",
            &images().rootfs(),
            "grep",
            "CapEff",
            "/proc/self/status",
        ],
    );
    assert_eq!(cap_eff(&out), 1, "{out}");
}

// ---------------------------------------------------------------------------
// OCI images

#[test]
fn oci_image_layers_apply_with_whiteouts() {
    let Some(u) = TestUser::t1() else { return };
    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            &images().oci_ref("latest"),
            "sh",
            "-c",
            "cat /etc/layer2; if [ -e /etc/removed-by-whiteout ]; then echo whiteout-ignored; fi; ls -a /etc",
        ],
    );
    assert!(out.starts_with("layer2\n"), "{out}");
    assert!(!out.contains("whiteout-ignored"), "{out}");
    assert!(
        !out.contains(".wh."),
        "whiteout files must not appear: {out}"
    );
}

#[test]
fn oci_image_default_command_and_workdir() {
    let Some(u) = TestUser::t1() else { return };
    // Cmd ["sh"] reads the script from stdin.
    let out = hutch_as_stdin(
        &u,
        &["run", "--rm", "-i", &images().oci_ref("latest")],
        b"echo cmd-is-sh; pwd\n",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "cmd-is-sh\n/\n",
        "{out:?}"
    );
}

#[test]
fn oci_image_entrypoint_cmd_user_and_workdir_are_honoured() {
    let Some(u) = TestUser::t1() else { return };
    let out = hutch_ok(&u, &["run", "--rm", &images().oci_entry_ref()]);
    assert_eq!(out, "entry: default-arg\n");
    let out = hutch_ok(
        &u,
        &["run", "--rm", &images().oci_ref("entry"), "given", "args"],
    );
    assert_eq!(out, "entry: given args\n");
    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            "--entrypoint",
            "/bin/sh",
            &images().oci_entry_ref(),
            "-c",
            "pwd; id -u; id -g",
        ],
    );
    assert_eq!(
        out, "/tmp\n1000\n1000\n",
        "WorkingDir and User from the image"
    );
    // -u and -w override the image.
    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            "-u",
            "0",
            "-w",
            "/",
            "--entrypoint",
            "/bin/sh",
            &images().oci_entry_ref(),
            "-c",
            "pwd; id -u",
        ],
    );
    assert_eq!(out, "/\n0\n");
}

#[test]
fn oci_archive_images_run() {
    let Some(u) = TestUser::t1() else { return };
    let out = hutch_ok(&u, &["run", "--rm", &images().archive_ref("entry")]);
    assert_eq!(out, "entry: default-arg\n");
    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            &images().archive_ref("latest"),
            "cat",
            "/etc/layer2",
        ],
    );
    assert_eq!(out, "layer2\n");
}

#[test]
fn image_file_ownership_is_mapped_into_the_container() {
    let Some(u) = TestUser::t1() else { return };
    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            &images().oci_ref("latest"),
            "stat",
            "-c",
            "%n %u:%g %a",
            "/home/tester",
            "/home/tester/owned-by-tester",
            "/etc/passwd",
            "/usr/local/bin/suidprobe",
            "/tmp",
        ],
    );
    assert_eq!(
        out,
        "/home/tester 1000:1000 755\n\
         /home/tester/owned-by-tester 1000:1000 644\n\
         /etc/passwd 0:0 644\n\
         /usr/local/bin/suidprobe 0:0 4755\n\
         /tmp 0:0 1777\n"
    );
    // tester can write its own home, but not root's files.
    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            "-u",
            "tester",
            &images().oci_ref("latest"),
            "sh",
            "-c",
            "echo hi > /home/tester/new && echo home-ok; echo x >> /etc/passwd 2>/dev/null || echo passwd-refused",
        ],
    );
    assert_eq!(out, "home-ok\npasswd-refused\n");
}

// ---------------------------------------------------------------------------
// terminal

#[test]
fn tty_gives_the_container_its_own_terminal() {
    let Some(u) = TestUser::t1() else { return };
    if !require(
        "script (util-linux)",
        have_tool("script"),
        "script not installed",
    ) {
        return;
    }
    let r = run_hutch(
        &u,
        &[
            "run",
            "--rm",
            "-t",
            "--rootfs",
            &images().rootfs(),
            "sh",
            "-c",
            "tty; stty size && echo stty-ok; exit 3",
        ],
        &Opts {
            tty: true,
            timeout: Duration::from_secs(60),
            ..Opts::default()
        },
    );
    assert!(!r.timed_out, "{r}");
    let out = r.stdout.replace('\r', "");
    assert!(out.contains("/dev/pts/0\n"), "{r}");
    assert!(
        out.contains(&format!("{TTY_ROWS} {TTY_COLS}\nstty-ok\n")),
        "the container's terminal has the caller's size: {r}"
    );
    assert_eq!(r.code(), Some(3), "exit code through the tty: {r}");
}

/// Starts `hutch run --rm -it ... sh -c SCRIPT` under script(1) and waits
/// (bounded) for the container to print `ready`. None when script is
/// missing outside CI.
fn spawn_tty(u: &TestUser, script: &str) -> Option<Running> {
    if !require(
        "script (util-linux)",
        have_tool("script"),
        "script not installed",
    ) {
        return None;
    }
    let rootfs = images().rootfs();
    let mut r = spawn_hutch(
        u,
        &[
            "run", "--rm", "-it", "--rootfs", &rootfs, "sh", "-c", script,
        ],
        &Opts {
            tty: true,
            timeout: Duration::from_secs(60),
            ..Opts::default()
        },
    );
    if !r.wait_for_stdout("ready", Duration::from_secs(30)) {
        panic!("the container never became ready\n{}", r.wait());
    }
    Some(r)
}

#[test]
fn tty_interactive_input_is_raw_and_echoed_once() {
    let Some(u) = TestUser::t1() else { return };
    let Some(mut r) = spawn_tty(&u, "echo ready; read line; echo \"got:$line\"; exit 5") else {
        return;
    };
    // Typed as a terminal does, Enter being a carriage return. hutch's
    // terminal is raw, so only the container's terminal echoes it.
    r.type_in(b"typed-word\r");
    let got = r.wait_for_stdout("got:typed-word", Duration::from_secs(20));
    let r = r.wait();
    assert!(!r.timed_out, "{r}");
    assert!(got, "the typed line never reached the container: {r}");
    let out = r.stdout.replace('\r', "");
    assert_eq!(
        out.matches("typed-word").count(),
        2,
        "the typed word is echoed once, then printed by the container: {r}"
    );
    assert!(out.contains("\ngot:typed-word\n"), "{r}");
    assert_eq!(r.code(), Some(5), "exit code through the tty: {r}");
}

#[test]
fn tty_resize_reaches_the_container() {
    let Some(u) = TestUser::t1() else { return };
    // The trap runs as soon as `wait` is interrupted; each sleep is 1 s,
    // at most 30 of them.
    let Some(r) = spawn_tty(
        &u,
        "trap 'echo size=$(stty size); exit 6' WINCH; echo ready; i=0; \
         while [ $i -lt 30 ]; do sleep 1 & wait $!; i=$((i+1)); done; exit 9",
    ) else {
        return;
    };
    let hutch = r
        .descendants()
        .into_iter()
        .find(|p| proc_read(*p, "comm").as_deref() == Some("hutch"));
    let Some(hutch) = hutch else {
        panic!("no hutch process under script\n{}", r.wait());
    };
    // hutch's terminal is script's pty; resize it as a terminal window does.
    let tty = fs::read_link(format!("/proc/{hutch}/fd/0")).unwrap();
    // One change (stty sets rows and columns with one ioctl each).
    let (ok, out) = host("stty", &["-F", &tty.display().to_string(), "rows", "40"]);
    assert!(ok, "resize {}: {out}", tty.display());
    let r = r.wait();
    assert!(!r.timed_out, "{r}");
    let out = r.stdout.replace('\r', "");
    assert!(
        out.contains(&format!("size=40 {TTY_COLS}\n")),
        "the container saw the new size: {r}"
    );
    assert_eq!(r.code(), Some(6), "{r}");
}

// ---------------------------------------------------------------------------
// doctor

#[test]
fn doctor_reports_user_namespaces() {
    let Some(u) = TestUser::t1() else { return };
    let r = hutch_run(&u, &["doctor"]);
    assert_eq!(r.code(), Some(0), "{r}");
    assert!(r.stdout.to_lowercase().contains("user namespaces"), "{r}");
}

/// A user without subordinate ranges can still run (doctor exits 0), and
/// doctor says what that means and the admin's exact fix.
#[test]
fn doctor_for_a_user_without_subids_warns_with_the_fix() {
    let Some(u) = TestUser::t2() else { return };
    assert!(u.subuid.is_none(), "hutch-t2 must have no subuid range");
    let r = hutch_run(&u, &["doctor"]);
    assert_eq!(r.code(), Some(0), "{r}");
    for file in ["subuid", "subgid"] {
        let lines: Vec<&str> = r.stdout.lines().collect();
        let i = lines
            .iter()
            .position(|l| l.split_whitespace().take(2).eq(["warn", file]))
            .unwrap_or_else(|| panic!("no `warn {file}` line: {r}"));
        assert!(
            lines[i].contains(&format!("no range for {} in /etc/{file}", u.name))
                && lines[i].contains("single-id map"),
            "{r}"
        );
        let hint = lines.get(i + 1).map(|l| l.trim()).unwrap_or("");
        assert!(
            hint.starts_with("hint: "),
            "the fix follows the warning: {r}"
        );
        assert_free_range_fix(&u, hint);
    }
    assert!(r.stdout.contains("hutch run can work here"), "{r}");
}

#[test]
fn a_read_only_rootfs_runs_and_a_missing_mount_point_gets_a_hint() {
    let Some(u) = TestUser::t1() else { return };
    // A root-owned copy without /etc/hosts, /etc/hostname, /etc/resolv.conf
    // and without /data: the caller cannot create anything in it.
    let rootfs = u.root_scratch("ro-rootfs");
    copy_rootfs(&rootfs);
    for f in ["hosts", "hostname", "resolv.conf"] {
        let _ = fs::remove_file(rootfs.join("etc").join(f));
    }
    let _ = fs::remove_dir_all(rootfs.join("data"));
    let root = rootfs.display().to_string();
    let r = hutch_run(
        &u,
        &["run", "--rm", "--rootfs", &root, "cat", "/etc/passwd"],
    );
    assert_eq!(r.code(), Some(0), "{r}");
    assert!(r.stdout.contains("root:x:0:0"), "{r}");
    let vol = format!("{}:/data", u.scratch("vol").display());
    let r = hutch_run(&u, &["run", "--rm", "-v", &vol, "--rootfs", &root, "true"]);
    assert_eq!(r.code(), Some(125), "{r}");
    assert!(r.stderr.contains("create mount target `/data`"), "{r}");
    assert!(r.stderr.contains("hint: the rootfs is not writable"), "{r}");
}

#[test]
fn a_loaded_image_runs_by_name_and_a_missing_one_is_a_clear_error() {
    let Some(u) = TestUser::t1() else { return };
    let Some(archive) = docker_archive(&u, "test/busybox:latest") else {
        return;
    };
    let out = hutch_ok(&u, &["load", "-i", &archive.display().to_string()]);
    assert!(
        out.contains("Loaded image: docker.io/test/busybox:latest"),
        "{out}"
    );
    let out = hutch_ok(
        &u,
        &[
            "run",
            "--rm",
            "test/busybox",
            "sh",
            "-c",
            "cat /etc/layer2; stat -c %u /home/tester/owned-by-tester",
        ],
    );
    assert_eq!(out, "layer2\n1000\n");
    let r = hutch_run(
        &u,
        &["run", "--rm", "--pull=never", "no/such-image", "true"],
    );
    assert_eq!(r.code(), Some(125), "{r}");
    assert!(r.stderr.contains("find image `no/such-image`"), "{r}");
    assert!(r.stderr.contains("hint: "), "{r}");
    u.assert_no_leftover_containers();
}
