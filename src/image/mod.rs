//! Images from local transports (containers-transports(5) names):
//! `oci:PATH[:TAG]` (an OCI image layout directory) and
//! `oci-archive:PATH[:TAG]` (a tar of one). Registries come later.
//!
//! Runs in the `hutch` process (reading, resolving) and, for [`unpack`],
//! in a short-lived child that sits in the container's user namespace so
//! file ownership maps into the subordinate range.

pub mod archive;
pub(crate) mod blob;
pub mod compression;
pub mod config;
mod entry;
mod holes;
pub mod layout;
pub mod reference;
pub mod registry;
pub(crate) mod tree;
pub mod unpack;

#[cfg(test)]
mod layout_tests;
#[cfg(test)]
pub(crate) mod unpack_tests;

pub use config::ImageConfig;
pub use layout::{open, Image, Layer};
pub use reference::ImageRef;
pub use unpack::{UnpackOptions, UnpackReport};
