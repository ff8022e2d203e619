//! Parsing image arguments: `oci:PATH[:TAG]`, `oci-archive:PATH[:TAG]`.

use std::path::PathBuf;

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// An OCI image layout directory, optionally with a tag (ref.name).
    Oci { path: PathBuf, tag: Option<String> },
    /// A tar archive of an OCI image layout.
    OciArchive { path: PathBuf, tag: Option<String> },
}

impl ImageRef {
    /// Parses a transport-qualified image name.
    pub fn parse(s: &str) -> anyhow::Result<ImageRef> {
        anyhow::bail!("parse image reference `{s}`: not implemented") // helper implements
    }
}
