//! hutch: a rootless, daemonless container sandbox.
//!
//! `main` parses the command line, dispatches to one subcommand, and is the
//! only place an error chain is printed (once, with a `hint:` line when the
//! user can fix the cause). Exit codes follow Docker: 125 when hutch itself
//! fails, 126/127 when the command cannot be executed or found, otherwise the
//! command's own status or 128+signal.
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

fn main() {
    let cli = cli::Cli::parse_from_env();
    let code = match commands::dispatch(cli) {
        Ok(code) => code,
        Err(err) => errors::report(&err),
    };
    std::process::exit(code);
}
