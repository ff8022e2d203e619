//! `hutch exec` and `hutch top` against running containers (issue 4), as
//! the unprivileged users hutch-t1 and hutch-t2. Containers run in the
//! foreground of a background hutch (`spawn_hutch`), each test with its
//! own runtime directory, so names never clash.

mod common;

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// Starts `hutch run --name NAME EXTRA... IMAGE CMD...` in the background
/// and waits (bounded) until `hutch ps` lists it as running.
fn start(u: &TestUser, name: &str, extra: &[&str], cmd: &[&str]) -> common::Running {
    let image = images().oci_ref("latest");
    let mut args = vec!["run", "--name", name];
    args.extend_from_slice(extra);
    args.push(&image);
    args.extend_from_slice(cmd);
    spawn_listed(u, name, &args)
}

/// Waits (bounded) for a descendant of `pid` whose command line is `cmd`.
fn find_descendant(pid: u32, cmd: &str) -> u32 {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let found = descendants(pid)
            .into_iter()
            .find(|p| proc_read(*p, "cmdline").is_some_and(|c| c.replace('\0', " ").trim() == cmd));
        if let Some(p) = found {
            return p;
        }
        assert!(Instant::now() < end, "no `{cmd}` under {pid}");
        thread::sleep(Duration::from_millis(50));
    }
}

fn pid_ns(pid: u32) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/pid"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

#[test]
fn exec_sees_the_containers_processes_and_files_and_keeps_the_callers_loginuid() {
    let Some(u) = TestUser::t1() else { return };
    let ctr = start(
        &u,
        "join",
        &[],
        &[
            "sh",
            "-c",
            "echo from-container > /tmp/marker; exec sleep 60",
        ],
    );
    let init = find_descendant(ctr.pid(), "sleep 60");
    let out = hutch_ok(
        &u,
        &[
            "exec",
            "join",
            "sh",
            "-c",
            "cat /tmp/marker; tr '\\0' ' ' < /proc/1/cmdline; echo; hostname; ls /proc/self/fd",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0], "from-container",
        "a file the container wrote: {out}"
    );
    assert_eq!(
        lines[1].trim(),
        "sleep 60",
        "pid 1 is the container's: {out}"
    );
    assert_eq!(
        lines[2].len(),
        12,
        "the container's hostname (its short id): {out}"
    );
    // ls holds fd 3 for the directory it lists; nothing of the host.
    assert_eq!(&lines[3..], ["0", "1", "2", "3"], "{out}");

    let mut ex = spawn_hutch(&u, &["exec", "join", "sleep", "30"], &Opts::default());
    let session = ex.session().expect("audit session of hutch exec");
    let p = find_descendant(ex.pid(), "sleep 30");
    assert_eq!(proc_read(p, "loginuid"), Some(u.uid.to_string()));
    assert_eq!(proc_read(p, "sessionid"), Some(session.to_string()));
    assert_ne!(proc_read(init, "sessionid"), Some(session.to_string()));
    assert_eq!(pid_ns(p), pid_ns(init), "the container's pid namespace");
    assert_ne!(pid_ns(p), pid_ns(std::process::id()));
    let ns = |kind: &str| {
        std::fs::read_link(format!("/proc/{p}/ns/{kind}")).ok()
            == std::fs::read_link(format!("/proc/{init}/ns/{kind}")).ok()
    };
    for kind in ["net", "mnt", "uts", "ipc", "user", "cgroup"] {
        assert!(ns(kind), "the container's {kind} namespace");
    }
    // The exec'd process does not outlive `hutch exec`.
    ex.signal(Signal::SIGKILL);
    let _ = ex.wait();
    assert_eq!(
        wait_session_empty(session, Duration::from_secs(10)),
        Vec::<u32>::new()
    );
    ctr.kill_and_reap();
}

#[test]
fn exec_exit_codes_follow_docker() {
    let Some(u) = TestUser::t1() else { return };
    // A FIFO as /etc/group must not hang exec's user lookup.
    let fifo = "rm /etc/group && mkfifo /etc/group && exec sleep 60";
    let ctr = start(&u, "codes", &[], &["sh", "-c", fifo]);
    let r = hutch_as_timeout(&u, &["exec", "codes", "id", "-u"], 20);
    assert!(!r.timed_out && r.stdout == "0\n", "{r}");
    let cases: &[(&[&str], i32)] = &[
        (&["sh", "-c", "exit 3"], 3),
        (&["sh", "-c", "kill -9 $$"], 137),
        (&["no-such-command"], 127),
        (&["/no/such/path"], 127),
        (&["/usr/local/bin/not-executable"], 126),
        (&["-w", "/no/such/dir", "true"], 126),
    ];
    for (argv, want) in cases {
        let mut args = vec!["exec"];
        // Flags go before the container's name.
        let (flags, cmd) = match argv.first() {
            Some(&"-w") => (&argv[..2], &argv[2..]),
            _ => (&argv[..0], &argv[..]),
        };
        args.extend_from_slice(flags);
        args.push("codes");
        args.extend_from_slice(cmd);
        let r = hutch_run(&u, &args);
        assert_eq!(r.code(), Some(*want), "{args:?}: {r}");
    }
    let r = hutch_run(&u, &["exec", "nobody-here", "true"]);
    assert_eq!(r.code(), Some(125), "{r}");
    ctr.kill_and_reap();
    let r = hutch_run(&u, &["exec", "codes", "true"]);
    assert_eq!(r.code(), Some(125), "a stopped container: {r}");
    assert!(
        r.stderr.contains("not running") && r.stderr.contains("hint:"),
        "{r}"
    );
}

fn status_field(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

#[test]
fn exec_gets_the_containers_env_user_capabilities_and_seccomp() {
    let Some(u) = TestUser::t1() else { return };
    let run_flags = [
        "-e",
        "FROM_RUN=run",
        "-u",
        "tester",
        "--cap-drop",
        "all",
        "--cap-add",
        "kill",
        "--security-opt",
        "no-new-privileges",
    ];
    let ctr = start(&u, "creds", &run_flags, &["sleep", "60"]);
    let env_file = u.scratch("envs").join("file");
    std::fs::write(&env_file, "# a comment\nFROM_FILE=file\n").unwrap();
    std::os::unix::fs::chown(&env_file, Some(u.uid), Some(u.gid)).unwrap();
    let show = "id; pwd; env | sort; grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status";
    let out = hutch_ok(
        &u,
        &[
            "exec",
            "-e",
            "FROM_FLAG=flag",
            "--env-file",
            &env_file.display().to_string(),
            "-w",
            "/tmp",
            "creds",
            "sh",
            "-c",
            show,
        ],
    );
    assert!(out.contains("uid=1000(tester) gid=1000(tester)"), "{out}");
    assert!(out.contains("\n/tmp\n"), "{out}");
    for var in [
        "FROM_RUN=run",
        "FROM_FILE=file",
        "FROM_FLAG=flag",
        "HOME=/home/tester",
        "IMAGE_VAR=from-image",
    ] {
        assert!(out.lines().any(|l| l == var), "{var}: {out}");
    }
    assert_eq!(status_field(&out, "CapBnd"), "0000000000000020", "{out}");
    assert_eq!(status_field(&out, "CapEff"), "0000000000000000", "{out}");
    assert_eq!(status_field(&out, "NoNewPrivs"), "1", "{out}");
    assert_eq!(status_field(&out, "Seccomp"), "2", "{out}");
    // -u root: the container's bounding set, effective for root.
    let out = hutch_ok(&u, &["exec", "-u", "0", "creds", "sh", "-c", show]);
    assert!(out.contains("uid=0(root)"), "{out}");
    assert_eq!(status_field(&out, "CapEff"), "0000000000000020", "{out}");
    ctr.kill_and_reap();

    // Control: exec follows the container's profile, not a fixed one.
    let ctr = start(
        &u,
        "loose",
        &["--security-opt", "seccomp=unconfined"],
        &["sleep", "60"],
    );
    let out = hutch_ok(&u, &["exec", "loose", "sh", "-c", show]);
    assert_eq!(status_field(&out, "Seccomp"), "0", "{out}");
    assert_eq!(status_field(&out, "NoNewPrivs"), "0", "{out}");
    assert_eq!(status_field(&out, "CapBnd"), "00000000800405fb", "{out}");
    ctr.kill_and_reap();
}

#[test]
fn exec_with_a_tty_relays_the_terminal_and_its_exit_code() {
    let Some(u) = TestUser::t1() else { return };
    let ctr = start(&u, "tty", &[], &["sleep", "60"]);
    let r = run_hutch(
        &u,
        &[
            "exec",
            "-it",
            "tty",
            "sh",
            "-c",
            "tty; echo $TERM; stty size && echo stty-ok; exit 4",
        ],
        &Opts {
            tty: true,
            timeout: Duration::from_secs(60),
            ..Opts::default()
        },
    );
    assert!(!r.timed_out, "{r}");
    let out = r.stdout.replace('\r', "");
    assert!(out.contains("/dev/pts/"), "a pty of the container: {r}");
    assert!(out.contains("\nxterm\n"), "TERM for the terminal: {r}");
    assert!(
        out.contains(&format!("{TTY_ROWS} {TTY_COLS}\nstty-ok\n")),
        "{r}"
    );
    assert_eq!(r.code(), Some(4), "{r}");
    // -i without -t: stdin is relayed as is.
    let out = hutch_as_stdin(&u, &["exec", "-i", "tty", "cat"], b"piped\n");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "piped\n");
    ctr.kill_and_reap();
}

#[test]
fn exec_detached_returns_at_once_and_the_command_runs_on() {
    let Some(u) = TestUser::t1() else { return };
    let ctr = start(&u, "bg", &[], &["sleep", "60"]);
    let t0 = Instant::now();
    let out = hutch_ok(
        &u,
        &[
            "exec",
            "-d",
            "bg",
            "sh",
            "-c",
            "sleep 1; echo later > /tmp/bg",
        ],
    );
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_eq!(out, "", "-d prints nothing");
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let r = hutch_run(&u, &["exec", "bg", "cat", "/tmp/bg"]);
        if r.code() == Some(0) {
            assert_eq!(r.stdout, "later\n");
            break;
        }
        assert!(
            Instant::now() < end,
            "the detached command never wrote: {r}"
        );
        thread::sleep(Duration::from_millis(200));
    }
    ctr.kill_and_reap();
}

#[test]
fn exec_reaches_init_containers_and_single_id_maps() {
    let Some(u) = TestUser::t1() else { return };
    // --init: pid 1 is hutch's non-dumpable reaper; exec still joins.
    let ctr = start(&u, "reaped", &["--init"], &["sleep", "60"]);
    let out = hutch_ok(
        &u,
        &["exec", "reaped", "sh", "-c", "cat /proc/2/cmdline; echo"],
    );
    assert_eq!(out.replace('\0', " ").trim(), "sleep 60", "{out}");
    // top finds the namespace through the command, lists the reaper too.
    let top = hutch_ok(&u, &["top", "reaped"]);
    assert_eq!(top.lines().count(), 3, "{top}");
    assert!(
        top.lines().nth(2).is_some_and(|l| l.ends_with(" sleep 60")),
        "{top}"
    );
    ctr.kill_and_reap();
    // hutch-t2 has no subordinate ids: container root is all there is.
    let Some(u2) = TestUser::t2() else { return };
    let ctr = start(&u2, "single", &[], &["sleep", "60"]);
    let out = hutch_ok(
        &u2,
        &[
            "exec",
            "single",
            "sh",
            "-c",
            "id -u; cat /proc/self/setgroups",
        ],
    );
    assert_eq!(out, "0\ndeny\n");
    ctr.kill_and_reap();
}

#[test]
fn top_lists_the_containers_processes_like_ps() {
    let Some(u) = TestUser::t1() else { return };
    let ctr = start(&u, "top", &[], &["sh", "-c", "sleep 60 & exec sleep 61"]);
    let ex = spawn_hutch(&u, &["exec", "top", "sleep", "62"], &Opts::default());
    find_descendant(ex.pid(), "sleep 62");
    let out = hutch_ok(&u, &["top", "top"]);
    let head: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        head,
        ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
        "{out}"
    );
    let mut cmds: Vec<String> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().skip(7).collect::<Vec<_>>().join(" "))
        .collect();
    cmds.sort();
    // Also the exec'd process, which is not a child of the init.
    assert_eq!(
        cmds,
        ["sleep 60", "sleep 61", "sleep 62"].map(String::from),
        "{out}"
    );
    assert!(
        out.lines().skip(1).all(|l| l.starts_with("hutch-t1 ")),
        "{out}"
    );
    // Control: the host's hutch processes of the same user are not listed.
    assert!(!out.contains("hutch run"), "{out}");
    ex.signal(Signal::SIGKILL);
    let _ = ex.wait();
    ctr.kill_and_reap();
    let r = hutch_run(&u, &["top", "top"]);
    assert_eq!(r.code(), Some(125), "{r}");
}

#[test]
fn cp_copies_files_directories_symlinks_and_tar_streams_both_ways() {
    let Some(u) = TestUser::t1() else { return };
    let setup = "mkdir -p /tmp/d/sub && echo inner > /tmp/d/sub/f && \
                 ln -s sub/f /tmp/d/rel && echo up; exec sleep 60";
    let ctr = start(&u, "cp", &[], &["sh", "-c", setup]);
    let dir = u.scratch("cp");
    let d = |p: &str| dir.join(p).display().to_string();
    // Out: a file into a directory, a directory under a new name.
    hutch_ok(&u, &["cp", "cp:/etc/hostname", &d("")]);
    let id = std::fs::read_to_string(dir.join("hostname")).unwrap();
    assert_eq!(id.trim().len(), 12, "the container's hostname: {id}");
    hutch_ok(&u, &["cp", "cp:/tmp/d", &d("copy")]);
    assert_eq!(
        std::fs::read_to_string(dir.join("copy/sub/f")).unwrap(),
        "inner\n"
    );
    assert_eq!(
        std::fs::read_link(dir.join("copy/rel")).unwrap(),
        Path::new("sub/f")
    );
    // `-`: a tar stream on stdout.
    let r = hutch_run(&u, &["cp", "cp:/tmp/d/sub", "-"]);
    assert_eq!(r.code(), Some(0), "{r}");
    assert!(
        r.stdout.contains("sub/f") && r.stdout.contains("inner"),
        "{r}"
    );
    // In: a file to a new name, a directory into a directory, a tar stream.
    std::fs::write(dir.join("in.txt"), "from host\n").unwrap();
    let (ok, out) = u.sh(&format!(
        "chown -R {}:{} {} 2>/dev/null; true",
        u.uid,
        u.gid,
        d("")
    ));
    assert!(ok, "{out}");
    hutch_ok(&u, &["cp", &d("in.txt"), "cp:/tmp/renamed"]);
    hutch_ok(&u, &["cp", &d("copy"), "cp:/tmp/d"]);
    let tar = hutch_as(&u, &["cp", "cp:/etc/hostname", "-"]).stdout;
    let out = hutch_as_stdin(&u, &["cp", "-", "cp:/root"], &tar);
    assert!(out.status.success(), "{out:?}");
    let out = hutch_ok(
        &u,
        &["exec", "cp", "sh", "-c", "cat /tmp/renamed /tmp/d/copy/sub/f; readlink /tmp/d/copy/rel; cat /root/hostname; stat -c %u /tmp/renamed"],
    );
    assert_eq!(out, format!("from host\ninner\nsub/f\n{id}0\n"));
    // A missing source is an error, and so is a stopped container.
    let r = hutch_run(&u, &["cp", "cp:/no/such", &d("x")]);
    assert_eq!(r.code(), Some(125), "{r}");
    ctr.kill_and_reap();
    let r = hutch_run(&u, &["cp", "cp:/etc/hostname", &d("y")]);
    assert_eq!(r.code(), Some(125), "{r}");
    assert!(r.stderr.contains("not running"), "{r}");
}

/// Container symlinks to host paths (absolute, or `..` past the root)
/// are copied as symlinks and resolved inside the container, never on
/// the host, in both directions.
#[test]
fn cp_never_follows_container_symlinks_to_host_paths() {
    let Some(u) = TestUser::t1() else { return };
    // A host file the user may read and a host directory it may write.
    let secret_dir = u.root_scratch("secret");
    std::fs::write(secret_dir.join("marker"), "host secret\n").unwrap();
    let drop_dir = u.scratch("drop");
    let links = format!(
        "ln -s {sd}/marker /tmp/abs && ln -s {sd} /tmp/absdir && ln -s ../../../../../.. /tmp/up && \
         ln -s {dd} /tmp/drop && ln -s /etc/shadow /tmp/shadow && echo up; exec sleep 60",
        sd = secret_dir.display(),
        dd = drop_dir.display()
    );
    let ctr = start(&u, "links", &[], &["sh", "-c", &links]);
    let out = u.scratch("out");
    let o = |p: &str| out.join(p).display().to_string();
    // Reading: symlinks arrive as symlinks, paths through them stay inside.
    hutch_ok(&u, &["cp", "links:/tmp/abs", &o("abs")]);
    assert_eq!(
        std::fs::read_link(out.join("abs")).unwrap(),
        secret_dir.join("marker")
    );
    hutch_ok(&u, &["cp", "links:/tmp/shadow", &o("shadow")]);
    assert!(std::fs::symlink_metadata(out.join("shadow"))
        .unwrap()
        .is_symlink());
    let marker_via_link = "links:/tmp/absdir/marker";
    let r = hutch_run(&u, &["cp", marker_via_link, &o("m1")]);
    assert_eq!(r.code(), Some(125), "{r}");
    let up_marker = format!("links:/tmp/up{}/marker", secret_dir.display());
    let r = hutch_run(&u, &["cp", &up_marker, &o("m2")]);
    assert_eq!(r.code(), Some(125), "{r}");
    hutch_ok(&u, &["cp", "links:/tmp/up/etc/hostname", &o("h")]);
    let h = std::fs::read_to_string(out.join("h")).unwrap();
    assert_eq!(h.trim().len(), 12, "the container's /etc/hostname: {h}");
    assert!(!out.join("m1").exists() && !out.join("m2").exists());
    // Writing: through /tmp/drop (-> the host dir) and /tmp/up.
    std::fs::write(out.join("payload"), "x").unwrap();
    std::os::unix::fs::chown(out.join("payload"), Some(u.uid), Some(u.gid)).unwrap();
    for dest in ["links:/tmp/drop/", "links:/tmp/drop/payload"] {
        let _ = hutch_run(&u, &["cp", &o("payload"), dest]);
    }
    let via_up = format!("links:/tmp/up{}/payload", drop_dir.display());
    let _ = hutch_run(&u, &["cp", &o("payload"), &via_up]);
    assert_eq!(
        std::fs::read_dir(&drop_dir).unwrap().count(),
        0,
        "nothing landed on the host"
    );
    // Control: the user can read the host file and write the host dir,
    // so only hutch's resolution kept cp away from them.
    let script = format!(
        "cat {}/marker && touch {}/ok",
        secret_dir.display(),
        drop_dir.display()
    );
    let (ok, text) = u.sh(&script);
    assert!(ok && text == "host secret\n", "control: {text}");
    assert!(drop_dir.join("ok").exists());
    ctr.kill_and_reap();
}

/// A detached container (`run -d`, a supervisor between the caller and
/// the init) is joined the same way, and `top` lists it.
#[test]
fn exec_and_top_reach_a_detached_container() {
    let Some(u) = TestUser::t1() else { return };
    let image = images().oci_ref("latest");
    hutch_ok(&u, &["run", "-d", "--name", "bg", &image, "sleep", "60"]);
    let out = hutch_ok(
        &u,
        &["exec", "bg", "sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline"],
    );
    assert_eq!(out.trim(), "sleep 60");
    let top = hutch_ok(&u, &["top", "bg"]);
    assert!(
        top.lines().nth(1).is_some_and(|l| l.ends_with(" sleep 60")),
        "{top}"
    );
    hutch_ok(&u, &["rm", "-f", "bg"]);
    let r = hutch_run(&u, &["exec", "bg", "true"]);
    assert_eq!(r.code(), Some(125), "{r}");
}
