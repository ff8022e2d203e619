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
    seal_self();
    let cli = cli::Cli::parse_from_env();
    let code = match commands::dispatch(cli) {
        Ok(code) => code,
        Err(err) => errors::report(&err),
    };
    std::process::exit(code);
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
