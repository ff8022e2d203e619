//! `hutch cp`: copies files and directories between a running container
//! and the host, or a tar stream with `-`, following Docker's rules.
//!
//! The container side runs in a helper that joins the container's user
//! and mount namespaces (so its root is the container's root and it may
//! write the container's files); the host side stays in the user's
//! `hutch` process. They talk only through a pipe carrying tar
//! (`sandbox::cptar`), so no host descriptor ever enters the container.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use nix::sched::CloneFlags;

use crate::cli::CpArgs;
use crate::errors::WithHint;
use crate::sandbox::cptar::{self, open_in};
use crate::sandbox::exec::spawn_helper;
use crate::state::Dirs;

/// One side of a copy.
#[derive(Debug, PartialEq, Eq)]
enum Loc {
    Host(String),
    Container(String, String),
}

/// `CONTAINER:PATH` is a container path; `-`, and paths starting with
/// `/` or `.` (the way to write a host path with a `:`), are the host's.
fn parse_loc(s: &str) -> Loc {
    if s == "-" || s.starts_with('/') || s.starts_with('.') {
        return Loc::Host(s.to_string());
    }
    match s.split_once(':') {
        Some((c, p)) if !c.is_empty() && !c.contains('/') => Loc::Container(
            c.to_string(),
            if p.is_empty() {
                "/".into()
            } else {
                p.to_string()
            },
        ),
        _ => Loc::Host(s.to_string()),
    }
}

const JOIN: CloneFlags = CloneFlags::CLONE_NEWUSER.union(CloneFlags::CLONE_NEWNS);

pub fn cp(args: CpArgs) -> anyhow::Result<i32> {
    let dirs = Dirs::new()?;
    match (parse_loc(&args.src), parse_loc(&args.dest)) {
        (Loc::Container(c, src), Loc::Host(dest)) => copy_out(&dirs, &c, &src, &dest)?,
        (Loc::Host(src), Loc::Container(c, dest)) => copy_in(&dirs, &src, &c, &dest)?,
        _ => {
            return Err(anyhow::anyhow!(
                "copy `{}` to `{}`: exactly one side must be CONTAINER:PATH",
                args.src,
                args.dest
            ))
            .hint("write host paths that contain `:` as `./name` or `/path`")
        }
    }
    Ok(0)
}

fn pipe() -> anyhow::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("create a pipe")
}

/// Container → host (or a tar stream on stdout for `-`).
fn copy_out(dirs: &Dirs, key: &str, src: &str, dest: &str) -> anyhow::Result<()> {
    let (pidfd, _) = super::exec::open_running(dirs, key)?;
    let (parent, name) = cptar::split(src);
    let (r, w) = pipe()?;
    let src_owned = src.to_string();
    let helper = spawn_helper(&pidfd, JOIN, w, move |root, io| {
        let dir = open_in(root.as_fd(), &parent, libc::O_PATH | libc::O_DIRECTORY)
            .with_context(|| format!("find `{src_owned}` in the container"))?;
        if let Some(n) = &name {
            let fd = std::os::fd::AsRawFd::as_raw_fd(&dir);
            nix::sys::stat::fstatat(
                Some(fd),
                n.as_os_str(),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .with_context(|| format!("find `{src_owned}` in the container"))?;
        }
        cptar::write_tar(dir.as_fd(), name.as_deref(), File::from(io)).map(drop)
    })?;
    let host = if dest == "-" {
        std::io::copy(&mut File::from(r), &mut std::io::stdout().lock())
            .map(drop)
            .context("write the tar stream to stdout")
    } else {
        let top = cptar::split(src).1;
        unpack_on_host(File::from(r), top.as_deref(), Path::new(dest))
    };
    // The helper's error (e.g. no such file) explains a host-side one.
    helper.finish()?;
    host
}

/// Docker's rules on the host: into an existing directory; else as the
/// new name DEST (a directory's contents into a new directory DEST).
fn unpack_on_host(tar: File, top: Option<&OsStr>, dest: &Path) -> anyhow::Result<()> {
    let open = |p: &Path| File::open(p).with_context(|| format!("open `{}`", p.display()));
    if dest.is_dir() {
        return cptar::extract(tar, open(dest)?.as_fd(), None);
    }
    if top.is_none() {
        std::fs::create_dir(dest).with_context(|| format!("create `{}`", dest.display()))?;
        return cptar::extract(tar, open(dest)?.as_fd(), None);
    }
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = dest
        .file_name()
        .context("copy: the destination has no file name")?;
    cptar::extract(tar, open(&parent)?.as_fd(), Some(name))
}

/// Host (or a tar stream on stdin for `-`) → container.
fn copy_in(dirs: &Dirs, src: &str, key: &str, dest: &str) -> anyhow::Result<()> {
    let (pidfd, _) = super::exec::open_running(dirs, key)?;
    let from_stdin = src == "-";
    let (hparent, hname) = cptar::split(src);
    let host_dir = if from_stdin {
        None
    } else {
        let p = if hparent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &hparent
        };
        Some(File::open(p).with_context(|| format!("open `{}`", p.display()))?)
    };
    if let (Some(dir), Some(name)) = (&host_dir, &hname) {
        nix::sys::stat::fstatat(
            Some(std::os::fd::AsRawFd::as_raw_fd(dir)),
            name.as_os_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .with_context(|| format!("copy `{src}`"))?;
    }
    let (r, w) = pipe()?;
    let dest_owned = dest.to_string();
    let named = !from_stdin && hname.is_some();
    let helper = spawn_helper(&pidfd, JOIN, r, move |root, io| {
        unpack_in_container(root, File::from(io), named, &dest_owned)
    })?;
    let host = match host_dir {
        None => std::io::copy(&mut std::io::stdin().lock(), &mut File::from(w))
            .map(drop)
            .context("read the tar stream from stdin"),
        Some(dir) => cptar::write_tar(dir.as_fd(), hname.as_deref(), File::from(w)).map(drop),
    };
    helper.finish()?;
    host
}

/// Docker's rules in the container (run by the helper, root = the
/// container's): into an existing directory; a named source to a new
/// name; a stream or a directory's contents into a new directory.
fn unpack_in_container(root: OwnedFd, tar: File, named: bool, dest: &str) -> anyhow::Result<()> {
    let dir_flags = libc::O_PATH | libc::O_DIRECTORY;
    if let Ok(dir) = open_in(root.as_fd(), Path::new(dest), dir_flags) {
        return cptar::extract(tar, dir.as_fd(), None);
    }
    let (parent, name) = cptar::split(dest);
    let Some(name) = name else {
        bail!("copy to `{dest}` in the container: not a directory");
    };
    let pdir = open_in(root.as_fd(), &parent, dir_flags)
        .with_context(|| format!("find `{}` in the container", parent.display()))?;
    if named {
        return cptar::extract(tar, pdir.as_fd(), Some(&name));
    }
    make_dir(&pdir, &name)?;
    let dir = open_in(pdir.as_fd(), Path::new(&name), dir_flags)
        .with_context(|| format!("open `{dest}` in the container"))?;
    cptar::extract(tar, dir.as_fd(), None)
}

fn make_dir(parent: &OwnedFd, name: &OsString) -> anyhow::Result<()> {
    let fd = std::os::fd::AsRawFd::as_raw_fd(parent);
    nix::sys::stat::mkdirat(
        Some(fd),
        name.as_os_str(),
        nix::sys::stat::Mode::from_bits_truncate(0o755),
    )
    .with_context(|| format!("create `{}` in the container", name.to_string_lossy()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_like_docker_cp() {
        let c = |n: &str, p: &str| Loc::Container(n.into(), p.into());
        let h = |p: &str| Loc::Host(p.into());
        let cases = [
            ("web:/etc/hostname", c("web", "/etc/hostname")),
            ("web:", c("web", "/")),
            ("web:rel", c("web", "rel")),
            ("-", h("-")),
            ("./a:b", h("./a:b")),
            ("/tmp/a:b", h("/tmp/a:b")),
            ("file", h("file")),
            ("dir/x:y", h("dir/x:y")),
        ];
        for (s, want) in cases {
            assert_eq!(parse_loc(s), want, "{s}");
        }
    }
}
