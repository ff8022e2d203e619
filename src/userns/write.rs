//! Writing the id maps of a child process, from the parent (the maps of a
//! user namespace must be written from outside it, by a process with the
//! right privileges over the target: user_namespaces(7)).
//!
//! With the setuid helpers, newgidmap and newuidmap run at once, each
//! given the child's pid and its map; their exit status is checked and
//! their stderr kept for the error (gid map's first). Without them, a single-id map is written
//! directly, after `deny` to /proc/PID/setgroups (required since 3.19 for
//! an unprivileged writer: CVE-2014-8989).

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use nix::unistd::Pid;

use super::{idmap, IdMapEntry, IdMaps};
use crate::errors::WithHint;

/// Writes both maps for `pid`.
pub fn write(pid: Pid, maps: &IdMaps) -> anyhow::Result<()> {
    match &maps.helpers {
        Some(h) => {
            // Both at once: two setuid execs are a good part of a start,
            // and each writes its own file (no order between them).
            let gid = spawn_helper(&h.newgidmap, pid, &maps.gid_map);
            let uid = spawn_helper(&h.newuidmap, pid, &maps.uid_map);
            let gid = finish_helper(&h.newgidmap, gid);
            let uid = finish_helper(&h.newuidmap, uid);
            gid.and(uid)
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

fn spawn_helper(
    helper: &Path,
    pid: Pid,
    map: &[IdMapEntry],
) -> std::io::Result<std::process::Child> {
    Command::new(helper)
        .arg(pid.to_string())
        .args(idmap::to_helper_args(map))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
}

/// Waits for a helper started by `spawn_helper` and checks its status.
fn finish_helper(helper: &Path, child: std::io::Result<std::process::Child>) -> anyhow::Result<()> {
    let out = child
        .and_then(|c| c.wait_with_output())
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
