//! Session checks: networking devices and helpers, cgroup delegation, the
//! runtime dir, and the audit identity containers will carry.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
use nix::unistd::{access, AccessFlags, Uid, User};

use super::{device, find_program, judge_device, read_number};
use super::{Check, Facts, Status, Who, UNSET_ID};

// ---- networking ------------------------------------------------------------

pub(super) fn check_network(who: &Who, facts: &mut Facts) -> [Check; 2] {
    let tun = device("/dev/net/tun");
    facts.tun = tun.read_write;
    let fix = "`sudo modprobe tun`";
    let mut tun_check = judge_device("/dev/net/tun", tun, &who.name, Status::Warn, fix);
    if tun_check.status != Status::Ok {
        tun_check.detail = format!(
            "{}; pasta and slirp4netns need it, so containers get loopback only",
            tun_check.detail
        );
    }
    facts.pasta = find_program("pasta");
    facts.slirp4netns = find_program("slirp4netns");
    let found: Vec<String> = [&facts.pasta, &facts.slirp4netns]
        .iter()
        .filter_map(|p| p.as_ref())
        .map(|p| p.display().to_string())
        .collect();
    let default = crate::net::Helpers {
        pasta: facts.pasta.is_some(),
        slirp4netns: facts.slirp4netns.is_some(),
        tun: tun.read_write,
    }
    .best();
    let helpers = if found.is_empty() {
        Check::new(
            "network helpers",
            Status::Warn,
            "neither pasta nor slirp4netns found: containers get loopback only".to_string(),
        )
        .hint("an administrator can install them: `sudo apt-get install passt slirp4netns`")
    } else {
        Check::new(
            "network helpers",
            Status::Ok,
            format!("{}; default network: {}", found.join(", "), default.name()),
        )
    };
    [tun_check, helpers]
}

// ---- cgroups ---------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CgroupMode {
    Unified,
    Hybrid,
    Legacy,
    Unknown,
}

fn cgroup_mode() -> CgroupMode {
    let magic = |p: &str| statfs(p).ok().map(|s| s.filesystem_type());
    match magic("/sys/fs/cgroup") {
        Some(CGROUP2_SUPER_MAGIC) => CgroupMode::Unified,
        Some(_) if magic("/sys/fs/cgroup/unified") == Some(CGROUP2_SUPER_MAGIC) => {
            CgroupMode::Hybrid
        }
        Some(_) => CgroupMode::Legacy,
        None => CgroupMode::Unknown,
    }
}

/// The v2 path of this process (`0::/user.slice/...`) from /proc/self/cgroup.
fn own_cgroup(content: &str) -> Option<&str> {
    content.lines().find_map(|l| l.strip_prefix("0::"))
}

pub(super) fn check_cgroups(who: &Who, facts: &mut Facts) -> Check {
    let mode = cgroup_mode();
    let content = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let own = own_cgroup(&content).unwrap_or("/");
    let dir = Path::new("/sys/fs/cgroup").join(own.trim_start_matches('/'));
    let writable = mode == CgroupMode::Unified
        && access(&dir, AccessFlags::W_OK).is_ok()
        && access(&dir.join("cgroup.procs"), AccessFlags::W_OK).is_ok();
    let controllers = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    let check = judge_cgroups(mode, own, writable, &controllers, &who.name);
    facts.cgroup_delegated = check.status == Status::Ok;
    check
}

fn judge_cgroups(
    mode: CgroupMode,
    own: &str,
    writable: bool,
    controllers: &str,
    user: &str,
) -> Check {
    const NAME: &str = "cgroups";
    const NONE: &str = "resource limits (--memory, --cpus, --pids-limit) are unavailable; \
        containers run without cgroups";
    const DELEGATE: &str = "an administrator can delegate controllers: write \
        /etc/systemd/system/user@.service.d/delegate.conf containing\n\
        [Service]\nDelegate=cpu cpuset io memory pids\n\
        then `sudo systemctl daemon-reload` and log in again";
    let version = match mode {
        CgroupMode::Unified => "cgroup v2",
        CgroupMode::Hybrid => "cgroup v1 (hybrid)",
        CgroupMode::Legacy => "cgroup v1",
        CgroupMode::Unknown => "no cgroup filesystem at /sys/fs/cgroup",
    };
    if mode != CgroupMode::Unified {
        let hint = "boot with `systemd.unified_cgroup_hierarchy=1` for cgroup v2";
        return Check::new(NAME, Status::Info, format!("{version}: {NONE}")).hint(hint);
    }
    if !writable {
        let detail = format!("{version}, but {own} is not delegated to {user}: {NONE}");
        return Check::new(NAME, Status::Info, detail).hint(
            "run hutch from a systemd user session (e.g. `systemd-run --user --scope hutch ...`)",
        );
    }
    let have: Vec<&str> = controllers.split_whitespace().collect();
    let missing: Vec<&str> = ["cpu", "memory", "pids"]
        .into_iter()
        .filter(|c| !have.contains(c))
        .collect();
    if !missing.is_empty() {
        let detail = format!(
            "{version}, {own} is delegated but lacks controllers {}: \
             some resource limits are unavailable",
            missing.join(" ")
        );
        return Check::new(NAME, Status::Info, detail).hint(DELEGATE);
    }
    Check::new(
        NAME,
        Status::Ok,
        format!(
            "{version}, delegated: {own} (controllers: {})",
            have.join(" ")
        ),
    )
}

// ---- directories -----------------------------------------------------------

/// Owner, permission bits and kind of a path (not following symlinks).
#[derive(Debug, Clone, Copy)]
struct DirMeta {
    owner: u32,
    mode: u32,
    is_dir: bool,
}

fn dir_meta(path: &Path) -> Option<DirMeta> {
    let m = std::fs::symlink_metadata(path).ok()?;
    Some(DirMeta {
        owner: m.uid(),
        mode: m.mode() & 0o7777,
        is_dir: m.is_dir(),
    })
}

fn private_to(meta: Option<DirMeta>, uid: u32) -> bool {
    meta.is_some_and(|m| m.is_dir && m.owner == uid && m.mode & 0o077 == 0)
}

pub(super) fn check_runtime_dir(who: &Who, facts: &mut Facts) -> Check {
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from);
    let xdg_meta = xdg.as_deref().and_then(dir_meta);
    let fallback = PathBuf::from(format!("/tmp/hutch-{}", who.uid));
    let fallback_meta = dir_meta(&fallback);
    let (check, dir) = judge_runtime_dir(xdg, xdg_meta, fallback, fallback_meta, who.uid);
    facts.runtime_dir = dir;
    check
}

/// `$XDG_RUNTIME_DIR` when it is a 0700 dir of ours, else `/tmp/hutch-UID`
/// (which, if it already exists, must be ours and private too).
fn judge_runtime_dir(
    xdg: Option<PathBuf>,
    xdg_meta: Option<DirMeta>,
    fallback: PathBuf,
    fallback_meta: Option<DirMeta>,
    uid: u32,
) -> (Check, PathBuf) {
    const NAME: &str = "runtime dir";
    let why_not = match (&xdg, xdg_meta) {
        (Some(x), Some(m))
            if x.is_absolute() && m.is_dir && m.owner == uid && m.mode & 0o777 == 0o700 =>
        {
            return (
                Check::new(
                    NAME,
                    Status::Ok,
                    format!("{} ($XDG_RUNTIME_DIR)", x.display()),
                ),
                x.clone(),
            );
        }
        (None, _) => None,
        (Some(x), None) => Some(format!("$XDG_RUNTIME_DIR={} does not exist", x.display())),
        (Some(x), Some(m)) => Some(format!(
            "$XDG_RUNTIME_DIR={} is not a 0700 dir owned by uid {uid} (owner {}, mode {:04o})",
            x.display(),
            m.owner,
            m.mode
        )),
    };
    let f = fallback.display();
    if fallback_meta.is_some() && !private_to(fallback_meta, uid) {
        let detail = format!(
            "{f} exists but is not a private dir owned by uid {uid}: \
             someone else could tamper with container state"
        );
        let hint = format!(
            "remove it (`sudo rm -rf {f}`), or log in through a session that sets XDG_RUNTIME_DIR"
        );
        return (Check::new(NAME, Status::Fail, detail).hint(hint), fallback);
    }
    let check = match why_not {
        None => Check::new(
            NAME,
            Status::Info,
            format!("$XDG_RUNTIME_DIR is unset (no login session); using {f}"),
        ),
        Some(why) => Check::new(NAME, Status::Warn, format!("{why}; using {f}")),
    };
    (check, fallback)
}

// ---- audit identity ----------------------------------------------------------

pub(super) fn check_audit() -> Check {
    let id = |p: &str| read_number(p).and_then(|n| u32::try_from(n).ok());
    let loginuid = id("/proc/self/loginuid");
    let name = loginuid
        .filter(|&n| n != UNSET_ID)
        .and_then(|n| User::from_uid(Uid::from_raw(n)).ok().flatten())
        .map(|u| u.name);
    judge_audit(loginuid, id("/proc/self/sessionid"), name)
}

fn judge_audit(loginuid: Option<u32>, sessionid: Option<u32>, name: Option<String>) -> Check {
    const NAME: &str = "audit identity";
    const NO_AUDIT: &str =
        "no /proc/self/loginuid: the kernel does not track login identity (no CONFIG_AUDIT)";
    const LOGIN_HINT: &str = "run hutch from a login session (ssh, console, \
        `machinectl shell USER@`) so audit records name you";
    let session = match sessionid {
        Some(s) if s != UNSET_ID => format!(", session {s}"),
        _ => String::new(),
    };
    match loginuid {
        None => Check::new(NAME, Status::Info, NO_AUDIT),
        Some(UNSET_ID) => Check::new(
            NAME,
            Status::Info,
            "loginuid is unset (not started from a login session): \
             audit records of containers will show auid=unset",
        )
        .hint(LOGIN_HINT),
        Some(n) => {
            let who = name.unwrap_or_else(|| "no passwd entry".to_string());
            let detail = format!("containers will be attributed to loginuid {n} ({who}){session}");
            Check::new(NAME, Status::Ok, detail)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cgroup_finds_the_v2_line() {
        let hybrid = "9:name=systemd:/user.slice\n4:memory:/x\n\
                      0::/user.slice/user-1000.slice/session-3.scope\n";
        assert_eq!(
            own_cgroup(hybrid),
            Some("/user.slice/user-1000.slice/session-3.scope")
        );
        assert_eq!(own_cgroup("0::/\n"), Some("/"));
        assert_eq!(own_cgroup("4:memory:/x\n"), None);
        assert_eq!(own_cgroup(""), None);
    }

    #[test]
    fn judge_cgroups_table() {
        use CgroupMode::*;
        let own = "/user.slice/user-1000.slice/user@1000.service/app.slice";
        // (mode, writable, controllers, status, detail contains)
        let cases = [
            (
                Unified,
                true,
                "cpuset cpu io memory pids",
                Status::Ok,
                "delegated",
            ),
            (
                Unified,
                true,
                "memory pids",
                Status::Info,
                "lacks controllers cpu",
            ),
            (
                Unified,
                false,
                "cpu memory pids",
                Status::Info,
                "is not delegated to alice",
            ),
            (
                Hybrid,
                true,
                "cpu memory pids",
                Status::Info,
                "cgroup v1 (hybrid)",
            ),
            (Legacy, false, "", Status::Info, "cgroup v1:"),
            (Unknown, false, "", Status::Info, "no cgroup filesystem"),
        ];
        for (mode, writable, controllers, status, detail) in cases {
            let c = judge_cgroups(mode, own, writable, controllers, "alice");
            assert_eq!(c.status, status, "{c:?}");
            assert!(c.detail.contains(detail), "{c:?}");
            if status != Status::Ok {
                assert!(
                    c.detail.contains("containers run without cgroups")
                        || c.detail.contains("some resource limits")
                );
                assert!(c.hint.is_some(), "{c:?}");
            }
        }
    }

    #[test]
    fn judge_runtime_dir_table() {
        let meta = |owner, mode, is_dir| {
            Some(DirMeta {
                owner,
                mode,
                is_dir,
            })
        };
        let run = Some(PathBuf::from("/run/user/1000"));
        let fallback = PathBuf::from("/tmp/hutch-1000");
        // (xdg, xdg meta, fallback meta, status, chosen dir, detail contains)
        let cases = [
            (
                run.clone(),
                meta(1000, 0o700, true),
                None,
                Status::Ok,
                "/run/user/1000",
                "$XDG_RUNTIME_DIR",
            ),
            (None, None, None, Status::Info, "/tmp/hutch-1000", "unset"),
            (
                None,
                None,
                meta(1000, 0o700, true),
                Status::Info,
                "/tmp/hutch-1000",
                "unset",
            ),
            (
                run.clone(),
                None,
                None,
                Status::Warn,
                "/tmp/hutch-1000",
                "does not exist",
            ),
            (
                run.clone(),
                meta(0, 0o700, true),
                None,
                Status::Warn,
                "/tmp/hutch-1000",
                "owner 0",
            ),
            (
                run.clone(),
                meta(1000, 0o755, true),
                None,
                Status::Warn,
                "/tmp/hutch-1000",
                "mode 0755",
            ),
            (
                run.clone(),
                meta(1000, 0o700, false),
                None,
                Status::Warn,
                "/tmp/hutch-1000",
                "not a 0700 dir",
            ),
            (
                Some("run/user".into()),
                meta(1000, 0o700, true),
                None,
                Status::Warn,
                "/tmp/hutch-1000",
                "not a 0700 dir",
            ),
            (
                None,
                None,
                meta(1001, 0o700, true),
                Status::Fail,
                "/tmp/hutch-1000",
                "someone else",
            ),
            (
                None,
                None,
                meta(1000, 0o777, true),
                Status::Fail,
                "/tmp/hutch-1000",
                "someone else",
            ),
            (
                None,
                None,
                meta(1000, 0o700, false),
                Status::Fail,
                "/tmp/hutch-1000",
                "not a private dir",
            ),
        ];
        for (xdg, xdg_meta, fb_meta, status, dir, detail) in cases {
            let (c, chosen) = judge_runtime_dir(xdg, xdg_meta, fallback.clone(), fb_meta, 1000);
            assert_eq!((c.status, chosen.to_str()), (status, Some(dir)), "{c:?}");
            assert!(c.detail.contains(detail), "{c:?}");
        }
    }

    #[test]
    fn judge_audit_table() {
        let c = judge_audit(Some(1000), Some(3), Some("alice".into()));
        assert_eq!(c.status, Status::Ok);
        assert_eq!(
            c.detail,
            "containers will be attributed to loginuid 1000 (alice), session 3"
        );
        let c = judge_audit(Some(1000), Some(UNSET_ID), None);
        assert_eq!(
            c.detail,
            "containers will be attributed to loginuid 1000 (no passwd entry)"
        );
        let c = judge_audit(Some(UNSET_ID), Some(UNSET_ID), None);
        assert_eq!(c.status, Status::Info);
        assert!(c.detail.contains("auid=unset") && c.hint.is_some());
        assert_eq!(judge_audit(None, None, None).status, Status::Info);
    }
}
