//! The OCI distribution client: resolves a reference to a manifest and
//! config, and streams blobs, checking every digest and size.
//!
//! Owns the pull protocol (distribution-spec "pull" workflow): manifests
//! by tag or digest, image indexes narrowed to one platform, mirrors from
//! registries.conf tried before the primary location, and blob streams
//! that stop at one byte past the descriptor's size. Runs in the `hutch`
//! process, before any namespace exists.
//!
//! ```text
//! resolve:    GET manifests/<tag|digest> ─ index? ─► choose platform ─► GET manifests/<digest>
//!             ─► GET blobs/<config digest>                  (each ≤ 4 MiB, each digest checked)
//! fetch_blob: GET blobs/<digest> ─► out                      (sha256 and size checked as it streams;
//!             a dropped stream resumes with `Range: bytes=N-`, on the next endpoint if need be)
//! ```

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use sha2::{Digest as _, Sha256};
use ureq::http::{HeaderMap, Response};
use ureq::Body;

use super::auth::Credentials;
use super::conf::{Endpoint, RegistriesConf};
use super::http::{self, header, Budget, Transport};
use super::manifest::{self, Document, Manifest};
use super::platform::{self, Platform};
use super::reference::Reference;
use super::speed::{self, SpeedFloor};
use crate::errors::hint;
use crate::image::blob::{self, Digest, MAX_JSON};

/// How a [`Client`] behaves.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Verify TLS and refuse plain HTTP (podman's `--tls-verify`); an
    /// `insecure` registry in registries.conf is exempt either way.
    pub tls_verify: bool,
    /// The platform chosen from an image index.
    pub platform: Platform,
    pub user_agent: String,
    /// Mirrors, rewrites, insecure and blocked registries.
    pub conf: RegistriesConf,
    /// auth.json files to read credentials from, first match wins.
    pub auth_files: Vec<PathBuf>,
    /// How long a registry may stay silent: for the connection, the
    /// response headers, and each read of a body. A registry that stalls
    /// mid-blob fails the pull after this (per try) instead of hanging.
    /// Also the window of the speed floor ([`super::speed`]): a body
    /// bringing under 1 KiB in a whole window fails too.
    pub timeout: Duration,
}

/// The default of [`ClientOptions::timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

impl ClientOptions {
    /// Options for this host: registries.conf and auth files found as
    /// podman finds them.
    pub fn from_env(tls_verify: bool, platform: Platform) -> anyhow::Result<ClientOptions> {
        Ok(ClientOptions {
            tls_verify,
            platform,
            user_agent: format!("hutch/{}", env!("CARGO_PKG_VERSION")),
            conf: RegistriesConf::load()?,
            auth_files: super::auth::auth_files(),
            timeout: timeout_from_env()?,
        })
    }
}

/// `HUTCH_REGISTRY_TIMEOUT` (whole seconds, at least 1), else
/// [`DEFAULT_TIMEOUT`].
fn timeout_from_env() -> anyhow::Result<Duration> {
    let Some(raw) = std::env::var_os("HUTCH_REGISTRY_TIMEOUT") else {
        return Ok(DEFAULT_TIMEOUT);
    };
    let text = raw.to_string_lossy();
    match text.trim().parse::<u64>() {
        Ok(secs) if secs > 0 => Ok(Duration::from_secs(secs)),
        _ => Err(hint(
            anyhow::anyhow!("read `HUTCH_REGISTRY_TIMEOUT`: `{text}` is not a number of seconds"),
            "set it to a whole number of seconds, at least 1, or unset it",
        )),
    }
}

/// A manifest resolved for one platform, with its config.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Where it was found (a mirror or the rewritten location).
    pub source: Reference,
    /// `sha256:HEX` of `manifest_bytes`.
    pub manifest_digest: String,
    pub manifest_bytes: Vec<u8>,
    pub manifest: Manifest,
    /// `sha256:HEX` of `config_bytes` (the image id).
    pub config_digest: String,
    pub config_bytes: Vec<u8>,
}

/// A registry client; cheap to keep for a whole pull.
pub struct Client {
    opts: ClientOptions,
    transport: Transport,
}

/// How deep image indexes may nest.
const MAX_NESTING: usize = 4;

impl Client {
    pub fn new(opts: ClientOptions) -> Client {
        let transport = Transport::new(
            opts.tls_verify,
            &opts.user_agent,
            opts.auth_files.clone(),
            opts.timeout,
        );
        Client { opts, transport }
    }

    /// Resolves `r` to the manifest for the client's platform and its
    /// config, trying the mirrors first.
    pub fn resolve(&self, r: &Reference) -> anyhow::Result<Resolved> {
        let endpoints = self.opts.conf.endpoints(r)?;
        let mut mirror_errors = Vec::new();
        for ep in &endpoints {
            match self.resolve_at(ep) {
                Ok(resolved) => return Ok(resolved),
                Err(e) if ep.mirror => mirror_errors.push(format!("{e:#}")),
                Err(e) => return Err(with_mirror_errors(e, &mirror_errors)),
            }
        }
        anyhow::bail!("resolve `{r}`: no location to try")
    }

    /// Streams blob `digest` of `size` bytes into `out`, checking both as
    /// it goes. On error `out` may hold a prefix: write to a temporary
    /// file and keep it only when this returns `Ok`.
    pub fn fetch_blob(
        &self,
        r: &Reference,
        digest: &str,
        size: u64,
        out: &mut dyn Write,
    ) -> anyhow::Result<()> {
        let digest = Digest::parse(digest)?;
        let endpoints = self.opts.conf.endpoints(r)?;
        let mut progress = Progress::default();
        let mut mirror_errors = Vec::new();
        for ep in &endpoints {
            match self.fetch_blob_at(ep, &digest, size, out, &mut progress) {
                Ok(()) => return Ok(()),
                Err(e) if ep.mirror && !e.fatal => mirror_errors.push(format!("{:#}", e.err)),
                Err(e) => return Err(with_mirror_errors(e.err, &mirror_errors)),
            }
        }
        anyhow::bail!("fetch blob `{digest}` of `{r}`: no location to try")
    }

    /// Checks `creds` against `registry` (`host[:port]`) without saving
    /// them: GET `/v2/`, answering its challenge with `creds`.
    pub fn check_login(&self, registry: &str, creds: &Credentials) -> anyhow::Result<()> {
        let reference = Reference {
            registry: registry.to_owned(),
            repository: String::new(),
            tag: None,
            digest: None,
        };
        // registries.conf may mark the registry insecure (plain HTTP).
        let insecure = self
            .opts
            .conf
            .endpoints(&reference)?
            .iter()
            .any(|ep| !ep.mirror && ep.insecure && ep.reference.registry == registry);
        let ep = Endpoint {
            reference,
            insecure,
            mirror: false,
        };
        self.transport.check_login(&ep, creds)
    }

    fn resolve_at(&self, ep: &Endpoint) -> anyhow::Result<Resolved> {
        let r = &ep.reference;
        let want = r.digest.as_deref().map(Digest::parse).transpose()?;
        let (mut bytes, mut digest, mut doc) = self.fetch_manifest(ep, r.tag_or_digest(), want)?;
        for _ in 0..MAX_NESTING {
            let entries = match doc {
                Document::Manifest(manifest) => return self.finish(ep, bytes, digest, manifest),
                Document::Index(entries) => entries,
            };
            let chosen = platform::choose(&entries, |e| e.platform.as_ref(), &self.opts.platform)
                .with_context(|| format!("resolve `{r}`"))?;
            let d = &chosen.descriptor;
            let child = Digest::parse(&d.digest)?;
            (bytes, digest, doc) = self.fetch_manifest(ep, &d.digest, Some(child))?;
            check_len(&bytes, d.size, &d.digest)?;
        }
        anyhow::bail!("resolve `{r}`: image indexes nest more than {MAX_NESTING} deep")
    }

    fn finish(
        &self,
        ep: &Endpoint,
        manifest_bytes: Vec<u8>,
        manifest_digest: Digest,
        manifest: Manifest,
    ) -> anyhow::Result<Resolved> {
        let config = &manifest.config;
        if config.size > MAX_JSON {
            anyhow::bail!(
                "fetch config `{}`: {} bytes is over the {MAX_JSON}-byte limit",
                config.digest,
                config.size
            );
        }
        let config_digest = Digest::parse(&config.digest)?;
        let mut config_bytes = Vec::new();
        let mut progress = Progress::default();
        self.fetch_blob_at(
            ep,
            &config_digest,
            config.size,
            &mut config_bytes,
            &mut progress,
        )
        .map_err(|e| e.err)
        .with_context(|| format!("fetch config of `{}`", ep.reference))?;
        Ok(Resolved {
            source: ep.reference.clone(),
            manifest_digest: manifest_digest.to_string(),
            manifest_bytes,
            manifest,
            config_digest: config_digest.to_string(),
            config_bytes,
        })
    }

    /// GETs one manifest (≤ 4 MiB), checks it against `want` (when asked
    /// by digest) and the registry's `Docker-Content-Digest`, and decodes it.
    fn fetch_manifest(
        &self,
        ep: &Endpoint,
        tag_or_digest: &str,
        want: Option<Digest>,
    ) -> anyhow::Result<(Vec<u8>, Digest, Document)> {
        let what = format!(
            "{}/{}:{tag_or_digest}",
            ep.reference.registry, ep.reference.repository
        );
        let what = what.replace(":sha256:", "@sha256:");
        let accept = [("Accept", manifest::ACCEPT.to_owned())];
        let resp = self
            .transport
            .get(
                ep,
                &format!("manifests/{tag_or_digest}"),
                &accept,
                &mut Budget::new(),
            )
            .with_context(|| format!("fetch manifest `{what}`"))?;
        let resp = check_status(
            resp,
            &format!("fetch manifest `{what}`"),
            ep,
            self.opts.timeout,
        )?;
        if content_length(resp.headers()).is_some_and(|n| n > MAX_JSON) {
            anyhow::bail!("fetch manifest `{what}`: larger than {MAX_JSON} bytes");
        }
        let content_type = header(resp.headers(), "content-type");
        let claimed = header(resp.headers(), "docker-content-digest");
        let mut bytes = Vec::new();
        SpeedFloor::new(resp.into_body().into_reader(), self.opts.timeout)
            .take(MAX_JSON.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(speed::explain)
            .with_context(|| format!("read manifest `{what}`"))?;
        check_cap(&bytes, &what)?;
        let got = Digest::parse(&format!("sha256:{}", blob::hex(&Sha256::digest(&bytes))))?;
        if let Some(want) = want.filter(|w| *w != got) {
            anyhow::bail!("verify manifest `{what}`: its content has digest `{got}`, not `{want}`");
        }
        if claimed.starts_with("sha256:") && claimed != got.to_string() {
            anyhow::bail!(
                "verify manifest `{what}`: the registry says digest `{claimed}` but the content has `{got}`"
            );
        }
        let doc = Document::decode(&bytes, &content_type, &what)?;
        Ok((bytes, got, doc))
    }

    /// One endpoint's attempt at a blob, resuming from `progress`.
    fn fetch_blob_at(
        &self,
        ep: &Endpoint,
        digest: &Digest,
        size: u64,
        out: &mut dyn Write,
        progress: &mut Progress,
    ) -> Result<(), BlobError> {
        let what = format!("fetch blob `{digest}` from `{}`", ep.reference.name());
        let mut budget = Budget::new();
        loop {
            match self.stream_once(ep, digest, size, out, progress, &mut budget) {
                Ok(()) => break,
                Err(Stream::Dropped(e)) if budget.retry(None) => drop(e),
                Err(Stream::Dropped(e)) => return Err(BlobError::soft(e.context(what))),
                Err(Stream::Failed(e)) => return Err(BlobError::soft(e.context(what))),
                Err(Stream::Fatal(e)) => return Err(BlobError::fatal(e.context(what))),
            }
        }
        progress.verify(digest, size).map_err(BlobError::fatal)
    }

    /// One request: copies the body past what `progress` already has.
    fn stream_once(
        &self,
        ep: &Endpoint,
        digest: &Digest,
        size: u64,
        out: &mut dyn Write,
        progress: &mut Progress,
        budget: &mut Budget,
    ) -> Result<(), Stream> {
        let mut headers = Vec::new();
        if progress.count > 0 {
            headers.push(("Range", format!("bytes={}-", progress.count)));
        }
        let resp = self
            .transport
            .get(ep, &format!("blobs/{digest}"), &headers, budget)
            .map_err(Stream::Failed)?;
        let resp =
            check_status(resp, "fetch blob", ep, self.opts.timeout).map_err(Stream::Failed)?;
        let resumed = resp.status().as_u16() == 206;
        if resumed && !content_range_starts_at(resp.headers(), progress.count) {
            return Err(Stream::Failed(anyhow::anyhow!(
                "the registry answered a different range"
            )));
        }
        let skip = if resumed { 0 } else { progress.count };
        let remaining = size.saturating_sub(progress.count);
        if let Some(n) = content_length(resp.headers()) {
            let expected = remaining.saturating_add(skip);
            if n != expected {
                return Err(Stream::Fatal(anyhow::anyhow!(
                    "the registry sends {n} bytes but the descriptor says {size}"
                )));
            }
        }
        // Wrapped before the skip: the bytes skipped must come in as fast.
        let mut body = SpeedFloor::new(resp.into_body().into_reader(), self.opts.timeout);
        if skip > 0 {
            let copied = std::io::copy(&mut (&mut body).take(skip), &mut std::io::sink());
            match copied {
                Ok(n) if n == skip => {}
                Ok(_) => return Err(Stream::Dropped(anyhow::anyhow!("the stream ended early"))),
                Err(e) => return Err(Stream::from_io(e)),
            }
        }
        progress.copy(&mut body, out, size)
    }
}

/// Hash and count of the bytes written so far, across retries.
#[derive(Default)]
struct Progress {
    hasher: Sha256,
    count: u64,
}

impl Progress {
    /// Copies `body` to `out`, reading at most one byte past `size`.
    fn copy(&mut self, body: &mut dyn Read, out: &mut dyn Write, size: u64) -> Result<(), Stream> {
        let limit = size.saturating_sub(self.count).saturating_add(1);
        let mut body = body.take(limit);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Stream::from_io(e)),
            };
            let chunk = buf.get(..n).unwrap_or_default();
            let n64 = u64::try_from(n).map_err(|e| Stream::Fatal(e.into()))?;
            let count = self.count.saturating_add(n64);
            if count > size {
                return Err(Stream::Fatal(anyhow::anyhow!(
                    "the registry sent more bytes than the descriptor's {size}"
                )));
            }
            out.write_all(chunk)
                .map_err(|e| Stream::Fatal(anyhow::Error::new(e).context("write the blob")))?;
            self.hasher.update(chunk);
            self.count = count;
        }
        if self.count < size {
            return Err(Stream::Dropped(anyhow::anyhow!(
                "the stream ended after {} of {size} bytes",
                self.count
            )));
        }
        Ok(())
    }

    fn verify(&self, digest: &Digest, size: u64) -> anyhow::Result<()> {
        if self.count != size {
            anyhow::bail!(
                "verify blob `{digest}`: got {} bytes, expected {size}",
                self.count
            );
        }
        let got = blob::hex(&self.hasher.clone().finalize());
        if got != digest.hex() {
            anyhow::bail!("verify blob `{digest}`: its content has digest `sha256:{got}`");
        }
        Ok(())
    }
}

/// How one blob request ended.
enum Stream {
    /// The connection dropped mid-body: resume.
    Dropped(anyhow::Error),
    /// The request failed after its own retries: try the next endpoint.
    Failed(anyhow::Error),
    /// The content is wrong or unwritable: stop.
    Fatal(anyhow::Error),
}

impl Stream {
    fn from_io(e: std::io::Error) -> Stream {
        // Too slow is a stall in disguise: resumed like one, within the
        // same tries, so a trickle costs at most tries × (window + a read).
        if speed::is_too_slow(&e) {
            return Stream::Dropped(speed::explain(e).context("read the blob"));
        }
        // ureq reports its read timeout as an io::Error wrapping
        // ureq::Error::Timeout: a stalled stream, resumed like a reset.
        let timed_out = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<ureq::Error>())
            .is_some_and(|u| matches!(u, ureq::Error::Timeout(_)));
        if timed_out {
            let err = anyhow::Error::new(e).context("read the blob: the registry stopped sending");
            return Stream::Dropped(hint(
                err,
                "if the registry is just slow, raise HUTCH_REGISTRY_TIMEOUT (seconds, default 60)",
            ));
        }
        let transient = http::is_transient_io(e.kind());
        let err = anyhow::Error::new(e).context("read the blob");
        if transient {
            Stream::Dropped(err)
        } else {
            Stream::Failed(err)
        }
    }
}

struct BlobError {
    err: anyhow::Error,
    /// Another endpoint cannot help (bad content, local write error).
    fatal: bool,
}

impl BlobError {
    fn soft(err: anyhow::Error) -> BlobError {
        BlobError { err, fatal: false }
    }
    fn fatal(err: anyhow::Error) -> BlobError {
        BlobError { err, fatal: true }
    }
}

/// Accepts 200 and 206; turns the rest into errors with hints.
fn check_status(
    resp: Response<Body>,
    what: &str,
    ep: &Endpoint,
    window: Duration,
) -> anyhow::Result<Response<Body>> {
    let status = resp.status().as_u16();
    if status == 200 || status == 206 {
        return Ok(resp);
    }
    let detail = http::read_small(resp.into_body(), window)
        .map(|b| http::error_detail(&b))
        .unwrap_or_default();
    let err = anyhow::anyhow!("{what}: the registry answered HTTP {status}{detail}");
    let registry = &ep.reference.registry;
    Err(match status {
        401 | 403 => hint(
            err,
            format!("log in with `hutch login {registry}`, or check the image name"),
        ),
        404 => hint(
            err,
            format!("check the image name and tag: `{}`", ep.reference),
        ),
        _ => err,
    })
}

fn with_mirror_errors(err: anyhow::Error, mirror_errors: &[String]) -> anyhow::Error {
    if mirror_errors.is_empty() {
        return err;
    }
    err.context(format!(
        "(mirrors failed first: {})",
        mirror_errors.join("; ")
    ))
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    header(headers, "content-length").parse().ok()
}

/// `Content-Range: bytes START-END/TOTAL` with START = `from`.
fn content_range_starts_at(headers: &HeaderMap, from: u64) -> bool {
    let v = header(headers, "content-range");
    let start = v.strip_prefix("bytes ").and_then(|r| r.split('-').next());
    start.and_then(|s| s.parse::<u64>().ok()) == Some(from)
}

fn check_cap(bytes: &[u8], what: &str) -> anyhow::Result<()> {
    if u64::try_from(bytes.len()).map_or(true, |n| n > MAX_JSON) {
        anyhow::bail!("read manifest `{what}`: larger than {MAX_JSON} bytes");
    }
    Ok(())
}

fn check_len(bytes: &[u8], size: u64, digest: &str) -> anyhow::Result<()> {
    if u64::try_from(bytes.len()).ok() != Some(size) {
        anyhow::bail!(
            "verify manifest `{digest}`: {} bytes but the index says {size}",
            bytes.len()
        );
    }
    Ok(())
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
