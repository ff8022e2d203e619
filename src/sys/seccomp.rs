//! Loading a compiled seccomp BPF program into the calling thread.
//!
//! The program is compiled in the parent (see `sandbox::seccomp`); the child
//! only calls [`load`] after fork, so `load` allocates nothing and makes a
//! single async-signal-safe syscall.

use nix::errno::Errno;

/// Installs `prog` on the calling thread: seccomp(SECCOMP_SET_MODE_FILTER, 0, &sock_fprog).
/// Requires no_new_privs or CAP_SYS_ADMIN in the current user namespace.
///
/// No flags are passed (no TSYNC): call it where only one thread exists,
/// i.e. in the forked child. Filters stack; once loaded it cannot be removed.
pub fn load(prog: &[libc::sock_filter]) -> nix::Result<()> {
    // The kernel caps programs at BPF_MAXINSNS (4096) anyway; a longer slice
    // cannot be described by `sock_fprog.len`.
    let len = u16::try_from(prog.len()).map_err(|_| Errno::EINVAL)?;
    let fprog = libc::sock_fprog {
        len,
        // The kernel only reads through this pointer; the field is `*mut` in
        // the C struct definition.
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` lives on this stack frame for the whole call and points
    // at `len` initialised `sock_filter`s borrowed from `prog`. The kernel
    // copies the program before returning and never writes through the
    // pointer. No memory is allocated and no locks are taken.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0 as libc::c_uint,
            &fprog as *const libc::sock_fprog,
        )
    };
    Errno::result(rc).map(drop)
}

/// Forks; the child runs `f` and `_exit`s with its return value (101 if it
/// panics). Returns the child's exit code, or 128+signal if it was killed.
///
/// Test threads may hold locks (malloc, stdio) at fork time, so `f` must stick
/// to async-signal-safe work: no allocation, no printing.
#[cfg(test)]
pub fn fork_and_wait<F: FnOnce() -> i32>(f: F) -> nix::Result<i32> {
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, ForkResult};

    // SAFETY: the child only runs `f` (documented above as restricted to
    // async-signal-safe work) and then `_exit`s, never returning into the
    // test harness.
    match unsafe { fork() }? {
        ForkResult::Child => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
            // SAFETY: `_exit` is async-signal-safe and skips the parent's
            // atexit handlers and stdio buffers, which the child must not run.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => loop {
            match waitpid(child, None)? {
                WaitStatus::Exited(_, code) => return Ok(code),
                WaitStatus::Signaled(_, sig, _) => return Ok(128 + sig as i32),
                _ => continue,
            }
        },
    }
}

/// Raw syscalls the seccomp tests probe with. None of them takes a pointer
/// the kernel could write through, so they are safe to expose to tests.
#[cfg(test)]
pub mod probes {
    use nix::errno::Errno;

    /// keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0).
    pub fn keyctl() -> nix::Result<libc::c_long> {
        // SAFETY: integer-only arguments; nothing is read or written in our
        // address space.
        Errno::result(unsafe { libc::syscall(libc::SYS_keyctl, 0, -3, 0) })
    }

    /// add_key(NULL, NULL, NULL, 0, 0): `EFAULT` unless seccomp denies it first.
    pub fn add_key() -> nix::Result<libc::c_long> {
        let null = std::ptr::null::<libc::c_char>();
        // SAFETY: null pointers make the kernel fail with EFAULT; it never
        // writes to user memory for add_key.
        Errno::result(unsafe { libc::syscall(libc::SYS_add_key, null, null, null, 0, 0) })
    }

    /// clone3(NULL, 0): `EINVAL` (size too small) unless seccomp answers first.
    /// Never creates a process.
    pub fn clone3() -> nix::Result<libc::c_long> {
        // SAFETY: size 0 is rejected before the NULL args pointer is read.
        Errno::result(unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0) })
    }

    /// clone(flags, NULL stack, ...). Returns `Ok(())` if a child was created
    /// (the child `_exit`s at once and is reaped here), the errno otherwise.
    pub fn clone(flags: libc::c_ulong) -> nix::Result<()> {
        let flags = flags | libc::SIGCHLD as libc::c_ulong;
        // SAFETY: with a NULL stack this behaves like fork(); the child does
        // nothing but `_exit`, which is async-signal-safe, and the remaining
        // (tid/tls) arguments are NULL so nothing is written to our memory.
        let rc = unsafe { libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0) };
        match Errno::result(rc)? {
            // SAFETY: see above; the child must not return into Rust code.
            0 => unsafe { libc::_exit(0) },
            pid => {
                let pid = nix::unistd::Pid::from_raw(pid as libc::pid_t);
                nix::sys::wait::waitpid(pid, None).map(drop)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Classic BPF opcodes (linux/filter.h) and seccomp return values.
    const BPF_LD_W_ABS: u16 = 0x20;
    const BPF_JMP_JEQ_K: u16 = 0x15;
    const BPF_RET_K: u16 = 0x06;
    const RET_ALLOW: u32 = 0x7fff_0000;
    const RET_ERRNO: u32 = 0x0005_0000;

    fn insn(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
        libc::sock_filter { code, jt, jf, k }
    }

    /// Denies keyctl with EACCES, allows everything else. (Offset 0 of
    /// `seccomp_data` is the syscall number; the arch is not checked, which
    /// is fine for a test that only makes native calls.)
    fn deny_keyctl() -> Vec<libc::sock_filter> {
        vec![
            insn(BPF_LD_W_ABS, 0, 0, 0),
            insn(BPF_JMP_JEQ_K, 0, 1, libc::SYS_keyctl as u32),
            insn(BPF_RET_K, 0, 0, RET_ERRNO | libc::EACCES as u32),
            insn(BPF_RET_K, 0, 0, RET_ALLOW),
        ]
    }

    #[test]
    fn load_installs_filter_in_child() {
        let prog = deny_keyctl();
        let code = fork_and_wait(|| {
            if nix::sys::prctl::set_no_new_privs().is_err() {
                return 1;
            }
            if load(&prog).is_err() {
                return 2;
            }
            if probes::keyctl() != Err(Errno::EACCES) {
                return 3;
            }
            if nix::unistd::getpid().as_raw() <= 0 {
                return 4;
            }
            0
        })
        .unwrap();
        assert_eq!(code, 0);
    }

    #[test]
    fn load_rejects_empty_program() {
        let code = fork_and_wait(|| {
            let _ = nix::sys::prctl::set_no_new_privs();
            match load(&[]) {
                Err(Errno::EINVAL) => 0,
                Err(_) => 1,
                Ok(()) => 2,
            }
        })
        .unwrap();
        assert_eq!(code, 0);
    }

    #[test]
    fn load_rejects_oversized_program_without_syscall() {
        let prog = vec![insn(BPF_RET_K, 0, 0, RET_ALLOW); usize::from(u16::MAX) + 1];
        assert_eq!(load(&prog), Err(Errno::EINVAL));
    }

    #[test]
    fn fork_and_wait_reports_exit_code() {
        assert_eq!(fork_and_wait(|| 7).unwrap(), 7);
    }
}
