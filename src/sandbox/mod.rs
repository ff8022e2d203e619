//! The sandbox: the parent side (id maps, sync, wait) and the child side
//! (mounts, pivot_root, credentials, capabilities, seccomp, exec).

pub mod child;
pub mod copyup;
pub mod cptar;
pub mod creds;
pub mod exec;
pub mod init;
pub mod join;
pub mod mounts;
pub mod nsexec;
pub mod parent;
pub mod pty;
pub mod seccomp;
pub mod supervisor;
pub mod sync;
pub mod user;
pub mod workdir;
