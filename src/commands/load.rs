//! `hutch load [-i FILE]`: images from a docker-archive or oci-archive,
//! read from standard input without `-i` (as Docker does).

use std::io::IsTerminal;

use crate::cli::LoadArgs;
use crate::errors::hint;
use crate::state::Dirs;
use crate::store::Store;

pub fn load(args: LoadArgs) -> anyhow::Result<i32> {
    let stdin = std::io::stdin();
    if args.input.is_none() && stdin.is_terminal() {
        // Docker's refusal: a terminal holds no archive.
        return Err(hint(
            anyhow::anyhow!("load images: no `-i FILE` given and standard input is a terminal"),
            "give the archive with `-i FILE`, or redirect it: `hutch load < FILE`",
        ));
    }
    let store = Store::open(&Dirs::new()?)?;
    let loaded = match &args.input {
        Some(path) => store.load_archive(path)?,
        None => store.load_stream(&mut stdin.lock(), "stdin")?,
    };
    for image in loaded {
        if image.names.is_empty() {
            println!("Loaded image ID: {}", image.id);
        }
        for name in &image.names {
            println!("Loaded image: {name}");
        }
    }
    Ok(0)
}
