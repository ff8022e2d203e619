//! Platforms (`os/architecture[/variant]`) and choosing one manifest from
//! an image index or Docker manifest list.
//!
//! Owns the `--platform` syntax (Docker's, with its aliases such as
//! `x86_64` and `aarch64`), the host default, and the choice rule: same
//! os and architecture, then the exact variant, then an entry without a
//! variant. Pure; runs in the `hutch` process.

use std::fmt;

use serde::Deserialize;

use crate::errors::hint;
use crate::image::layout::host_arch;

/// An OCI platform, normalized (`arm64/v8` is `arm64`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform hutch runs on: linux and the host architecture.
    pub fn host() -> Platform {
        Platform::new("linux", host_arch(), None)
    }

    /// Parses `os/arch[/variant]` as `--platform` takes it.
    pub fn parse(s: &str) -> anyhow::Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok_part = |p: &&str| {
            !p.is_empty()
                && p.len() <= 32
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        let (os, arch, variant) = match parts.as_slice() {
            [os, arch] if [os, arch].iter().all(|p| ok_part(p)) => (*os, *arch, None),
            [os, arch, v] if [os, arch, v].iter().all(|p| ok_part(p)) => (*os, *arch, Some(*v)),
            _ => {
                let err = anyhow::anyhow!("parse platform `{s}`: expected `os/arch[/variant]`");
                return Err(hint(err, "for example `--platform linux/arm64`"));
            }
        };
        Ok(Platform::new(os, arch, variant))
    }

    /// Builds a normalized platform.
    pub fn new(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        let os = os.to_ascii_lowercase();
        let arch = arch.to_ascii_lowercase();
        let variant = variant.map(str::to_ascii_lowercase);
        let (arch, default_variant) = match arch.as_str() {
            "x86_64" | "x86-64" => ("amd64", None),
            "aarch64" => ("arm64", None),
            "armhf" => ("arm", Some("v7")),
            "armel" => ("arm", Some("v6")),
            "i386" | "i686" => ("386", None),
            other => (other, None),
        };
        let variant = variant.or(default_variant.map(str::to_owned));
        let variant = match (arch, variant.as_deref()) {
            ("arm64", Some("v8" | "8")) => None,
            (_, Some(v)) if v.bytes().all(|b| b.is_ascii_digit()) => Some(format!("v{v}")),
            _ => variant,
        };
        Platform {
            os,
            architecture: arch.to_owned(),
            variant,
        }
    }

    /// The same platform with the spelling normalized.
    pub fn normalized(&self) -> Platform {
        Platform::new(&self.os, &self.architecture, self.variant.as_deref())
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        match &self.variant {
            Some(v) => write!(f, "/{v}"),
            None => Ok(()),
        }
    }
}

/// The index entry for `want`: exact variant first, then one without a
/// variant, then (only when no variant was asked for) any variant.
pub fn choose<'a, T>(
    entries: &'a [T],
    platform_of: impl Fn(&T) -> Option<&Platform>,
    want: &Platform,
) -> anyhow::Result<&'a T> {
    let want = want.normalized();
    let same_arch: Vec<(&T, Platform)> = entries
        .iter()
        .filter_map(|e| platform_of(e).map(|p| (e, p.normalized())))
        .filter(|(_, p)| p.os == want.os && p.architecture == want.architecture)
        .collect();
    let exact = same_arch.iter().find(|(_, p)| p.variant == want.variant);
    let bare = same_arch.iter().find(|(_, p)| p.variant.is_none());
    let any = same_arch.first().filter(|_| want.variant.is_none());
    if let Some((e, _)) = exact.or(bare).or(any) {
        return Ok(e);
    }
    let offered: Vec<String> = entries
        .iter()
        .filter_map(|e| platform_of(e).map(ToString::to_string))
        .filter(|p| p != "unknown/unknown")
        .collect();
    let offered = match offered.is_empty() {
        true => "no platforms".to_owned(),
        false => offered.join(", "),
    };
    let err = anyhow::anyhow!("choose a manifest for `{want}`: the image offers {offered}");
    Err(hint(
        err,
        "pick one of them with `--platform os/arch[/variant]`",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalizes() {
        let table = [
            ("linux/amd64", "linux/amd64"),
            ("linux/x86_64", "linux/amd64"),
            ("Linux/AARCH64", "linux/arm64"),
            ("linux/arm64/v8", "linux/arm64"),
            ("linux/arm/7", "linux/arm/v7"),
            ("linux/armhf", "linux/arm/v7"),
            ("linux/arm/v6", "linux/arm/v6"),
            ("windows/amd64", "windows/amd64"),
            ("linux/i386", "linux/386"),
        ];
        for (input, want) in table {
            assert_eq!(Platform::parse(input).unwrap().to_string(), want, "{input}");
        }
        for bad in [
            "",
            "linux",
            "linux/",
            "/amd64",
            "linux/amd64/v1/x",
            "linux/am d64",
            "linux/../x",
        ] {
            let err = format!("{:#}", Platform::parse(bad).unwrap_err());
            assert!(err.contains("expected `os/arch[/variant]`"), "{bad}: {err}");
        }
        assert_eq!(Platform::host().os, "linux");
        assert!(!Platform::host().architecture.is_empty());
    }

    #[derive(Deserialize)]
    struct Entry {
        digest: String,
        platform: Option<Platform>,
    }

    const INDEX: &str = r#"[
        {"digest": "amd64", "platform": {"os": "linux", "architecture": "amd64"}},
        {"digest": "armv6", "platform": {"os": "linux", "architecture": "arm", "variant": "v6"}},
        {"digest": "armv7", "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
        {"digest": "arm64", "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        {"digest": "win", "platform": {"os": "windows", "architecture": "amd64"}},
        {"digest": "att", "platform": {"os": "unknown", "architecture": "unknown"}},
        {"digest": "none"}
    ]"#;

    fn pick(entries: &[Entry], want: &str) -> anyhow::Result<String> {
        let want = Platform::parse(want)?;
        choose(entries, |e| e.platform.as_ref(), &want).map(|e| e.digest.clone())
    }

    #[test]
    fn chooses_by_os_arch_variant() {
        let entries: Vec<Entry> = serde_json::from_str(INDEX).unwrap();
        for (want, got) in [
            ("linux/amd64", "amd64"),
            ("linux/arm64", "arm64"),
            ("linux/aarch64/v8", "arm64"),
            ("linux/arm/v7", "armv7"),
            ("linux/arm/v6", "armv6"),
            ("linux/arm", "armv6"),
            ("windows/amd64", "win"),
        ] {
            assert_eq!(pick(&entries, want).unwrap(), got, "{want}");
        }
        let err = pick(&entries, "linux/s390x").unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("choose a manifest for `linux/s390x`"), "{msg}");
        assert!(
            msg.contains("linux/arm/v7") && !msg.contains("unknown"),
            "{msg}"
        );
        assert!(pick(&entries, "linux/arm/v5").is_err());
        let err = format!("{:#}", pick(&[], "linux/amd64").unwrap_err());
        assert!(err.contains("no platforms"), "{err}");
    }
}
