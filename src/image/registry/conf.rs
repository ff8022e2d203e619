//! The part of containers-registries.conf(5) (version 2, TOML) that
//! decides where an image is pulled from: `unqualified-search-registries`
//! for short names, and `[[registry]]` tables with `prefix`, `location`,
//! `insecure`, `blocked`, `mirror-by-digest-only` and `[[registry.mirror]]`.
//!
//! Owns finding the file, decoding it as hostile input (an error names the
//! file, line and key), resolving short names, and rewriting a reference
//! to the mirrors and location to try. Runs in the `hutch` process.
//!
//! Not supported (ignored if present): `registries.conf.d` drop-ins,
//! short-name aliases and `short-name-mode`, `pull-from-mirror`,
//! `credential-helpers`. The v1 format is refused.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use super::reference::{self, Parts, Reference};
use crate::image::blob;

/// The system-wide file, read when the user has none.
pub const SYSTEM_CONF: &str = "/etc/containers/registries.conf";

/// A decoded registries.conf.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistriesConf {
    /// Registries tried in order for a short name; empty means Docker Hub.
    pub unqualified_search_registries: Vec<String>,
    pub registries: Vec<RegistryEntry>,
    /// The file it came from, for error messages.
    pub origin: Option<PathBuf>,
}

/// One `[[registry]]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryEntry {
    /// `host[:port][/path]`, or `*.domain` for any subdomain.
    pub prefix: String,
    /// What replaces `prefix` (the prefix itself when not given).
    pub location: String,
    pub insecure: bool,
    pub blocked: bool,
    /// Use the mirrors only for pulls by digest.
    pub mirror_by_digest_only: bool,
    pub mirrors: Vec<Mirror>,
}

/// One `[[registry.mirror]]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub location: String,
    pub insecure: bool,
}

/// One place to try for an image, in order: mirrors first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The reference rewritten to this location.
    pub reference: Reference,
    /// Plain HTTP and unverified TLS are allowed here.
    pub insecure: bool,
    pub mirror: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawConf {
    #[serde(default)]
    unqualified_search_registries: Vec<String>,
    #[serde(default)]
    registry: Vec<RawEntry>,
    /// Only present in the v1 format.
    #[serde(default)]
    registries: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawEntry {
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    location: String,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    blocked: bool,
    #[serde(default)]
    mirror_by_digest_only: bool,
    #[serde(default)]
    mirror: Vec<RawMirror>,
}

#[derive(Debug, Deserialize)]
struct RawMirror {
    location: String,
    #[serde(default)]
    insecure: bool,
}

/// The file to read: `$CONTAINERS_REGISTRIES_CONF`, else the user's
/// `$XDG_CONFIG_HOME/containers/registries.conf` (or `~/.config/...`)
/// when it exists, else the system file when it exists.
pub fn conf_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CONTAINERS_REGISTRIES_CONF") {
        return Some(PathBuf::from(p));
    }
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".config")));
    let user = config_home.map(|d| d.join("containers/registries.conf"));
    user.into_iter()
        .chain([PathBuf::from(SYSTEM_CONF)])
        .find(|p| p.exists())
}

impl RegistriesConf {
    /// Reads the conf found by [`conf_path`]; none at all is the default.
    pub fn load() -> anyhow::Result<RegistriesConf> {
        match conf_path() {
            Some(path) => RegistriesConf::load_from(&path),
            None => Ok(RegistriesConf::default()),
        }
    }

    /// Reads and decodes one file.
    pub fn load_from(path: &Path) -> anyhow::Result<RegistriesConf> {
        let bytes = blob::read_capped(path, blob::MAX_JSON)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| anyhow::anyhow!("read `{}`: not UTF-8", path.display()))?;
        RegistriesConf::parse(&text, path)
    }

    /// Decodes `text`, naming `origin` in errors.
    pub fn parse(text: &str, origin: &Path) -> anyhow::Result<RegistriesConf> {
        let raw: RawConf = toml::from_str(text)
            .map_err(|e| anyhow::anyhow!("{}", describe_toml_error(text, &e)))
            .with_context(|| format!("parse `{}`", origin.display()))?;
        build(raw)
            .map(|mut conf| {
                conf.origin = Some(origin.to_owned());
                conf
            })
            .with_context(|| format!("check `{}`", origin.display()))
    }

    /// The references a name may mean, in the order to try them: a short
    /// name on each search registry (Docker Hub when there are none).
    pub fn candidates(&self, input: &str) -> anyhow::Result<Vec<Reference>> {
        let parts = Parts::parse(input)?;
        if let Some(registry) = &parts.registry {
            return Ok(vec![parts.on(registry)?]);
        }
        if self.unqualified_search_registries.is_empty() {
            return Ok(vec![parts.on(reference::DOCKER_HUB)?]);
        }
        self.unqualified_search_registries
            .iter()
            .map(|r| parts.on(r))
            .collect()
    }

    /// Where to fetch `r` from: its mirrors, then its (rewritten) location.
    pub fn endpoints(&self, r: &Reference) -> anyhow::Result<Vec<Endpoint>> {
        let full = r.to_string();
        let Some((entry, matched)) = self.matching(r, &full) else {
            return Ok(vec![Endpoint {
                reference: r.clone(),
                insecure: false,
                mirror: false,
            }]);
        };
        if entry.blocked {
            let file = self.origin_name();
            anyhow::bail!(
                "pull `{full}`: registry `{}` is blocked in `{file}`",
                entry.prefix
            );
        }
        let mut out = Vec::new();
        if !entry.mirror_by_digest_only || r.digest.is_some() {
            for m in &entry.mirrors {
                out.push(Endpoint {
                    reference: rewrite(&full, matched, &m.location)?,
                    insecure: m.insecure,
                    mirror: true,
                });
            }
        }
        // A `*.domain` entry keeps the host it matched.
        let location = match entry.location.starts_with("*.") {
            true => r.registry.as_str(),
            false => entry.location.as_str(),
        };
        out.push(Endpoint {
            reference: rewrite(&full, matched, location)?,
            insecure: entry.insecure,
            mirror: false,
        });
        Ok(out)
    }

    /// The entry with the longest prefix matching `full`, and how many
    /// bytes of `full` it replaces.
    fn matching(&self, r: &Reference, full: &str) -> Option<(&RegistryEntry, usize)> {
        self.registries
            .iter()
            .filter_map(|e| prefix_match(&e.prefix, r, full).map(|n| (e, n)))
            .max_by_key(|(e, _)| e.prefix.len())
    }

    fn origin_name(&self) -> String {
        self.origin
            .as_ref()
            .map_or_else(|| "registries.conf".to_owned(), |p| p.display().to_string())
    }
}

/// How much of `full` a prefix matches: c/image's rule, where a prefix
/// ends at `/`, `:` (a tag, only for prefixes with a path) or `@`; a
/// `*.domain` prefix matches the registry host's subdomains.
fn prefix_match(prefix: &str, r: &Reference, full: &str) -> Option<usize> {
    if let Some(domain) = prefix.strip_prefix('*') {
        let host = r
            .registry
            .rsplit_once(':')
            .map_or(r.registry.as_str(), |(h, _)| h);
        let host = if r.registry.starts_with('[') {
            r.registry.as_str()
        } else {
            host
        };
        return host.ends_with(domain).then_some(r.registry.len());
    }
    let rest = full.strip_prefix(prefix)?;
    let has_path = prefix.contains('/');
    match rest.bytes().next() {
        None | Some(b'/' | b'@') => Some(prefix.len()),
        Some(b':') if has_path => Some(prefix.len()),
        _ => None,
    }
}

/// Replaces the first `matched` bytes of `full` with `location`.
fn rewrite(full: &str, matched: usize, location: &str) -> anyhow::Result<Reference> {
    let rest = full.get(matched..).unwrap_or_default();
    let new = format!("{location}{rest}");
    Reference::parse(&new).with_context(|| format!("rewrite `{full}` to `{location}`"))
}

fn build(raw: RawConf) -> anyhow::Result<RegistriesConf> {
    if raw.registries.is_some() {
        anyhow::bail!(
            "read key `registries`: the version 1 format is not supported; \
             use `unqualified-search-registries` and `[[registry]]` tables"
        );
    }
    for r in &raw.unqualified_search_registries {
        reference::check_domain(r).map_err(|why| {
            anyhow::anyhow!("read key `unqualified-search-registries`: `{r}`: {why}")
        })?;
    }
    let registries = raw
        .registry
        .into_iter()
        .enumerate()
        .map(|(i, e)| entry(e).with_context(|| format!("read `[[registry]]` number {}", i + 1)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(RegistriesConf {
        unqualified_search_registries: raw.unqualified_search_registries,
        registries,
        origin: None,
    })
}

fn entry(raw: RawEntry) -> anyhow::Result<RegistryEntry> {
    let prefix = match (raw.prefix.as_str(), raw.location.as_str()) {
        ("", "") => anyhow::bail!("read keys `prefix` and `location`: both are empty"),
        ("", location) => location.to_owned(),
        (prefix, _) => prefix.to_owned(),
    };
    let location = match raw.location.as_str() {
        "" => prefix.clone(),
        l => l.to_owned(),
    };
    check_location(&prefix, true).context("read key `prefix`")?;
    // A wildcard entry's location is its prefix; any other is checked.
    if location != prefix || !prefix.starts_with("*.") {
        check_location(&location, false).context("read key `location`")?;
    }
    let mirrors = raw
        .mirror
        .into_iter()
        .map(|m| {
            check_location(&m.location, false).context("read key `mirror.location`")?;
            Ok(Mirror {
                location: m.location,
                insecure: m.insecure,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(RegistryEntry {
        prefix,
        location,
        insecure: raw.insecure,
        blocked: raw.blocked,
        mirror_by_digest_only: raw.mirror_by_digest_only,
        mirrors,
    })
}

/// `host[:port][/path][:tag|@digest]`, or `*.domain` when `wildcard_ok`.
fn check_location(loc: &str, wildcard_ok: bool) -> anyhow::Result<()> {
    if let Some(domain) = loc.strip_prefix("*.") {
        if !wildcard_ok || domain.contains(['/', ':', '@', '*']) {
            anyhow::bail!("check `{loc}`: a wildcard must be `*.domain` in `prefix` alone");
        }
        return reference::check_domain(domain)
            .map_err(|why| anyhow::anyhow!("check `{loc}`: {why}"));
    }
    let host = loc.split('/').next().unwrap_or_default();
    reference::check_domain(host).map_err(|why| anyhow::anyhow!("check `{loc}`: {why}"))?;
    if loc.contains('/') {
        Parts::parse(loc)?;
    }
    Ok(())
}

/// `line L, key `K`: message` from a TOML error; the multi-line
/// rendering of the toml crate does not fit an error chain.
fn describe_toml_error(text: &str, err: &toml::de::Error) -> String {
    let Some(span) = err.span() else {
        return err.message().to_owned();
    };
    let before = text.get(..span.start).unwrap_or_default();
    let line_no = before.matches('\n').count().saturating_add(1);
    let line_start = before.rfind('\n').map_or(0, |i| i.saturating_add(1));
    let line = text
        .get(line_start..)
        .and_then(|l| l.lines().next())
        .unwrap_or_default();
    match line.split_once('=') {
        Some((key, _)) if !line.trim_start().starts_with('[') => {
            format!("line {line_no}, key `{}`: {}", key.trim(), err.message())
        }
        _ => format!("line {line_no} (`{}`): {}", line.trim(), err.message()),
    }
}

#[cfg(test)]
#[path = "conf_tests.rs"]
mod tests;
