//! What this host can do, probed once: user namespaces, subordinate ids,
//! the setuid helpers, overlay, FUSE, network helpers, cgroups, directories.
//! Used by `hutch doctor` (every check, with its fix) and by `run`
//! (through [`Report::facts`] and [`Report::can_run`]).
//!
//! Each check reads the host (sysctls, files, one forked probe) and hands
//! plain data to a pure `judge_*` function that decides status, detail and
//! hint; the judges are table-tested. Probing is cheap: two short-lived
//! children (user namespace, overlay), each killed after [`PROBE_TIMEOUT`].

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::unistd::{access, AccessFlags, Gid, Uid, User};
use serde::Serialize;

use crate::sys::probe::{self, ProbeOutcome, SelfMaps};
use crate::userns::subid::{self, SubidRange};

mod session;
mod storage;

use session::{check_audit, check_cgroups, check_network, check_runtime_dir};
use storage::{check_data_dir, check_fuse, check_overlay, check_storage_driver, data_dir};
pub use storage::{dev_fuse_usable, find_in_path, fs_name, overlay_works};

/// Upper bound for each forked probe.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Images commonly own files up to uid 65534 (`nobody`).
const WANTED_IDS: u32 = 65536;
const UNSET_ID: u32 = u32::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
    Info,
}

/// One line of `hutch doctor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    pub hint: Option<String>,
}

impl Check {
    fn new(name: &'static str, status: Status, detail: impl Into<String>) -> Check {
        let detail = detail.into();
        Check {
            name,
            status,
            detail,
            hint: None,
        }
    }

    fn hint(mut self, hint: impl Into<String>) -> Check {
        self.hint = Some(hint.into());
        self
    }
}

/// What `run` needs to know, decided once here.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Facts {
    pub subuid: Vec<SubidRange>,
    pub subgid: Vec<SubidRange>,
    /// The helpers, only when they can actually map other ids.
    pub newuidmap: Option<PathBuf>,
    pub newgidmap: Option<PathBuf>,
    pub kernel_overlay: bool,
    /// fuse-overlayfs, only when /dev/fuse is usable too.
    pub fuse_overlayfs: Option<PathBuf>,
    pub tun: bool,
    pub pasta: Option<PathBuf>,
    pub slirp4netns: Option<PathBuf>,
    pub cgroup_delegated: bool,
    pub runtime_dir: PathBuf,
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub user: String,
    pub uid: u32,
    pub checks: Vec<Check>,
    pub facts: Facts,
}

impl Report {
    /// False only when a check failed outright.
    pub fn can_run(&self) -> bool {
        !self.checks.iter().any(|c| c.status == Status::Fail)
    }

    pub fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }
}

/// The calling user, as the checks need it.
struct Who {
    uid: u32,
    gid: u32,
    name: String,
    home: Option<PathBuf>,
}

impl Who {
    fn current() -> Who {
        let (uid, gid) = (Uid::current(), Gid::current());
        let user = User::from_uid(uid).ok().flatten();
        Who {
            uid: uid.as_raw(),
            gid: gid.as_raw(),
            name: user
                .as_ref()
                .map_or_else(|| uid.to_string(), |u| u.name.clone()),
            home: std::env::var_os("HOME")
                .map(PathBuf::from)
                .or(user.map(|u| u.dir)),
        }
    }
}

/// Probes the host; never fails (an unreadable fact becomes a check).
pub fn probe() -> Report {
    let who = Who::current();
    let mut facts = Facts::default();
    let mut checks = vec![check_userns(&who)];
    checks.extend(check_subids(&who, &mut facts));
    checks.push(check_helper(
        "newuidmap",
        "cap_setuid",
        &mut facts.newuidmap,
    ));
    checks.push(check_helper(
        "newgidmap",
        "cap_setgid",
        &mut facts.newgidmap,
    ));
    let data_dir = data_dir(std::env::var_os("XDG_DATA_HOME"), who.home.clone());
    let overlay = check_overlay(&who, data_dir.as_deref(), &mut facts);
    checks.push(overlay.clone());
    checks.extend(check_fuse(&who, &mut facts));
    checks.push(check_storage_driver(&overlay, &facts));
    checks.extend(check_network(&who, &mut facts));
    checks.push(check_cgroups(&who, &mut facts));
    checks.push(check_runtime_dir(&who, &mut facts));
    checks.push(check_data_dir(data_dir.as_deref()));
    facts.data_dir = data_dir;
    checks.push(check_audit());
    Report {
        user: who.name,
        uid: who.uid,
        checks,
        facts,
    }
}

// ---- user namespaces -------------------------------------------------------

/// The sysctls that gate unprivileged user namespaces (None: absent).
#[derive(Debug, Clone, Copy, Default)]
struct UsernsSysctls {
    max_user_namespaces: Option<u64>,
    /// Debian's patch.
    unprivileged_userns_clone: Option<u64>,
    /// Ubuntu ≥ 23.10.
    apparmor_restrict: Option<u64>,
}

fn read_number(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn check_userns(who: &Who) -> Check {
    let sysctls = UsernsSysctls {
        max_user_namespaces: read_number("/proc/sys/user/max_user_namespaces"),
        unprivileged_userns_clone: read_number("/proc/sys/kernel/unprivileged_userns_clone"),
        apparmor_restrict: read_number("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
    };
    let outcome = probe::userns(&SelfMaps::single(who.uid, who.gid), PROBE_TIMEOUT);
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/usr/local/bin/hutch"));
    judge_userns(&sysctls, &outcome, &exe)
}

fn judge_userns(s: &UsernsSysctls, outcome: &ProbeOutcome, exe: &Path) -> Check {
    const NAME: &str = "user namespaces";
    let max = s
        .max_user_namespaces
        .map_or("absent".into(), |n| n.to_string());
    let apparmor_on = s.apparmor_restrict == Some(1);
    let why = match outcome {
        ProbeOutcome::Ok => {
            let mut detail = format!("enabled (max_user_namespaces={max})");
            if apparmor_on {
                detail.push_str("; AppArmor restricts them, but allows hutch");
            }
            return Check::new(NAME, Status::Ok, detail);
        }
        ProbeOutcome::Failed { step, errno } => format!("{step} failed: {}", errno_text(*errno)),
        ProbeOutcome::TimedOut => "the probe timed out".to_string(),
        ProbeOutcome::Died(how) => format!("the probe {how}"),
    };
    let (cause, hint) = if s.max_user_namespaces == Some(0) {
        ("user.max_user_namespaces is 0", SYSCTL_MAX_HINT.to_string())
    } else if s.unprivileged_userns_clone == Some(0) {
        (
            "kernel.unprivileged_userns_clone is 0",
            SYSCTL_CLONE_HINT.to_string(),
        )
    } else if apparmor_on {
        (
            "AppArmor restricts unprivileged user namespaces",
            apparmor_hint(exe),
        )
    } else if let ProbeOutcome::Failed {
        errno: Errno::ENOSPC,
        ..
    } = outcome
    {
        (
            "the user namespace limit is reached",
            SYSCTL_MAX_HINT.to_string(),
        )
    } else if let ProbeOutcome::Failed {
        errno: Errno::EINVAL,
        step: "unshare",
    } = outcome
    {
        (
            "the kernel lacks CONFIG_USER_NS",
            "use a kernel built with CONFIG_USER_NS=y".to_string(),
        )
    } else if let ProbeOutcome::Failed { .. } = outcome {
        ("a security policy denies them", POLICY_HINT.to_string())
    } else {
        let detail = format!("could not be tested: {why} (max_user_namespaces={max})");
        return Check::new(NAME, Status::Warn, detail);
    };
    Check::new(NAME, Status::Fail, format!("unavailable: {cause} ({why})")).hint(hint)
}

const SYSCTL_MAX_HINT: &str = "an administrator can raise the limit: \
    `sudo sysctl -w user.max_user_namespaces=28633` \
    (persist it in /etc/sysctl.d/90-hutch.conf)";
const SYSCTL_CLONE_HINT: &str = "an administrator can allow them: \
    `sudo sysctl -w kernel.unprivileged_userns_clone=1` \
    (persist it in /etc/sysctl.d/90-hutch.conf)";
const POLICY_HINT: &str = "if hutch runs inside a container, its seccomp profile may block \
    unshare(CLONE_NEWUSER): run hutch on the host, or allow user namespaces in the outer runtime";

/// The AppArmor profile an administrator installs on Ubuntu ≥ 23.10.
fn apparmor_hint(exe: &Path) -> String {
    format!(
        "an administrator can allow hutch: write /etc/apparmor.d/hutch containing\n\
         abi <abi/4.0>,\n\
         include <tunables/global>\n\
         \n\
         profile hutch {} flags=(unconfined) {{\n\
         \x20 userns,\n\
         \n\
         \x20 include if exists <local/hutch>\n\
         }}\n\
         then load it: `sudo apparmor_parser -r /etc/apparmor.d/hutch`",
        exe.display()
    )
}

/// `ENOSPC: No space left on device`.
fn errno_text(errno: Errno) -> String {
    errno.to_string()
}

// ---- subordinate ids ---------------------------------------------------------

/// The first range of 65536 ids free in both /etc/subuid and /etc/subgid.
fn free_range() -> Option<SubidRange> {
    let mut taken = subid::lookup_all(Path::new("/etc/subuid")).unwrap_or_default();
    taken.extend(subid::lookup_all(Path::new("/etc/subgid")).unwrap_or_default());
    suggest_range(&taken, WANTED_IDS)
}

/// The admin's fix for a user without (enough) subordinate ids, with a
/// range nobody has yet: `doctor` and `run`'s fallback warning say the same.
pub fn subid_fix(user: &str) -> String {
    subid_fix_text(free_range(), user)
}

fn subid_fix_text(suggestion: Option<SubidRange>, user: &str) -> String {
    match suggestion {
        Some(r) => format!(
            "an administrator can add a range: \
             `sudo usermod --add-subuids {a}-{b} --add-subgids {a}-{b} {user}`",
            a = r.start,
            b = r.last()
        ),
        None => format!(
            "an administrator can add a free range of 65536 ids for {user} \
             to /etc/subuid and /etc/subgid"
        ),
    }
}

fn check_subids(who: &Who, facts: &mut Facts) -> [Check; 2] {
    let (uid_path, gid_path) = (Path::new("/etc/subuid"), Path::new("/etc/subgid"));
    let suggestion = free_range();
    let one = |name, path: &Path, out: &mut Vec<SubidRange>| match subid::lookup(
        path, &who.name, who.uid,
    ) {
        Ok(ranges) => {
            *out = ranges;
            judge_subids(name, path, out, suggestion, &who.name)
        }
        Err(err) => Check::new(
            name,
            Status::Warn,
            format!("{err:#}; hutch falls back to a single-id map"),
        ),
    };
    let uid_check = one("subuid", uid_path, &mut facts.subuid);
    let gid_check = one("subgid", gid_path, &mut facts.subgid);
    [uid_check, gid_check]
}

fn judge_subids(
    name: &'static str,
    path: &Path,
    ranges: &[SubidRange],
    suggestion: Option<SubidRange>,
    user: &str,
) -> Check {
    let total: u64 = ranges.iter().map(|r| u64::from(r.count)).sum();
    let fix = subid_fix_text(suggestion, user);
    if ranges.is_empty() {
        let detail = format!(
            "no range for {user} in {}; hutch falls back to a single-id map (container root = you)",
            path.display()
        );
        return Check::new(name, Status::Warn, detail).hint(fix);
    }
    let detail = format!("{} ({total} ids)", format_ranges(ranges));
    if total < u64::from(WANTED_IDS) {
        let detail =
            format!("{detail}: fewer than {WANTED_IDS}, and some images need uids up to 65534");
        return Check::new(name, Status::Warn, detail).hint(fix);
    }
    Check::new(name, Status::Ok, detail)
}

fn format_ranges(ranges: &[SubidRange]) -> String {
    let parts: Vec<String> = ranges
        .iter()
        .map(|r| format!("{}-{}", r.start, r.last()))
        .collect();
    parts.join(", ")
}

/// The first block `100000 + k*count` (useradd's layout) overlapping no
/// range already handed out in /etc/subuid or /etc/subgid.
fn suggest_range(taken: &[SubidRange], count: u32) -> Option<SubidRange> {
    let mut start: u32 = 100_000;
    loop {
        start.checked_add(count)?;
        let candidate = SubidRange { start, count };
        if !taken.iter().any(|t| t.overlaps(&candidate)) {
            return Some(candidate);
        }
        start = start.checked_add(count)?;
    }
}

// ---- newuidmap / newgidmap -------------------------------------------------------

/// What matters about a setuid helper binary.
#[derive(Debug, Clone)]
struct HelperFile {
    path: PathBuf,
    mode: u32,
    owner: u32,
    has_caps: bool,
}

impl HelperFile {
    /// Whether it can map ids other than the caller's: setuid root, or
    /// file capabilities (as shadow's packaging sets on some systems).
    fn can_map(&self) -> bool {
        (self.mode & 0o4000 != 0 && self.owner == 0) || self.has_caps
    }
}

/// `name` as `find_program` finds it, with what decides whether it works.
fn inspect_helper(name: &str) -> Option<HelperFile> {
    let path = find_program(name)?;
    let meta = std::fs::metadata(&path).ok()?;
    let has_caps = probe::has_xattr(&path, c"security.capability");
    Some(HelperFile {
        path,
        mode: meta.mode(),
        owner: meta.uid(),
        has_caps,
    })
}

/// The id-map helper `name` (newuidmap, newgidmap) that `run` uses, or
/// why there is none. One check for `run` and `doctor`, so they agree.
pub fn usable_helper(name: &str) -> Result<PathBuf, String> {
    match inspect_helper(name) {
        None => Err(format!("{name} is not installed")),
        Some(f) if f.can_map() => Ok(f.path),
        Some(f) => Err(format!(
            "`{}` is neither setuid root nor carries file capabilities",
            f.path.display()
        )),
    }
}

fn check_helper(name: &'static str, cap: &str, usable: &mut Option<PathBuf>) -> Check {
    let file = inspect_helper(name);
    let check = judge_helper(name, cap, file.as_ref());
    if file.as_ref().is_some_and(HelperFile::can_map) {
        *usable = file.map(|f| f.path);
    }
    check
}

fn judge_helper(name: &'static str, cap: &str, file: Option<&HelperFile>) -> Check {
    let Some(f) = file else {
        return Check::new(
            name,
            Status::Warn,
            "not found; hutch falls back to a single-id map",
        )
        .hint("an administrator can install it: `sudo apt-get install uidmap`");
    };
    let p = f.path.display();
    if f.can_map() {
        let how = if f.mode & 0o4000 != 0 && f.owner == 0 {
            "setuid root"
        } else {
            "file capabilities"
        };
        return Check::new(name, Status::Ok, format!("{p} ({how})"));
    }
    let detail = format!(
        "{p} is neither setuid root nor carries file capabilities (mode {:04o}, owner uid {}); \
         hutch falls back to a single-id map",
        f.mode & 0o7777,
        f.owner
    );
    let hint = format!(
        "an administrator can fix it: `sudo chown root {p} && sudo chmod u+s {p}` \
         or `sudo setcap {cap}+ep {p}`"
    );
    Check::new(name, Status::Warn, detail).hint(hint)
}

/// `name` on $PATH, else in the usual system dirs; must be an executable file.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let system = ["/usr/bin", "/usr/sbin", "/bin", "/sbin"].map(PathBuf::from);
    std::env::split_paths(&path)
        .chain(system)
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

// ---- shared by the device and program checks -----------------------------------------------

/// A character device as this user sees it.
#[derive(Debug, Clone, Copy)]
struct DeviceAccess {
    exists: bool,
    read_write: bool,
    mode: u32,
}

fn device(path: &str) -> DeviceAccess {
    let meta = std::fs::metadata(path).ok();
    DeviceAccess {
        exists: meta.is_some(),
        read_write: access(path, AccessFlags::R_OK | AccessFlags::W_OK).is_ok(),
        mode: meta.map_or(0, |m| m.mode() & 0o7777),
    }
}

/// `severity` is the status when unusable; `fix` the command that helps.
fn judge_device(
    name: &'static str,
    dev: DeviceAccess,
    user: &str,
    severity: Status,
    fix: &str,
) -> Check {
    if !dev.exists {
        return Check::new(name, severity, "missing")
            .hint(format!("an administrator can load it: {fix}"));
    }
    if !dev.read_write {
        let detail = format!("mode {:04o}: not readable and writable by {user}", dev.mode);
        let hint = format!("an administrator can open it up: `sudo chmod 0666 {name}`");
        return Check::new(name, severity, detail).hint(hint);
    }
    Check::new(
        name,
        Status::Ok,
        format!("readable and writable (mode {:04o})", dev.mode),
    )
}

fn judge_program(
    name: &'static str,
    found: Option<&Path>,
    severity: Status,
    package: &str,
    why: &str,
) -> Check {
    match found {
        Some(p) => Check::new(name, Status::Ok, p.display().to_string()),
        None => Check::new(name, severity, format!("not found; {why}")).hint(format!(
            "an administrator can install it: `sudo apt-get install {package}`"
        )),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A check has this status, its detail contains `detail`, and it has
    /// a hint containing `hint` exactly when one is expected.
    pub(super) fn assert_check(c: &Check, status: Status, detail: &str, hint: Option<&str>) {
        assert_eq!(c.status, status, "{c:?}");
        assert!(c.detail.contains(detail), "{c:?}");
        assert_eq!(c.hint.is_some(), hint.is_some(), "{c:?}");
        if let (Some(h), Some(got)) = (hint, &c.hint) {
            assert!(got.contains(h), "{c:?}");
        }
    }

    fn range(start: u32, count: u32) -> SubidRange {
        SubidRange { start, count }
    }

    fn sysctls(max: Option<u64>, clone: Option<u64>, apparmor: Option<u64>) -> UsernsSysctls {
        UsernsSysctls {
            max_user_namespaces: max,
            unprivileged_userns_clone: clone,
            apparmor_restrict: apparmor,
        }
    }

    fn failed(step: &'static str, errno: Errno) -> ProbeOutcome {
        ProbeOutcome::Failed { step, errno }
    }

    #[test]
    fn judge_userns_table() {
        let exe = Path::new("/usr/bin/hutch");
        let ok = ProbeOutcome::Ok;
        // (sysctls, outcome, status, detail contains, hint contains)
        let cases = [
            (
                sysctls(Some(96343), None, None),
                ok.clone(),
                Status::Ok,
                "max_user_namespaces=96343",
                None,
            ),
            (
                sysctls(Some(5), None, Some(1)),
                ok.clone(),
                Status::Ok,
                "allows hutch",
                None,
            ),
            (
                sysctls(Some(0), None, None),
                failed("unshare", Errno::ENOSPC),
                Status::Fail,
                "max_user_namespaces is 0",
                Some("user.max_user_namespaces="),
            ),
            (
                sysctls(Some(9), Some(0), None),
                failed("unshare", Errno::EPERM),
                Status::Fail,
                "unprivileged_userns_clone is 0",
                Some("unprivileged_userns_clone=1"),
            ),
            (
                sysctls(Some(9), Some(1), Some(1)),
                failed("uid_map", Errno::EPERM),
                Status::Fail,
                "AppArmor",
                Some("userns,"),
            ),
            (
                sysctls(Some(9), None, None),
                failed("unshare", Errno::ENOSPC),
                Status::Fail,
                "limit is reached",
                Some("max_user_namespaces"),
            ),
            (
                sysctls(None, None, None),
                failed("unshare", Errno::EINVAL),
                Status::Fail,
                "CONFIG_USER_NS",
                Some("CONFIG_USER_NS=y"),
            ),
            (
                sysctls(Some(9), None, None),
                failed("unshare", Errno::EPERM),
                Status::Fail,
                "security policy",
                Some("seccomp"),
            ),
            (
                sysctls(Some(9), None, None),
                ProbeOutcome::TimedOut,
                Status::Warn,
                "timed out",
                None,
            ),
            (
                sysctls(Some(0), None, None),
                ProbeOutcome::TimedOut,
                Status::Fail,
                "max_user_namespaces is 0",
                Some("sysctl"),
            ),
        ];
        for (s, outcome, status, detail, hint) in cases {
            let c = judge_userns(&s, &outcome, exe);
            assert_eq!(c.status, status, "{outcome:?}: {c:?}");
            assert!(c.detail.contains(detail), "{c:?}");
            match hint {
                Some(h) => assert!(c.hint.as_deref().is_some_and(|x| x.contains(h)), "{c:?}"),
                None => assert_eq!(c.hint, None),
            }
        }
    }

    #[test]
    fn apparmor_hint_is_a_complete_profile() {
        let hint = apparmor_hint(Path::new("/opt/hutch/bin/hutch"));
        let want = "abi <abi/4.0>,\n\
                    include <tunables/global>\n\
                    \n\
                    profile hutch /opt/hutch/bin/hutch flags=(unconfined) {\n\
                    \x20 userns,\n\
                    \n\
                    \x20 include if exists <local/hutch>\n\
                    }\n";
        assert!(hint.contains(want), "{hint}");
        assert!(hint.contains("/etc/apparmor.d/hutch"));
        assert!(hint.contains("`sudo apparmor_parser -r /etc/apparmor.d/hutch`"));
    }

    #[test]
    fn suggest_range_table() {
        let cases = [
            ("empty file", vec![], Some(100_000)),
            (
                "first block taken",
                vec![range(100_000, 65536)],
                Some(165_536),
            ),
            (
                "two taken",
                vec![range(100_000, 65536), range(165_536, 65536)],
                Some(231_072),
            ),
            (
                "odd range overlaps the next block",
                vec![range(100_000, 65536), range(170_000, 10)],
                Some(231_072),
            ),
            (
                "ranges below 100000 are ignored",
                vec![range(1000, 5000)],
                Some(100_000),
            ),
            ("gap is reused", vec![range(165_536, 65536)], Some(100_000)),
            ("everything taken", vec![range(0, u32::MAX - 1)], None),
        ];
        for (what, taken, want) in cases {
            assert_eq!(
                suggest_range(&taken, 65536).map(|r| r.start),
                want,
                "{what}"
            );
        }
    }

    #[test]
    fn judge_subids_table() {
        let path = Path::new("/etc/subuid");
        let sugg = Some(range(165_536, 65536));
        let c = judge_subids("subuid", path, &[range(100_000, 65536)], sugg, "alice");
        assert_eq!(
            (c.status, c.detail.as_str()),
            (Status::Ok, "100000-165535 (65536 ids)")
        );
        let two = [range(100_000, 65000), range(300_000, 1000)];
        let c = judge_subids("subuid", path, &two, sugg, "alice");
        assert_eq!(c.status, Status::Ok);
        assert_eq!(c.detail, "100000-164999, 300000-300999 (66000 ids)");
        let c = judge_subids("subuid", path, &[range(100_000, 1000)], sugg, "alice");
        assert_eq!(c.status, Status::Warn);
        assert!(c.detail.contains("65534"));
        let c = judge_subids("subgid", path, &[], sugg, "alice");
        assert_eq!(c.status, Status::Warn);
        assert!(c.detail.contains("single-id map"));
        let want = "`sudo usermod --add-subuids 165536-231071 --add-subgids 165536-231071 alice`";
        assert!(
            c.hint.as_deref().is_some_and(|h| h.ends_with(want)),
            "{c:?}"
        );
        let c = judge_subids("subuid", path, &[], None, "alice");
        assert!(c.hint.is_some_and(|h| h.contains("free range")));
    }

    #[test]
    fn judge_helper_table() {
        let file = |mode, owner, has_caps| HelperFile {
            path: "/usr/bin/newuidmap".into(),
            mode,
            owner,
            has_caps,
        };
        let cases = [
            (
                None,
                Status::Warn,
                "not found",
                Some("apt-get install uidmap"),
            ),
            (
                Some(file(0o104755, 0, false)),
                Status::Ok,
                "setuid root",
                None,
            ),
            (
                Some(file(0o100755, 0, true)),
                Status::Ok,
                "file capabilities",
                None,
            ),
            (
                Some(file(0o104755, 1000, false)),
                Status::Warn,
                "owner uid 1000",
                Some("chmod u+s"),
            ),
            (
                Some(file(0o100755, 0, false)),
                Status::Warn,
                "mode 0755",
                Some("setcap cap_setuid+ep /usr/bin/newuidmap"),
            ),
        ];
        for (f, status, detail, hint) in cases {
            assert_check(
                &judge_helper("newuidmap", "cap_setuid", f.as_ref()),
                status,
                detail,
                hint,
            );
        }
    }

    #[test]
    fn judge_device_table() {
        let dev = |exists, read_write, mode| DeviceAccess {
            exists,
            read_write,
            mode,
        };
        let c = judge_device(
            "/dev/fuse",
            dev(true, true, 0o666),
            "bob",
            Status::Warn,
            "x",
        );
        assert_eq!(c.status, Status::Ok);
        let c = judge_device(
            "/dev/fuse",
            dev(true, false, 0o600),
            "bob",
            Status::Warn,
            "x",
        );
        assert_eq!(
            (c.status, c.detail.as_str()),
            (Status::Warn, "mode 0600: not readable and writable by bob")
        );
        assert_eq!(
            c.hint.as_deref(),
            Some("an administrator can open it up: `sudo chmod 0666 /dev/fuse`")
        );
        let c = judge_device(
            "/dev/net/tun",
            dev(false, false, 0),
            "bob",
            Status::Info,
            "`sudo modprobe tun`",
        );
        assert_eq!((c.status, c.detail.as_str()), (Status::Info, "missing"));
        assert!(c.hint.is_some_and(|h| h.contains("modprobe tun")));
    }

    #[test]
    fn judge_program_table() {
        let c = judge_program(
            "pasta",
            Some(Path::new("/usr/bin/pasta")),
            Status::Warn,
            "passt",
            "why",
        );
        assert_eq!(
            (c.status, c.detail.as_str(), c.hint),
            (Status::Ok, "/usr/bin/pasta", None)
        );
        let c = judge_program("pasta", None, Status::Warn, "passt", "why");
        assert_eq!(
            (c.status, c.detail.as_str()),
            (Status::Warn, "not found; why")
        );
        assert!(c
            .hint
            .is_some_and(|h| h.contains("`sudo apt-get install passt`")));
    }

    #[test]
    fn can_run_only_fails_on_fail() {
        let report = |statuses: &[Status]| Report {
            user: "a".into(),
            uid: 1,
            checks: statuses.iter().map(|&s| Check::new("x", s, "")).collect(),
            facts: Facts::default(),
        };
        assert!(report(&[]).can_run());
        assert!(report(&[Status::Ok, Status::Warn, Status::Info]).can_run());
        assert!(!report(&[Status::Ok, Status::Fail]).can_run());
        assert_eq!(report(&[Status::Warn, Status::Warn]).count(Status::Warn), 2);
    }

    /// The real probe on this host: structure only, since hosts differ.
    #[test]
    fn probe_reports_every_check_once() {
        let report = probe();
        let mut names: Vec<&str> = report.checks.iter().map(|c| c.name).collect();
        assert_eq!(names.len(), 15, "{names:?}");
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 15);
        assert!(report.checks.iter().all(|c| !c.detail.is_empty()));
    }
}
