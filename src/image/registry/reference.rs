//! Registry image references, by the rules Docker and Podman share
//! (the `distribution/reference` grammar).
//!
//! Owns turning `alpine`, `user/app:1`, `localhost:5000/x@sha256:...` or
//! `docker://quay.io/a/b` into a full [`Reference`]. Pure; runs in the
//! `hutch` process before anything touches the network. The one grammar
//! of image names: the store's names (`store/names.rs`) are built on it.
//!
//! ```text
//! reference  := [ "docker://" ] name [ ":" tag ] [ "@" digest ]
//! name       := [ domain "/" ] component ( "/" component )*
//! domain     := host [ ":" port ]      only when it has `.` or `:`, or is `localhost`
//! component  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
//! tag        := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
//! digest     := "sha256:" 64 lowercase hex
//! ```

use std::fmt;

use crate::image::blob::Digest;

/// Docker Hub, as it is written in canonical names.
pub const DOCKER_HUB: &str = "docker.io";
/// The tag meant when a name has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
/// `distribution/reference`'s limit on a full name (domain and path).
const MAX_NAME: usize = 255;
const MAX_TAG: usize = 128;

/// A fully qualified image in a registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `host[:port]`, e.g. `docker.io`, `127.0.0.1:5000`, `[::1]:5000`.
    pub registry: String,
    /// The path below the registry, e.g. `library/alpine`.
    pub repository: String,
    /// `latest` when neither tag nor digest was given.
    pub tag: Option<String>,
    /// `sha256:HEX`; when present it wins over the tag.
    pub digest: Option<String>,
}

/// A parsed reference before a registry is chosen for a short name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parts {
    /// `None` for a short name.
    pub(crate) registry: Option<String>,
    pub(crate) path: String,
    pub(crate) tag: Option<String>,
    pub(crate) digest: Option<String>,
}

impl Reference {
    /// Parses an image reference; a short name is taken to be on Docker Hub.
    pub fn parse(input: &str) -> anyhow::Result<Reference> {
        let parts = Parts::parse(input)?;
        let registry = parts.registry.clone().unwrap_or_else(|| DOCKER_HUB.into());
        parts.on(&registry)
    }

    /// Whether `input` names no registry (`alpine`, `user/app:1`), so that
    /// the search registries of registries.conf apply.
    #[allow(dead_code)] // for Podman's short-name prompts, not used yet
    pub fn is_short_name(input: &str) -> anyhow::Result<bool> {
        Ok(Parts::parse(input)?.registry.is_none())
    }

    /// What to ask the registry for: the digest when there is one.
    pub fn tag_or_digest(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or(DEFAULT_TAG)
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl Parts {
    /// Splits and checks `input` without choosing a registry.
    pub(crate) fn parse(input: &str) -> anyhow::Result<Parts> {
        parse_parts(input).map_err(|why| anyhow::anyhow!("parse image reference `{input}`: {why}"))
    }

    /// The full reference on `registry`; Docker Hub's one-component
    /// names live under `library/`.
    pub(crate) fn on(&self, registry: &str) -> anyhow::Result<Reference> {
        let registry = match registry {
            "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB,
            other => other,
        };
        check_domain(registry)
            .map_err(|why| anyhow::anyhow!("check registry `{registry}`: {why}"))?;
        let repository = if registry == DOCKER_HUB && !self.path.contains('/') {
            format!("library/{}", self.path)
        } else {
            self.path.clone()
        };
        let full = registry
            .len()
            .saturating_add(1)
            .saturating_add(repository.len());
        if full > MAX_NAME {
            anyhow::bail!(
                "check image name `{registry}/{repository}`: longer than {MAX_NAME} characters"
            );
        }
        let tag = match (&self.tag, &self.digest) {
            (None, None) => Some(DEFAULT_TAG.to_owned()),
            (tag, _) => tag.clone(),
        };
        Ok(Reference {
            registry: registry.to_owned(),
            repository,
            tag,
            digest: self.digest.clone(),
        })
    }
}

fn parse_parts(input: &str) -> Result<Parts, String> {
    let s = input.strip_prefix("docker://").unwrap_or(input);
    if s.is_empty() {
        return Err("the name is empty".into());
    }
    if s.len() > MAX_NAME.saturating_add(MAX_TAG).saturating_add(80) {
        return Err("longer than any valid reference".into());
    }
    let (rest, digest) = match s.split_once('@') {
        Some((rest, d)) => {
            Digest::parse(d).map_err(|_| format!("`{d}` is not a `sha256:` + 64 hex digest"))?;
            (rest, Some(d.to_owned()))
        }
        None => (s, None),
    };
    // A `:` after the last `/` starts the tag; one before it is a port.
    let last_slash = rest.rfind('/').map_or(0, |i| i.saturating_add(1));
    let (name, tag) = match rest.get(last_slash..).and_then(|t| t.find(':')) {
        Some(i) => {
            let at = last_slash.saturating_add(i);
            let tag = rest.get(at.saturating_add(1)..).unwrap_or_default();
            check_tag(tag)?;
            (rest.get(..at).unwrap_or_default(), Some(tag.to_owned()))
        }
        None => (rest, None),
    };
    if name.len() > MAX_NAME {
        return Err(format!("the name is longer than {MAX_NAME} characters"));
    }
    let (registry, path) = split_domain(name);
    if let Some(registry) = registry {
        check_domain(registry)?;
    }
    check_path(path)?;
    Ok(Parts {
        registry: registry.map(str::to_owned),
        path: path.to_owned(),
        tag,
        digest,
    })
}

/// The first component is a registry iff it has `.` or `:` or is
/// `localhost` (and a path follows).
fn split_domain(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn check_tag(tag: &str) -> Result<(), String> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let ok = tag.len() <= MAX_TAG
        && tag.bytes().next().is_some_and(word)
        && tag.bytes().all(|b| word(b) || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tag `{tag}` must be 1 to {MAX_TAG} of [A-Za-z0-9_.-], not starting with `.` or `-`"
        ))
    }
}

fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("the repository name is empty".into());
    }
    for component in path.split('/') {
        if component.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(format!("repository name `{path}` must be lowercase"));
        }
        if !is_component(component) {
            return Err(format!(
                "repository component `{component}` must be [a-z0-9] words joined by `.`, `_`, `__` or `-`"
            ));
        }
    }
    Ok(())
}

/// `[a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*`
fn is_component(c: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = c.as_bytes();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if !alnum(first) || !alnum(last) {
        return false;
    }
    // Between words: one `.`, one or two `_`, or any number of `-`.
    let mut sep = String::new();
    for &b in bytes {
        if alnum(b) {
            let ok =
                matches!(sep.as_str(), "" | "." | "_" | "__") || sep.bytes().all(|s| s == b'-');
            if !ok {
                return false;
            }
            sep.clear();
        } else if matches!(b, b'.' | b'_' | b'-') {
            sep.push(char::from(b));
        } else {
            return false;
        }
    }
    true
}

/// `host[:port]` where host is a DNS name, an IPv4 address or `[IPv6]`.
pub(crate) fn check_domain(domain: &str) -> Result<(), String> {
    let (host, port) = split_port(domain)?;
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(p) if p > 0 && !port.starts_with('+') => {}
            _ => return Err(format!("port `{port}` must be a number from 1 to 65535")),
        }
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6
            .parse::<std::net::Ipv6Addr>()
            .map(drop)
            .map_err(|_| format!("`{host}` is not an IPv6 address"));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(format!("registry host `{host}` is not a valid host name"));
    }
    Ok(())
}

/// Splits `host:port`, `[v6]:port`, `[v6]`, `host`.
fn split_port(domain: &str) -> Result<(&str, Option<&str>), String> {
    if domain.starts_with('[') {
        let Some(end) = domain.find(']') else {
            return Err(format!("`{domain}` has `[` without `]`"));
        };
        let (host, rest) = domain.split_at(end.saturating_add(1));
        return match rest {
            "" => Ok((host, None)),
            _ => match rest.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err(format!("`{domain}` has text after `]` that is not a port")),
            },
        };
    }
    Ok(match domain.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn normalizes_like_docker() {
        let table: &[(&str, &str)] = &[
            ("alpine", "docker.io/library/alpine:latest"),
            ("alpine:3.19", "docker.io/library/alpine:3.19"),
            ("user/app:1", "docker.io/user/app:1"),
            ("docker://alpine", "docker.io/library/alpine:latest"),
            ("docker.io/alpine", "docker.io/library/alpine:latest"),
            ("index.docker.io/alpine", "docker.io/library/alpine:latest"),
            (
                "docker.io/library/alpine",
                "docker.io/library/alpine:latest",
            ),
            ("quay.io/a/b/c:v1.2-x_y", "quay.io/a/b/c:v1.2-x_y"),
            ("quay.io/alpine", "quay.io/alpine:latest"),
            ("localhost/x", "localhost/x:latest"),
            ("localhost:5000/x", "localhost:5000/x:latest"),
            (
                "127.0.0.1:5000/test/busybox:latest",
                "127.0.0.1:5000/test/busybox:latest",
            ),
            ("[::1]:5000/x", "[::1]:5000/x:latest"),
            ("[::1]/x:t", "[::1]/x:t"),
            (
                "my-reg.example.com:443/a__b/c--d.e_f",
                "my-reg.example.com:443/a__b/c--d.e_f:latest",
            ),
            ("localhostx/y", "docker.io/localhostx/y:latest"),
        ];
        for (input, want) in table {
            let got = Reference::parse(input).unwrap();
            assert_eq!(got.to_string(), *want, "{input}");
            assert_eq!(Reference::parse(&got.to_string()).unwrap(), got, "{input}");
        }
    }

    #[test]
    fn digests_win_over_tags() {
        let r = Reference::parse(&format!("alpine@{D}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some(D));
        assert_eq!(r.tag_or_digest(), D);
        assert_eq!(r.to_string(), format!("docker.io/library/alpine@{D}"));
        let r = Reference::parse(&format!("localhost:5000/a:v1@{D}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.tag_or_digest(), D);
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(r.name(), "localhost:5000/a");
    }

    #[test]
    fn tells_short_names() {
        for (input, short) in [
            ("alpine", true),
            ("user/app:1", true),
            ("localhost/app", false),
            ("quay.io/a", false),
            ("host:5000/a", false),
            ("docker://alpine", true),
        ] {
            assert_eq!(Reference::is_short_name(input).unwrap(), short, "{input}");
        }
        assert!(Reference::is_short_name("UPPER").is_err());
    }

    #[test]
    fn rejects_hostile_and_malformed_input() {
        let long_path = "a".repeat(300);
        let long_tag = format!("a:{}", "t".repeat(129));
        let table: &[(&str, &str)] = &[
            ("", "empty"),
            ("docker://", "empty"),
            ("Alpine", "lowercase"),
            ("user/App", "lowercase"),
            ("..", "component"),
            ("a/../b", "component"),
            ("a//b", "component"),
            ("/a", "component"),
            ("a/", "component"),
            ("-a", "component"),
            ("a-", "component"),
            ("a___b", "component"),
            ("a..b", "component"),
            ("a._b", "component"),
            ("a b", "component"),
            ("a/b c", "component"),
            ("alpine:", "tag"),
            ("alpine:-x", "tag"),
            ("alpine:.x", "tag"),
            ("alpine:a/b", "port"),
            ("alpine:t@g", "digest"),
            (&long_tag, "tag"),
            (&long_path, "longer than"),
            ("alpine@sha256:abc", "digest"),
            ("alpine@md5:0123", "digest"),
            ("alpine@", "digest"),
            ("alpine@@sha256:x", "digest"),
            ("host:0/a", "port"),
            ("host:99999/a", "port"),
            ("host:+80/a", "port"),
            ("host:/a", "port"),
            ("host:80:80/a", "port"),
            ("[::1/a", "without `]`"),
            ("[zz]:5000/a", "IPv6"),
            ("[::1]x/a", "not a port"),
            ("-bad.host/a", "host name"),
            ("a..b.c/x", "host name"),
            ("host_name.com/x", "host name"),
        ];
        for (input, want) in table {
            let err = format!("{:#}", Reference::parse(input).unwrap_err());
            assert!(err.contains(want), "{input}: {err}");
            assert!(err.starts_with("parse image reference `"), "{err}");
        }
        let upper_digest = format!("a@{}", D.to_uppercase().replace("SHA256", "sha256"));
        assert!(Reference::parse(&upper_digest).is_err());
        let long = format!("example.com/{}", "a/".repeat(130));
        assert!(Reference::parse(long.trim_end_matches('/')).is_err());
    }

    #[test]
    fn component_rule() {
        for good in ["a", "a1", "a.b", "a_b", "a__b", "a-b", "a---b", "1"] {
            assert!(is_component(good), "{good}");
        }
        for bad in ["", ".", "_a", "a_", "a.-b", "a-.b", "a.b.", "é"] {
            assert!(!is_component(bad), "{bad}");
        }
    }
}
