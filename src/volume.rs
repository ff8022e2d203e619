//! Named volumes: `-v NAME:/path` and `hutch volume ...`. A volume is a
//! directory `DATA/volumes/NAME/_data`, created on first use, owned by
//! the caller (container root). Runs in the `hutch` process.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::errors::WithHint;
use crate::state::{self, Dirs};

/// Docker's rule for volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && name.len() <= 255
}

/// Checks `name` and returns it, or a clear error.
pub fn check_name(name: &str) -> anyhow::Result<&str> {
    if valid_name(name) {
        return Ok(name);
    }
    Err(anyhow::anyhow!(
        "use volume name `{}`: only [a-zA-Z0-9][a-zA-Z0-9_.-]* is allowed",
        name.escape_debug()
    ))
    .hint("a host directory needs a path: an absolute one, or one starting with `./`")
}

/// The root of all volumes.
pub fn root(data: &Path) -> PathBuf {
    data.join("volumes")
}

/// Where the files of volume `name` live.
pub fn data_path(data: &Path, name: &str) -> PathBuf {
    root(data).join(name).join("_data")
}

/// Creates the volume if it does not exist; returns its data path.
pub fn ensure(data: &Path, name: &str) -> anyhow::Result<PathBuf> {
    check_name(name)?;
    let dir = root(data).join(name);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("create volume `{name}`"))?;
    let data_dir = dir.join("_data");
    // The container sees this directory as root's, 0755, as Docker's.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&data_dir)
        .with_context(|| format!("create volume `{name}`"))?;
    Ok(data_dir)
}

/// One volume as `volume inspect` shows it (Docker's fields).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Volume {
    pub name: String,
    pub driver: &'static str,
    pub mountpoint: PathBuf,
    /// Seconds since the epoch.
    pub created_at: i64,
    pub scope: &'static str,
    /// Containers (ids) whose records use it.
    pub used_by: Vec<String>,
}

/// Every volume, sorted by name.
pub fn list(dirs: &Dirs) -> anyhow::Result<Vec<Volume>> {
    let root = root(&dirs.data);
    let entries = match std::fs::read_dir(&root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("list `{}`", root.display())),
    };
    let containers = state::list(dirs)?;
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !valid_name(&name) {
            continue;
        }
        let created_at = e.metadata().map(|m| m.ctime()).unwrap_or_default();
        out.push(Volume {
            used_by: containers
                .iter()
                .filter(|c| c.volumes.contains(&name))
                .map(|c| c.id.clone())
                .collect(),
            mountpoint: data_path(&dirs.data, &name),
            name,
            driver: "local",
            created_at,
            scope: "local",
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Finds one volume by exact name.
pub fn find(dirs: &Dirs, name: &str) -> anyhow::Result<Volume> {
    check_name(name)?;
    list(dirs)?
        .into_iter()
        .find(|v| v.name == name)
        .with_context(|| format!("find volume `{name}`: no such volume"))
}

/// Removes a volume's directory. Files the container wrote as other
/// users belong to subordinate ids: the removal runs in a user namespace
/// with the caller's maps.
pub fn remove(dirs: &Dirs, v: &Volume, force: bool) -> anyhow::Result<()> {
    if !v.used_by.is_empty() && !force {
        let ids: Vec<String> = v
            .used_by
            .iter()
            .map(|i| i.chars().take(12).collect())
            .collect();
        return Err(anyhow::anyhow!(
            "remove volume `{}`: it is in use by container {}",
            v.name,
            ids.join(", ")
        ))
        .hint("remove the container first, or use -f to remove the volume anyway");
    }
    let dir = root(&dirs.data).join(&v.name);
    let (_, maps) = crate::userns::plan(crate::userns::Mode::Root)?;
    let remove =
        || std::fs::remove_dir_all(&dir).with_context(|| format!("remove `{}`", dir.display()));
    crate::sandbox::nsexec::run_in_userns(&maps, "remove a volume", remove)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_docker() {
        for ok in ["a", "data", "my-vol_1.2", "0", "A.b-c_d"] {
            assert!(valid_name(ok), "{ok}");
        }
        let long = "a".repeat(256);
        for bad in [
            "",
            "-a",
            ".a",
            "_a",
            "a/b",
            "..",
            "a b",
            "a:b",
            "é",
            "/abs",
            "./rel",
            "a\n",
            long.as_str(),
        ] {
            assert!(!valid_name(bad), "{bad:?}");
            let e = check_name(bad).unwrap_err().to_string();
            assert!(!e.contains('\n'), "{e}");
        }
        assert_eq!(
            data_path(Path::new("/d"), "v1"),
            Path::new("/d/volumes/v1/_data")
        );
    }
}
