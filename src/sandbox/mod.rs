//! The sandbox: the parent side (id maps, sync, wait) and the child side
//! (mounts, pivot_root, credentials, capabilities, seccomp, exec).

pub mod seccomp;
