//! The store's digests are the crate's (src/digest.rs).

pub use crate::digest::{copy_hashed, is_lower_hex, of_bytes, Digest};
