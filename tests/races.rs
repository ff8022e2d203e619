//! Symlink races (issue 7): a process swaps a path between a directory
//! and a symlink out of the container while hutch resolves it, for `hutch
//! cp` in both directions and for bind-mount targets. hutch runs as the
//! unprivileged user hutch-t1; the swappers, the repetitions and every wait
//! are bounded in count and time. Each test has a control showing that the
//! swapped link does lead to the protected host path when followed
//! naively, and checks that the race really happened (both states seen).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// How long hutch is repeated against a swapper, and at most how often.
const RACE_TIME: Duration = Duration::from_secs(8);
const RACE_RUNS: usize = 40;

/// Every file under `dir` with its contents (symlinks as `-> target`).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let meta = fs::symlink_metadata(&p).unwrap();
            let what = if meta.is_symlink() {
                format!("-> {}", fs::read_link(&p).unwrap().display())
            } else if meta.is_dir() {
                stack.push(p.clone());
                "dir".into()
            } else {
                fs::read_to_string(&p).unwrap_or_default()
            };
            out.insert(p, what);
        }
    }
    out
}

/// Samples what `path` is (bounded): true once it was seen both as a
/// real directory and as a symlink, proof that the swapper runs.
fn seen_both(path: &Path, within: Duration) -> bool {
    let (mut dir, mut link) = (false, false);
    let end = Instant::now() + within;
    while !(dir && link) && Instant::now() < end {
        match fs::symlink_metadata(path) {
            Ok(m) if m.is_symlink() => link = true,
            Ok(m) if m.is_dir() => dir = true,
            _ => {}
        }
        thread::sleep(Duration::from_micros(200));
    }
    dir && link
}

/// A shell loop that renames `real` (a directory) and each of `links` in
/// turn to `x` and back, in directory `at`, until `stop` exists or the
/// count runs out. It only ever renames, without replacing (`-nT`), so no
/// name is deleted: deleting a directory that a container's mount sits on
/// would make the kernel detach that mount. Whatever the program under
/// test made at `x` while it was free is renamed away first.
fn swap_script(at: &str, links: usize, stop: &str) -> String {
    let mut body = String::from("mv -nT real x; mv -nT x real; ");
    for i in 0..links {
        body.push_str(&format!("mv -nT l{i} x; mv -nT x l{i}; "));
    }
    format!(
        "cd {at} || exit 1; i=0; while [ ! -e {stop} ] && [ $i -lt 30000 ]; do \
         i=$((i+1)); if [ -e x ] || [ -L x ]; then mv -nT x made$i; fi; {body}done \
         2>/dev/null; echo swaps=$i"
    )
}

/// Starts `hutch run --name NAME --rootfs ROOTFS CMD...` in the background
/// and waits (bounded) until `hutch ps` lists it.
fn start(u: &TestUser, name: &str, rootfs: &Path, cmd: &[&str]) -> Running {
    let rootfs = rootfs.display().to_string();
    let mut args = vec!["run", "--name", name, "--rootfs", &rootfs];
    args.extend_from_slice(cmd);
    spawn_listed(u, name, &args)
}

/// Repeats `f` up to RACE_RUNS times within RACE_TIME; returns how often.
fn repeat(mut f: impl FnMut(usize)) -> usize {
    let end = Instant::now() + RACE_TIME;
    let mut n = 0;
    while n < RACE_RUNS && Instant::now() < end {
        f(n);
        n += 1;
    }
    n
}

/// A directory the user owns outside the rootfs, holding `files` with
/// the text "host canary".
fn canary_dir(u: &TestUser, files: &[&str]) -> PathBuf {
    let canary = u.scratch("canary");
    for f in files {
        fs::write(canary.join(f), "host canary\n").unwrap();
        std::os::unix::fs::chown(canary.join(f), Some(u.uid), Some(u.gid)).unwrap();
    }
    canary
}

/// In `dir`: `real/FILE` with `text`, and for each target a link `lN`
/// for the swapper and a link `ctlN` that stays, for the controls.
fn plant(dir: &Path, file: &str, text: &str, targets: &[String]) {
    fs::create_dir_all(dir.join("real")).unwrap();
    fs::write(dir.join("real").join(file), text).unwrap();
    for (i, t) in targets.iter().enumerate() {
        std::os::unix::fs::symlink(t, dir.join(format!("l{i}"))).unwrap();
        std::os::unix::fs::symlink(t, dir.join(format!("ctl{i}"))).unwrap();
    }
}

/// `..` enough times to climb from anywhere in the test tree to `/`.
const UP: &str = "../../../../../../../../../../../..";

/// `hutch cp` out of and into `/dirs/x` while the container swaps it
/// between a real directory and links to a host directory the user owns
/// (absolute, and `..` past the root) and to `/`: nothing is read from or
/// written to the host directory, only inside the container or HOSTDIR.
#[test]
fn cp_through_a_directory_swapped_for_a_symlink_stays_in_the_container() {
    let Some(u) = TestUser::t1() else { return };
    let canary = canary_dir(&u, &["file", "payload"]);
    let canary_s = canary.display().to_string();
    let targets = [canary_s.clone(), format!("{UP}{canary_s}"), "/".into()];
    let rootfs = own_rootfs(&u, "cp-rootfs", |d| {
        plant(&d.join("dirs"), "file", "inside\n", &targets);
        // Where the links lead when resolved inside the root.
        let inner = d.join(canary_s.trim_start_matches('/'));
        fs::create_dir_all(&inner).unwrap();
        fs::write(inner.join("file"), "in-root decoy\n").unwrap();
        fs::write(d.join("file"), "root file\n").unwrap();
    });
    // Control: followed naively on the host, the links reach the canary.
    let dirs = rootfs.join("dirs");
    let script = format!("cat {0}/ctl0/file {0}/ctl1/file", dirs.display());
    let (ok, text) = u.sh(&script);
    assert!(
        ok && text == "host canary\nhost canary\n",
        "control: {text}"
    );
    let before = snapshot(&canary);

    let swap = swap_script("/dirs", targets.len(), "/stop");
    let ctr = start(&u, "cprace", &rootfs, &["sh", "-c", &swap]);
    assert!(
        seen_both(&dirs.join("x"), Duration::from_secs(10)),
        "no swapping"
    );
    let out = u.scratch("out");
    let src = u.scratch("src");
    fs::write(src.join("payload"), "from host\n").unwrap();
    std::os::unix::fs::chown(src.join("payload"), Some(u.uid), Some(u.gid)).unwrap();
    let payload = src.join("payload").display().to_string();
    let out_s = format!("{}/", out.display());
    let (mut copied_out, mut copied_in) = (0, 0);
    let mut seen = BTreeMap::new();
    let runs = repeat(|n| {
        let r = hutch_run(&u, &["cp", "cprace:/dirs/x/file", &out_s]);
        assert!(matches!(r.code(), Some(0 | 125)), "cp out: {r}");
        if let Ok(got) = fs::read_to_string(out.join("file")) {
            assert!(
                ["inside\n", "in-root decoy\n", "root file\n"].contains(&got.as_str()),
                "cp out copied a host file: {got:?}"
            );
            copied_out += 1;
            *seen.entry(got.trim().to_string()).or_insert(0) += 1;
            fs::remove_file(out.join("file")).unwrap();
        }
        assert_eq!(fs::read_dir(&out).unwrap().count(), 0, "cp out wrote more");
        let dest = ["cprace:/dirs/x/", "cprace:/dirs/x/payload"][n % 2];
        let r = hutch_run(&u, &["cp", &payload, dest]);
        assert!(matches!(r.code(), Some(0 | 125)), "cp in: {r}");
        copied_in += usize::from(r.code() == Some(0));
        assert_eq!(snapshot(&canary), before, "cp in wrote to the host");
    });
    fs::write(rootfs.join("stop"), "").unwrap();
    ctr.kill_and_reap();
    eprintln!("{runs} runs: {copied_out} copies out {seen:?}, {copied_in} copies in");
    assert!(copied_out > 0 && copied_in > 0, "no copy ever succeeded");
    assert_eq!(snapshot(&canary), before, "the host directory changed");
    // Control: a naive copy through the same link does overwrite it.
    let (ok, text) = u.sh(&format!("cp {payload} {}/ctl0/", dirs.display()));
    assert!(ok, "control: {text}");
    assert_eq!(
        fs::read_to_string(canary.join("payload")).unwrap(),
        "from host\n"
    );
}

/// A background process running `sh -c SCRIPT` as the test user on the
/// host; `finish` makes it stop (via the stop file) and reaps it, bounded.
struct Swapper {
    child: Child,
    stop: PathBuf,
}

impl Swapper {
    fn start(u: &TestUser, script: &str, stop: PathBuf) -> Swapper {
        let child = Command::new("setpriv")
            .args(u.sh_args(script))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the swapper");
        Swapper { child, stop }
    }

    fn finish(mut self) {
        let _ = fs::write(&self.stop, "");
        let end = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < end {
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The mount points (field 5) of mountinfo lines whose root (field 4)
/// ends with `suffix`.
fn mount_points_of(mountinfo: &str, suffix: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.len() > 4 && f[3].ends_with(suffix)).then(|| f[4].to_string())
        })
        .collect()
}

/// `run -v HOSTDIR:/mnt/x` repeated while a host process of the same user
/// swaps ROOTFS/mnt/x between a directory and links to a host directory
/// (absolute, and `..` out of the rootfs) and to `../..` (the container's
/// root): the volume is always mounted inside the container, never over
/// its root (or the run fails with 125), and the host directory neither
/// changes nor gets a mount.
#[test]
fn bind_targets_swapped_for_symlinks_stay_inside_the_rootfs() {
    let Some(u) = TestUser::t1() else { return };
    let canary = canary_dir(&u, &["canary"]);
    let canary_s = canary.display().to_string();
    // The last resolves to the container's root, which must be refused.
    let targets = [canary_s.clone(), format!("{UP}{canary_s}"), "../..".into()];
    let rootfs = own_rootfs(&u, "bind-rootfs", |d| {
        plant(&d.join("mnt"), "keep", "", &targets)
    });
    let mnt = rootfs.join("mnt");
    // Control: followed naively on the host, the links reach the canary.
    let script = format!("cat {0}/ctl0/canary {0}/ctl1/canary", mnt.display());
    let (ok, text) = u.sh(&script);
    assert!(
        ok && text == "host canary\nhost canary\n",
        "control: {text}"
    );
    let before = snapshot(&canary);
    let vol = u.scratch("racevol");
    fs::write(vol.join("marker"), "volume\n").unwrap();
    let suffix = format!("/{}/racevol", u.dir.file_name().unwrap().to_string_lossy());

    let stop_file = rootfs.join("stop");
    let swap = swap_script(
        &mnt.display().to_string(),
        targets.len(),
        &stop_file.display().to_string(),
    );
    let swapper = Swapper::start(&u, &swap, stop_file);
    assert!(
        seen_both(&mnt.join("x"), Duration::from_secs(10)),
        "no swapping"
    );
    let (rootfs_s, v) = (
        rootfs.display().to_string(),
        format!("{}:/mnt/x", vol.display()),
    );
    let (mut mounted, mut seen) = (0, BTreeMap::new());
    let runs = repeat(|_| {
        let args = [
            "run",
            "--rm",
            "--rootfs",
            &rootfs_s,
            "-v",
            &v,
            "cat",
            "/proc/self/mountinfo",
        ];
        let r = hutch_run(&u, &args);
        assert!(matches!(r.code(), Some(0 | 125)), "run: {r}");
        if r.code() == Some(0) {
            let at = mount_points_of(&r.stdout, &suffix);
            assert_eq!(at.len(), 1, "the volume is not mounted once inside: {r}");
            assert_ne!(at[0], "/", "the volume replaced the container's root");
            mounted += 1;
            *seen.entry(at[0].clone()).or_insert(0) += 1;
        }
        assert_eq!(snapshot(&canary), before, "the host directory changed");
    });
    swapper.finish();
    eprintln!("{runs} runs, {mounted} mounted at {seen:?}");
    assert!(mounted > 0, "no run ever mounted the volume");
    assert_eq!(snapshot(&canary), before, "the host directory changed");
    let host_mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !host_mounts.contains(&canary_s),
        "a mount on the host: {host_mounts}"
    );
    // Control: without a swapper, through a link the volume is still
    // mounted inside (at the link's target within the rootfs).
    let v = format!("{}:/mnt/ctl1", vol.display());
    let args = [
        "run",
        "--rm",
        "--rootfs",
        &rootfs_s,
        "-v",
        &v,
        "cat",
        "/mnt/ctl1/marker",
    ];
    assert_eq!(hutch_ok(&u, &args), "volume\n");
    assert!(rootfs.join(canary_s.trim_start_matches('/')).is_dir());
    // A target that resolves to the container's root is refused.
    let v = format!("{}:/mnt/ctl2", vol.display());
    let args = ["run", "--rm", "--rootfs", &rootfs_s, "-v", &v, "true"];
    let r = hutch_run(&u, &args);
    assert_eq!(r.code(), Some(125), "{r}");
    assert!(r.stderr.contains("resolves to the container's root"), "{r}");
}
