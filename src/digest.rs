//! Digests (`sha256:HEX`), shared by image layouts, the registry client
//! and the store, and hashing while copying.
//!
//! Owns validation of `sha256:HEX` strings (64 lowercase hex digits and
//! nothing else, so a digest taken from image content can never become a
//! path that leaves the store) and of id prefixes typed by the user.

use std::io::{self, Read, Write};

use sha2::{Digest as _, Sha256};

/// A validated `sha256:HEX` digest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// Accepts exactly `sha256:` followed by 64 lowercase hex digits.
    pub fn parse(s: &str) -> anyhow::Result<Digest> {
        let Some(hex) = s.strip_prefix("sha256:") else {
            anyhow::bail!("check digest `{s}`: only `sha256:` digests are supported");
        };
        Digest::from_hex(hex).ok_or_else(|| {
            anyhow::anyhow!("check digest `{s}`: expected `sha256:` and 64 lowercase hex digits")
        })
    }

    /// A digest from its 64 hex digits alone.
    pub fn from_hex(hex: &str) -> Option<Digest> {
        (hex.len() == 64 && is_lower_hex(hex)).then(|| Digest {
            hex: hex.to_owned(),
        })
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// `blobs/sha256/HEX` below an OCI layout or store directory.
    pub fn path_in(&self, layout: &std::path::Path) -> std::path::PathBuf {
        layout.join("blobs").join("sha256").join(&self.hex)
    }

    /// The first 12 hex digits, as `docker images` shows ids.
    pub fn short(&self) -> &str {
        self.hex.get(..12).unwrap_or(&self.hex)
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

pub fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The sha256 digest of a byte string.
pub fn of_bytes(bytes: &[u8]) -> Digest {
    Digest {
        hex: hex(&Sha256::digest(bytes)),
    }
}

/// Copies `r` into `w` and returns the digest and length of what was copied.
/// At most `cap` bytes are read; more is an error.
pub fn copy_hashed(r: &mut dyn Read, w: &mut dyn Write, cap: u64) -> io::Result<(Digest, u64)> {
    let mut hasher = Sha256::new();
    let mut total: u64 = 0;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = buf.get(..n).unwrap_or_default();
        total = total
            .checked_add(u64::try_from(n).map_err(io::Error::other)?)
            .filter(|t| *t <= cap)
            .ok_or_else(|| io::Error::other(format!("more than {cap} bytes")))?;
        hasher.update(chunk);
        w.write_all(chunk)?;
    }
    let hex = hex(&hasher.finalize());
    Ok((Digest { hex }, total))
}

/// Lowercase hex of a byte string.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_refuses_hostile_digests() {
        let good = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(Digest::parse(&good).unwrap().to_string(), good);
        for bad in [
            "sha256:../../../etc/passwd".to_owned(),
            format!("sha256:{}/..", "ab".repeat(31)),
            format!("sha256:{}", "AB".repeat(32)),
            format!("sha256:{}\n", "ab".repeat(32)),
            format!("sha512:{}", "ab".repeat(64)),
            format!("sha256:{}", "ab".repeat(33)),
            "sha256:".to_owned(),
            String::new(),
            "ab".repeat(32),
        ] {
            assert!(Digest::parse(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn copy_hashed_counts_and_caps() {
        let mut out = Vec::new();
        let (d, n) = copy_hashed(&mut &b"hello"[..], &mut out, 5).unwrap();
        assert_eq!(n, 5);
        assert_eq!(d, of_bytes(b"hello"));
        assert_eq!(out, b"hello");
        assert!(copy_hashed(&mut &b"hello"[..], &mut Vec::new(), 4).is_err());
    }
}
