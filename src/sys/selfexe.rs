//! The CVE-2019-5736 guard: before `run` or `exec` does anything, hutch
//! re-executes itself from a sealed, private memfd copy of its binary.
//! Runs first thing in `main`, in the user's `hutch` process.
//!
//! Why: container root is the caller, who often owns the hutch binary.
//! Any process of hutch that a container can see (the container init
//! before its execve, `exec`'s child, or hutch itself run by the kernel as
//! the interpreter of an image script starting `#!/proc/self/exe`) has
//! `/proc/PID/exe` pointing at the binary; reopening that link for
//! writing would let the container replace the caller's hutch. Running
//! from a memfd makes every such link point at an anonymous copy whose
//! seals (F_SEAL_WRITE, _GROW, _SHRINK, _SEAL; memfd_create(2),
//! fcntl(2)) refuse every write, and which no other process ever runs.
//! runc solved it the same way (`libcontainer/nsenter/cloned_binary.c`).
//! A root-owned binary nobody else may write is out of the container's
//! reach and is run in place (`out_of_reach`).

use std::ffi::{CString, OsString};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};

/// Set for the re-executed process only, so a kernel that lost the seals
/// can never make hutch re-execute in a loop.
const REEXEC_MARK: &str = "_HUTCH_SEALED_REEXEC";
/// Prefix of the memfd's name, which carries the on-disk binary's identity.
const NAME_PREFIX: &str = "hutch:";

fn seals() -> SealFlag {
    SealFlag::F_SEAL_SEAL | SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_WRITE
}

/// Whether this process already runs from a sealed copy.
pub fn is_sealed_copy() -> bool {
    let Ok(exe) = File::open("/proc/self/exe") else {
        return false;
    };
    fcntl(exe.as_raw_fd(), FcntlArg::F_GET_SEALS)
        .is_ok_and(|s| SealFlag::from_bits_truncate(s).contains(seals()))
}

/// Re-executes from a sealed memfd copy unless already running from one.
/// Returns only when the copy cannot be made or executed (a kernel with
/// `vm.memfd_noexec=2`); the caller decides what to say.
pub fn ensure_sealed() -> nix::Result<()> {
    if std::env::var_os(REEXEC_MARK).is_some() {
        // Single-threaded at the top of main: removing is sound here.
        std::env::remove_var(REEXEC_MARK);
        return Ok(());
    }
    if is_sealed_copy() {
        return Ok(());
    }
    let mut src = File::open("/proc/self/exe").map_err(io_errno)?;
    let meta = src.metadata().map_err(io_errno)?;
    if out_of_reach(meta.uid(), meta.mode(), nix::unistd::geteuid().as_raw()) {
        return Ok(());
    }
    let name =
        CString::new(format!("{NAME_PREFIX}{}", identity_of(&src))).map_err(|_| Errno::EINVAL)?;
    let base = MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING;
    // MFD_EXEC (Linux 6.3) keeps the copy executable under
    // vm.memfd_noexec=1; older kernels reject the unknown flag.
    let exec_flag = MemFdCreateFlag::from_bits_retain(0x0010);
    let memfd = match memfd_create(&name, base | exec_flag) {
        Err(Errno::EINVAL) => memfd_create(&name, base)?,
        other => other?,
    };
    let mut copy = File::from(memfd);
    std::io::copy(&mut src, &mut copy).map_err(io_errno)?;
    fcntl(copy.as_raw_fd(), FcntlArg::F_ADD_SEALS(seals()))?;
    let mut args = Vec::new();
    for a in std::env::args_os() {
        args.push(CString::new(a.as_bytes()).map_err(|_| Errno::EINVAL)?);
    }
    let mut env = Vec::new();
    for (k, v) in std::env::vars_os().chain([(REEXEC_MARK.into(), OsString::from("1"))]) {
        let mut kv = k.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        env.push(CString::new(kv).map_err(|_| Errno::EINVAL)?);
    }
    match nix::unistd::fexecve(copy.as_raw_fd(), &args, &env) {
        Ok(never) => match never {},
        Err(e) => Err(e),
    }
}

/// A binary owned by root and writable by nobody else (a packaged
/// install) cannot be written by container root, who is the unprivileged
/// caller: no copy is needed, and none is made (it costs a few ms per start
/// and one binary's worth of memory per running container). Root's own
/// hutch is always copied.
fn out_of_reach(owner: u32, mode: u32, euid: u32) -> bool {
    owner == 0 && euid != 0 && mode & 0o022 == 0
}

/// The on-disk binary's identity (size, mtime, inode), also when running
/// from the copy, whose memfd name carries it: caches keyed by the binary
/// (the compiled seccomp program) stay valid across runs.
pub fn identity() -> String {
    let from_name = std::fs::read_link("/proc/self/exe").ok().and_then(|p| {
        let s = p.to_string_lossy().into_owned();
        let rest = s.strip_prefix("/memfd:")?.strip_prefix(NAME_PREFIX)?;
        Some(rest.trim_end_matches(" (deleted)").to_string())
    });
    from_name.unwrap_or_else(|| {
        File::open("/proc/self/exe")
            .map(|f| identity_of(&f))
            .unwrap_or_default()
    })
}

fn identity_of(f: &File) -> String {
    f.metadata()
        .map(|m| format!("{}:{}.{}:{}", m.size(), m.mtime(), m.mtime_nsec(), m.ino()))
        .unwrap_or_default()
}

fn io_errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

#[cfg(test)]
mod reach_tests {
    use super::out_of_reach;

    #[test]
    fn only_a_root_owned_binary_nobody_else_may_write_is_left_on_disk() {
        assert!(out_of_reach(0, 0o100755, 1000));
        assert!(
            !out_of_reach(1000, 0o100755, 1000),
            "the caller's own binary"
        );
        assert!(!out_of_reach(0, 0o100775, 1000), "group-writable");
        assert!(!out_of_reach(0, 0o100757, 1000), "world-writable");
        assert!(
            !out_of_reach(0, 0o100755, 0),
            "root runs it: container root is root"
        );
        assert!(
            !out_of_reach(1001, 0o100755, 1000),
            "another user's: it could lie in our subordinate range"
        );
    }
}
