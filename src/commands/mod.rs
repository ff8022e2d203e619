//! One short function per subcommand; each returns the process exit code.

mod doctor;
mod run;

use crate::cli::{Cli, Command};

pub fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Doctor(args) => doctor::doctor(args),
    }
}
