//! Container records under the user's own directories, written by the
//! `hutch` process:
//!
//! - runtime: `$XDG_RUNTIME_DIR/hutch`, or `/tmp/hutch-UID` when unset (under
//!   `su`, cron or batch jobs); the /tmp one is created 0700 and refused if
//!   it is a symlink or belongs to someone else (another user could plant it).
//! - data: `$XDG_DATA_HOME/hutch`, or `~/.local/share/hutch`.
//! - containers' writable files (upper dirs, private copies): `DATA/containers`,
//!   or `/var/tmp/hutch-UID/containers` when the data dir is on a network
//!   filesystem (NFS, Lustre, ...), which cannot hold them; checked as
//!   the /tmp runtime dir is.
//!
//! `containers/ID/state.json` is replaced atomically (write, rename).

use std::fs::{DirBuilder, File};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
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
        private_dir(&runtime, uid)
            .hint("XDG_RUNTIME_DIR set to a private directory avoids this one")?;
        let data = match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => home()?.join(".local/share"),
        }
        .join("hutch");
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&data)
            .with_context(|| format!("create data directory `{}`", data.display()))?;
        let containers = match crate::preflight::fs_name(&data) {
            Some((_, true)) => {
                let local = PathBuf::from(format!("/var/tmp/hutch-{uid}"));
                private_dir(&local, uid).context(
                    "keep containers' files on local disk (the store is on a network filesystem)",
                )?;
                local.join("containers")
            }
            _ => data.join("containers"),
        };
        Ok(Dirs {
            runtime,
            data,
            containers,
        })
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
fn private_dir(dir: &Path, uid: u32) -> anyhow::Result<()> {
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
    let meta =
        std::fs::symlink_metadata(dir).with_context(|| format!("inspect `{}`", dir.display()))?;
    if !meta.is_dir() || meta.uid() != uid || meta.permissions().mode() & 0o077 != 0 {
        return Err(anyhow::anyhow!(
            "use private directory `{}`: it must be a directory owned by you with mode 0700",
            dir.display()
        ))
        .hint("remove it if you do not know who made it");
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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Exited,
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
    pub pid: Option<i32>,
    pub exit_code: Option<i32>,
    pub rootfs: PathBuf,
    /// The storage driver and why it was chosen (stored images only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<crate::rootfs::driver::Choice>,
    /// Named volumes it mounts, so `volume rm` can refuse them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
}

/// The directories of one container.
pub struct Container {
    pub id: String,
    /// Runtime: state.json and the generated /etc files.
    pub run_dir: PathBuf,
    /// Data: the unpacked root filesystem, when made from an image.
    pub data_dir: PathBuf,
}

impl Container {
    /// Creates the directories; a name already in use is an error.
    pub fn create(dirs: &Dirs, id: &str, name: Option<&str>) -> anyhow::Result<Container> {
        if let Some(name) = name {
            if list(dirs)?.iter().any(|s| s.name.as_deref() == Some(name)) {
                return Err(anyhow::anyhow!(
                    "create container `{name}`: the name is already in use"
                ))
                .hint("choose another --name, or remove the old container's directory");
            }
        }
        let c = Container {
            id: id.to_string(),
            run_dir: dirs.runtime.join("containers").join(id),
            data_dir: dirs.containers.join(id),
        };
        for d in [&c.run_dir, &c.data_dir] {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(d)
                .with_context(|| format!("create container directory `{}`", d.display()))?;
        }
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

    /// Writes state.json atomically.
    pub fn save(&self, state: &State) -> anyhow::Result<()> {
        let path = self.run_dir.join("state.json");
        let tmp = self.run_dir.join(".state.json.tmp");
        let bytes = serde_json::to_vec_pretty(state).context("encode container state")?;
        let mut f = File::create(&tmp).with_context(|| format!("write `{}`", tmp.display()))?;
        // No fsync: runtime state does not outlive a reboot (which ends
        // every container); temp + rename keeps it whole if hutch dies.
        f.write_all(&bytes)
            .with_context(|| format!("write `{}`", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("replace `{}`", path.display()))
    }
}

/// Every container record of this user.
pub fn list(dirs: &Dirs) -> anyhow::Result<Vec<State>> {
    let root = dirs.runtime.join("containers");
    let entries = match std::fs::read_dir(&root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("list `{}`", root.display())),
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path().join("state.json");
        if let Ok(text) = std::fs::read_to_string(&path) {
            match serde_json::from_str(&text) {
                Ok(s) => out.push(s),
                Err(e) => bail!("read `{}`: {e}", path.display()),
            }
        }
    }
    Ok(out)
}

/// Finds one container by exact name, exact id or unique id prefix.
pub fn find(dirs: &Dirs, key: &str) -> anyhow::Result<State> {
    let all = list(dirs)?;
    if let Some(s) = all
        .iter()
        .find(|s| s.name.as_deref() == Some(key) || s.id == key)
    {
        return Ok(s.clone());
    }
    let matches: Vec<&State> = all
        .iter()
        .filter(|s| !key.is_empty() && s.id.starts_with(key))
        .collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => bail!("find container `{key}`: no such container"),
        _ => bail!(
            "find container `{key}`: the prefix matches {} containers",
            matches.len()
        ),
    }
}

/// Whether the recorded process still exists. A pid reused by another
/// process after a reboot would read as alive: issue 4 adds start times.
pub fn is_alive(state: &State) -> bool {
    state.status == Status::Running
        && state
            .pid
            .is_some_and(|p| process_runs(&format!("/proc/{p}/stat")))
}

/// False for a missing process and for a zombie waiting to be reaped.
fn process_runs(stat_path: &str) -> bool {
    let Ok(stat) = std::fs::read_to_string(stat_path) else {
        return false;
    };
    // The state letter follows the command name, which may hold `)`.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, None | Some('Z' | 'X' | 'x'))
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
