//! Test harness for hutch's integration tests.
//!
//! The tests run as root under `cargo test` (see tests/run.sh), but every
//! `hutch` invocation runs as an unprivileged test user with its own audit
//! identity, exactly as a person at a login shell would:
//!
//! ```text
//! sh -c 'echo UID > /proc/self/loginuid; read s < /proc/self/sessionid; echo $s > SESSFILE;
//!        exec setpriv --reuid=UID --regid=GID --init-groups env -i HOME=.. PATH=.. XDG_..=.. hutch ARGS'
//! ```
//!
//! Root may set its loginuid (a new audit session starts each time), and the
//! setpriv'd hutch inherits both. Each `TestUser` value has its own
//! XDG_RUNTIME_DIR and XDG_DATA_HOME (owned by the user, mode 0700), so a test
//! can check that nothing is left behind. Every wait is bounded.
//!
//! Under CI (env `CI` set), `require` turns a would-be skip into a failure.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub use nix::sys::signal::Signal;

pub mod layout;
pub mod registry;

/// Default bound on a single hutch invocation.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(90);
/// Window size of the terminal that tty-mode runs give hutch.
pub const TTY_ROWS: u16 = 31;
pub const TTY_COLS: u16 = 101;
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where the test images are (built by rootfs-tools/build-images.sh).
#[derive(Debug, Clone)]
pub struct Paths {
    pub dir: PathBuf,
    /// Plain busybox root filesystem for `--rootfs`.
    pub rootfs: PathBuf,
    /// OCI layout with tags `latest` and `entry`.
    pub oci: PathBuf,
    /// OCI layout whose `latest` is the entry image.
    pub oci_entry: PathBuf,
    /// oci-archive of `oci`.
    pub archive: PathBuf,
}

impl Paths {
    pub fn rootfs(&self) -> String {
        self.rootfs.display().to_string()
    }
    /// `oci:DIR/oci:TAG`
    pub fn oci_ref(&self, tag: &str) -> String {
        format!("oci:{}:{tag}", self.oci.display())
    }
    /// `oci:DIR/oci-entry` (no tag: the default, latest)
    pub fn oci_entry_ref(&self) -> String {
        format!("oci:{}", self.oci_entry.display())
    }
    /// `oci-archive:DIR/busybox.oci.tar:TAG`
    pub fn archive_ref(&self, tag: &str) -> String {
        format!("oci-archive:{}:{tag}", self.archive.display())
    }
}

struct Env {
    base: PathBuf,
    images: Paths,
    hutch: PathBuf,
}

static ENV: OnceLock<Result<Env, String>> = OnceLock::new();
static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn setup() -> Result<Env, String> {
    if !is_root() {
        return Err("integration tests must run as root: sudo tests/run.sh".into());
    }
    let base =
        PathBuf::from(std::env::var("HUTCH_TEST_DIR").unwrap_or("/var/tmp/hutch-test".into()));
    // setup-host.sh is idempotent and quick once done; it prints the images dir.
    let out = Command::new(repo_root().join("tests/setup-host.sh"))
        .env("HUTCH_TEST_DIR", &base)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running tests/setup-host.sh: {e}"))?;
    if !out.status.success() {
        return Err(format!("tests/setup-host.sh failed: {}", out.status));
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let images = Paths {
        rootfs: dir.join("rootfs"),
        oci: dir.join("oci"),
        oci_entry: dir.join("oci-entry"),
        archive: dir.join("busybox.oci.tar"),
        dir,
    };
    for p in [
        &images.rootfs,
        &images.oci,
        &images.oci_entry,
        &images.archive,
    ] {
        if !p.exists() {
            return Err(format!("{} missing after setup", p.display()));
        }
    }

    // The built binary may sit where the test users cannot read (/root/...):
    // copy it once per test process into a world-readable directory.
    let bins = base.join("bin");
    mkdir_mode(&bins, 0o755)?;
    if let Ok(entries) = fs::read_dir(&bins) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.parse::<u32>().is_ok() && !Path::new("/proc").join(&name).exists() {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
    let bindir = bins.join(std::process::id().to_string());
    mkdir_mode(&bindir, 0o755)?;
    let hutch = bindir.join("hutch");
    fs::copy(env!("CARGO_BIN_EXE_hutch"), &hutch).map_err(|e| format!("copying hutch: {e}"))?;
    fs::set_permissions(&hutch, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;

    let work = base.join("work");
    mkdir_mode(&work, 0o755)?;
    // Directories kept by failed runs of earlier test processes: their names
    // are TEST-PID-N[-root]; drop those whose process is gone.
    if let Ok(entries) = fs::read_dir(&work) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let trimmed = name.strip_suffix("-root").unwrap_or(&name);
            let pid = trimmed
                .rsplit('-')
                .nth(1)
                .and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|p| !Path::new("/proc").join(p.to_string()).exists()) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(Env {
        base,
        images,
        hutch,
    })
}

fn mkdir_mode(p: &Path, mode: u32) -> Result<(), String> {
    fs::create_dir_all(p).map_err(|e| format!("mkdir {}: {e}", p.display()))?;
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", p.display()))
}

fn env_or_err() -> Result<&'static Env, &'static str> {
    ENV.get_or_init(setup).as_ref().map_err(|e| e.as_str())
}

fn env() -> &'static Env {
    match env_or_err() {
        Ok(e) => e,
        Err(e) => panic!("test environment unavailable: {e}"),
    }
}

/// The test images; runs host setup on first use.
pub fn images() -> &'static Paths {
    &env().images
}

/// Path of the world-readable copy of the hutch binary.
pub fn hutch_bin() -> &'static Path {
    &env().hutch
}

/// True when running under CI, where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Returns `ok`. When not ok: under CI panics (a skip is a failure there);
/// locally prints why the test is skipped and returns false.
pub fn require(feature: &str, ok: bool, reason: &str) -> bool {
    if ok {
        return true;
    }
    if in_ci() {
        panic!("required feature `{feature}` unavailable under CI: {reason}");
    }
    eprintln!("SKIP ({feature}): {reason}");
    false
}

/// Whether a program is on root's PATH.
pub fn have_tool(name: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// One unprivileged user, with a fresh runtime and data directory for this test.
#[derive(Debug)]
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    /// (start, count) from /etc/subuid, if any.
    pub subuid: Option<(u32, u32)>,
    pub subgid: Option<(u32, u32)>,
    /// Per-test directory owned by the user (0700); holds run/, data/, scratch dirs.
    pub dir: PathBuf,
    pub runtime_dir: PathBuf,
    pub data_dir: PathBuf,
    /// Root-owned per-test directory (0755) for host-root files.
    pub root_dir: PathBuf,
    sessions: Mutex<Vec<u32>>,
}

fn lookup_subid(file: &str, name: &str, uid: u32) -> Option<(u32, u32)> {
    let text = fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.trim().split(':').collect();
        if f.len() == 3 && (f[0] == name || f[0] == uid.to_string()) {
            Some((f[1].parse().ok()?, f[2].parse().ok()?))
        } else {
            None
        }
    })
}

fn getent_passwd(name: &str) -> Option<(u32, u32, PathBuf)> {
    let out = Command::new("getent")
        .args(["passwd", name])
        .output()
        .ok()?;
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let f: Vec<&str> = line.split(':').collect();
    if f.len() < 7 {
        return None;
    }
    Some((f[2].parse().ok()?, f[3].parse().ok()?, PathBuf::from(f[5])))
}

impl TestUser {
    /// `setpriv` arguments that run `sh -c SCRIPT` as this user.
    pub fn sh_args(&self, script: &str) -> Vec<String> {
        vec![
            format!("--reuid={}", self.uid),
            format!("--regid={}", self.gid),
            "--init-groups".into(),
            "sh".into(),
            "-c".into(),
            script.into(),
        ]
    }

    /// Runs `sh -c SCRIPT` on the host as this user (bounded).
    pub fn sh(&self, script: &str) -> (bool, String) {
        let args = self.sh_args(script);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        host("setpriv", &args)
    }

    /// `hutch-t1`: has subordinate id ranges. None (locally) when the
    /// environment is unavailable; panics under CI.
    pub fn t1() -> Option<TestUser> {
        Self::new("hutch-t1")
    }

    /// `hutch-t2`: has no subordinate id ranges (single-id fallback).
    pub fn t2() -> Option<TestUser> {
        Self::new("hutch-t2")
    }

    fn new(name: &str) -> Option<TestUser> {
        if let Err(e) = env_or_err() {
            require("test environment", false, e);
            return None;
        }
        let env = env();
        let (uid, gid, home) =
            getent_passwd(name).unwrap_or_else(|| panic!("user {name} missing after setup"));
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let tname = thread::current()
            .name()
            .unwrap_or("test")
            .replace("::", "-")
            .replace(
                |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_',
                "_",
            );
        let id = format!("{tname}-{}-{n}", std::process::id());
        let dir = env.base.join("work").join(&id);
        let root_dir = env.base.join("work").join(format!("{id}-root"));
        let _ = fs::remove_dir_all(&dir);
        let _ = fs::remove_dir_all(&root_dir);
        let runtime_dir = dir.join("run");
        let data_dir = dir.join("data");
        for d in [&dir, &runtime_dir, &data_dir] {
            mkdir_mode(d, 0o700).unwrap();
            std::os::unix::fs::chown(d, Some(uid), Some(gid)).unwrap();
        }
        mkdir_mode(&root_dir, 0o755).unwrap();
        Some(TestUser {
            name: name.to_string(),
            uid,
            gid,
            home,
            subuid: lookup_subid("/etc/subuid", name, uid),
            subgid: lookup_subid("/etc/subgid", name, uid),
            dir,
            runtime_dir,
            data_dir,
            root_dir,
            sessions: Mutex::new(Vec::new()),
        })
    }

    /// A fresh directory owned by the user (for volumes).
    pub fn scratch(&self, name: &str) -> PathBuf {
        let d = self.dir.join(name);
        mkdir_mode(&d, 0o755).unwrap();
        std::os::unix::fs::chown(&d, Some(self.uid), Some(self.gid)).unwrap();
        d
    }

    /// A fresh directory owned by host root, mode 0755 (readable by the user).
    pub fn root_scratch(&self, name: &str) -> PathBuf {
        let d = self.root_dir.join(name);
        mkdir_mode(&d, 0o755).unwrap();
        d
    }

    /// Container records left in the state directories
    /// ($XDG_RUNTIME_DIR/hutch/containers, $XDG_DATA_HOME/hutch/containers).
    pub fn leftover_containers(&self) -> Vec<PathBuf> {
        let mut left = Vec::new();
        for d in [
            self.runtime_dir.join("hutch/containers"),
            self.data_dir.join("hutch/containers"),
        ] {
            if let Ok(entries) = fs::read_dir(&d) {
                left.extend(entries.flatten().map(|e| e.path()));
            }
        }
        left
    }

    /// Fails the test (at the caller) if any container record is left.
    #[track_caller]
    pub fn assert_no_leftover_containers(&self) {
        let left = self.leftover_containers();
        assert!(left.is_empty(), "{left:?}");
    }

    fn record_session(&self, s: u32) {
        self.sessions.lock().unwrap().push(s);
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        for s in self.sessions.lock().unwrap().iter() {
            kill_session(*s);
        }
        if thread::panicking() {
            eprintln!("(test dirs kept for inspection: {})", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
            let _ = fs::remove_dir_all(&self.root_dir);
        }
    }
}

// ---------------------------------------------------------------------------
// /proc helpers

/// Contents of /proc/PID/FILE, trimmed.
pub fn proc_read(pid: u32, file: &str) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()
        .map(|s| s.trim().to_string())
}

fn all_pids() -> Vec<u32> {
    fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Parent pid of a process (from /proc/PID/stat).
pub fn ppid(pid: u32) -> Option<u32> {
    let stat = proc_read(pid, "stat")?;
    let after = &stat[stat.rfind(')')? + 2..];
    after.split_whitespace().nth(1)?.parse().ok()
}

/// All current descendants of `pid`.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for p in all_pids() {
        if let Some(pp) = ppid(p) {
            children.entry(pp).or_default().push(p);
        }
    }
    let mut out = Vec::new();
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        if let Some(c) = children.get(&p) {
            out.extend(c);
            stack.extend(c);
        }
    }
    out
}

/// Processes whose audit session id is `session`.
pub fn session_processes(session: u32) -> Vec<u32> {
    let s = session.to_string();
    all_pids()
        .into_iter()
        .filter(|p| proc_read(*p, "sessionid").as_deref() == Some(s.as_str()))
        .collect()
}

/// SIGKILL every process of an audit session (cleanup after a test).
pub fn kill_session(session: u32) {
    for _ in 0..3 {
        let pids = session_processes(session);
        if pids.is_empty() {
            return;
        }
        for p in pids {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p as i32), Signal::SIGKILL);
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (bounded) until no process of the session remains; returns the survivors.
pub fn wait_session_empty(session: u32, timeout: Duration) -> Vec<u32> {
    let end = Instant::now() + timeout;
    loop {
        let left: Vec<u32> = session_processes(session)
            .into_iter()
            .filter(|p| !proc_read(*p, "stat").is_some_and(|s| s.contains(") Z ")))
            .collect();
        if left.is_empty() || Instant::now() > end {
            return left;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------
// running hutch

/// Options for one hutch invocation.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Bytes written to hutch's stdin (then closed); None = /dev/null.
    pub stdin: Option<Vec<u8>>,
    /// Kill hutch (and its session) after this long.
    pub timeout: Duration,
    /// Run under `script` so hutch's stdio is a terminal.
    pub tty: bool,
    /// Extra environment for hutch.
    pub env: Vec<(String, String)>,
    /// A host path hutch inherits open on fd 7 (as a careless parent
    /// would leak it), for the leaked-descriptor probes.
    pub fd7: Option<PathBuf>,
    /// (SOURCE, TARGET) host paths bound over each other in a private
    /// mount namespace that only this hutch sees, to show it a different
    /// host (a resolv.conf, a missing helper program).
    pub binds: Vec<(PathBuf, PathBuf)>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            stdin: None,
            timeout: DEFAULT_TIMEOUT,
            tty: false,
            env: Vec::new(),
            fd7: None,
            binds: Vec::new(),
        }
    }
}

/// Result of one invocation.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// The audit session id of the invocation.
    pub session: Option<u32>,
    pub timed_out: bool,
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
    pub fn output(&self) -> Output {
        Output {
            status: self.status,
            stdout: self.stdout.clone().into_bytes(),
            stderr: self.stderr.clone().into_bytes(),
        }
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "status: {:?}{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            if self.timed_out { " (TIMED OUT)" } else { "" },
            self.stdout,
            self.stderr
        )
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A hutch process running in the background.
pub struct Running {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    session_file: PathBuf,
    session: Option<u32>,
    timeout: Duration,
    started: Instant,
}

fn reader<R: Read + Send + 'static>(mut r: R, buf: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        loop {
            match r.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.lock().unwrap().extend_from_slice(&chunk[..n]),
            }
        }
    })
}

/// Starts hutch as `user` with its loginuid set; see the module docs.
pub fn spawn_hutch(user: &TestUser, args: &[&str], opts: &Opts) -> Running {
    spawn_hutch_bin(user, &env().hutch, args, opts)
}

/// Like `spawn_hutch`, running the hutch binary at `bin` (e.g. a copy the
/// user owns, for the attacks on the binary itself).
pub fn spawn_hutch_bin(user: &TestUser, bin: &Path, args: &[&str], opts: &Opts) -> Running {
    let env = env();
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let session_file = env
        .base
        .join("work")
        .join(format!("session-{}-{n}", std::process::id()));
    let _ = fs::remove_file(&session_file);

    let mut inner: Vec<String> = vec![
        "setpriv".into(),
        format!("--reuid={}", user.uid),
        format!("--regid={}", user.gid),
        "--init-groups".into(),
        "env".into(),
        "-i".into(),
        format!("HOME={}", user.home.display()),
        format!("PATH={PATH}"),
        format!("USER={}", user.name),
        format!("LOGNAME={}", user.name),
        format!("XDG_RUNTIME_DIR={}", user.runtime_dir.display()),
        format!("XDG_DATA_HOME={}", user.data_dir.display()),
        "LANG=C".into(),
    ];
    if opts.tty {
        inner.push("TERM=xterm".into());
    }
    if let Ok(v) = std::env::var("RUST_BACKTRACE") {
        inner.push(format!("RUST_BACKTRACE={v}"));
    }
    for (k, v) in &opts.env {
        inner.push(format!("{k}={v}"));
    }
    inner.push(bin.display().to_string());
    inner.extend(args.iter().map(|s| s.to_string()));

    const SCRIPT: &str = r#"echo "$1" > /proc/self/loginuid || { echo "harness: cannot set loginuid" >&2; exit 99; }
read s < /proc/self/sessionid; echo "$s" > "$2"; shift 2
if [ -n "$HUTCH_TEST_FD7" ]; then exec 7<"$HUTCH_TEST_FD7"; fi
exec "$@""#;
    let mut sh_argv: Vec<String> = vec![
        "sh".into(),
        "-c".into(),
        SCRIPT.into(),
        "sh".into(),
        user.uid.to_string(),
        session_file.display().to_string(),
    ];
    sh_argv.extend(inner);
    if !opts.binds.is_empty() {
        assert!(!opts.tty, "binds and tty are not combined");
        const BIND: &str = r#"while [ "$1" != -- ]; do mount --bind "$1" "$2" || exit 98; shift 2; done; shift; exec "$@""#;
        let mut wrapped: Vec<String> = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            BIND,
            "sh",
        ]
        .map(String::from)
        .to_vec();
        for (src, dst) in &opts.binds {
            wrapped.push(src.display().to_string());
            wrapped.push(dst.display().to_string());
        }
        wrapped.push("--".into());
        wrapped.append(&mut sh_argv);
        sh_argv = wrapped;
    }

    let mut cmd = if opts.tty {
        // script's terminal starts at 0x0 without a terminal of our own;
        // give it a known size so tests can see hutch pass it on.
        let line = format!(
            "stty rows {TTY_ROWS} cols {TTY_COLS}; {}",
            sh_argv
                .iter()
                .map(|s| shell_quote(s))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let mut c = Command::new("script");
        c.args(["-qefc", &line, "/dev/null"])
            .env("SHELL", "/bin/sh");
        c
    } else {
        let mut c = Command::new(&sh_argv[0]);
        c.args(&sh_argv[1..]);
        c
    };
    if let Some(p) = &opts.fd7 {
        cmd.env("HUTCH_TEST_FD7", p);
    }
    cmd.current_dir("/")
        .stdin(if opts.stdin.is_some() || opts.tty {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawning hutch");
    let mut stdin = child.stdin.take();
    // Bytes given up front are written (then the pipe closes); otherwise a
    // tty run keeps the pipe for `type_in`.
    if let Some(data) = opts.stdin.clone() {
        if let Some(mut w) = stdin.take() {
            thread::spawn(move || {
                let _ = w.write_all(&data);
            });
        }
    }
    let stdout = Arc::new(Mutex::new(Vec::new()));
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let readers = vec![
        reader(child.stdout.take().unwrap(), stdout.clone()),
        reader(child.stderr.take().unwrap(), stderr.clone()),
    ];
    let mut r = Running {
        child,
        stdin,
        stdout,
        stderr,
        readers,
        session_file,
        session: None,
        timeout: opts.timeout,
        started: Instant::now(),
    };
    if let Some(s) = r.session() {
        user.record_session(s);
    }
    r
}

impl Running {
    /// Kills a foreground hutch (its death kills the container's init)
    /// and waits, bounded, until the processes below it are gone, so a
    /// later command never sees a container still dying.
    pub fn kill_and_reap(self) {
        let procs = self.descendants();
        self.signal(Signal::SIGKILL);
        let _ = self.wait();
        let end = Instant::now() + Duration::from_secs(10);
        while procs
            .iter()
            .any(|p| Path::new(&format!("/proc/{p}")).exists())
        {
            assert!(Instant::now() < end, "container processes left: {procs:?}");
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Pid of the hutch process (or of `script` in tty mode).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Audit session id of this invocation (waits up to 5 s for the wrapper).
    pub fn session(&mut self) -> Option<u32> {
        if self.session.is_none() {
            let end = Instant::now() + Duration::from_secs(5);
            while Instant::now() < end {
                if let Ok(s) = fs::read_to_string(&self.session_file) {
                    if let Ok(v) = s.trim().parse() {
                        self.session = Some(v);
                        let _ = fs::remove_file(&self.session_file);
                        break;
                    }
                }
                thread::sleep(Duration::from_millis(10));
            }
        }
        self.session
    }

    pub fn stdout_now(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).to_string()
    }

    pub fn stderr_now(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).to_string()
    }

    /// Waits until stdout contains `pat`; false on timeout or if hutch exited first.
    pub fn wait_for_stdout(&mut self, pat: &str, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if self.stdout_now().contains(pat) {
                return true;
            }
            if Instant::now() > end || matches!(self.child.try_wait(), Ok(Some(_))) {
                return self.stdout_now().contains(pat);
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Writes `data` to hutch's stdin; in tty mode, types it on hutch's
    /// terminal. Needs a run without `Opts::stdin`.
    pub fn type_in(&mut self, data: &[u8]) {
        let w = self
            .stdin
            .as_mut()
            .expect("hutch's stdin is not ours to write");
        w.write_all(data).expect("writing to hutch's stdin");
        w.flush().expect("flushing hutch's stdin");
    }

    /// Sends a signal to the hutch process.
    pub fn signal(&self, sig: Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid() as i32), sig)
            .expect("sending signal to hutch");
    }

    /// Current descendants of hutch (its helpers and the container's processes).
    pub fn descendants(&self) -> Vec<u32> {
        descendants(self.pid())
    }

    /// Waits for hutch to exit (bounded by the timeout given at spawn; on
    /// timeout kills it and every process of its session).
    pub fn wait(mut self) -> Run {
        let end = self.started + self.timeout;
        let mut timed_out = false;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(st)) => break st,
                Ok(None) if Instant::now() > end => {
                    timed_out = true;
                    let _ = self.child.kill();
                    if let Some(s) = self.session() {
                        kill_session(s);
                    }
                    break self.child.wait().expect("reaping killed hutch");
                }
                Ok(None) => thread::sleep(Duration::from_millis(20)),
                Err(e) => panic!("waiting for hutch: {e}"),
            }
        };
        drop(self.stdin.take());
        // Container processes may still hold the pipes; give the readers a
        // bounded grace period, then take what we have.
        let grace = Instant::now() + Duration::from_secs(3);
        while self.readers.iter().any(|h| !h.is_finished()) && Instant::now() < grace {
            thread::sleep(Duration::from_millis(10));
        }
        let session = self.session();
        Run {
            status,
            stdout: self.stdout_now(),
            stderr: self.stderr_now(),
            session,
            timed_out,
        }
    }
}

/// Runs hutch as `user` with options.
pub fn run_hutch(user: &TestUser, args: &[&str], opts: &Opts) -> Run {
    spawn_hutch(user, args, opts).wait()
}

/// Runs hutch as `user` (stdin /dev/null, default timeout); panics on timeout.
pub fn hutch_as(user: &TestUser, args: &[&str]) -> Output {
    let r = run_hutch(user, args, &Opts::default());
    assert!(!r.timed_out, "hutch {args:?} timed out\n{r}");
    r.output()
}

/// Like `hutch_as`, feeding `stdin`.
pub fn hutch_as_stdin(user: &TestUser, args: &[&str], stdin: &[u8]) -> Output {
    let r = run_hutch(
        user,
        args,
        &Opts {
            stdin: Some(stdin.to_vec()),
            ..Opts::default()
        },
    );
    assert!(!r.timed_out, "hutch {args:?} timed out\n{r}");
    r.output()
}

/// Runs hutch, killing it after `secs`; the caller checks `timed_out`.
pub fn hutch_as_timeout(user: &TestUser, args: &[&str], secs: u64) -> Run {
    run_hutch(
        user,
        args,
        &Opts {
            timeout: Duration::from_secs(secs),
            ..Opts::default()
        },
    )
}

/// Runs hutch and returns the Run, panicking on timeout.
pub fn hutch_run(user: &TestUser, args: &[&str]) -> Run {
    let r = run_hutch(user, args, &Opts::default());
    assert!(!r.timed_out, "hutch {args:?} timed out\n{r}");
    r
}

/// Runs hutch, asserts exit 0, returns stdout.
pub fn hutch_ok(user: &TestUser, args: &[&str]) -> String {
    let r = hutch_run(user, args);
    assert_eq!(r.code(), Some(0), "hutch {args:?} failed\n{r}");
    r.stdout
}

/// Runs a host command as root, bounded; returns (success, stdout+stderr).
pub fn host(cmd: &str, args: &[&str]) -> (bool, String) {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {cmd}: {e}"));
    let out = Arc::new(Mutex::new(Vec::new()));
    let readers = [
        reader(child.stdout.take().unwrap(), out.clone()),
        reader(child.stderr.take().unwrap(), out.clone()),
    ];
    let end = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > end {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        thread::sleep(Duration::from_millis(20));
    };
    for r in readers {
        let _ = r.join();
    }
    let text = String::from_utf8_lossy(&out.lock().unwrap()).to_string();
    (status.success(), text)
}

/// A docker-archive of the test image `latest`, named `name` (e.g.
/// `test/busybox:latest`), readable by the test users. `None` when skopeo
/// is missing (which fails the test under CI).
pub fn docker_archive(u: &TestUser, name: &str) -> Option<PathBuf> {
    if !require(
        "skopeo",
        have_tool("skopeo"),
        "needed to build a docker-archive",
    ) {
        return None;
    }
    let dir = u.root_scratch(&format!(
        "archive-{}",
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    let archive = dir.join("image.tar");
    let dest = format!("docker-archive:{}:{name}", archive.display());
    let (ok, out) = host(
        "skopeo",
        &["copy", "-q", &images().oci_ref("latest"), &dest],
    );
    assert!(ok, "{out}");
    fs::set_permissions(&archive, fs::Permissions::from_mode(0o644)).unwrap();
    Some(archive)
}

/// Copies the test rootfs into `dest` (an existing directory), as root.
pub fn copy_rootfs(dest: &Path) {
    let src = format!("{}/.", images().rootfs());
    let (ok, out) = host("cp", &["-a", &src, &dest.display().to_string()]);
    assert!(ok, "copy the test rootfs: {out}");
}

/// A copy of the test rootfs the user owns (so hutch may create mount
/// points in it), with `edit` applied as root.
pub fn own_rootfs(u: &TestUser, name: &str, edit: impl FnOnce(&Path)) -> PathBuf {
    let dir = u.scratch(name);
    copy_rootfs(&dir);
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
    dir
}

/// Spawns `hutch ARGS` (a `run --name NAME ...`) in the background and
/// waits (bounded) until `hutch ps` lists NAME as running.
pub fn spawn_listed(u: &TestUser, name: &str, args: &[&str]) -> Running {
    let r = spawn_hutch(u, args, &Opts::default());
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let ps = hutch_ok(u, &["ps"]);
        if ps.lines().any(|l| l.ends_with(name)) {
            return r;
        }
        assert!(Instant::now() < end, "container {name} never ran: {ps}");
        thread::sleep(Duration::from_millis(100));
    }
}

/// `.tmp-*` entries (half-unpacked layers, blob temp files) anywhere below
/// `dir`, such as a store.
pub fn temps(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with(".tmp-") {
                out.push(e.path());
            } else if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    out
}
