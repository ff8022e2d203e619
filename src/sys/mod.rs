//! The only place with `unsafe` code. Each block carries a `// SAFETY:`
//! comment. Everything here is a thin, typed wrapper over one syscall.
#![allow(unsafe_code)]

pub mod fs;
pub mod netif;
pub mod nsspawn;
pub mod pidfd;
pub mod probe;
pub mod process;
pub mod seccomp;
pub mod selfexe;
pub mod spawn;
