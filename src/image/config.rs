//! The parts of an OCI image configuration that `run` honours.
//!
//! Owns decoding the config blob (OCI `application/vnd.oci.image.config.v1+json`
//! or Docker `application/vnd.docker.container.image.v1+json`; both share
//! the `config` object) into [`ImageConfig`].

use anyhow::Context;
use serde::Deserialize;

/// Entrypoint, Cmd, Env, WorkingDir, User from the image config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    /// `ExposedPorts` keys: `80/tcp`, `53/udp`.
    pub exposed_ports: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct ConfigBlob {
    #[serde(default)]
    config: Option<RunConfig>,
}

/// Docker writes `null` for unset lists, hence the `Option`s.
#[derive(Debug, Default, Deserialize)]
struct RunConfig {
    #[serde(rename = "Entrypoint", default)]
    entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default)]
    cmd: Option<Vec<String>>,
    #[serde(rename = "Env", default)]
    env: Option<Vec<String>>,
    #[serde(rename = "WorkingDir", default)]
    working_dir: Option<String>,
    #[serde(rename = "User", default)]
    user: Option<String>,
    #[serde(rename = "ExposedPorts", default)]
    exposed_ports: Option<std::collections::BTreeMap<String, serde::de::IgnoredAny>>,
}

impl ImageConfig {
    /// Decodes an image config blob; a missing `config` object means an
    /// image with no defaults.
    pub fn from_json(bytes: &[u8]) -> anyhow::Result<ImageConfig> {
        let blob: ConfigBlob = serde_json::from_slice(bytes).context("decode image config")?;
        let run = blob.config.unwrap_or_default();
        let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
        Ok(ImageConfig {
            entrypoint: run.entrypoint.unwrap_or_default(),
            cmd: run.cmd.unwrap_or_default(),
            env: run.env.unwrap_or_default(),
            working_dir: non_empty(run.working_dir),
            user: non_empty(run.user),
            exposed_ports: run.exposed_ports.unwrap_or_default().into_keys().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_oci_and_docker_configs() {
        let oci = br#"{"architecture":"amd64","os":"linux","config":{
            "Entrypoint":["/bin/sh","-c"],"Cmd":["echo hi"],"Env":["PATH=/bin"],
            "WorkingDir":"/srv","User":"1000:1000"},"rootfs":{"type":"layers","diff_ids":[]}}"#;
        let got = ImageConfig::from_json(oci).unwrap();
        assert_eq!(got.entrypoint, ["/bin/sh", "-c"]);
        assert_eq!(got.cmd, ["echo hi"]);
        assert_eq!(got.env, ["PATH=/bin"]);
        assert_eq!(got.working_dir.as_deref(), Some("/srv"));
        assert_eq!(got.user.as_deref(), Some("1000:1000"));
        let docker =
            br#"{"config":{"Entrypoint":null,"Cmd":null,"Env":null,"WorkingDir":"","User":""}}"#;
        assert_eq!(
            ImageConfig::from_json(docker).unwrap(),
            ImageConfig::default()
        );
        assert_eq!(
            ImageConfig::from_json(b"{}").unwrap(),
            ImageConfig::default()
        );
        assert!(ImageConfig::from_json(b"[1]").is_err());
    }
}
