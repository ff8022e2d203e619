//! Integration tests of the container lifecycle: `run -d` and its
//! supervisor, `logs`, `ps`, `stop`, `kill`, `rm -f`, `wait`, `inspect`,
//! as the unprivileged users hutch-t1 and hutch-t2 with their loginuid
//! set (tests/common). Every wait is bounded.

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Starts a detached container from the plain rootfs; returns its id.
fn run_d(u: &TestUser, extra: &[&str], cmd: &[&str]) -> String {
    let rootfs = images().rootfs();
    let mut args = vec!["run", "-d"];
    args.extend(extra);
    args.extend(["--rootfs", rootfs.as_str()]);
    args.extend(cmd);
    let id = hutch_ok(u, &args).trim().to_string();
    assert!(
        id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "run -d prints the full id: {id:?}"
    );
    id
}

/// The container's record, read from the host as root.
fn record(u: &TestUser, id: &str) -> Value {
    let path = u.data_dir.join(format!("hutch/containers/{id}/state.json"));
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn inspect(u: &TestUser, key: &str) -> Value {
    let out = hutch_ok(u, &["inspect", key]);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    v[0].clone()
}

fn pid_of(v: &Value, key: &str) -> u32 {
    v[key].as_u64().unwrap_or_else(|| panic!("no {key} in {v}")) as u32
}

/// A container `hutch run -d` started, as its record names it.
struct Detached {
    /// The session of the `hutch run -d`, which its processes keep.
    session: u32,
    id: String,
    rec: Value,
    sup: u32,
    init: u32,
}

/// Runs `hutch ARGS` (a `run -d ...`) until it detaches, checks that it
/// succeeded (`what` labels a failure) and reads the container's record.
fn run_detached(u: &TestUser, args: &[&str], what: &str) -> Detached {
    let mut run = spawn_hutch(u, args, &Opts::default());
    let session = run.session().expect("session of the run");
    let r = run.wait();
    assert_eq!(r.code(), Some(0), "{what}: {r}");
    let id = r.stdout.trim().to_string();
    let rec = record(u, &id);
    let (sup, init) = (pid_of(&rec["supervisor"], "pid"), pid_of(&rec, "pid"));
    Detached {
        session,
        id,
        rec,
        sup,
        init,
    }
}

/// `run -d --name NAME --storage-driver D test/busybox sleep 1000`.
fn sleeper_args<'a>(name: &'a str, d: &'a str) -> [&'a str; 9] {
    [
        "run",
        "-d",
        "--name",
        name,
        "--storage-driver",
        d,
        "test/busybox",
        "sleep",
        "1000",
    ]
}

/// Polls `f` every 50 ms for at most `secs`.
fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if f() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn alive(pid: u32) -> bool {
    proc_read(pid, "stat").is_some_and(|s| !s.contains(") Z "))
}

fn status(u: &TestUser, key: &str) -> String {
    inspect(u, key)["State"]["Status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Every process on the host whose mount table mentions `needle`: a
/// container's mounts live in its own mount namespace, so the host's
/// table alone could never show one left behind.
fn processes_with_mounts_naming(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if proc_read(pid, "mountinfo").is_some_and(|m| m.contains(needle)) {
            pids.push(pid);
        }
    }
    pids
}

const DRIVERS: [&str; 3] = ["overlay", "fuse-overlayfs", "vfs"];

/// Loads the test image into the user's store as `test/busybox`, so that
/// containers stand on the storage ladder (`oci:` and `--rootfs` never did).
fn load_busybox(u: &TestUser) -> bool {
    let Some(archive) = docker_archive(u, "test/busybox:latest") else {
        return false;
    };
    hutch_ok(u, &["load", "-i", &archive.display().to_string()]);
    true
}

/// The fs type of the container's root mount, from the init's mountinfo.
fn root_fstype(mountinfo: &str) -> String {
    mountinfo
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/"))
        .and_then(|l| l.split(" - ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_default()
        .to_string()
}

/// What a driver's root mount looks like from inside the container.
fn expected_fstype(driver: &str) -> &'static str {
    match driver {
        "overlay" => "overlay",
        "fuse-overlayfs" => "fuse.fuse-overlayfs",
        _ => "", // vfs: a bind mount of a plain directory, any fs
    }
}

/// fuse-overlayfs daemons among `pids`.
fn fuse_daemons(pids: &[u32]) -> Vec<u32> {
    pids.iter()
        .copied()
        .filter(|p| proc_read(*p, "comm").as_deref() == Some("fuse-overlayfs"))
        .collect()
}

/// After a container `id` is removed: no process holds a mount of it, no
/// directory of it is left (rootfs, upper, work, runtime files), and the
/// user's store has no stray upper or work dir anywhere.
fn assert_container_gone(u: &TestUser, id: &str) {
    assert_container_gone_beside(u, id, &[]);
}

/// [`assert_container_gone`] while the containers `others` still exist.
fn assert_container_gone_beside(u: &TestUser, id: &str, others: &[&str]) {
    assert_eq!(processes_with_mounts_naming(id), Vec::<u32>::new(), "{id}");
    for root in [&u.data_dir, &u.runtime_dir] {
        let mut stack = vec![root.to_path_buf()];
        let mut seen = 0;
        while let Some(d) = stack.pop() {
            seen += 1;
            assert!(seen < 100_000, "walking {}", root.display());
            for e in fs::read_dir(&d).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                assert!(!name.contains(id), "left behind: {}", e.path().display());
                let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                // Layers are shared and stay; nothing else holds an upper.
                if is_dir && !e.path().ends_with("storage/layers") && !others.contains(&&*name) {
                    assert!(
                        name != "upper" && name != "work",
                        "left behind: {}",
                        e.path().display()
                    );
                    stack.push(e.path());
                }
            }
        }
    }
}

#[test]
fn detached_container_outlives_its_shell_and_keeps_the_callers_loginuid() {
    let Some(u) = TestUser::t1() else { return };
    let rootfs = images().rootfs();
    let args = [
        "run",
        "-d",
        "--name",
        "bg",
        "--rootfs",
        &rootfs,
        "sh",
        "-c",
        "sleep 1000 & sleep 1000",
    ];
    let Detached {
        session,
        id,
        rec,
        sup,
        init,
    } = run_detached(&u, &args, "bg");
    // The shell that started it (`sh -c ... exec hutch`) is gone.
    assert!(alive(sup) && alive(init), "{rec}");
    assert_eq!(status(&u, "bg"), "running");
    assert!(hutch_ok(&u, &["ps"]).contains(&id[..12]));
    // Every process of it: the supervisor, the init (sh, or the last
    // sleep it execs) and the background sleep.
    assert!(wait_until(10, || !descendants(init).is_empty()));
    let mut procs = vec![sup, init];
    procs.extend(descendants(init));
    assert!(procs.len() >= 3, "{procs:?}");
    for p in &procs {
        assert_eq!(
            proc_read(*p, "loginuid"),
            Some(u.uid.to_string()),
            "pid {p}"
        );
        assert_eq!(
            proc_read(*p, "sessionid"),
            Some(session.to_string()),
            "pid {p}"
        );
    }
    // It keeps no directory of the caller's busy, nor any inherited fd
    // beyond its stdio, its report pipe's slot and what it opened itself.
    assert_eq!(
        fs::read_link(format!("/proc/{sup}/cwd")).unwrap(),
        std::path::Path::new("/")
    );
    // It waits as a fresh image of hutch (re-executed, so it holds none of
    // the start's memory), still the parent of the container's init.
    let cmdline = proc_read(sup, "cmdline").unwrap();
    assert_eq!(
        cmdline.trim_end_matches('\0'),
        format!("hutch\0__supervise\0{}", &id[..12]),
        "supervisor {sup}"
    );
    let ppid = proc_read(init, "status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("PPid:").map(|v| v.trim().to_string()));
    assert_eq!(ppid, Some(sup.to_string()), "the init's parent");
    for fd in fs::read_dir(format!("/proc/{sup}/fd")).unwrap() {
        let link = fs::read_link(fd.unwrap().path()).unwrap();
        let link = link.to_string_lossy();
        assert!(
            link == "/dev/null"
                || link.starts_with("pipe:")
                || link == "anon_inode:[signalfd]"
                || (link.contains(&id) && link.ends_with("container.log")),
            "the supervisor holds `{link}`"
        );
    }
    let status_text = proc_read(sup, "status").unwrap();
    let rss = status_text
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap_or_default();
    eprintln!("supervisor {rss}");
    hutch_ok(&u, &["rm", "-f", "bg"]);
    assert_eq!(
        wait_session_empty(session, Duration::from_secs(10)),
        Vec::<u32>::new()
    );
}

#[test]
fn logs_keep_stdout_and_stderr_apart_and_in_order() {
    let Some(u) = TestUser::t1() else { return };
    let script = "echo o1; sleep 0.2; echo e1 >&2; sleep 0.2; echo o2; sleep 0.2; echo e2 >&2";
    let id = run_d(&u, &["--name", "talk"], &["sh", "-c", script]);
    assert_eq!(hutch_ok(&u, &["wait", "talk"]).trim(), "0");
    let r = hutch_run(&u, &["logs", "talk"]);
    assert_eq!(
        (r.code(), r.stdout.as_str(), r.stderr.as_str()),
        (Some(0), "o1\no2\n", "e1\ne2\n")
    );
    // The log keeps the order across both streams.
    let log = fs::read_to_string(
        u.data_dir
            .join(format!("hutch/containers/{id}/container.log")),
    )
    .unwrap();
    let order: Vec<(String, String)> = log
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["stream"].as_str().unwrap().into(),
                v["log"].as_str().unwrap().trim().into(),
            )
        })
        .collect();
    let want = [
        ("stdout", "o1"),
        ("stderr", "e1"),
        ("stdout", "o2"),
        ("stderr", "e2"),
    ];
    assert_eq!(
        order,
        want.map(|(a, b)| (a.to_string(), b.to_string())).to_vec()
    );
    let r = hutch_run(&u, &["logs", "--tail", "1", "-t", "talk"]);
    assert_eq!(r.stdout, "");
    assert!(
        r.stderr.ends_with("Z e2\n") && r.stderr.starts_with("20"),
        "{r}"
    );
    hutch_ok(&u, &["rm", "talk"]);
    u.assert_no_leftover_containers();
}

#[test]
fn logs_follow_ends_when_the_container_exits() {
    let Some(u) = TestUser::t1() else { return };
    run_d(
        &u,
        &["--name", "f"],
        &[
            "sh",
            "-c",
            "for i in 1 2 3 4 5; do echo line$i; sleep 0.3; done",
        ],
    );
    let start = Instant::now();
    let r = run_hutch(
        &u,
        &["logs", "-f", "f"],
        &Opts {
            timeout: Duration::from_secs(30),
            ..Opts::default()
        },
    );
    assert!(!r.timed_out && r.code() == Some(0), "{r}");
    assert_eq!(r.stdout, "line1\nline2\nline3\nline4\nline5\n");
    assert!(start.elapsed() < Duration::from_secs(20));
    hutch_ok(&u, &["rm", "f"]);
}

#[test]
fn stop_sends_sigterm_then_sigkill_after_the_timeout() {
    let Some(u) = TestUser::t1() else { return };
    let trap = "trap 'echo bye; exit 3' TERM; echo ready; while :; do sleep 0.1; done";
    run_d(&u, &["--name", "trap"], &["sh", "-c", trap]);
    // Plain sh as pid 1 has no TERM handler: the kernel drops SIGTERM.
    run_d(
        &u,
        &["--name", "plain"],
        &["sh", "-c", "echo ready; while :; do sleep 0.1; done"],
    );
    for name in ["trap", "plain"] {
        assert!(
            wait_until(10, || hutch_ok(&u, &["logs", name]).contains("ready")),
            "{name}"
        );
    }
    let t = Instant::now();
    assert_eq!(hutch_ok(&u, &["stop", "-t", "10", "trap"]).trim(), "trap");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "a trapping container ends at TERM: {:?}",
        t.elapsed()
    );
    assert_eq!(hutch_ok(&u, &["wait", "trap"]).trim(), "3");
    assert!(hutch_ok(&u, &["logs", "trap"]).contains("bye"));
    let t = Instant::now();
    hutch_ok(&u, &["stop", "-t", "2", "plain"]);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(8),
        "{took:?}"
    );
    let v = inspect(&u, "plain");
    assert_eq!(v["State"]["ExitCode"], 137, "{v}");
    assert_eq!(v["State"]["Running"], false);
    let ps = hutch_ok(&u, &["ps", "-a"]);
    assert!(
        ps.contains("Exited (137)") && ps.contains("Exited (3)"),
        "{ps}"
    );
    hutch_ok(&u, &["rm", "trap", "plain"]);
}

#[test]
fn rm_force_leaves_no_process_mount_or_directory() {
    let Some(u) = TestUser::t1() else { return };
    if !load_busybox(&u) {
        return;
    }
    for d in DRIVERS {
        let name = format!("doomed-{d}");
        let Detached {
            session,
            id,
            rec,
            sup,
            init,
        } = run_detached(&u, &sleeper_args(&name, d), d);
        assert_eq!(rec["storage"]["driver"], d, "{rec}");
        // Control: the container's own mount table has its root on this
        // driver and names its directory; the host's does not.
        let inside = proc_read(init, "mountinfo").unwrap_or_default();
        assert!(inside.contains(&id), "{d}: control: {inside}");
        if !expected_fstype(d).is_empty() {
            assert_eq!(root_fstype(&inside), expected_fstype(d), "{d}: {inside}");
        }
        assert!(processes_with_mounts_naming(&id).contains(&init));
        let daemons = fuse_daemons(&descendants(sup));
        assert_eq!(daemons.len(), usize::from(d == "fuse-overlayfs"), "{d}");
        let data = u.data_dir.join(format!("hutch/containers/{id}"));
        if d != "vfs" {
            assert!(data.join("upper").is_dir() && data.join("work").is_dir());
        }
        let r = hutch_run(&u, &["rm", &name]);
        assert_eq!(r.code(), Some(125), "{r}");
        assert!(
            r.stderr.contains("is running") && r.stderr.contains("rm -f"),
            "{r}"
        );
        assert!(alive(init));
        hutch_ok(&u, &["rm", "-f", &name]);
        assert_eq!(
            wait_session_empty(session, Duration::from_secs(10)),
            Vec::<u32>::new(),
            "{d}"
        );
        assert!(!alive(init) && !alive(sup));
        for p in daemons {
            assert!(!alive(p), "{d}: fuse-overlayfs {p} survived");
        }
        assert_container_gone(&u, &id);
        assert!(!hutch_ok(&u, &["ps", "-a"]).contains(&id[..12]));
    }
    u.assert_no_leftover_containers();
}

#[test]
fn a_supervisor_killed_with_sigkill_is_recovered_from() {
    let Some(u) = TestUser::t1() else { return };
    if !load_busybox(&u) {
        return;
    }
    for d in DRIVERS {
        let name = format!("orphan-{d}");
        let Detached {
            session,
            id,
            sup,
            init,
            ..
        } = run_detached(&u, &sleeper_args(&name, d), d);
        // Control: it runs on this driver.
        let inside = proc_read(init, "mountinfo").unwrap_or_default();
        if !expected_fstype(d).is_empty() {
            assert_eq!(root_fstype(&inside), expected_fstype(d), "{d}: {inside}");
        }
        let daemons = fuse_daemons(&descendants(sup));
        assert_eq!(daemons.len(), usize::from(d == "fuse-overlayfs"), "{d}");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(sup as i32), Signal::SIGKILL).unwrap();
        // PDEATHSIG takes the container (and fuse-overlayfs) with its supervisor.
        assert!(
            wait_until(10, || !alive(init)),
            "{d}: the container outlived its supervisor"
        );
        assert_eq!(
            wait_session_empty(session, Duration::from_secs(10)),
            Vec::<u32>::new(),
            "{d}"
        );
        let ps = hutch_ok(&u, &["ps", "-a"]);
        assert!(ps.contains("Exited (255)"), "{d}: {ps}");
        assert!(!hutch_ok(&u, &["ps"]).contains(&id[..12]));
        assert_eq!(hutch_ok(&u, &["wait", &name]).trim(), "255");
        hutch_ok(&u, &["rm", &name]);
        for p in daemons {
            assert!(!alive(p), "{d}: fuse-overlayfs {p} survived");
        }
        assert_container_gone(&u, &id);
    }
    u.assert_no_leftover_containers();
}

#[test]
fn a_recorded_pid_of_another_process_is_never_signalled() {
    let Some(u) = TestUser::t1() else { return };
    let live = run_d(&u, &["--name", "live"], &["sleep", "1000"]);
    let target = record(&u, &live);
    let dead = run_d(&u, &["--name", "dead"], &["true"]);
    assert_eq!(hutch_ok(&u, &["wait", "dead"]).trim(), "0");
    // Forge the dead container's record: "running", with the live
    // container's pid but another start time (a reused pid).
    let path = u
        .data_dir
        .join(format!("hutch/containers/{dead}/state.json"));
    let mut forged = record(&u, &dead);
    forged["status"] = "running".into();
    forged["pid"] = target["pid"].clone();
    forged["pid_start"] = (target["pid_start"].as_u64().unwrap() + 1).into();
    forged["boot_id"] = target["boot_id"].clone();
    fs::write(&path, serde_json::to_vec(&forged).unwrap()).unwrap();
    let r = hutch_run(&u, &["kill", "dead"]);
    assert_eq!(r.code(), Some(125), "{r}");
    assert!(r.stderr.contains("not running"), "{r}");
    hutch_ok(&u, &["stop", "-t", "1", "dead"]);
    hutch_ok(&u, &["rm", "-f", "dead"]);
    let pid = pid_of(&target, "pid");
    assert!(alive(pid), "the live container was signalled");
    assert_eq!(status(&u, "live"), "running");
    hutch_ok(&u, &["rm", "-f", "live"]);
}

#[test]
fn two_concurrent_runs_with_one_name_exactly_one_wins() {
    let Some(u) = TestUser::t1() else { return };
    for round in 0..3 {
        let rootfs = images().rootfs();
        let args = [
            "run",
            "-d",
            "--name",
            "same",
            "--rootfs",
            rootfs.as_str(),
            "sleep",
            "1000",
        ];
        let a = spawn_hutch(&u, &args, &Opts::default());
        let b = spawn_hutch(&u, &args, &Opts::default());
        let (a, b) = (a.wait(), b.wait());
        let codes = [a.code(), b.code()];
        assert!(
            codes.contains(&Some(0)) && codes.contains(&Some(125)),
            "round {round}\n{a}\n{b}"
        );
        let loser = if a.code() == Some(0) { &b } else { &a };
        assert!(loser.stderr.contains("already in use"), "{loser}");
        let ps = hutch_ok(&u, &["ps", "-a", "-q"]);
        assert_eq!(ps.lines().count(), 1, "{ps}");
        hutch_ok(&u, &["rm", "-f", "same"]);
    }
    u.assert_no_leftover_containers();
}

/// `run -d` of 20 containers of a stored image at once, then `rm -f` of
/// all of them in four concurrent batches: nothing is left behind.
fn twenty_concurrent_runs(driver: Option<&str>) {
    let Some(u) = TestUser::t1() else { return };
    if !load_busybox(&u) {
        return;
    }
    let opts = Opts {
        timeout: Duration::from_secs(120),
        ..Opts::default()
    };
    let mut args = vec!["run", "-d"];
    if let Some(d) = driver {
        args.extend(["--storage-driver", d]);
    }
    args.extend(["test/busybox", "sleep", "1000"]);
    let mut runs: Vec<Running> = (0..20).map(|_| spawn_hutch(&u, &args, &opts)).collect();
    let sessions: Vec<u32> = runs.iter_mut().filter_map(|r| r.session()).collect();
    assert_eq!(sessions.len(), 20);
    let ids: Vec<String> = runs
        .into_iter()
        .map(|r| {
            let r = r.wait();
            assert_eq!(r.code(), Some(0), "{r}");
            r.stdout.trim().to_string()
        })
        .collect();
    assert_eq!(hutch_ok(&u, &["ps", "-q"]).lines().count(), 20);
    // Control: each runs on the driver asked for (overlay by default here).
    let want = expected_fstype(driver.unwrap_or("overlay"));
    let mut daemons = Vec::new();
    for id in &ids {
        let rec = record(&u, id);
        let init = pid_of(&rec, "pid");
        let inside = proc_read(init, "mountinfo").unwrap_or_default();
        assert_eq!(root_fstype(&inside), want, "{id}: {inside}");
        daemons.extend(fuse_daemons(&descendants(pid_of(
            &rec["supervisor"],
            "pid",
        ))));
    }
    if driver == Some("fuse-overlayfs") {
        assert_eq!(daemons.len(), 20, "{daemons:?}");
    }
    let rms: Vec<Running> = ids
        .chunks(5)
        .map(|chunk| {
            let mut args = vec!["rm", "-f"];
            args.extend(chunk.iter().map(|id| &id[..12]));
            spawn_hutch(&u, &args, &opts)
        })
        .collect();
    for r in rms {
        let r = r.wait();
        assert_eq!(r.code(), Some(0), "{r}");
    }
    for s in sessions {
        assert_eq!(
            wait_session_empty(s, Duration::from_secs(10)),
            Vec::<u32>::new()
        );
    }
    for p in daemons {
        assert!(!alive(p), "fuse-overlayfs {p} survived");
    }
    assert_eq!(hutch_ok(&u, &["ps", "-a", "-q"]), "");
    for id in &ids {
        assert_container_gone(&u, id);
    }
    u.assert_no_leftover_containers();
}

#[test]
fn twenty_concurrent_runs_and_rm_force_leave_nothing_behind() {
    twenty_concurrent_runs(None);
}

#[test]
fn twenty_concurrent_runs_on_fuse_overlayfs_leave_nothing_behind() {
    twenty_concurrent_runs(Some("fuse-overlayfs"));
}

#[test]
fn two_users_never_see_each_others_containers() {
    let (Some(t1), Some(t2)) = (TestUser::t1(), TestUser::t2()) else {
        return;
    };
    let id = run_d(&t1, &["--name", "mine"], &["sleep", "1000"]);
    let theirs = run_d(&t2, &["--name", "theirs"], &["sleep", "1000"]);
    // Control: each sees its own.
    assert!(hutch_ok(&t1, &["ps"]).contains(&id[..12]));
    assert!(hutch_ok(&t2, &["ps"]).contains(&theirs[..12]));
    let ps = hutch_ok(&t2, &["ps", "-a", "--no-trunc"]);
    assert!(!ps.contains(&id) && !ps.contains("mine"), "{ps}");
    for cmd in [
        &["rm", "-f"][..],
        &["kill"],
        &["stop", "-t", "0"],
        &["logs"],
        &["inspect"],
        &["wait"],
    ] {
        for key in [id.as_str(), &id[..12], "mine"] {
            let mut args = cmd.to_vec();
            args.push(key);
            let r = hutch_run(&t2, &args);
            assert_eq!(r.code(), Some(125), "{args:?}\n{r}");
            assert!(r.stderr.contains("no such container"), "{r}");
        }
    }
    assert_eq!(status(&t1, "mine"), "running");
    assert!(!hutch_ok(&t1, &["ps", "-a"]).contains("theirs"));
    hutch_ok(&t1, &["rm", "-f", "mine"]);
    hutch_ok(&t2, &["rm", "-f", "theirs"]);
}

#[test]
fn inspect_and_ps_json_describe_the_container() {
    let Some(u) = TestUser::t1() else { return };
    let vol = u.scratch("vol");
    let volume = format!("{}:/mnt:ro", vol.display());
    let id = run_d(
        &u,
        &["--name", "desc", "-e", "K=V", "-w", "/tmp", "-v", &volume],
        &["sleep", "1000"],
    );
    let v = inspect(&u, &id[..6]);
    assert_eq!(v["Id"], id.as_str());
    assert_eq!(v["Name"], "/desc");
    assert_eq!(v["State"]["Running"], true);
    assert_eq!(v["State"]["Status"], "running");
    assert_eq!(v["State"]["Pid"], record(&u, &id)["pid"]);
    assert_eq!(v["Config"]["Cmd"], serde_json::json!(["sleep", "1000"]));
    assert_eq!(v["Config"]["WorkingDir"], "/tmp");
    assert!(
        v["Config"]["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "K=V"),
        "{v}"
    );
    assert_eq!(v["Mounts"][0]["Destination"], "/mnt");
    assert_eq!(v["Mounts"][0]["RW"], false);
    assert!(v["NetworkSettings"].is_object());
    let line = hutch_ok(&u, &["ps", "--format", "json"]);
    let row: Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(row["Names"], "desc");
    assert!(row["Status"].as_str().unwrap().starts_with("Up "), "{row}");
    let table = hutch_ok(&u, &["ps"]);
    assert!(table.starts_with("CONTAINER ID   IMAGE"), "{table}");
    assert!(table.contains("CREATED") && table.contains("STATUS") && table.contains("NAMES"));
    hutch_ok(&u, &["rm", "-f", "desc"]);
    hutch_ok(&u, &["container", "prune", "-f"]);
}

#[test]
fn a_detached_start_error_is_reported_and_leaves_nothing() {
    let Some(u) = TestUser::t1() else { return };
    let r = hutch_run(
        &u,
        &[
            "run",
            "-d",
            "--rootfs",
            &images().rootfs(),
            "no-such-command",
        ],
    );
    assert_eq!(r.code(), Some(127), "{r}");
    assert!(r.stderr.contains("exec `no-such-command`"), "{r}");
    assert_eq!(r.stdout, "");
    u.assert_no_leftover_containers();
    let r = hutch_run(
        &u,
        &["run", "-d", "-t", "--rootfs", &images().rootfs(), "true"],
    );
    assert_eq!(r.code(), Some(125), "{r}");
}

#[test]
fn create_start_and_restart_keep_the_containers_files() {
    let Some(u) = TestUser::t1() else { return };
    let script = "echo run; cat /count 2>/dev/null; echo x >> /count; echo ready; sleep 1000";
    let image = images().oci_ref("latest");
    let id = hutch_ok(&u, &["create", "--name", "c", &image, "sh", "-c", script])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64, "{id}");
    assert_eq!(status(&u, "c"), "created");
    assert!(hutch_ok(&u, &["ps", "-a"]).contains("Created"));
    assert_eq!(hutch_ok(&u, &["start", "c"]).trim(), "c");
    assert!(wait_until(10, || hutch_ok(&u, &["logs", "c"]).contains("ready")));
    assert_eq!(status(&u, "c"), "running");
    hutch_ok(&u, &["restart", "-t", "0", "c"]);
    assert!(wait_until(10, || hutch_ok(&u, &["logs", "c"])
        .matches("ready")
        .count()
        == 2));
    // The second run saw the first one's write.
    assert_eq!(hutch_ok(&u, &["logs", "c"]), "run\nready\nrun\nx\nready\n");
    // A reboot empties the runtime directory; the record and files stay.
    hutch_ok(&u, &["stop", "-t", "0", "c"]);
    fs::remove_dir_all(u.runtime_dir.join(format!("hutch/containers/{id}"))).unwrap();
    hutch_ok(&u, &["start", "c"]);
    assert!(wait_until(10, || hutch_ok(&u, &["logs", "c"])
        .matches("ready")
        .count()
        == 3));
    assert!(hutch_ok(&u, &["logs", "c"]).ends_with("run\nx\nx\nready\n"));
    hutch_ok(&u, &["rm", "-f", "c"]);
    u.assert_no_leftover_containers();
}

#[test]
fn start_attach_waits_and_returns_the_exit_code() {
    let Some(u) = TestUser::t1() else { return };
    let rootfs = images().rootfs();
    let args = [
        "create",
        "--rm",
        "--name",
        "a",
        "--rootfs",
        rootfs.as_str(),
        "sh",
        "-c",
        "echo hi; echo oops >&2; exit 7",
    ];
    hutch_ok(&u, &args);
    let r = hutch_run(&u, &["start", "-a", "a"]);
    assert_eq!((r.code(), r.stdout.as_str()), (Some(7), "hi\n"), "{r}");
    assert!(r.stderr.contains("oops"), "{r}");
    // --rm removed it after the run.
    u.assert_no_leftover_containers();
}

#[test]
fn run_di_keeps_a_shell_waiting_on_its_stdin() {
    let Some(u) = TestUser::t1() else { return };
    // Control: without -i, sh reads /dev/null and ends at once.
    run_d(&u, &["--name", "noi"], &["sh"]);
    assert_eq!(hutch_ok(&u, &["wait", "noi"]).trim(), "0");
    run_d(&u, &["-i", "--name", "withi"], &["sh"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(status(&u, "withi"), "running");
    hutch_ok(&u, &["rm", "-f", "noi", "withi"]);
    u.assert_no_leftover_containers();
}

#[test]
fn wait_reports_the_exit_code_of_a_detached_rm_container() {
    let Some(u) = TestUser::t1() else { return };
    run_d(
        &u,
        &["--rm", "--name", "gone"],
        &["sh", "-c", "sleep 1; exit 5"],
    );
    assert_eq!(hutch_ok(&u, &["wait", "gone"]).trim(), "5");
    // --rm then removes it.
    assert!(
        wait_until(10, || u.leftover_containers().is_empty()),
        "{:?}",
        u.leftover_containers()
    );
    assert_eq!(hutch_ok(&u, &["ps", "-a", "-q"]), "");
}

#[test]
fn a_torn_record_is_listed_and_removed() {
    let Some(u) = TestUser::t1() else { return };
    if !load_busybox(&u) {
        return;
    }
    let id = hutch_ok(&u, &["run", "-d", "--name", "torn", "test/busybox", "true"])
        .trim()
        .to_string();
    assert_eq!(hutch_ok(&u, &["wait", "torn"]).trim(), "0");
    // Control: its overlay upper dir exists.
    let data = u.data_dir.join(format!("hutch/containers/{id}"));
    assert!(data.join("upper").is_dir());
    // A crash tore the record.
    let path = data.join("state.json");
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, &text[..text.len() / 3]).unwrap();
    let r = hutch_run(&u, &["ps", "-a"]);
    assert_eq!(r.code(), Some(0), "{r}");
    let row = r.stdout.lines().find(|l| l.starts_with(&id[..12]));
    assert!(row.is_some_and(|l| l.contains("Exited (255)")), "{r}");
    assert!(
        r.stderr.contains("warning:") && r.stderr.contains("hutch rm"),
        "{r}"
    );
    hutch_ok(&u, &["rm", &id[..12]]);
    assert_container_gone(&u, &id);
    u.assert_no_leftover_containers();
}

#[test]
fn container_prune_removes_stopped_containers_and_keeps_running_ones() {
    let Some(u) = TestUser::t1() else { return };
    if !load_busybox(&u) {
        return;
    }
    let up = hutch_ok(
        &u,
        &["run", "-d", "--name", "up", "test/busybox", "sleep", "1000"],
    )
    .trim()
    .to_string();
    let ended = hutch_ok(
        &u,
        &["run", "-d", "--name", "ended", "test/busybox", "true"],
    )
    .trim()
    .to_string();
    assert_eq!(hutch_ok(&u, &["wait", "ended"]).trim(), "0");
    let made = hutch_ok(&u, &["create", "--name", "made", "test/busybox", "true"])
        .trim()
        .to_string();
    // Control: all three are listed, each with its own upper dir.
    let ps = hutch_ok(&u, &["ps", "-a", "-q", "--no-trunc"]);
    for id in [&up, &ended, &made] {
        assert!(ps.contains(id.as_str()), "{ps}");
        let upper = u.data_dir.join(format!("hutch/containers/{id}/upper"));
        assert!(upper.is_dir(), "{}", upper.display());
    }
    let out = hutch_ok(&u, &["container", "prune", "-f"]);
    let mut deleted: Vec<&str> = out.lines().skip(1).collect();
    deleted.sort_unstable();
    let mut want = vec![ended.as_str(), made.as_str()];
    want.sort_unstable();
    assert!(out.starts_with("Deleted Containers:\n"), "{out}");
    assert_eq!(deleted, want, "{out}");
    assert_container_gone_beside(&u, &ended, &[&up]);
    assert_container_gone_beside(&u, &made, &[&up]);
    assert_eq!(status(&u, "up"), "running");
    assert_eq!(hutch_ok(&u, &["ps", "-a", "-q", "--no-trunc"]).trim(), up);
    assert!(u
        .data_dir
        .join(format!("hutch/containers/{up}/upper"))
        .is_dir());
    hutch_ok(&u, &["rm", "-f", "up"]);
    assert_container_gone(&u, &up);
}

#[test]
fn kill_delivers_the_signal_asked_for() {
    let Some(u) = TestUser::t1() else { return };
    let script = "trap 'echo got-TERM' TERM; trap 'echo got-USR1' USR1; echo ready; \
                  while :; do sleep 0.1; done";
    run_d(&u, &["--name", "sig"], &["sh", "-c", script]);
    assert!(wait_until(10, || hutch_ok(&u, &["logs", "sig"]).contains("ready")));
    for (sig, want) in [
        ("USR1", "got-USR1"),
        ("TERM", "got-TERM"),
        ("SIGUSR1", "got-USR1"),
    ] {
        let before = hutch_ok(&u, &["logs", "sig"]).matches(want).count();
        assert_eq!(hutch_ok(&u, &["kill", "-s", sig, "sig"]).trim(), "sig");
        assert!(
            wait_until(10, || hutch_ok(&u, &["logs", "sig"]).matches(want).count()
                == before + 1),
            "{sig}: {}",
            hutch_ok(&u, &["logs", "sig"])
        );
        // The trap handles it: the container keeps running.
        assert_eq!(status(&u, "sig"), "running", "{sig}");
    }
    let r = hutch_run(&u, &["kill", "-s", "NOPE", "sig"]);
    assert_eq!(r.code(), Some(125), "{r}");
    assert!(r.stderr.contains("unknown signal"), "{r}");
    // Without -s: SIGKILL, as in Docker.
    hutch_ok(&u, &["kill", "sig"]);
    assert_eq!(hutch_ok(&u, &["wait", "sig"]).trim(), "137");
    hutch_ok(&u, &["rm", "sig"]);
}

#[test]
fn an_unnamed_container_gets_a_generated_name_it_answers_to() {
    let Some(u) = TestUser::t1() else { return };
    let a = run_d(&u, &[], &["sh", "-c", "echo hello; sleep 1000"]);
    let b = run_d(&u, &[], &["sleep", "1000"]);
    let name_of = |id: &str| {
        let v = inspect(&u, id);
        v["Name"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string()
    };
    let (na, nb) = (name_of(&a), name_of(&b));
    for n in [&na, &nb] {
        let (adj, sur) = n.split_once('_').unwrap_or_else(|| panic!("{n:?}"));
        assert!(
            !adj.is_empty() && adj.bytes().all(|c| c.is_ascii_lowercase()),
            "{n}"
        );
        assert!(
            !sur.is_empty()
                && sur
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            "{n}"
        );
    }
    assert_ne!(na, nb);
    // Shown in ps's NAMES column, and usable wherever a name is.
    let ps = hutch_ok(&u, &["ps"]);
    for (id, n) in [(&a, &na), (&b, &nb)] {
        let row = ps.lines().find(|l| l.starts_with(&id[..12]));
        assert!(row.is_some_and(|l| l.ends_with(n.as_str())), "{ps}");
    }
    assert!(wait_until(10, || hutch_ok(&u, &["logs", &na]) == "hello\n"));
    assert_eq!(record(&u, &a)["name"], na.as_str());
    hutch_ok(&u, &["rm", "-f", &na, &nb]);
    u.assert_no_leftover_containers();
}

#[test]
fn inspect_shows_ports_volumes_and_the_storage_driver_as_docker_does() {
    let Some(u) = TestUser::t1() else { return };
    let bind = u.scratch("shape-bind");
    let bind_spec = format!("{}:/mnt:ro", bind.display());
    let image = images().oci_ref("latest");
    let args = [
        "create",
        "--name",
        "shape",
        "-p",
        "127.0.0.1:18080:80",
        "-p",
        "18053:18053/udp",
        "-v",
        "shape-vol:/data",
        "-v",
        &bind_spec,
        &image,
        "true",
    ];
    let id = hutch_ok(&u, &args).trim().to_string();
    let v = inspect(&u, "shape");
    assert_eq!(
        v["NetworkSettings"]["Ports"],
        serde_json::json!({
            "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18080"}],
            "18053/udp": [{"HostIp": "0.0.0.0", "HostPort": "18053"}],
        }),
        "{v}"
    );
    let mount = |dest: &str| {
        v["Mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["Destination"] == dest)
            .unwrap_or_else(|| panic!("no mount {dest} in {v}"))
            .clone()
    };
    let vol = mount("/data");
    assert_eq!(
        (&vol["Type"], &vol["Name"]),
        (&"volume".into(), &"shape-vol".into()),
        "{vol}"
    );
    assert_eq!(vol["RW"], true, "{vol}");
    let data = u.data_dir.join("hutch/volumes/shape-vol/_data");
    assert_eq!(vol["Source"], data.display().to_string(), "{vol}");
    let b = mount("/mnt");
    assert_eq!(
        (&b["Type"], &b["RW"]),
        (&"bind".into(), &false.into()),
        "{b}"
    );
    assert!(b.get("Name").is_none(), "{b}");
    // The driver the container was made with, as its record says.
    let driver = record(&u, &id)["storage"]["driver"].clone();
    assert!(driver.is_string(), "{driver}");
    assert_eq!(v["GraphDriver"]["Name"], driver, "{v}");
    hutch_ok(&u, &["rm", "shape"]);
    hutch_ok(&u, &["volume", "rm", "shape-vol"]);
    u.assert_no_leftover_containers();
}

#[test]
fn logs_of_a_foreground_run_say_the_output_was_not_kept() {
    let Some(u) = TestUser::t1() else { return };
    let rootfs = images().rootfs();
    let run = [
        "run",
        "--name",
        "fg",
        "--rootfs",
        &rootfs,
        "sh",
        "-c",
        "echo said",
    ];
    let r = hutch_run(&u, &run);
    assert_eq!((r.code(), r.stdout.as_str()), (Some(0), "said\n"), "{r}");
    let r = hutch_run(&u, &["logs", "fg"]);
    assert_eq!((r.code(), r.stdout.as_str()), (Some(0), ""), "{r}");
    assert!(
        r.stderr.contains("was attached") && r.stderr.contains("not logged"),
        "{r}"
    );
    // Started again in the background: logged, and no note.
    assert_eq!(hutch_ok(&u, &["start", "fg"]).trim(), "fg");
    assert_eq!(hutch_ok(&u, &["wait", "fg"]).trim(), "0");
    let r = hutch_run(&u, &["logs", "fg"]);
    assert_eq!((r.code(), r.stdout.as_str()), (Some(0), "said\n"), "{r}");
    assert!(!r.stderr.contains("attached"), "{r}");
    hutch_ok(&u, &["rm", "fg"]);
    u.assert_no_leftover_containers();
}
