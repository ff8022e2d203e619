//! hutch: a rootless, daemonless container sandbox.
//!
//! `main` parses the command line, dispatches to one subcommand, and is the
//! only place an error chain is printed (once, with a `hint:` line when the
//! user can fix the cause). Exit codes follow Docker: 125 when hutch itself
//! fails, 126/127 when the command cannot be executed or found, otherwise the
//! command's own status or 128+signal. The modules live in the library
//! (`src/lib.rs`) so that the fuzz targets can reach them too.
#![deny(unsafe_code)]

fn main() {
    std::process::exit(hutch::run_cli());
}
