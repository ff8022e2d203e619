//! `hutch save [-o FILE] [--format F] IMAGE...`: to standard output
//! without `-o` (as Docker does), but never to a terminal.

use std::io::IsTerminal;

use crate::cli::SaveArgs;
use crate::errors::hint;
use crate::state::Dirs;
use crate::store::{Format, Store};

pub fn save(args: SaveArgs) -> anyhow::Result<i32> {
    let format = match args.format.as_str() {
        "docker-archive" => Format::DockerArchive,
        "oci-archive" => Format::OciArchive,
        other => {
            return Err(hint(
                anyhow::anyhow!("save images: unknown format `{other}`"),
                "use `--format docker-archive` or `--format oci-archive`",
            ))
        }
    };
    let stdout = std::io::stdout();
    if args.output.is_none() && stdout.is_terminal() {
        // Docker's refusal: a tar on a terminal is garbage there.
        return Err(hint(
            anyhow::anyhow!("save images: refusing to write an archive to a terminal"),
            "give a file with `-o FILE`, or redirect: `hutch save IMAGE > FILE`",
        ));
    }
    let store = Store::open(&Dirs::new()?)?;
    match &args.output {
        Some(path) => store.save(&args.images, format, path)?,
        None => store.save_to(&args.images, format, &mut stdout.lock())?,
    }
    Ok(0)
}
