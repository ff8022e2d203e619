//! Pulling from OCI distribution registries: image references, the
//! registries.conf subset that picks where a name is fetched from,
//! credentials, and the HTTP client that resolves manifests and streams
//! blobs with every digest and size checked.
//!
//! Runs in the `hutch` process, before any namespace exists (DESIGN.md:
//! no threads when `clone` is called, so pulls finish first).

pub mod auth;
pub mod challenge;
pub mod client;
pub mod conf;
mod http;
pub mod manifest;
pub mod platform;
pub mod reference;
mod speed;

pub use client::{Client, ClientOptions, Resolved};
pub use manifest::Descriptor;
pub use platform::Platform;
pub use reference::Reference;

#[cfg(test)]
mod live_tests;
