//! Path-safe file operations inside a root (openat2 RESOLVE_IN_ROOT).
//!
//! Owns the raw syscalls that nix 0.29 does not wrap with owned file
//! descriptors: `openat2(2)` and the `f*xattr(2)` calls. Each function is a thin,
//! typed wrapper over one syscall; policy lives in the callers.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;

pub use libc::{RESOLVE_BENEATH, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS};

/// The kernel's `struct open_how` (linux/openat2.h). libc marks its copy
/// `#[non_exhaustive]`, so we keep our own with the same layout.
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// How often a racing rename (EAGAIN from RESOLVE_IN_ROOT) is retried.
const OPENAT2_RETRIES: usize = 16;

fn c_path(path: &Path) -> nix::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)
}

/// Opens `path` relative to `dirfd` with `openat2(2)`: `flags` are the
/// `O_*` flags, `mode` the creation mode, `resolve` the `RESOLVE_*` flags.
/// `O_CLOEXEC` is always added. EINTR and EAGAIN (a concurrent rename seen
/// by RESOLVE_IN_ROOT) are retried a bounded number of times.
pub fn openat2(
    dirfd: BorrowedFd<'_>,
    path: &Path,
    flags: i32,
    mode: u32,
    resolve: u64,
) -> nix::Result<OwnedFd> {
    let cpath = c_path(path)?;
    let flags = u64::try_from(flags | libc::O_CLOEXEC).map_err(|_| Errno::EINVAL)?;
    let mut how = OpenHow {
        flags,
        mode: u64::from(mode),
        resolve,
    };
    let mut attempt = 0;
    loop {
        // SAFETY: `cpath` is a valid NUL-terminated string and `how` a
        // properly initialised `struct open_how` that both outlive the call;
        // the size passed matches the struct. The kernel only reads them.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dirfd.as_raw_fd(),
                cpath.as_ptr(),
                std::ptr::addr_of_mut!(how),
                std::mem::size_of::<OpenHow>(),
            )
        };
        match Errno::result(ret) {
            Ok(fd) => {
                let fd = i32::try_from(fd).map_err(|_| Errno::EBADF)?;
                // SAFETY: the kernel just returned `fd` as a new descriptor
                // that nothing else owns; we take sole ownership of it.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
            Err(Errno::EINTR | Errno::EAGAIN) if attempt < OPENAT2_RETRIES => attempt += 1,
            Err(err) => return Err(err),
        }
    }
}

/// Sets extended attribute `name` to `value` on the open file `fd`.
pub fn fsetxattr(fd: BorrowedFd<'_>, name: &str, value: &[u8]) -> nix::Result<()> {
    let cname = CString::new(name).map_err(|_| Errno::EINVAL)?;
    // SAFETY: `cname` is NUL-terminated and `value` is a valid slice of
    // `value.len()` bytes; both outlive the call and are only read.
    let ret = unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            cname.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    Errno::result(ret).map(drop)
}

/// The names of the extended attributes of the open file `fd`.
pub fn flistxattr(fd: BorrowedFd<'_>) -> nix::Result<Vec<CString>> {
    let mut buf = vec![0u8; 4096];
    for _ in 0..4 {
        // SAFETY: `buf` is a valid writable buffer of `buf.len()` bytes that
        // outlives the call; the kernel writes at most that many.
        let ret = unsafe { libc::flistxattr(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        match Errno::result(ret) {
            Ok(n) => {
                let n = usize::try_from(n).map_err(|_| Errno::EINVAL)?;
                let names = buf[..n]
                    .split(|b| *b == 0)
                    .filter(|n| !n.is_empty())
                    .filter_map(|n| CString::new(n).ok())
                    .collect();
                return Ok(names);
            }
            Err(Errno::ERANGE) => buf.resize(buf.len() * 4, 0),
            Err(e) => return Err(e),
        }
    }
    Err(Errno::E2BIG)
}

/// The value of extended attribute `name` of the open file `fd`.
pub fn fgetxattr(fd: BorrowedFd<'_>, name: &CString) -> nix::Result<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    for _ in 0..4 {
        // SAFETY: `name` is NUL-terminated and `buf` a valid writable buffer
        // of `buf.len()` bytes; both outlive the call.
        let ret = unsafe {
            libc::fgetxattr(
                fd.as_raw_fd(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        match Errno::result(ret) {
            Ok(n) => {
                buf.truncate(usize::try_from(n).map_err(|_| Errno::EINVAL)?);
                return Ok(buf);
            }
            Err(Errno::ERANGE) => buf.resize(buf.len() * 16, 0),
            Err(e) => return Err(e),
        }
    }
    Err(Errno::E2BIG)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn openat2_in_root_clamps_dotdot() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        let root = std::fs::File::open(dir.path()).unwrap();
        let fd = openat2(
            root.as_fd(),
            Path::new("../../../f"),
            libc::O_RDONLY,
            0,
            RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        );
        assert!(fd.is_ok());
        let err = openat2(root.as_fd(), Path::new("a\0b"), libc::O_RDONLY, 0, 0);
        assert_eq!(err.err(), Some(Errno::EINVAL));
    }
}
