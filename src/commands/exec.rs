//! `hutch exec`: runs a command in a running container, with what the
//! container's own command got (env, capabilities, seccomp profile,
//! no_new_privs, user), read back from its config.json. Runs in the
//! user's own process; `sandbox::exec` joins and forks.

use std::os::fd::OwnedFd;
use std::path::Path;

use anyhow::Context;
use caps::CapsHashSet;
use nix::sched::CloneFlags;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::cli::ExecArgs;
use crate::errors::WithHint;
use crate::sandbox::{exec, seccomp};
use crate::state::{self, Container, Dirs, State};

pub fn exec(args: ExecArgs) -> anyhow::Result<i32> {
    let dirs = Dirs::new()?;
    let (pidfd, config) = open_running(&dirs, &args.container)?;
    let process = config
        .process()
        .as_ref()
        .context("read config.json: no process")?;
    let caps = bounding_caps(process)?;
    let annotations = config.annotations().clone().unwrap_or_default();
    // Only a recorded `unconfined` turns the profile off.
    let bpf = (annotations.get("io.hutch.seccomp").map(String::as_str) != Some("unconfined"))
        .then(|| seccomp::compile_default_cached(&caps, &dirs.runtime))
        .transpose()?;
    let host_env = |k: &str| std::env::var(k).ok();
    let mut env = crate::plan::merge_env(
        process.env().as_deref().unwrap_or_default(),
        &args.env_file,
        &args.env,
        &host_env,
    )?;
    // As Docker: a terminal gets a TERM unless one is set.
    if args.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    let image_user = annotations.get("io.hutch.user").filter(|u| !u.is_empty());
    let cwd = args
        .workdir
        .clone()
        .unwrap_or_else(|| process.cwd().display().to_string());
    let spec = exec::Spec {
        args: &args.command,
        env: &env,
        cwd: &cwd,
        user: args.user.as_deref().or(image_user.map(String::as_str)),
        user_explicit: args.user.is_some(),
        caps: &caps,
        no_new_privs: process.no_new_privileges().unwrap_or(false),
        seccomp: bpf.as_ref(),
        terminal: args.tty,
        stdin: args.interactive,
        detach: args.detach,
    };
    exec::exec(&pidfd, namespaces(&config)? | net_namespace(&pidfd), &spec)
}

/// A pidfd of a process in the running container `key` whose namespaces
/// may be joined, and the container's config.json.
pub(crate) fn open_running(dirs: &Dirs, key: &str) -> anyhow::Result<(OwnedFd, Spec)> {
    let s = state::find(dirs, key)?;
    let init = running_pid(&s, key)?;
    let run_dir = Container::open(dirs, &s.id).run_dir;
    let config = read_config(&run_dir.join("config.json"))?;
    let annotations = config.annotations().clone().unwrap_or_default();
    let reaper = annotations.get("io.hutch.init").map(String::as_str) == Some("true");
    let target = join_target(init, reaper)?;
    // From here on `pidfd` names this process, even if the number is reused.
    let pidfd = crate::sys::pidfd::open(target.as_raw())
        .with_context(|| format!("open process {target} of container `{key}`"))
        .hint("the container may have just stopped: `hutch ps -a`")?;
    let still = running_pid(&s, key)? == init && is_namespace_init(init);
    if !still || (target != init && parent_of(target) != Some(init)) {
        anyhow::bail!("join container `{key}`: process {target} is no longer the container's");
    }
    Ok((pidfd, config))
}

/// The pid of a running container's init; a stopped one is an error.
fn running_pid(s: &State, key: &str) -> anyhow::Result<Pid> {
    match s.pid.filter(|_| state::is_alive(s)) {
        Some(p) => Ok(Pid::from_raw(p)),
        None => Err(anyhow::anyhow!("join container `{key}`: it is not running"))
            .hint("`hutch ps -a` shows its state; only a running container can run more commands"),
    }
}

/// The process whose namespaces `exec` joins: the init, or under
/// `--init` the command's process, since hutch's reaper is not dumpable
/// and the kernel refuses setns(2) through it (that is its protection).
fn join_target(init: Pid, reaper: bool) -> anyhow::Result<Pid> {
    if !reaper {
        return Ok(init);
    }
    let children = std::fs::read_to_string(format!("/proc/{init}/task/{init}/children"))
        .with_context(|| format!("read the children of process {init}"))?;
    children
        .split_whitespace()
        .find_map(|c| c.parse().ok())
        .map(Pid::from_raw)
        .context("find the command's process under the container's --init: it has exited")
}

fn parent_of(pid: Pid) -> Option<Pid> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.get(stat.rfind(')')? + 1..)?;
    after
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
        .map(Pid::from_raw)
}

/// Whether `pid` is pid 1 of a pid namespace below ours (its NSpid line
/// in /proc/PID/status ends in 1), as a container init is.
fn is_namespace_init(pid: Pid) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .as_deref()
        .and_then(nspid_of)
        .is_some_and(|ids| ids.len() > 1 && ids.last() == Some(&1))
}

/// The pids of an NSpid line, outermost namespace first.
fn nspid_of(status: &str) -> Option<Vec<u32>> {
    let line = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
    line.split_whitespace().map(|p| p.parse().ok()).collect()
}

fn read_config(path: &Path) -> anyhow::Result<Spec> {
    Spec::load(path).with_context(|| format!("read `{}`", path.display()))
}

fn bounding_caps(process: &oci_spec::runtime::Process) -> anyhow::Result<CapsHashSet> {
    let Some(set) = process
        .capabilities()
        .as_ref()
        .and_then(|c| c.bounding().clone())
    else {
        return Ok(CapsHashSet::new());
    };
    set.iter()
        .map(|c| {
            let name = serde_json::to_value(c)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            name.parse()
                .map_err(|_| anyhow::anyhow!("parse capability `{name}` in config.json"))
        })
        .collect()
}

/// CLONE_NEWNET when the process behind `pidfd` has a network namespace
/// other than ours, whatever config.json says: an exec'd process must
/// never be left in the host's network when the container has its own.
fn net_namespace(pidfd: &OwnedFd) -> CloneFlags {
    use std::os::unix::fs::MetadataExt;
    let pid = std::fs::read_to_string(format!(
        "/proc/self/fdinfo/{}",
        std::os::fd::AsRawFd::as_raw_fd(pidfd)
    ))
    .ok()
    .and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix("Pid:").map(|p| p.trim().to_string()))
    });
    let ino = |p: String| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    match (
        pid.and_then(|p| ino(format!("/proc/{p}/ns/net"))),
        ino("/proc/self/ns/net".into()),
    ) {
        (Some(theirs), Some(ours)) if theirs != ours => CloneFlags::CLONE_NEWNET,
        _ => CloneFlags::empty(),
    }
}

/// The container's namespaces as setns(2) flags; the user namespace is
/// always among them (hutch never runs without one).
fn namespaces(config: &Spec) -> anyhow::Result<CloneFlags> {
    let list = config
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    let mut flags = CloneFlags::CLONE_NEWUSER;
    for ns in list {
        flags |= match ns.typ() {
            LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
            LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
            LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
            LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
            LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
            LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
            LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
            other => anyhow::bail!("join namespace `{other:?}`: hutch does not create it"),
        };
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nspid_lines_are_read_outermost_first() {
        let cases: &[(&str, Option<Vec<u32>>)] = &[
            ("Name:\tsh\nNSpid:\t4242\t1\n", Some(vec![4242, 1])),
            ("NSpid:\t17\n", Some(vec![17])),
            ("NSpid:\t9\t5\t1\n", Some(vec![9, 5, 1])),
            ("Name:\tsh\n", None),
            ("NSpid:\tx\t1\n", None),
        ];
        for (text, want) in cases {
            assert_eq!(&nspid_of(text), want, "{text:?}");
        }
    }
}
