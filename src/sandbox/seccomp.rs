//! The default seccomp profile (same semantics as Docker's and Podman's),
//! compiled to BPF in the parent with libseccomp; the child only loads it.
//!
//! Semantics follow moby's `profiles/seccomp/default.json`:
//! - anything not listed fails with `EPERM`;
//! - the native architecture and its compat ABIs are covered (x86_64: x86
//!   and x32; aarch64: arm); other ABIs are killed by libseccomp's bad-arch
//!   action;
//! - a large allowlist of ordinary syscalls, each added only if this
//!   libseccomp knows its name (unknown names are skipped, as moby does);
//! - extra syscalls allowed only when the matching capability is in the
//!   container's bounding set;
//! - argument filters for `personality`, `socket` (no `AF_VSOCK`) and
//!   `clone` (no new namespaces without `CAP_SYS_ADMIN`), and `clone3`
//!   answering `ENOSYS` so libc falls back to the filterable `clone`.
//!
//! The filter is loaded by the container init before its final
//! capset/setresuid/exec, so those syscalls are (and must stay) allowed.

use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::{bail, Context};
use caps::{Capability, CapsHashSet};
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};

/// A compiled BPF program, ready for the child to load.
pub struct Bpf(pub Vec<libc::sock_filter>);

/// Syscalls every container may make. Names that a given libseccomp or
/// architecture does not know are skipped at compile time.
#[rustfmt::skip]
const ALLOWED: &[&str] = &[
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "cachestat", "capget",
    "capset", "chdir", "chmod", "chown", "chown32", "clock_adjtime", "clock_adjtime64",
    "clock_getres", "clock_getres_time64", "clock_gettime", "clock_gettime64", "clock_nanosleep",
    "clock_nanosleep_time64", "close", "close_range", "connect", "copy_file_range", "creat", "dup",
    "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait",
    "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "execve", "execveat",
    "exit", "exit_group", "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate",
    "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32", "fchownat",
    "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr",
    "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate",
    "ftruncate64", "futex", "futex_requeue", "futex_time64", "futex_wait", "futex_waitv",
    "futex_wake", "futimesat", "getcpu", "getcwd", "getdents", "getdents64", "getegid", "getegid32",
    "geteuid", "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32", "getitimer",
    "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom",
    "getresgid", "getresgid32", "getresuid", "getresuid32", "getrlimit", "get_robust_list",
    "getrusage", "getsid", "getsockname", "getsockopt", "get_thread_area", "gettid", "gettimeofday",
    "getuid", "getuid32", "getxattr", "inotify_add_watch", "inotify_init", "inotify_init1",
    "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy", "io_getevents", "io_pgetevents",
    "io_pgetevents_time64", "ioprio_get", "ioprio_set", "io_setup", "io_submit", "io_uring_enter",
    "io_uring_register", "io_uring_setup", "ipc", "kill", "landlock_add_rule",
    "landlock_create_ruleset", "landlock_restrict_self", "lchown", "lchown32", "lgetxattr", "link",
    "linkat", "listen", "listxattr", "llistxattr", "_llseek", "lremovexattr", "lseek", "lsetxattr",
    "lstat", "lstat64", "madvise", "map_shadow_stack", "membarrier", "memfd_create", "memfd_secret",
    "mincore", "mkdir", "mkdirat", "mknod", "mknodat", "mlock", "mlock2", "mlockall", "mmap",
    "mmap2", "mprotect", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive",
    "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "mremap",
    "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock", "munlockall", "munmap",
    "name_to_handle_at", "nanosleep", "newfstatat", "_newselect", "open", "openat", "openat2",
    "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free",
    "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl", "pread64", "preadv", "preadv2",
    "prlimit64", "process_mrelease", "pselect6", "pselect6_time64", "pwrite64", "pwritev",
    "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "recv", "recvfrom",
    "recvmmsg", "recvmmsg_time64", "recvmsg", "remap_file_pages", "removexattr", "rename",
    "renameat", "renameat2", "restart_syscall", "rmdir", "rseq", "rt_sigaction", "rt_sigpending",
    "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait",
    "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr",
    "sched_getparam", "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler",
    "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity", "sched_setattr",
    "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select", "semctl", "semget",
    "semop", "semtimedop", "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg",
    "sendmsg", "sendto", "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32",
    "setgroups", "setgroups32", "setitimer", "setpgid", "setpriority", "setregid", "setregid32",
    "setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32", "setrlimit",
    "set_robust_list", "setsid", "setsockopt", "set_thread_area", "set_tid_address", "setuid",
    "setuid32", "setxattr", "shmat", "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack",
    "signalfd", "signalfd4", "sigprocmask", "sigreturn", "socketcall", "socketpair", "splice",
    "stat", "stat64", "statfs", "statfs64", "statx", "symlink", "symlinkat", "sync",
    "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete",
    "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64",
    "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
    "timerfd_settime64", "times", "tkill", "truncate", "truncate64", "ugetrlimit", "umask", "uname",
    "unlink", "unlinkat", "utime", "utimensat", "utimensat_time64", "utimes", "vfork", "vmsplice",
    "wait4", "waitid", "waitpid", "write", "writev",
];

/// Syscalls only one architecture family has; added when that is native.
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
const ARCH_ALLOWED: &[&str] = &["arch_prctl", "modify_ldt"];
#[cfg(any(target_arch = "aarch64", target_arch = "arm"))]
const ARCH_ALLOWED: &[&str] = &[
    "arm_fadvise64_64",
    "arm_sync_file_range",
    "sync_file_range2",
    "breakpoint",
    "cacheflush",
    "set_tls",
];
#[cfg(target_arch = "powerpc64")]
const ARCH_ALLOWED: &[&str] = &["sync_file_range2", "swapcontext"];
#[cfg(target_arch = "s390x")]
const ARCH_ALLOWED: &[&str] = &[
    "s390_pci_mmio_read",
    "s390_pci_mmio_write",
    "s390_runtime_instr",
];
#[cfg(target_arch = "riscv64")]
const ARCH_ALLOWED: &[&str] = &["riscv_flush_icache"];
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "x86",
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "powerpc64",
    target_arch = "s390x",
    target_arch = "riscv64"
)))]
const ARCH_ALLOWED: &[&str] = &[];

/// Syscalls allowed only while the capability is in the bounding set. The
/// kernel checks the capability again; this keeps the attack surface of
/// these syscalls away from containers that could never use them.
const CAP_ALLOWED: &[(Capability, &[&str])] = &[
    (Capability::CAP_DAC_READ_SEARCH, &["open_by_handle_at"]),
    (
        Capability::CAP_SYS_ADMIN,
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "pivot_root",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    (Capability::CAP_SYS_BOOT, &["reboot"]),
    (Capability::CAP_SYS_CHROOT, &["chroot"]),
    (
        Capability::CAP_SYS_MODULE,
        &["delete_module", "init_module", "finit_module"],
    ),
    (Capability::CAP_SYS_PACCT, &["acct"]),
    (
        Capability::CAP_SYS_PTRACE,
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
    ),
    (Capability::CAP_SYS_RAWIO, &["iopl", "ioperm"]),
    (
        Capability::CAP_SYS_TIME,
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    (Capability::CAP_SYS_TTY_CONFIG, &["vhangup"]),
    (
        Capability::CAP_SYS_NICE,
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    (Capability::CAP_SYSLOG, &["syslog"]),
    (Capability::CAP_BPF, &["bpf"]),
    (Capability::CAP_PERFMON, &["perf_event_open"]),
];

/// Allowed for everyone on kernels >= 4.8: before that, ptrace could be used
/// to change a syscall after the seccomp check and so escape the filter.
const PTRACE_ALLOWED: &[&str] = &["process_vm_readv", "process_vm_writev", "ptrace"];

/// The `personality` values a container may set: PER_LINUX, PER_LINUX32,
/// UNAME26, UNAME26|PER_LINUX32, and 0xffffffff (query only).
const PERSONALITIES: &[u64] = &[0x0, 0x0008, 0x20000, 0x20008, 0xffff_ffff];

/// `AF_VSOCK`: would let a container talk to the hypervisor or host.
const AF_VSOCK: u64 = 40;

/// CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET.
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

/// On s390 the flags are clone's second argument, everywhere else the first.
const CLONE_FLAGS_ARG: u32 = if cfg!(target_arch = "s390x") { 1 } else { 0 };

/// Compiles the default profile for a container whose bounding set is `caps`.
pub fn compile_default(caps: &CapsHashSet) -> anyhow::Result<Bpf> {
    let mut ctx = ScmpFilterContext::new_filter(ScmpAction::Errno(libc::EPERM))
        .context("create seccomp filter context")?;
    // hutch decides about no_new_privs itself; the program must not imply it.
    ctx.set_ctl_nnp(false)
        .context("disable `no_new_privs` in the seccomp filter")?;
    // Compat arches go in before any rule so that every rule covers them.
    for arch in compat_arches(ScmpArch::native()) {
        ctx.add_arch(*arch)
            .with_context(|| format!("add architecture `{arch:?}` to the seccomp filter"))?;
    }

    let allowed = unconditional_allows(caps, kernel_at_least(4, 8));
    for name in &allowed {
        add_rule(&mut ctx, ScmpAction::Allow, name, &[])?;
    }
    add_argument_rules(
        &mut ctx,
        caps.contains(&Capability::CAP_SYS_ADMIN),
        &allowed,
    )?;
    export(&ctx)
}

/// Like [`compile_default`], reusing a program this same hutch binary
/// compiled before for the same capability set on the same kernel.
/// libseccomp's compile takes about 15 ms, most of a container's start;
/// the cache lives in the caller's private runtime directory. A cache
/// file that cannot be read or decoded is ignored and replaced.
pub fn compile_default_cached(caps: &CapsHashSet, cache_dir: &Path) -> anyhow::Result<Bpf> {
    let path = cache_dir.join(format!("seccomp-{}.bpf", cache_key(caps)));
    if let Some(bpf) = std::fs::read(&path).ok().and_then(|b| decode(&b).ok()) {
        return Ok(bpf);
    }
    let bpf = compile_default(caps)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    if std::fs::write(&tmp, encode(&bpf)).is_ok() && std::fs::rename(&tmp, &path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(bpf)
}

/// Everything the compiled program depends on: the profile (through the
/// binary's identity), the capabilities, the kernel and the architecture.
fn cache_key(caps: &CapsHashSet) -> String {
    use sha2::{Digest, Sha256};
    let mut names: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
    names.sort();
    // The on-disk binary's, also when running from the sealed copy.
    let exe = crate::sys::selfexe::identity();
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut h = Sha256::new();
    for part in [
        env!("CARGO_PKG_VERSION"),
        &exe,
        &names.join(","),
        release.trim(),
        std::env::consts::ARCH,
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The inverse of [`decode`].
fn encode(bpf: &Bpf) -> Vec<u8> {
    bpf.0
        .iter()
        .flat_map(|i| {
            let mut b = [0u8; 8];
            b[..2].copy_from_slice(&i.code.to_ne_bytes());
            b[2] = i.jt;
            b[3] = i.jf;
            b[4..].copy_from_slice(&i.k.to_ne_bytes());
            b
        })
        .collect()
}

/// The compat ABIs a process of this native architecture can switch to.
fn compat_arches(native: ScmpArch) -> &'static [ScmpArch] {
    match native {
        ScmpArch::X8664 => &[ScmpArch::X86, ScmpArch::X32],
        ScmpArch::Aarch64 => &[ScmpArch::Arm],
        ScmpArch::Mips64 => &[ScmpArch::Mips, ScmpArch::Mips64N32],
        ScmpArch::Mips64N32 => &[ScmpArch::Mips, ScmpArch::Mips64],
        ScmpArch::Mipsel64 => &[ScmpArch::Mipsel, ScmpArch::Mipsel64N32],
        ScmpArch::Mipsel64N32 => &[ScmpArch::Mipsel, ScmpArch::Mipsel64],
        ScmpArch::S390X => &[ScmpArch::S390],
        _ => &[],
    }
}

/// Every syscall allowed without argument checks, deduplicated (several
/// capabilities can grant the same syscall).
fn unconditional_allows(caps: &CapsHashSet, ptrace_safe: bool) -> BTreeSet<&'static str> {
    let mut set: BTreeSet<&'static str> = ALLOWED.iter().chain(ARCH_ALLOWED).copied().collect();
    if ptrace_safe {
        set.extend(PTRACE_ALLOWED);
    }
    for (cap, names) in CAP_ALLOWED {
        if caps.contains(cap) {
            set.extend(names.iter().copied());
        }
    }
    set
}

/// Rules that look at arguments or return a specific errno. Syscalls already
/// in `allowed` (e.g. `clone` with CAP_SYS_ADMIN) need no narrower rule.
fn add_argument_rules(
    ctx: &mut ScmpFilterContext,
    sys_admin: bool,
    allowed: &BTreeSet<&str>,
) -> anyhow::Result<()> {
    for &persona in PERSONALITIES {
        let cmp = ScmpArgCompare::new(0, ScmpCompareOp::Equal, persona);
        add_rule(ctx, ScmpAction::Allow, "personality", &[cmp])?;
    }
    if !allowed.contains("socket") {
        let cmp = ScmpArgCompare::new(0, ScmpCompareOp::NotEqual, AF_VSOCK);
        add_rule(ctx, ScmpAction::Allow, "socket", &[cmp])?;
    }
    if !sys_admin {
        let op = ScmpCompareOp::MaskedEqual(CLONE_NAMESPACE_FLAGS);
        let cmp = ScmpArgCompare::new(CLONE_FLAGS_ARG, op, 0);
        add_rule(ctx, ScmpAction::Allow, "clone", &[cmp])?;
        // clone3 passes its flags in memory, which seccomp cannot inspect.
        // ENOSYS (not EPERM) makes glibc and others fall back to clone.
        add_rule(ctx, ScmpAction::Errno(libc::ENOSYS), "clone3", &[])?;
    }
    Ok(())
}

/// Adds one rule; a syscall name this libseccomp cannot resolve is skipped.
fn add_rule(
    ctx: &mut ScmpFilterContext,
    action: ScmpAction,
    name: &str,
    cmps: &[ScmpArgCompare],
) -> anyhow::Result<()> {
    let Some(syscall) = resolve(name) else {
        return Ok(());
    };
    let added = if cmps.is_empty() {
        ctx.add_rule(action, syscall)
    } else {
        ctx.add_rule_conditional(action, syscall, cmps)
    };
    added.with_context(|| format!("add seccomp rule for `{name}`"))
}

/// The syscall for `name`, or `None` if libseccomp does not know it. Names
/// known only on another architecture resolve to a pseudo number that
/// libseccomp maps (or drops) per architecture in the filter.
fn resolve(name: &str) -> Option<ScmpSyscall> {
    ScmpSyscall::from_name(name).ok()
}

/// Serialises the filter as BPF through a memfd and decodes the
/// instructions (8 bytes each, native endian).
fn export(ctx: &ScmpFilterContext) -> anyhow::Result<Bpf> {
    let fd = nix::sys::memfd::memfd_create(
        c"hutch-seccomp",
        nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC,
    )
    .context("create memfd for the seccomp program")?;
    let mut file = std::fs::File::from(fd);
    ctx.export_bpf(&mut file)
        .context("export the seccomp filter as BPF")?;
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .context("read back the seccomp program")?;
    decode(&bytes)
}

/// Decodes raw `struct sock_filter`s.
fn decode(bytes: &[u8]) -> anyhow::Result<Bpf> {
    const INSN: usize = std::mem::size_of::<libc::sock_filter>();
    if bytes.is_empty() || !bytes.len().is_multiple_of(INSN) {
        bail!(
            "decode seccomp program of {} bytes: not a whole number of instructions",
            bytes.len()
        );
    }
    let prog = bytes
        .chunks_exact(INSN)
        .map(|b| libc::sock_filter {
            code: u16::from_ne_bytes([b[0], b[1]]),
            jt: b[2],
            jf: b[3],
            k: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        })
        .collect();
    Ok(Bpf(prog))
}

/// Whether the running kernel is at least `major.minor`; `false` if the
/// release cannot be read or parsed (the stricter answer).
fn kernel_at_least(major: u32, minor: u32) -> bool {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .and_then(|release| parse_release(&release))
        .is_some_and(|version| version >= (major, minor))
}

/// `"6.8.0-45-generic"` → `(6, 8)`.
fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_round_trips_and_keys_on_caps() {
        let dir = tempfile::tempdir().unwrap();
        let caps = docker_caps();
        let first = compile_default_cached(&caps, dir.path()).unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(files.len(), 1);
        let again = compile_default_cached(&caps, dir.path()).unwrap();
        assert_eq!(encode(&first), encode(&again));
        assert_eq!(
            decode(&encode(&first)).map(|b| encode(&b)).unwrap(),
            encode(&first)
        );
        let mut more = caps.clone();
        more.insert(Capability::CAP_SYS_ADMIN);
        assert_ne!(cache_key(&caps), cache_key(&more));
        // A corrupt cache file is replaced, not trusted.
        let path = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        std::fs::write(&path, b"junk").unwrap();
        let fixed = compile_default_cached(&caps, dir.path()).unwrap();
        assert_eq!(encode(&fixed), encode(&first));
    }
    use crate::sys::seccomp::{fork_and_wait, load, probes};
    use nix::errno::Errno;
    use nix::sched::CloneFlags;
    use nix::sys::personality::{self, Persona};
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    use std::io::Write;
    use std::path::Path;

    /// Docker's default capability set.
    fn docker_caps() -> CapsHashSet {
        [
            Capability::CAP_CHOWN,
            Capability::CAP_DAC_OVERRIDE,
            Capability::CAP_FOWNER,
            Capability::CAP_FSETID,
            Capability::CAP_KILL,
            Capability::CAP_NET_BIND_SERVICE,
            Capability::CAP_SETFCAP,
            Capability::CAP_SETGID,
            Capability::CAP_SETPCAP,
            Capability::CAP_SETUID,
            Capability::CAP_SYS_CHROOT,
        ]
        .into_iter()
        .collect()
    }

    fn with(mut caps: CapsHashSet, cap: Capability) -> CapsHashSet {
        caps.insert(cap);
        caps
    }

    fn raw(bpf: &Bpf) -> Vec<(u16, u8, u8, u32)> {
        bpf.0.iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect()
    }

    #[test]
    fn compiles_to_nonempty_program() {
        let bpf = compile_default(&docker_caps()).unwrap();
        assert!(bpf.0.len() > 10, "suspiciously short: {}", bpf.0.len());
        assert!(bpf.0.len() <= 4096, "over BPF_MAXINSNS: {}", bpf.0.len());
        // A seccomp program must end in a return (BPF_RET = 0x06 class).
        assert_eq!(bpf.0.last().unwrap().code & 0x07, 0x06);
    }

    #[test]
    fn compiles_with_every_capability() {
        // Several capabilities grant the same syscall (bpf, syslog,
        // perf_event_open); that must not make libseccomp fail.
        let bpf = compile_default(&caps::all()).unwrap();
        assert!(!bpf.0.is_empty());
        assert!(!compile_default(&CapsHashSet::new()).unwrap().0.is_empty());
    }

    #[test]
    fn sys_admin_changes_program() {
        let base = compile_default(&docker_caps()).unwrap();
        let admin = compile_default(&with(docker_caps(), Capability::CAP_SYS_ADMIN)).unwrap();
        assert_ne!(raw(&base), raw(&admin));
        let allowed = unconditional_allows(&with(docker_caps(), Capability::CAP_SYS_ADMIN), true);
        for name in [
            "mount",
            "umount2",
            "unshare",
            "setns",
            "pivot_root",
            "clone",
            "clone3",
        ] {
            assert!(
                allowed.contains(name),
                "{name} not allowed with CAP_SYS_ADMIN"
            );
        }
    }

    #[test]
    fn capabilities_gate_their_syscalls() {
        let base = unconditional_allows(&docker_caps(), true);
        assert!(base.contains("chroot"), "CAP_SYS_CHROOT is in Docker's set");
        for name in [
            "mount",
            "unshare",
            "setns",
            "bpf",
            "reboot",
            "init_module",
            "acct",
            "kcmp",
        ] {
            assert!(
                !base.contains(name),
                "{name} allowed without its capability"
            );
        }
        for name in [
            "iopl",
            "settimeofday",
            "vhangup",
            "mbind",
            "syslog",
            "perf_event_open",
        ] {
            assert!(
                !base.contains(name),
                "{name} allowed without its capability"
            );
        }
        let pairs = [
            (Capability::CAP_SYS_BOOT, "reboot"),
            (Capability::CAP_SYS_MODULE, "finit_module"),
            (Capability::CAP_SYS_PTRACE, "pidfd_getfd"),
            (Capability::CAP_SYS_TIME, "clock_settime"),
            (Capability::CAP_SYSLOG, "syslog"),
            (Capability::CAP_BPF, "bpf"),
            (Capability::CAP_PERFMON, "perf_event_open"),
        ];
        for (cap, name) in pairs {
            assert!(unconditional_allows(&with(docker_caps(), cap), true).contains(name));
        }
        // ptrace for everyone only where the kernel rechecks after ptrace.
        assert!(base.contains("ptrace"));
        assert!(!unconditional_allows(&docker_caps(), false).contains("ptrace"));
    }

    #[test]
    fn init_syscalls_before_exec_are_allowed() {
        // hutch's init loads the filter, then drops privileges and execs.
        let needed = [
            "capget",
            "capset",
            "prctl",
            "setresuid",
            "setresgid",
            "setgroups",
            "execve",
            "execveat",
            "close_range",
            "chdir",
            "fchdir",
            "write",
            "exit_group",
            "close",
        ];
        let allowed = unconditional_allows(&CapsHashSet::new(), false);
        for name in needed {
            assert!(allowed.contains(name), "{name} missing");
            assert!(resolve(name).is_some(), "libseccomp cannot resolve {name}");
        }
    }

    #[test]
    fn allowlist_has_no_duplicates_or_forbidden_entries() {
        let unique: BTreeSet<_> = ALLOWED.iter().collect();
        assert_eq!(unique.len(), ALLOWED.len());
        for name in [
            "keyctl",
            "add_key",
            "request_key",
            "socket",
            "clone",
            "clone3",
            "unshare",
        ] {
            assert!(!ALLOWED.contains(&name), "{name} must not be unconditional");
        }
    }

    #[test]
    fn unknown_syscall_names_are_skipped() {
        assert!(resolve("hutch_no_such_syscall").is_none());
        let mut ctx = ScmpFilterContext::new_filter(ScmpAction::Errno(libc::EPERM)).unwrap();
        add_rule(&mut ctx, ScmpAction::Allow, "hutch_no_such_syscall", &[]).unwrap();
    }

    #[test]
    fn decode_rejects_partial_instructions() {
        assert!(decode(&[]).is_err());
        assert!(decode(&[0; 12]).is_err());
        let bpf = decode(&[6, 0, 1, 2, 0, 0, 0xff, 0x7f]).unwrap();
        assert_eq!(bpf.0.len(), 1);
        assert_eq!((bpf.0[0].jt, bpf.0[0].jf), (1, 2));
        assert_eq!(bpf.0[0].code, u16::from_ne_bytes([6, 0]));
        assert_eq!(bpf.0[0].k, u32::from_ne_bytes([0, 0, 0xff, 0x7f]));
    }

    #[test]
    fn parses_kernel_releases() {
        assert_eq!(parse_release("6.8.0-45-generic\n"), Some((6, 8)));
        assert_eq!(parse_release("4.19.112+"), Some((4, 19)));
        assert_eq!(parse_release("5"), None);
        assert_eq!(parse_release(""), None);
        assert!(kernel_at_least(3, 0));
    }

    /// Runs in the forked child with the filter loaded. Allocation-free:
    /// other test threads may hold the allocator lock at fork time.
    fn default_profile_checks(scratch: &Path) -> i32 {
        if probes::keyctl() != Err(Errno::EPERM) {
            return 10;
        }
        if probes::add_key() != Err(Errno::EPERM) {
            return 11;
        }
        if nix::sched::unshare(CloneFlags::CLONE_NEWUSER) != Err(Errno::EPERM) {
            return 12;
        }
        if probes::clone(libc::CLONE_NEWUSER as libc::c_ulong) != Err(Errno::EPERM) {
            return 13;
        }
        if probes::clone3() != Err(Errno::ENOSYS) {
            return 14;
        }
        let vsock = socket(
            AddressFamily::Vsock,
            SockType::Stream,
            SockFlag::empty(),
            None,
        );
        if vsock.err() != Some(Errno::EPERM) {
            return 15;
        }
        if socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::empty(),
            None,
        )
        .is_err()
        {
            return 16;
        }
        if personality::set(Persona::empty()).is_err() || personality::get().is_err() {
            return 17;
        }
        if personality::set(Persona::ADDR_NO_RANDOMIZE) != Err(Errno::EPERM) {
            return 18;
        }
        if nix::unistd::getpid().as_raw() <= 0 {
            return 19;
        }
        if probes::clone(0).is_err() {
            return 20; // plain fork-style clone stays allowed
        }
        if file_io_works(scratch).is_err() {
            return 21;
        }
        0
    }

    fn file_io_works(path: &Path) -> std::io::Result<()> {
        use std::io::Read;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        file.write_all(b"seccomp")?;
        file.seek(SeekFrom::Start(0))?;
        let mut buf = [0u8; 7];
        file.read_exact(&mut buf)?;
        let len = file.metadata()?.len();
        if &buf != b"seccomp" || len != 7 {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
        Ok(())
    }

    #[test]
    fn default_profile_enforces_docker_semantics() {
        let bpf = compile_default(&docker_caps()).unwrap();
        let scratch = tempfile::NamedTempFile::new().unwrap();
        let code = fork_and_wait(|| {
            if nix::sys::prctl::set_no_new_privs().is_err() {
                return 1;
            }
            if load(&bpf.0).is_err() {
                return 2;
            }
            default_profile_checks(scratch.path())
        })
        .unwrap();
        assert_eq!(
            code, 0,
            "check failed in child (see codes in default_profile_checks)"
        );
    }

    #[test]
    fn sys_admin_profile_allows_namespaces_and_clone3() {
        let bpf = compile_default(&with(docker_caps(), Capability::CAP_SYS_ADMIN)).unwrap();
        let code = fork_and_wait(|| {
            if nix::sys::prctl::set_no_new_privs().is_err() {
                return 1;
            }
            if load(&bpf.0).is_err() {
                return 2;
            }
            // The kernel, not seccomp, answers now: EINVAL for a zero size.
            if probes::clone3() != Err(Errno::EINVAL) {
                return 10;
            }
            // Tests run as root, so the kernel permits a new user namespace.
            if nix::sched::unshare(CloneFlags::CLONE_NEWUSER).is_err() {
                return 11;
            }
            if probes::keyctl() != Err(Errno::EPERM) {
                return 12;
            }
            0
        })
        .unwrap();
        assert_eq!(code, 0, "check failed in child");
    }
}
