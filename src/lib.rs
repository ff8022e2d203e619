//! hutch as a library: every module of the `hutch` binary, private, plus
//! [`run_cli`] for `main.rs` and [`fuzzing`], the entry points the fuzz
//! targets in `fuzz/` drive.
//!
//! The binary is a thin `main.rs` over this crate so that cargo-fuzz
//! targets (separate crates) can reach the parsers and the unpacker
//! without a second copy of the module tree. The modules stay private, so
//! dead-code analysis still sees what the binary does not use; only the
//! narrow [`fuzzing`] surface is public.
#![deny(unsafe_code)]

mod cli;
mod clock;
mod commands;
mod digest;
mod errors;
mod image;
mod logfile;
mod net;
mod plan;
mod preflight;
mod rootfs;
mod sandbox;
mod state;
mod store;
mod sys;
mod userns;
mod volume;

#[doc(hidden)]
pub mod fuzzing;

/// Parses the command line, runs one subcommand and returns the exit
/// code; prints the error chain (once, with a `hint:` line when the user
/// can fix the cause).
pub fn run_cli() -> i32 {
    // The detached supervisor re-executes itself: before the CLI parser,
    // so that its image touches as little as possible.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == sandbox::supervisor::ENTRY)
    {
        return sandbox::supervisor::resume();
    }
    // The UDP relay of a container's published ports (`net::relay`).
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == net::relay::ENTRY)
    {
        return net::relay::main();
    }
    seal_self();
    let cli = cli::Cli::parse_from_env();
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(err) => errors::report(&err),
    }
}

/// Commands that start container processes run from a sealed copy of
/// hutch (`sys::selfexe`, the CVE-2019-5736 guard).
fn seal_self() {
    const LAUNCHERS: [&str; 5] = ["run", "exec", "start", "restart", "create"];
    let launches = std::env::args()
        .nth(1)
        .is_some_and(|a| LAUNCHERS.contains(&a.as_str()));
    if launches {
        if let Err(e) = sys::selfexe::ensure_sealed() {
            eprintln!(
                "warning: run from a sealed copy of hutch: {e}; a container may be able to \
                 overwrite the hutch binary if it is yours (see SECURITY.md)"
            );
        }
    }
}
