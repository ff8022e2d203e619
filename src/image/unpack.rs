//! Safe unpacking of layer tars (gzip or plain) with OCI whiteouts.

use std::path::Path;

use super::Image;

#[derive(Debug, Clone, Default)]
pub struct UnpackOptions {
    /// Apply the uid/gid from the tar headers (inside a user namespace).
    pub preserve_ownership: bool,
}

/// What unpacking had to change, to report once to the user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnpackReport {
    /// Entries whose owner could not be applied (not mapped): left as root.
    pub flattened_owners: u64,
    /// Device nodes that could not be created (mknod is not allowed).
    pub skipped_devices: u64,
}

/// Unpacks every layer of `image` into `dest`, bottom first.
pub fn unpack(_image: &Image, _dest: &Path, _opts: &UnpackOptions) -> anyhow::Result<UnpackReport> {
    anyhow::bail!("unpack: not implemented") // helper implements
}
