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

#[doc(hidden)]
pub mod fuzzing;

/// Parses the command line, runs one subcommand and returns the exit
/// code; prints the error chain (once, with a `hint:` line when the user
/// can fix the cause).
pub fn run_cli() -> i32 {
    let cli = cli::Cli::parse_from_env();
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(err) => errors::report(&err),
    }
}
