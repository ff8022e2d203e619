//! `hutch load -i FILE`: images from a docker-archive or oci-archive.

use crate::cli::LoadArgs;
use crate::state::Dirs;
use crate::store::Store;

pub fn load(args: LoadArgs) -> anyhow::Result<i32> {
    let store = Store::open(&Dirs::new()?)?;
    for image in store.load_archive(&args.input)? {
        if image.names.is_empty() {
            println!("Loaded image ID: {}", image.id);
        }
        for name in &image.names {
            println!("Loaded image: {name}");
        }
    }
    Ok(0)
}
