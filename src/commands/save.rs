//! `hutch save -o FILE [--format F] IMAGE...`.

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
    let store = Store::open(&Dirs::new()?)?;
    store.save(&args.images, format, &args.output)?;
    Ok(0)
}
