//! The last steps of the container init before execve: supplementary
//! groups, gid, uid, capabilities, no_new_privs, seccomp.
//!
//! Order matters (capabilities(7), seccomp(2)):
//! 1. shrink the bounding set while we still hold CAP_SETPCAP;
//! 2. PR_SET_KEEPCAPS, then setgroups/setresgid/setresuid, so a switch to
//!    a non-root uid keeps the permitted set for a moment;
//! 3. effective = permitted = the container's set, plus CAP_SYS_ADMIN when
//!    seccomp must load without no_new_privs (seccomp(2) then requires it);
//! 4. no_new_privs if asked; 5. seccomp; 6. the final capability sets
//!    (capset is allowed by the profile). Exec then recomputes: a root
//!    process gets the bounding set, a non-root one gets nothing.

use anyhow::Context;
use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};

use super::seccomp::Bpf;
use super::user::Resolved;

pub struct Creds<'a> {
    pub user: &'a Resolved,
    /// The container's bounding set.
    pub caps: &'a CapsHashSet,
    pub no_new_privs: bool,
    pub seccomp: Option<&'a Bpf>,
    /// False under a single-id map, where /proc/PID/setgroups is `deny`.
    pub setgroups_allowed: bool,
}

pub fn apply(c: &Creds<'_>) -> anyhow::Result<()> {
    for cap in caps::all() {
        if !c.caps.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap)
                .with_context(|| format!("drop `{cap}` from the bounding set"))?;
        }
    }
    nix::sys::prctl::set_keepcaps(true).context("set keepcaps")?;
    if c.setgroups_allowed {
        let groups: Vec<Gid> = c.user.groups.iter().map(|g| Gid::from_raw(*g)).collect();
        setgroups(&groups).context("set supplementary groups")?;
    }
    let (uid, gid) = (Uid::from_raw(c.user.uid), Gid::from_raw(c.user.gid));
    setresgid(gid, gid, gid).map_err(|e| switch_error(e, "gid", gid.as_raw()))?;
    setresuid(uid, uid, uid).map_err(|e| switch_error(e, "uid", uid.as_raw()))?;
    let mut interim = c.caps.clone();
    if c.seccomp.is_some() && !c.no_new_privs {
        interim.insert(Capability::CAP_SYS_ADMIN);
    }
    set_caps(&interim)?;
    if c.no_new_privs {
        nix::sys::prctl::set_no_new_privs().context("set no_new_privs")?;
    }
    if let Some(bpf) = c.seccomp {
        crate::sys::seccomp::load(&bpf.0).context("load the seccomp profile")?;
    }
    let last = if c.user.uid == 0 {
        c.caps.clone()
    } else {
        CapsHashSet::new()
    };
    set_caps(&last)?;
    caps::clear(None, CapSet::Ambient).context("clear ambient capabilities")?;
    nix::sys::prctl::set_keepcaps(false).context("clear keepcaps")?;
    Ok(())
}

fn set_caps(set: &CapsHashSet) -> anyhow::Result<()> {
    // Effective first: it must stay a subset of permitted at every step.
    caps::set(None, CapSet::Effective, set).context("set effective capabilities")?;
    caps::set(None, CapSet::Permitted, set).context("set permitted capabilities")?;
    caps::set(None, CapSet::Inheritable, &CapsHashSet::new())
        .context("clear inheritable capabilities")?;
    Ok(())
}

/// EINVAL from setresuid/setresgid means the id has no mapping here.
fn switch_error(e: nix::errno::Errno, kind: &str, id: u32) -> anyhow::Error {
    if e != nix::errno::Errno::EINVAL {
        return anyhow::Error::new(e).context(format!("switch to {kind} {id}"));
    }
    crate::errors::hint(
        anyhow::anyhow!("switch to {kind} {id}: the id is not mapped in this container's user namespace"),
        "with a single-id map only your own id exists in the container: drop `-u`, or ask an admin for subordinate ids (`hutch doctor`)",
    )
}
