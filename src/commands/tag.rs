//! `hutch tag SOURCE TARGET`: another name for an image in the store.

use crate::cli::TagArgs;
use crate::state::Dirs;
use crate::store::Store;

pub fn tag(args: TagArgs) -> anyhow::Result<i32> {
    let store = Store::open(&Dirs::new()?)?;
    store.tag(&args.source, &args.target)?;
    Ok(0)
}
