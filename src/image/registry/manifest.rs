//! Manifests as a registry serves them: OCI image index and manifest,
//! Docker manifest list and schema2 manifest. Docker schema1 is refused.
//!
//! Owns decoding a fetched document (hostile JSON, at most 4 MiB) into
//! either an index (a list of platform entries) or an image manifest, with
//! every digest checked to be `sha256:` + 64 hex so none can smuggle a
//! path or a URL. Pure; runs in the `hutch` process.

use serde::Deserialize;

use super::platform::Platform;
use crate::errors::hint;
use crate::image::blob::Digest;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// The `Accept` header of a manifest request: what we can decode.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// A content descriptor with its digest checked.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

/// An image manifest (OCI or Docker schema2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub media_type: String,
    pub config: Descriptor,
    /// Bottom layer first.
    pub layers: Vec<Descriptor>,
}

/// One entry of an index or manifest list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IndexEntry {
    #[serde(flatten)]
    pub descriptor: Descriptor,
    #[serde(default)]
    pub platform: Option<Platform>,
}

/// What a manifest request returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Document {
    Index(Vec<IndexEntry>),
    Manifest(Manifest),
}

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<u32>,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<IndexEntry>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
}

impl Document {
    /// Decodes `bytes` served with `content_type`; `what` names it in errors.
    pub fn decode(bytes: &[u8], content_type: &str, what: &str) -> anyhow::Result<Document> {
        let content_type = content_type.split(';').next().unwrap_or_default().trim();
        if content_type.starts_with(DOCKER_SCHEMA1) {
            return Err(schema1(what));
        }
        let raw: Raw = serde_json::from_slice(bytes)
            .map_err(|e| anyhow::anyhow!("decode manifest `{what}`: {e}"))?;
        if raw.schema_version == Some(1) {
            return Err(schema1(what));
        }
        if raw.schema_version != Some(2) {
            anyhow::bail!("decode manifest `{what}`: `schemaVersion` is not 2");
        }
        // The body's mediaType is authoritative; the header is a fallback.
        let media_type = raw
            .media_type
            .clone()
            .unwrap_or_else(|| content_type.to_owned());
        match (raw.manifests, raw.config) {
            (Some(entries), None) if is_index_type(&media_type) => {
                for e in &entries {
                    check_descriptor(&e.descriptor, what)?;
                }
                Ok(Document::Index(entries))
            }
            (None, Some(config)) if is_manifest_type(&media_type) => {
                manifest(media_type, config, raw.layers.unwrap_or_default(), what)
            }
            _ => anyhow::bail!(
                "decode manifest `{what}`: media type `{media_type}` is not an image index or manifest"
            ),
        }
    }
}

fn is_index_type(t: &str) -> bool {
    t == OCI_INDEX || t == DOCKER_LIST
}

fn is_manifest_type(t: &str) -> bool {
    t == OCI_MANIFEST || t == DOCKER_MANIFEST
}

fn manifest(
    media_type: String,
    config: Descriptor,
    layers: Vec<Descriptor>,
    what: &str,
) -> anyhow::Result<Document> {
    check_descriptor(&config, what)?;
    if !matches!(config.media_type.as_str(), OCI_CONFIG | DOCKER_CONFIG) {
        anyhow::bail!(
            "decode manifest `{what}`: config media type `{}` is not a container image \
             (an artifact, not something to run)",
            config.media_type
        );
    }
    for l in &layers {
        check_descriptor(l, what)?;
    }
    Ok(Document::Manifest(Manifest {
        media_type,
        config,
        layers,
    }))
}

fn check_descriptor(d: &Descriptor, what: &str) -> anyhow::Result<()> {
    Digest::parse(&d.digest).map(drop).map_err(|e| {
        anyhow::anyhow!(
            "decode manifest `{what}`: descriptor digest `{}`: {e}",
            d.digest
        )
    })
}

fn schema1(what: &str) -> anyhow::Error {
    let err = anyhow::anyhow!(
        "decode manifest `{what}`: Docker schema 1 manifests are deprecated and not supported"
    );
    hint(
        err,
        "ask the image's maintainer to push it again with a current Docker or Podman",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> String {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
    }

    fn manifest_json(config_type: &str, layer_digest: &str) -> String {
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": config_type, "digest": d(1), "size": 10},
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": 20}
            ]
        })
        .to_string()
    }

    #[test]
    fn decodes_manifests_and_indexes() {
        let m = Document::decode(manifest_json(OCI_CONFIG, &d(2)).as_bytes(), "", "t").unwrap();
        let Document::Manifest(m) = m else {
            panic!("{m:?}")
        };
        assert_eq!(m.config.digest, d(1));
        assert_eq!(m.layers.len(), 1);
        assert_eq!(m.layers[0].size, 20);
        // Docker schema2 without mediaType in the body: the header decides.
        let body = serde_json::json!({"schemaVersion": 2,
            "config": {"mediaType": DOCKER_CONFIG, "digest": d(1), "size": 1}, "layers": []});
        let doc = Document::decode(body.to_string().as_bytes(), DOCKER_MANIFEST, "t").unwrap();
        assert!(matches!(doc, Document::Manifest(_)));
        let index = serde_json::json!({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [
            {"mediaType": DOCKER_MANIFEST, "digest": d(3), "size": 5,
             "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}}]});
        let doc = Document::decode(index.to_string().as_bytes(), "x", "t").unwrap();
        let Document::Index(entries) = doc else {
            panic!()
        };
        assert_eq!(entries[0].descriptor.digest, d(3));
        assert_eq!(
            entries[0].platform.as_ref().unwrap().variant.as_deref(),
            Some("v7")
        );
    }

    #[test]
    fn refuses_schema1_and_hostile_documents() {
        let s1 = r#"{"schemaVersion": 1, "name": "x", "fsLayers": []}"#;
        for ct in [
            "",
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
        ] {
            let err = format!(
                "{:#}",
                Document::decode(s1.as_bytes(), ct, "t").unwrap_err()
            );
            assert!(err.contains("schema 1"), "{err}");
        }
        let bad_layer = manifest_json(OCI_CONFIG, "sha256:../../../etc/passwd");
        let artifact = manifest_json("application/vnd.cncf.helm.config.v1+json", &d(2));
        let huge = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"x","digest":"x","size":-1}}"#;
        let both = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[],"config":{{"mediaType":"{OCI_CONFIG}","digest":"{}","size":1}}}}"#,
            d(1)
        );
        let table: &[(&str, &str)] = &[
            (&bad_layer, "descriptor digest"),
            (&artifact, "not a container image"),
            (huge, "decode manifest"),
            (&both, "not an image index or manifest"),
            ("[]", "decode manifest"),
            ("{}", "schemaVersion"),
            (r#"{"schemaVersion": 3}"#, "schemaVersion"),
            (
                r#"{"schemaVersion": 2, "mediaType": "text/html"}"#,
                "not an image index",
            ),
            ("<html>", "decode manifest"),
        ];
        for (body, want) in table {
            let err = format!(
                "{:#}",
                Document::decode(body.as_bytes(), OCI_MANIFEST, "t").unwrap_err()
            );
            assert!(err.contains(want), "{body}: {err}");
        }
    }
}
