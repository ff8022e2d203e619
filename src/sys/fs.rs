//! Path-safe file operations inside a root (openat2 RESOLVE_IN_ROOT).
//!
//! Owns the raw syscalls that nix 0.29 does not wrap with owned file
//! descriptors: `openat2(2)`, the `f*xattr(2)` calls and the FICLONE ioctl. Each function is a thin,
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

/// Makes `dst` share the data blocks of `src` (the FICLONE ioctl: a
/// reflink on btrfs, XFS, bcachefs...). Fails (EOPNOTSUPP, EXDEV, EINVAL)
/// where the filesystem cannot; callers then copy the bytes.
pub fn ficlone(dst: BorrowedFd<'_>, src: BorrowedFd<'_>) -> nix::Result<()> {
    // SAFETY: FICLONE takes the source descriptor as its integer argument
    // and no pointer; both descriptors are open for the whole call.
    let ret = unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONE, src.as_raw_fd()) };
    Errno::result(ret).map(drop)
}

/// How often an xattr that grew between sizing and reading is re-read.
const XATTR_RETRIES: usize = 4;

/// Calls `get(buf)` (a list/get xattr syscall, which returns the length
/// needed when `buf` is empty) until the value fits.
fn read_sized(mut get: impl FnMut(&mut [u8]) -> libc::ssize_t) -> nix::Result<Vec<u8>> {
    for _ in 0..XATTR_RETRIES {
        let len = Errno::result(get(&mut []))?;
        let mut buf = vec![0u8; usize::try_from(len).map_err(|_| Errno::EINVAL)?];
        match Errno::result(get(&mut buf)) {
            Ok(n) => {
                buf.truncate(usize::try_from(n).map_err(|_| Errno::EINVAL)?);
                return Ok(buf);
            }
            Err(Errno::ERANGE) => continue,
            Err(err) => return Err(err),
        }
    }
    Err(Errno::ERANGE)
}

/// The names of the extended attributes of the open file `fd`.
pub fn flistxattr(fd: BorrowedFd<'_>) -> nix::Result<Vec<std::ffi::OsString>> {
    use std::os::unix::ffi::OsStringExt;
    let raw = read_sized(|buf| {
        // SAFETY: `buf` is a valid writable slice of `buf.len()` bytes (a
        // NULL-equivalent empty slice asks only for the size); the kernel
        // writes at most that many bytes.
        unsafe { libc::flistxattr(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) }
    })?;
    Ok(raw
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| std::ffi::OsString::from_vec(n.to_vec()))
        .collect())
}

/// The value of extended attribute `name` of the open file `fd`.
pub fn fgetxattr(fd: BorrowedFd<'_>, name: &std::ffi::OsStr) -> nix::Result<Vec<u8>> {
    let cname = CString::new(name.as_bytes()).map_err(|_| Errno::EINVAL)?;
    read_sized(|buf| {
        // SAFETY: `cname` is NUL-terminated and `buf` a valid writable
        // slice of `buf.len()` bytes; both outlive the call.
        unsafe {
            libc::fgetxattr(
                fd.as_raw_fd(),
                cname.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        }
    })
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
