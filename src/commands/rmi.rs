//! `hutch rmi [-f] IMAGE...`: untag or remove images, one line per
//! change as Docker prints them; the other images are still tried when
//! one fails, and the exit code is then 1.

use crate::cli::RmiArgs;
use crate::errors;
use crate::state::Dirs;
use crate::store::Store;

pub fn rmi(args: RmiArgs) -> anyhow::Result<i32> {
    let store = Store::open(&Dirs::new()?)?;
    let mut code = 0;
    for key in &args.images {
        match store.untag_or_remove(key, args.force) {
            Ok(removed) => {
                for name in &removed.untagged {
                    println!("Untagged: {name}");
                }
                if let Some(id) = &removed.deleted {
                    println!("Deleted: {id}");
                }
            }
            Err(err) => {
                errors::report(&err);
                code = 1;
            }
        }
    }
    Ok(code)
}
