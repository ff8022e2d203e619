//! `hutch rm [-f]`: removes containers and their files; `-f` stops a
//! running one first (SIGKILL), leaving no process, mount or directory.

use crate::cli::RmArgs;
use crate::errors::EXIT_HUTCH;
use crate::state::{self, Dirs};

pub fn rm(args: RmArgs) -> anyhow::Result<i32> {
    let dirs = Dirs::new()?;
    let mut code = 0;
    for key in &args.containers {
        let result =
            state::find(&dirs, key).and_then(|s| super::control::remove(&dirs, &s, args.force));
        match result {
            Ok(()) => println!("{key}"),
            Err(e) => {
                crate::errors::report(&e);
                code = EXIT_HUTCH;
            }
        }
    }
    Ok(code)
}
