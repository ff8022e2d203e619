//! `hutch rm`: removes stopped containers and their files.

use crate::cli::RmArgs;
use crate::errors::EXIT_HUTCH;
use crate::state::{self, Container, Dirs};
use crate::userns::{self, Mode};

pub fn rm(args: RmArgs) -> anyhow::Result<i32> {
    let dirs = Dirs::new()?;
    let (_, maps) = userns::plan(Mode::Root)?;
    let mut code = 0;
    for key in &args.containers {
        let result = state::find(&dirs, key).and_then(|s| {
            if state::is_alive(&s) {
                anyhow::bail!("remove container `{key}`: it is running");
            }
            super::remove_container(&Container::open(&dirs, &s.id), Some(&maps))
        });
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
