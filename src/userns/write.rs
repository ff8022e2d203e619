//! Writing the id maps of a child process, from the parent (the maps of a
//! user namespace must be written from outside it, by a process with the
//! right privileges over the target: user_namespaces(7)).
//!
//! Order: gid map first, then uid map. With the setuid helpers, each gets
//! the child's pid and the map; their exit status is checked and their
//! stderr kept for the error. Without them, a single-id map is written
//! directly, after `deny` to /proc/PID/setgroups (required since 3.19 for
//! an unprivileged writer: CVE-2014-8989).

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};
use nix::unistd::Pid;

use super::{idmap, IdMapEntry, IdMaps};
use crate::errors::WithHint;

/// Writes both maps for `pid`.
pub fn write(pid: Pid, maps: &IdMaps) -> anyhow::Result<()> {
    match &maps.helpers {
        Some(h) => {
            run_helper(&h.newgidmap, pid, &maps.gid_map)?;
            run_helper(&h.newuidmap, pid, &maps.uid_map)
        }
        None => {
            let proc = format!("/proc/{pid}");
            write_file(&format!("{proc}/setgroups"), "deny")?;
            write_file(
                &format!("{proc}/gid_map"),
                &idmap::to_proc_text(&maps.gid_map),
            )?;
            write_file(
                &format!("{proc}/uid_map"),
                &idmap::to_proc_text(&maps.uid_map),
            )
        }
    }
}

fn run_helper(helper: &Path, pid: Pid, map: &[IdMapEntry]) -> anyhow::Result<()> {
    let out = Command::new(helper)
        .arg(pid.to_string())
        .args(idmap::to_helper_args(map))
        .output()
        .with_context(|| format!("run `{}`", helper.display()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let err: anyhow::Result<()> = Err(anyhow::anyhow!("{} ({})", stderr.trim(), out.status));
        return err
            .with_context(|| format!("write id map with `{}`", helper.display()))
            .hint(
                "check that newuidmap/newgidmap are setuid root and that /etc/subuid and \
                 /etc/subgid grant the ranges (`hutch doctor` shows both)",
            );
    }
    Ok(())
}

fn write_file(path: &str, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("write `{path}`"))?;
    if text.is_empty() {
        bail!("write `{path}`: empty map");
    }
    Ok(())
}
