//! Parsing image arguments: `oci:PATH[:TAG]`, `oci-archive:PATH[:TAG]`.
//!
//! Owns the grammar of image names. PATH may itself contain `:`; like
//! skopeo, the text after the last `:` is a tag only when it is a valid
//! tag (`[A-Za-z0-9_.-]+`), otherwise the whole text is the path.

use std::fmt;
use std::path::PathBuf;

use crate::errors::hint;

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// An OCI image layout directory, optionally with a tag (ref.name).
    Oci { path: PathBuf, tag: Option<String> },
    /// A tar archive of an OCI image layout.
    OciArchive { path: PathBuf, tag: Option<String> },
}

const OCI: &str = "oci:";
const OCI_ARCHIVE: &str = "oci-archive:";
const ACCEPTED: &str = "`oci:PATH[:TAG]` (an OCI image layout directory) or \
                        `oci-archive:PATH[:TAG]` (a tar archive of one)";

impl ImageRef {
    /// Parses a transport-qualified image name.
    pub fn parse(s: &str) -> anyhow::Result<ImageRef> {
        let (archive, rest) = if let Some(rest) = s.strip_prefix(OCI_ARCHIVE) {
            (true, rest)
        } else if let Some(rest) = s.strip_prefix(OCI) {
            (false, rest)
        } else {
            let err = anyhow::anyhow!(
                "parse image `{s}`: registries are not supported yet; use {ACCEPTED}"
            );
            return Err(hint(
                err,
                "export the image to a local layout first, e.g. \
                 `skopeo copy docker://alpine:latest oci:alpine:latest`",
            ));
        };
        let (path, tag) = split_tag(rest);
        if path.is_empty() {
            anyhow::bail!("parse image `{s}`: the path is empty; use {ACCEPTED}");
        }
        let path = PathBuf::from(path);
        let tag = tag.map(str::to_owned);
        Ok(if archive {
            ImageRef::OciArchive { path, tag }
        } else {
            ImageRef::Oci { path, tag }
        })
    }

    /// The tag (`org.opencontainers.image.ref.name`) asked for, if any.
    pub fn tag(&self) -> Option<&str> {
        match self {
            ImageRef::Oci { tag, .. } | ImageRef::OciArchive { tag, .. } => tag.as_deref(),
        }
    }

    /// The layout directory or archive file.
    pub fn path(&self) -> &std::path::Path {
        match self {
            ImageRef::Oci { path, .. } | ImageRef::OciArchive { path, .. } => path,
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let transport = match self {
            ImageRef::Oci { .. } => OCI,
            ImageRef::OciArchive { .. } => OCI_ARCHIVE,
        };
        write!(f, "{transport}{}", self.path().display())?;
        match self.tag() {
            Some(tag) => write!(f, ":{tag}"),
            None => Ok(()),
        }
    }
}

/// Splits `PATH[:TAG]` on the last `:` when what follows is a valid tag.
fn split_tag(rest: &str) -> (&str, Option<&str>) {
    match rest.rsplit_once(':') {
        Some((path, tag)) if is_valid_tag(tag) => (path, Some(tag)),
        _ => (rest, None),
    }
}

/// A tag (reference name) as accepted on the command line.
pub fn is_valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oci(path: &str, tag: Option<&str>) -> ImageRef {
        ImageRef::Oci {
            path: PathBuf::from(path),
            tag: tag.map(str::to_owned),
        }
    }

    fn archive(path: &str, tag: Option<&str>) -> ImageRef {
        ImageRef::OciArchive {
            path: PathBuf::from(path),
            tag: tag.map(str::to_owned),
        }
    }

    #[test]
    fn parses_accepted_forms() {
        let table = [
            ("oci:/srv/alpine", oci("/srv/alpine", None)),
            ("oci:/srv/alpine:3.19", oci("/srv/alpine", Some("3.19"))),
            ("oci:alpine:latest", oci("alpine", Some("latest"))),
            ("oci:./img", oci("./img", None)),
            ("oci:../img:v1_x-y", oci("../img", Some("v1_x-y"))),
            ("oci:/a:b:c", oci("/a:b", Some("c"))),
            ("oci:/a:b/c", oci("/a:b/c", None)),
            ("oci:/a:b/c:t", oci("/a:b/c", Some("t"))),
            ("oci:/trailing:", oci("/trailing:", None)),
            ("oci:/bad:t@g", oci("/bad:t@g", None)),
            ("oci::", oci(":", None)),
            ("oci-archive:/tmp/a.tar", archive("/tmp/a.tar", None)),
            ("oci-archive:a.tar:edge", archive("a.tar", Some("edge"))),
            ("oci-archive:x:y:z", archive("x:y", Some("z"))),
        ];
        for (input, want) in table {
            let got = ImageRef::parse(input).unwrap();
            assert_eq!(got, want, "{input}");
        }
    }

    #[test]
    fn rejects_empty_paths_and_other_transports() {
        for input in ["oci:", "oci-archive:", "oci::tag", "oci-archive::t"] {
            let err = ImageRef::parse(input).unwrap_err().to_string();
            assert!(err.contains("path is empty"), "{input}: {err}");
        }
        for input in [
            "alpine",
            "alpine:3.19",
            "docker://alpine",
            "docker.io/library/alpine:latest",
            "dir:/tmp/x",
            "",
            "OCI:/x",
        ] {
            let err = ImageRef::parse(input).unwrap_err();
            let msg = format!("{err:#}");
            assert!(
                msg.contains("registries are not supported yet"),
                "{input}: {msg}"
            );
            assert!(msg.contains("oci:PATH[:TAG]") && msg.contains("oci-archive:PATH[:TAG]"));
        }
    }

    #[test]
    fn displays_round_trip() {
        for input in ["oci:/a:b:c", "oci-archive:x.tar", "oci:rel/dir:v1"] {
            let parsed = ImageRef::parse(input).unwrap();
            assert_eq!(parsed.to_string(), input);
            assert_eq!(ImageRef::parse(&parsed.to_string()).unwrap(), parsed);
        }
    }
}
