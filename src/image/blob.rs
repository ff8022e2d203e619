//! Content-addressed blobs of an image layout, treated as hostile.
//!
//! Owns digest validation (only `sha256:` + 64 lowercase hex, so a digest
//! can never smuggle a path), opening blobs without blocking on fifos,
//! size caps for JSON documents, and the hashing reader that checks a
//! blob's bytes against its descriptor.

use std::fs::File;
use std::io::{self, BufRead, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;
use sha2::{Digest as _, Sha256};

/// Largest JSON document (index, manifest, config) read into memory.
pub(crate) const MAX_JSON: u64 = 4 * 1024 * 1024;

pub(crate) use crate::digest::Digest;

/// Opens a regular file for reading without blocking on a fifo, and checks
/// that its size is `size` when given.
pub(crate) fn open_regular(path: &Path, size: Option<u64>) -> anyhow::Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .with_context(|| format!("open `{}`", path.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("stat `{}`", path.display()))?;
    if !meta.is_file() {
        anyhow::bail!("open `{}`: not a regular file", path.display());
    }
    if let Some(size) = size {
        if meta.len() != size {
            anyhow::bail!(
                "check `{}`: it has {} bytes but its descriptor says {size}",
                path.display(),
                meta.len()
            );
        }
    }
    Ok(file)
}

/// Reads a small file (at most `cap` bytes) completely.
pub(crate) fn read_capped(path: &Path, cap: u64) -> anyhow::Result<Vec<u8>> {
    let file = open_regular(path, None)?;
    let mut buf = Vec::new();
    file.take(cap.saturating_add(1))
        .read_to_end(&mut buf)
        .with_context(|| format!("read `{}`", path.display()))?;
    if u64::try_from(buf.len()).map_or(true, |n| n > cap) {
        anyhow::bail!("read `{}`: larger than {cap} bytes", path.display());
    }
    Ok(buf)
}

/// Reads a JSON blob of `size` bytes and checks it against `digest`.
pub(crate) fn read_json_blob(layout: &Path, digest: &Digest, size: u64) -> anyhow::Result<Vec<u8>> {
    if size > MAX_JSON {
        anyhow::bail!("read blob `{digest}`: {size} bytes is over the {MAX_JSON}-byte limit");
    }
    let path = digest.path_in(layout);
    let file = open_regular(&path, Some(size))?;
    let mut reader = HashingReader::new(file.take(size.saturating_add(1)));
    let mut buf = Vec::new();
    reader
        .read_to_end(&mut buf)
        .with_context(|| format!("read blob `{digest}`"))?;
    reader.verify(digest, size)?;
    Ok(buf)
}

/// A reader that hashes and counts everything read through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// The digest of what went through so far.
    pub(crate) fn digest(&self) -> String {
        format!("sha256:{}", hex(&self.hasher.clone().finalize()))
    }

    /// Checks that exactly `size` bytes with `digest` went through.
    pub(crate) fn verify(&self, digest: &Digest, size: u64) -> anyhow::Result<()> {
        if self.count != size {
            anyhow::bail!(
                "verify blob `{digest}`: read {} bytes but its descriptor says {size}",
                self.count
            );
        }
        let got = hex(&self.hasher.clone().finalize());
        if got != digest.hex() {
            anyhow::bail!("verify blob `{digest}`: its content has digest `sha256:{got}`");
        }
        Ok(())
    }
}

impl<R: BufRead> HashingReader<R> {
    /// The next buffered bytes, without consuming (or hashing) them.
    pub(crate) fn peek(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let chunk = buf.get(..n).unwrap_or_default();
        self.hasher.update(chunk);
        let n64 = u64::try_from(n).map_err(io::Error::other)?;
        self.count = self
            .count
            .checked_add(n64)
            .ok_or_else(|| io::Error::other("blob size overflows u64"))?;
        Ok(n)
    }
}

pub(crate) use crate::digest::hex;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_parse_refuses_paths_and_other_forms() {
        let good = format!("sha256:{}", "a1".repeat(32));
        assert_eq!(Digest::parse(&good).unwrap().to_string(), good);
        for bad in [
            "sha256:../../etc".to_owned(),
            "sha256:".to_owned(),
            format!("sha256:{}", "A1".repeat(32)),
            format!("sha256:{}/", "a1".repeat(32)),
            format!("sha512:{}", "a1".repeat(64)),
            format!("sha256:{}0", "a1".repeat(32)),
            "a1".repeat(32),
        ] {
            assert!(Digest::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hashing_reader_checks_size_and_digest() {
        let data = b"hello";
        let digest = Digest::parse(&format!("sha256:{}", hex(&Sha256::digest(data)))).unwrap();
        let mut r = HashingReader::new(&data[..]);
        io::copy(&mut r, &mut io::sink()).unwrap();
        r.verify(&digest, 5).unwrap();
        assert!(r.verify(&digest, 6).is_err());
        let mut r = HashingReader::new(&b"hellO"[..]);
        io::copy(&mut r, &mut io::sink()).unwrap();
        let err = r.verify(&digest, 5).unwrap_err().to_string();
        assert!(err.contains("has digest"), "{err}");
    }
}
