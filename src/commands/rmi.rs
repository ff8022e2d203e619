//! `hutch rmi [-f] IMAGE...`: untag or remove images, one line per
//! change as Docker prints them; the other images are still tried when
//! one fails, and the exit code is then 1.
//!
//! As Docker's `rmi`, removing an image frees its unpacked layers too
//! (those no other image or container uses), not only its blobs.

use anyhow::Context;

use crate::cli::RmiArgs;
use crate::errors;
use crate::state::Dirs;
use crate::store::Store;

pub fn rmi(args: RmiArgs) -> anyhow::Result<i32> {
    let dirs = Dirs::new()?;
    let store = Store::open(&dirs)?;
    let mut code = 0;
    let mut deleted = false;
    for key in &args.images {
        match store.untag_or_remove(key, args.force) {
            Ok(removed) => {
                for name in &removed.untagged {
                    println!("Untagged: {name}");
                }
                if let Some(id) = &removed.deleted {
                    println!("Deleted: {id}");
                    deleted = true;
                }
            }
            Err(err) => {
                errors::report(&err);
                code = 1;
            }
        }
    }
    if deleted {
        if let Err(err) = free_layers(&store, &dirs) {
            errors::report(&err);
            code = 1;
        }
    }
    Ok(code)
}

/// Removes the unpacked layers no image or container uses any more. Only
/// after an image was deleted: it costs a user namespace (the layers'
/// files belong to subordinate ids), and only when there is a layer to
/// remove.
fn free_layers(store: &Store, dirs: &Dirs) -> anyhow::Result<()> {
    let (_, maps) = crate::userns::plan(crate::userns::Mode::Root)?;
    crate::rootfs::remove_unused_layers(store, dirs, &maps)
        .context("remove unpacked layers of the deleted images")
        .map_err(|e| errors::hint(e, "run `hutch image prune` to try again"))?;
    Ok(())
}
