//! Container records under the user's own directories, written by the
//! `hutch` process and by a detached container's supervisor:
//!
//! - runtime: `$XDG_RUNTIME_DIR/hutch`, or `/tmp/hutch-UID` when unset (under
//!   `su`, cron or batch jobs); the /tmp one is created 0700 and refused if
//!   it is a symlink or belongs to someone else (another user could plant it).
//!   Holds only what dies with a boot: `containers/ID/` with config.json
//!   and the generated /etc files.
//! - data: `$XDG_DATA_HOME/hutch`, or `~/.local/share/hutch`. Holds the
//!   record, `containers/ID/state.json`, so it outlives logout and reboot,
//!   next to the container's files and its log.
//! - containers' writable files (upper dirs, private copies) and records:
//!   `DATA/containers`, or `/var/tmp/hutch-UID/containers` when the data
//!   dir is on a network filesystem (NFS, Lustre, ...), which cannot hold
//!   them; checked as the /tmp runtime dir is.
//!
//! `state.json` is replaced atomically (write, rename). A per-user
//! lock (`containers.lock`, flock(2)) makes "name is free, create" one
//! step, and orders a record's last update against its removal. A live
//! process is recorded as pid + start time + boot id (`ProcId`), so a
//! reused pid or a reboot never reads as a running container.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::errors::WithHint;

pub struct Dirs {
    pub runtime: PathBuf,
    pub data: PathBuf,
    /// Where each container's data dir goes (see the module docs).
    pub containers: PathBuf,
}

impl Dirs {
    pub fn new() -> anyhow::Result<Dirs> {
        let uid = nix::unistd::Uid::current().as_raw();
        let runtime = match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
            Some(dir) => PathBuf::from(dir).join("hutch"),
            None => PathBuf::from(format!("/tmp/hutch-{uid}")),
        };
        private_dir(&runtime, uid, "runtime", "XDG_RUNTIME_DIR")?;
        let data = match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => home()?.join(".local/share"),
        }
        .join("hutch");
        private_data_dir(&data, uid)?;
        let containers = containers_dir(&data, uid);
        if let Some(local) = containers.parent().filter(|p| !p.starts_with(&data)) {
            private_dir(local, uid, "containers", "XDG_DATA_HOME").context(
                "keep containers' files on local disk (the store is on a network filesystem)",
            )?;
        }
        Ok(Dirs {
            runtime,
            data,
            containers,
        })
    }

    /// `run`, `data` and `data/containers` under one scratch `root`: the
    /// layout the unit tests use.
    #[cfg(test)]
    pub fn under(root: &Path) -> Dirs {
        Dirs {
            runtime: root.join("run"),
            data: root.join("data"),
            containers: root.join("data/containers"),
        }
    }
}

/// Where containers' data dirs (upper, work, vfs copies) go for the store
/// `data`: beside it, or on local disk in `/var/tmp/hutch-UID` when `data`
/// is on a network filesystem. A statfs; creates nothing (`doctor` asks).
pub fn containers_dir(data: &Path, uid: u32) -> PathBuf {
    match crate::preflight::fs_name(data) {
        Some((_, true)) => PathBuf::from(format!("/var/tmp/hutch-{uid}/containers")),
        _ => data.join("containers"),
    }
}

fn home() -> anyhow::Result<PathBuf> {
    if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(h));
    }
    nix::unistd::User::from_uid(nix::unistd::Uid::current())
        .ok()
        .flatten()
        .map(|u| u.dir)
        .context("find your home directory")
        .hint("set HOME or XDG_DATA_HOME")
}

/// Creates `dir` (mode 0700) and checks it is ours: a real directory, not
/// a symlink, owned by `uid`, closed to others.
/// `what` and `var` name it in the error and its hint.
fn private_dir(dir: &Path, uid: u32, what: &str, var: &str) -> anyhow::Result<()> {
    if let Some(parent) = dir.parent() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .ok();
    }
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(e).with_context(|| format!("create private directory `{}`", dir.display()))
        }
    }
    check_private(dir, uid, what, var)
}

/// Creates the data directory `dir` (the image store and container
/// records, mode 0700) and checks it as [`private_dir`] does: it may live
/// under a shared place (`XDG_DATA_HOME=/var/tmp/$USER/share` is what the
/// storage check suggests for network homes), where another user could
/// have planted it or its parent to read or swap the store's blobs.
fn private_data_dir(dir: &Path, uid: u32) -> anyhow::Result<()> {
    let parent = dir.parent().filter(|p| p.exists());
    if let Some(parent) = parent {
        check_parent(dir, parent, uid)?;
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("create data directory `{}`", dir.display()))?;
    check_private(dir, uid, "data", "XDG_DATA_HOME")
}

/// Whoever owns `parent`, or anyone when it is world-writable without
/// the sticky bit, can rename `dir` away and put theirs in its place.
/// (Group-writable is left alone: with user private groups and umask 002
/// that group is the user's own.)
fn check_parent(dir: &Path, parent: &Path, uid: u32) -> anyhow::Result<()> {
    let meta =
        std::fs::metadata(parent).with_context(|| format!("inspect `{}`", parent.display()))?;
    let mode = meta.permissions().mode();
    let foreign = meta.uid() != uid && meta.uid() != 0;
    let open = mode & 0o002 != 0 && mode & 0o1000 == 0;
    if foreign || open {
        return Err(anyhow::anyhow!(
            "use data directory `{}`: its parent `{}` belongs to another user or is writable by others",
            dir.display(),
            parent.display()
        ))
        .hint("set XDG_DATA_HOME to a directory of your own");
    }
    Ok(())
}

/// `dir` must be a real directory (not a symlink), owned by `uid`, with
/// no permission for group or others.
fn check_private(dir: &Path, uid: u32, what: &str, var: &str) -> anyhow::Result<()> {
    let meta =
        std::fs::symlink_metadata(dir).with_context(|| format!("inspect `{}`", dir.display()))?;
    if !meta.is_dir() || meta.uid() != uid || meta.permissions().mode() & 0o077 != 0 {
        return Err(anyhow::anyhow!(
            "use {what} directory `{}`: it must be a directory owned by you with mode 0700",
            dir.display()
        ))
        .hint(format!(
            "remove it if you do not know who made it, or set {var} to a private directory"
        ));
    }
    Ok(())
}

/// A new container id: 64 hex digits, as Docker's.
pub fn new_id() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("read `/dev/urandom`")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Exited,
}

/// One process, told apart from any later process with the same pid:
/// its start time (clock ticks after boot, field 22 of /proc/PID/stat)
/// and the boot it ran in (/proc/sys/kernel/random/boot_id).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProcId {
    pub pid: i32,
    pub start_time: u64,
    pub boot_id: String,
}

impl ProcId {
    /// The process now running as `pid`.
    pub fn of(pid: i32) -> anyhow::Result<ProcId> {
        let path = format!("/proc/{pid}/stat");
        let stat = std::fs::read_to_string(&path).with_context(|| format!("read `{path}`"))?;
        let start_time = parse_stat(&stat)
            .map(|(_, t)| t)
            .with_context(|| format!("parse `{path}`"))?;
        Ok(ProcId {
            pid,
            start_time,
            boot_id: boot_id()?,
        })
    }

    /// True while this very process exists and is not a zombie.
    pub fn is_alive(&self) -> bool {
        self.pid > 0
            && boot_id().is_ok_and(|b| b == self.boot_id)
            && std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
                .ok()
                .and_then(|s| parse_stat(&s))
                .is_some_and(|(state, start)| {
                    start == self.start_time && !matches!(state, 'Z' | 'X' | 'x')
                })
    }

    /// A pidfd for this process, opened before its identity is checked
    /// again: if the pid was reused before the open, the start time
    /// differs; if after, the pidfd still names the old (dead) process.
    /// None when the process is gone.
    pub fn pidfd(&self) -> Option<std::os::fd::OwnedFd> {
        let fd = crate::sys::pidfd::open(self.pid).ok()?;
        self.is_alive().then_some(fd)
    }
}

/// (state letter, start time) from the text of /proc/PID/stat. The
/// command name in field 2 may hold spaces and `)`, so fields are
/// counted from the last `)`: field 3 is the state, field 22 the start.
fn parse_stat(stat: &str) -> Option<(char, u64)> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

fn boot_id() -> anyhow::Result<String> {
    let path = "/proc/sys/kernel/random/boot_id";
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("read `{path}`"))?
        .trim()
        .to_string())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    pub name: Option<String>,
    pub image: String,
    /// The image's config digest; empty for `--rootfs`.
    #[serde(default)]
    pub image_id: String,
    /// Diff ids of the shared layers its overlay rootfs stands on, so
    /// `image prune` keeps them while the container exists.
    #[serde(default)]
    pub layers: Vec<String>,
    pub command: Vec<String>,
    /// Seconds since the epoch.
    pub created: u64,
    pub status: Status,
    /// Host pid of the container's init (`exec` joins its namespaces).
    pub pid: Option<i32>,
    /// Start time and boot of `pid`; records from before they were kept
    /// have none and never read as alive.
    #[serde(default)]
    pub pid_start: Option<u64>,
    #[serde(default)]
    pub boot_id: Option<String>,
    /// The supervisor of a detached container, while it runs.
    #[serde(default)]
    pub supervisor: Option<ProcId>,
    /// The `hutch` that made the record: while it lives, a "created"
    /// container may still be being prepared (`container prune` skips it).
    #[serde(default)]
    pub owner: Option<ProcId>,
    /// The last start was attached (`run` without -d, `start -a`): its
    /// output went to the caller's terminal, not to the log.
    #[serde(default)]
    pub attached: bool,
    pub exit_code: Option<i32>,
    pub rootfs: PathBuf,
    /// RFC 3339 times of the last start and end.
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
    #[serde(default)]
    pub config: Config,
    /// Published ports, for `hutch port` and `inspect`.
    #[serde(default)]
    pub ports: Vec<crate::net::PortMapping>,
    /// The network helper's host pid while the container runs.
    #[serde(default)]
    pub net_helper_pid: Option<u32>,
    /// hutch's UDP relay's host pid while the container runs (`-p` of
    /// UDP the network helper cannot deliver).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_relay_pid: Option<u32>,
    /// The storage driver and why it was chosen (stored images only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<crate::rootfs::driver::Choice>,
    /// Named volumes it mounts, so `volume rm` can refuse them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
}

/// How the container was made, as `inspect` shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Config {
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: Option<String>,
    pub hostname: String,
    pub network: String,
    /// Volumes (`-v`), in mount order.
    pub mounts: Vec<MountInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MountInfo {
    pub source: PathBuf,
    pub destination: String,
    pub rw: bool,
    /// The named volume, for `-v NAME:/path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl State {
    /// A record for a container about to be made.
    pub fn new(id: &str, name: Option<&str>) -> State {
        State {
            id: id.to_string(),
            name: name.map(str::to_string),
            image: String::new(),
            image_id: String::new(),
            layers: Vec::new(),
            command: Vec::new(),
            created: now(),
            status: Status::Created,
            pid: None,
            pid_start: None,
            boot_id: None,
            supervisor: None,
            owner: ProcId::of(std::process::id() as i32).ok(),
            attached: false,
            exit_code: None,
            rootfs: PathBuf::new(),
            started_at: None,
            finished_at: None,
            config: Config::default(),
            ports: Vec::new(),
            net_helper_pid: None,
            udp_relay_pid: None,
            storage: None,
            volumes: Vec::new(),
        }
    }

    /// The container init as recorded, when the record has all of it.
    pub fn init(&self) -> Option<ProcId> {
        Some(ProcId {
            pid: self.pid?,
            start_time: self.pid_start?,
            boot_id: self.boot_id.clone()?,
        })
    }

    /// Records `p` as the running container init.
    pub fn set_running(&mut self, p: &ProcId) {
        self.status = Status::Running;
        self.pid = Some(p.pid);
        self.pid_start = Some(p.start_time);
        self.boot_id = Some(p.boot_id.clone());
        self.exit_code = None;
        self.started_at = Some(crate::clock::rfc3339(crate::clock::now()));
        self.finished_at = None;
    }

    /// Records the end of the container init.
    pub fn set_exited(&mut self, code: i32) {
        self.status = Status::Exited;
        self.exit_code = Some(code);
        self.supervisor = None;
        self.net_helper_pid = None;
        self.udp_relay_pid = None;
        self.finished_at = Some(crate::clock::rfc3339(crate::clock::now()));
    }

    /// What a user should be told: a record still saying "running"
    /// whose process is gone (reboot, supervisor killed) has exited,
    /// with Docker's 255 for an end nobody saw.
    pub fn effective(&self) -> (Status, Option<i32>) {
        match self.status {
            Status::Running if is_alive(self) => (Status::Running, None),
            Status::Running if self.pid.is_some() => (Status::Exited, Some(255)),
            Status::Running => (Status::Created, None),
            s => (s, self.exit_code),
        }
    }
}

/// The directories of one container.
pub struct Container {
    pub id: String,
    /// Runtime: config.json and the generated /etc files.
    pub run_dir: PathBuf,
    /// Data: state.json, the log, the root filesystem or its upper dir.
    pub data_dir: PathBuf,
}

/// The per-user container lock, held until dropped.
pub struct UserLock(#[allow(dead_code)] Flock<File>);

/// Takes the per-user container lock (blocking).
pub fn lock(dirs: &Dirs) -> anyhow::Result<UserLock> {
    flock(&dirs.data.join("containers.lock"))
}

fn flock(path: &Path) -> anyhow::Result<UserLock> {
    flock_as(path, FlockArg::LockExclusive)
}

fn flock_as(path: &Path, arg: FlockArg) -> anyhow::Result<UserLock> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .with_context(|| format!("open `{}`", path.display()))?;
    Flock::lock(file, arg)
        .map(UserLock)
        .map_err(|(_, e)| e)
        .with_context(|| format!("lock `{}`", path.display()))
}

/// Docker's rule for names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl Container {
    /// Creates the directories and writes `record`, all under the user
    /// lock: of two concurrent creates with one name, exactly one wins.
    /// Without a name, it gets a generated one (Docker's `adjective_surname`),
    /// free among this user's containers, written into `record`.
    pub fn create(dirs: &Dirs, record: &mut State) -> anyhow::Result<Container> {
        let _lock = lock(dirs)?;
        // Read once, under the lock: the names a generated one must avoid
        // and a given one must not repeat.
        let existing = list(dirs)?;
        if record.name.is_none() {
            let taken: Vec<String> = existing.iter().filter_map(|s| s.name.clone()).collect();
            record.name = generated_name(&taken);
        }
        if let Some(name) = record.name.as_deref() {
            if !valid_name(name) {
                return Err(anyhow::anyhow!(
                    "create container `{name}`: invalid name, only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                ))
                .hint("choose another --name");
            }
            if let Some(other) = existing.iter().find(|s| s.name.as_deref() == Some(name)) {
                return Err(anyhow::anyhow!(
                    "create container `{name}`: the name is already in use by container {}",
                    short_id(&other.id)
                ))
                .hint(format!(
                    "choose another --name, or remove the old container with `hutch rm {name}`"
                ));
            }
        }
        let c = Container::open(dirs, &record.id);
        for d in [&c.run_dir, &c.data_dir] {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(d)
                .with_context(|| format!("create container directory `{}`", d.display()))?;
        }
        c.write(record)?;
        Ok(c)
    }

    /// The directories of an existing container.
    pub fn open(dirs: &Dirs, id: &str) -> Container {
        Container {
            id: id.to_string(),
            run_dir: dirs.runtime.join("containers").join(id),
            data_dir: dirs.containers.join(id),
        }
    }

    /// Held by `start` from "is it running?" until the supervisor reports,
    /// so two starts of one container never launch it twice.
    pub fn lock_start(&self) -> anyhow::Result<UserLock> {
        flock(&self.data_dir.join("start.lock"))
    }

    /// Held shared by each `hutch wait`, so a `--rm` supervisor lets
    /// waiters read the exit code before it removes the record.
    pub fn lock_waiters(&self) -> anyhow::Result<UserLock> {
        flock_as(&self.data_dir.join("wait.lock"), FlockArg::LockShared)
    }

    /// The supervisor's side: exclusive, tried for at most `limit`, so
    /// a stuck waiter delays a removal but never blocks it.
    pub fn drain_waiters(&self, limit: std::time::Duration) -> Option<UserLock> {
        let path = self.data_dir.join("wait.lock");
        let end = std::time::Instant::now() + limit;
        loop {
            match flock_as(&path, FlockArg::LockExclusiveNonblock) {
                Ok(l) => return Some(l),
                Err(_) if std::time::Instant::now() >= end => return None,
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
    }

    pub fn state_path(&self) -> PathBuf {
        self.data_dir.join("state.json")
    }

    /// The log of a detached container (Docker's json-file format).
    pub fn log_path(&self) -> PathBuf {
        self.data_dir.join("container.log")
    }

    /// Replaces the record, unless the container was removed meanwhile;
    /// false then. Under the user lock, so `rm` and this are ordered.
    pub fn save(&self, dirs: &Dirs, state: &State) -> anyhow::Result<bool> {
        let _lock = lock(dirs)?;
        if !self.state_path().exists() {
            return Ok(false);
        }
        self.write(state)?;
        Ok(true)
    }

    /// Reads the record.
    pub fn load(&self) -> anyhow::Result<State> {
        read_record(&self.state_path())
    }

    /// Deletes the record (first step of removal, under the user lock):
    /// from here on, `ps` does not list it and no writer brings it back.
    pub fn forget(&self, dirs: &Dirs) -> anyhow::Result<()> {
        let _lock = lock(dirs)?;
        let path = self.state_path();
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("remove `{}`", path.display()))
            }
            _ => Ok(()),
        }
    }

    /// temp + rename: a reader sees the old or the new record, never a
    /// mix. No fsync: it costs ~2 ms a write, four writes a `run --rm`,
    /// and a clean reboot flushes the page cache anyway; after a crash a
    /// torn record is never trusted: `list` warns and shows the container
    /// by its id as exited, so `rm` can remove it.
    fn write(&self, state: &State) -> anyhow::Result<()> {
        let path = self.state_path();
        let tmp = self
            .data_dir
            .join(format!(".state.json.{}.tmp", std::process::id()));
        let bytes = serde_json::to_vec_pretty(state).context("encode container state")?;
        let mut f = File::create(&tmp).with_context(|| format!("write `{}`", tmp.display()))?;
        f.write_all(&bytes)
            .with_context(|| format!("write `{}`", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("replace `{}`", path.display()))
    }
}

fn read_record(path: &Path) -> anyhow::Result<State> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("read `{}`", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parse `{}`", path.display()))
}

/// Every container record of this user: `data/containers/*/state.json`,
/// and records of older hutch versions still in the runtime directory.
pub fn list(dirs: &Dirs) -> anyhow::Result<Vec<State>> {
    let mut out = Vec::new();
    let mut roots = vec![dirs.containers.clone(), dirs.runtime.join("containers")];
    // Records from before the store was found on a network filesystem.
    if dirs.data.join("containers") != dirs.containers {
        roots.push(dirs.data.join("containers"));
    }
    for root in roots {
        let entries = match std::fs::read_dir(&root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("list `{}`", root.display())),
        };
        for entry in entries.flatten() {
            let path = entry.path().join("state.json");
            if !path.exists() || out.iter().any(|s: &State| *s.id == *entry.file_name()) {
                continue;
            }
            match read_record(&path) {
                Ok(s) => out.push(s),
                // Removed between the listing and the read.
                Err(_) if !path.exists() => {}
                // Torn by a crash: one bad record must not hide the rest,
                // nor itself; listed by its directory's name, `rm` can go.
                Err(e) => match entry.file_name().to_str().filter(|n| is_id(n)) {
                    Some(id) => {
                        crate::errors::warn(&crate::errors::hint(
                            e,
                            format!("`hutch rm {}` removes the container", short_id(id)),
                        ));
                        out.push(unreadable_record(id, &path));
                    }
                    None => crate::errors::warn(&e),
                },
            }
        }
    }
    Ok(out)
}

// Docker's name generator (moby's pkg/namesgenerator), a part of its lists.
const ADJECTIVES: [&str; 48] = [
    "admiring",
    "adoring",
    "affectionate",
    "agitated",
    "amazing",
    "angry",
    "awesome",
    "blissful",
    "bold",
    "brave",
    "charming",
    "clever",
    "compassionate",
    "competent",
    "confident",
    "cool",
    "dazzling",
    "determined",
    "eager",
    "ecstatic",
    "elastic",
    "elated",
    "elegant",
    "epic",
    "festive",
    "focused",
    "friendly",
    "gallant",
    "gifted",
    "goofy",
    "happy",
    "hopeful",
    "inspiring",
    "jolly",
    "keen",
    "kind",
    "laughing",
    "loving",
    "modest",
    "nifty",
    "nostalgic",
    "peaceful",
    "quirky",
    "relaxed",
    "serene",
    "stoic",
    "vibrant",
    "zealous",
];
const SURNAMES: [&str; 48] = [
    "agnesi",
    "albattani",
    "allen",
    "archimedes",
    "babbage",
    "bardeen",
    "bell",
    "bohr",
    "boole",
    "brattain",
    "cannon",
    "carson",
    "curie",
    "darwin",
    "dijkstra",
    "einstein",
    "euclid",
    "euler",
    "fermat",
    "feynman",
    "franklin",
    "galileo",
    "gauss",
    "goldberg",
    "hamilton",
    "hawking",
    "heisenberg",
    "hopper",
    "hypatia",
    "johnson",
    "kepler",
    "knuth",
    "lamarr",
    "lovelace",
    "meitner",
    "mendel",
    "newton",
    "noether",
    "pascal",
    "ritchie",
    "shannon",
    "sinoussi",
    "tesla",
    "thompson",
    "torvalds",
    "turing",
    "wozniak",
    "yalow",
];

/// A random `adjective_surname` not in `taken`; after a few collisions a
/// digit is appended, as Docker does. None if randomness is unavailable or
/// every try collides (the container then has no name, as before).
fn generated_name(taken: &[String]) -> Option<String> {
    let mut bytes = [0u8; 64];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .ok()?;
    for (i, r) in bytes.chunks_exact(4).enumerate() {
        let (a, b, d) = (usize::from(r[0]), usize::from(r[1]), r[2] % 10);
        let mut name = format!(
            "{}_{}",
            ADJECTIVES[a % ADJECTIVES.len()],
            SURNAMES[b % SURNAMES.len()]
        );
        if i >= 3 {
            name.push(char::from(b'0' + d));
        }
        if !taken.contains(&name) {
            return Some(name);
        }
    }
    None
}

/// A container id as [`new_id`] makes them: 64 lower-case hex digits.
fn is_id(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// What stands for a record that cannot be parsed (torn by a crash: it
/// is replaced without fsync): the container by its id, exited with
/// Docker's 255 for an end nobody saw, no name, no process to signal.
fn unreadable_record(id: &str, path: &Path) -> State {
    let created = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    State {
        image: "(unreadable record)".into(),
        status: Status::Exited,
        exit_code: Some(255),
        owner: None,
        created,
        ..State::new(id, None)
    }
}

/// Finds one container by exact id, exact name or unique id prefix.
pub fn find(dirs: &Dirs, key: &str) -> anyhow::Result<State> {
    let all = list(dirs)?;
    pick(&all, key).cloned()
}

fn pick<'a>(all: &'a [State], key: &str) -> anyhow::Result<&'a State> {
    if let Some(s) = all.iter().find(|s| s.id == key) {
        return Ok(s);
    }
    if let Some(s) = all.iter().find(|s| s.name.as_deref() == Some(key)) {
        return Ok(s);
    }
    let matches: Vec<&State> = all
        .iter()
        .filter(|s| !key.is_empty() && s.id.starts_with(key))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(anyhow::anyhow!("find container `{key}`: no such container"))
            .hint("`hutch ps -a` lists your containers"),
        _ => bail!(
            "find container `{key}`: the prefix matches {} containers",
            matches.len()
        ),
    }
}

/// The 12 hex digits Docker shows.
pub fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Whether the recorded container init still runs: same pid, same start
/// time, same boot, not a zombie.
pub fn is_alive(state: &State) -> bool {
    state.status == Status::Running && state.init().is_some_and(|p| p.is_alive())
}

pub fn now() -> u64 {
    crate::clock::now().as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> ProcId {
        ProcId::of(std::process::id() as i32).unwrap()
    }

    #[test]
    fn generated_names_are_valid_free_and_take_a_digit_when_crowded() {
        let name = generated_name(&[]).unwrap();
        let (adj, sur) = name.split_once('_').unwrap();
        assert!(
            ADJECTIVES.contains(&adj) && SURNAMES.contains(&sur),
            "{name}"
        );
        assert!(valid_name(&name));
        // Every plain name taken: the later tries append a digit.
        let all: Vec<String> = ADJECTIVES
            .iter()
            .flat_map(|a| SURNAMES.iter().map(move |s| format!("{a}_{s}")))
            .collect();
        let crowded = generated_name(&all).unwrap();
        assert!(!all.contains(&crowded), "{crowded}");
        assert!(crowded.ends_with(|c: char| c.is_ascii_digit()), "{crowded}");
        assert!(valid_name(&crowded));
    }

    #[test]
    fn create_names_an_unnamed_container() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = Dirs::under(tmp.path());
        std::fs::create_dir_all(&dirs.data).unwrap();
        let mut a = State::new(&new_id().unwrap(), None);
        Container::create(&dirs, &mut a).unwrap();
        let name = a.name.clone().expect("a generated name");
        assert_eq!(find(&dirs, &name).unwrap().id, a.id, "recorded and usable");
    }

    #[test]
    fn a_torn_record_is_listed_as_exited_by_its_directory_name() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = Dirs::under(tmp.path());
        std::fs::create_dir_all(&dirs.data).unwrap();
        let good =
            Container::create(&dirs, &mut State::new(&new_id().unwrap(), Some("good"))).unwrap();
        let torn_id = new_id().unwrap();
        let torn = Container::create(&dirs, &mut State::new(&torn_id, Some("torn"))).unwrap();
        let text = std::fs::read_to_string(torn.state_path()).unwrap();
        std::fs::write(torn.state_path(), &text[..text.len() / 2]).unwrap();
        // Not an id: skipped with a warning, as before.
        let stray = dirs.containers.join("not-an-id");
        std::fs::create_dir_all(&stray).unwrap();
        std::fs::write(stray.join("state.json"), "{").unwrap();
        let all = list(&dirs).unwrap();
        assert_eq!(all.len(), 2, "{all:?}");
        let t = pick(&all, &torn_id[..8]).unwrap();
        assert_eq!(t.id, torn_id);
        assert_eq!(t.effective(), (Status::Exited, Some(255)));
        assert!(t.name.is_none() && t.init().is_none() && !is_alive(t));
        assert!(t.created > 0);
        assert_eq!(pick(&all, "good").unwrap().id, good.id);
        // Control: the good record is read as written.
        assert_eq!(pick(&all, &good.id).unwrap().status, Status::Created);
    }

    #[test]
    fn a_live_process_is_alive_and_a_forged_one_is_not() {
        let real = me();
        assert!(real.is_alive(), "control: this process is alive");
        let forged = [
            ProcId {
                start_time: real.start_time + 1,
                ..real.clone()
            },
            ProcId {
                boot_id: "00000000-0000-0000-0000-000000000000".into(),
                ..real.clone()
            },
            ProcId {
                pid: 0,
                ..real.clone()
            },
            ProcId {
                pid: i32::MAX,
                ..real.clone()
            },
        ];
        for f in forged {
            assert!(!f.is_alive(), "{f:?}");
            assert!(f.pidfd().is_none(), "{f:?}");
        }
        assert!(real.pidfd().is_some());
    }

    #[test]
    fn is_alive_needs_running_status_and_full_identity() {
        let mut s = State::new(&"a".repeat(64), None);
        s.set_running(&me());
        assert!(is_alive(&s), "control");
        assert_eq!(s.effective(), (Status::Running, None));
        let mut reused = s.clone();
        reused.pid_start = reused.pid_start.map(|t| t + 100);
        assert!(!is_alive(&reused));
        assert_eq!(reused.effective(), (Status::Exited, Some(255)));
        let mut old = s.clone();
        old.pid_start = None; // a record from before start times were kept
        assert!(!is_alive(&old));
        let mut exited = s.clone();
        exited.set_exited(3);
        assert!(!is_alive(&exited));
        assert_eq!(exited.effective(), (Status::Exited, Some(3)));
    }

    #[test]
    fn parse_stat_counts_from_the_last_paren() {
        let mut fields = vec!["0"; 50];
        fields[0] = "S";
        fields[19] = "4242";
        let stat = format!("12 (a) b (c)) {}", fields.join(" "));
        assert_eq!(parse_stat(&stat), Some(('S', 4242)));
        assert_eq!(parse_stat("12 (a"), None);
        assert_eq!(parse_stat("12 (a) S 1 2"), None);
    }

    #[test]
    fn pick_by_id_name_and_unique_prefix() {
        let mk = |id: &str, name: &str| State::new(id, Some(name));
        let all = vec![
            mk("abc111", "web"),
            mk("abc222", "abc1"),
            mk("def333", "db"),
        ];
        assert_eq!(pick(&all, "abc111").unwrap().id, "abc111");
        assert_eq!(pick(&all, "web").unwrap().id, "abc111");
        // A name wins over a prefix, as in Docker.
        assert_eq!(pick(&all, "abc1").unwrap().id, "abc222");
        assert_eq!(pick(&all, "d").unwrap().id, "def333");
        assert!(pick(&all, "abc").is_err(), "ambiguous");
        assert!(pick(&all, "").is_err());
        assert!(pick(&all, "zzz").is_err());
    }

    #[test]
    fn names_follow_docker() {
        for ok in ["a", "web-1", "A.b_c", "0x"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "-a", ".a", "a/b", "a b", "ä", "a:b"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn create_refuses_a_taken_name_and_save_skips_a_removed_record() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = Dirs::under(tmp.path());
        std::fs::create_dir_all(&dirs.data).unwrap();
        let mut a = State::new(&"a".repeat(64), Some("x"));
        let c = Container::create(&dirs, &mut a).unwrap();
        let mut b = State::new(&"b".repeat(64), Some("x"));
        assert!(Container::create(&dirs, &mut b).is_err());
        assert_eq!(find(&dirs, "x").unwrap().id, a.id);
        assert!(c.save(&dirs, &a).unwrap());
        c.forget(&dirs).unwrap();
        assert!(!c.save(&dirs, &a).unwrap(), "no resurrection after rm");
        assert!(list(&dirs).unwrap().is_empty());
        // A record torn by a crash is not fatal to the rest (and is
        // listed as exited: see below).
        let torn = dirs.data.join("containers").join("c".repeat(64));
        std::fs::create_dir_all(&torn).unwrap();
        std::fs::write(torn.join("state.json"), "{\"id\": \"c").unwrap();
        Container::create(&dirs, &mut b).unwrap();
        let mut ids: Vec<String> = list(&dirs).unwrap().into_iter().map(|s| s.id).collect();
        ids.sort();
        assert_eq!(ids, vec![b.id, "c".repeat(64)]);
    }

    #[test]
    fn records_of_older_versions_in_the_runtime_dir_are_listed_as_exited() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = Dirs::under(tmp.path());
        let id = "d".repeat(64);
        let old = tmp.path().join("run/containers").join(&id);
        std::fs::create_dir_all(&old).unwrap();
        // The shape hutch wrote before records moved to the data dir.
        let text = format!(
            r#"{{"id":"{id}","name":"old","image":"busybox","command":["sh"],
               "created":1,"status":"running","pid":{},"exit_code":null,"rootfs":"/r"}}"#,
            std::process::id()
        );
        std::fs::write(old.join("state.json"), text).unwrap();
        let s = find(&dirs, "old").unwrap();
        // Its pid is alive (this test), but no start time says it is the
        // same process: never taken for a running container.
        assert!(!is_alive(&s));
        assert_eq!(s.effective(), (Status::Exited, Some(255)));
    }
}
