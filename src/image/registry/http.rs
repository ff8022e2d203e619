//! HTTP for the registry client: choosing https or plain http for a host,
//! authenticating (anonymous, then the `WWW-Authenticate` challenge:
//! Bearer token or Basic), and retrying transient failures.
//!
//! Owns every request hutch sends to a registry. Runs in the `hutch`
//! process, one request at a time on the calling thread (ureq, blocking).
//!
//! ```text
//! GET /v2/<repo>/...           (cached Authorization for host+repo, if any)
//!   401 + Bearer realm,scope → GET realm?service&scope [Basic user:pass] → token → retry once
//!   401 + Basic              → retry once with Basic user:pass from auth.json
//!   5xx, 429, reset          → sleep 250 ms, 1 s (Retry-After up to 5 s); 3 tries at most
//!
//! check_login: GET /v2/
//!   200 → ok;  401 + Basic → retry with user:pass;  401 + Bearer → GET realm?service [Basic user:pass]
//!   401/403 from the retry or the realm → "the registry refused the credentials"
//! ```
//!
//! Redirects (a registry sending blobs to its storage) are followed here,
//! not by ureq, so that each is checked: at most five, to http or https
//! only, never from https down to plain http unless the registry is
//! insecure anyway; the `Authorization` header goes only to the
//! registry's own origin, so a blob store's signed URL never sees it.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use ureq::http::{HeaderMap, Response};
use ureq::{Agent, Body};

use super::auth::{self, Credentials};
use super::challenge::{self, Challenge};
use super::conf::Endpoint;
use super::speed::{self, SpeedFloor};
use crate::errors::hint;

/// Tries of one request, counting the first.
pub(crate) const MAX_TRIES: u32 = 3;
const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);
/// Redirects followed for one request (Docker follows 10, curl 50; a
/// registry needs one, to its blob store).
const MAX_REDIRECTS: u32 = 5;
/// Largest token response or error body read.
const MAX_SMALL_BODY: u64 = 1024 * 1024;

/// Which host a name's API lives on (Docker Hub's differs from its name).
pub(crate) fn api_host(registry: &str) -> &str {
    match registry {
        "docker.io" => "registry-1.docker.io",
        other => other,
    }
}

/// Agents, per-host scheme and per-repository credentials.
pub(crate) struct Transport {
    verified: Agent,
    unverified: Agent,
    tls_verify: bool,
    auth_files: Vec<PathBuf>,
    /// `HUTCH_REGISTRY_TIMEOUT`: also the window of the speed floor.
    timeout: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// `https://host` or `http://host`, once known.
    bases: HashMap<String, String>,
    /// `Authorization` values by `host/repository`.
    auth: HashMap<String, String>,
}

/// What is left of a request's retries.
pub(crate) struct Budget {
    tries_left: u32,
    delay: Duration,
}

impl Budget {
    pub(crate) fn new() -> Budget {
        Budget {
            tries_left: MAX_TRIES.saturating_sub(1),
            delay: Duration::from_millis(250),
        }
    }

    /// Sleeps before the next try and returns true, or returns false when
    /// no tries are left.
    pub(crate) fn retry(&mut self, retry_after: Option<Duration>) -> bool {
        if self.tries_left == 0 {
            return false;
        }
        self.tries_left -= 1;
        std::thread::sleep(retry_after.unwrap_or(self.delay).min(MAX_RETRY_AFTER));
        self.delay = self.delay.saturating_mul(4);
        true
    }
}

impl Transport {
    pub(crate) fn new(
        tls_verify: bool,
        user_agent: &str,
        auth_files: Vec<PathBuf>,
        timeout: Duration,
    ) -> Transport {
        Transport {
            verified: agent(user_agent, true, timeout),
            unverified: agent(user_agent, false, timeout),
            tls_verify,
            auth_files,
            timeout,
            state: Mutex::new(State::default()),
        }
    }

    /// A lock poisoned by a panic elsewhere still holds usable maps.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn insecure(&self, ep: &Endpoint) -> bool {
        !self.tls_verify || ep.insecure
    }

    fn agent(&self, ep: &Endpoint) -> &Agent {
        match self.insecure(ep) {
            true => &self.unverified,
            false => &self.verified,
        }
    }

    /// `https://host`, or for an insecure endpoint whichever of https
    /// (unverified) and plain http answers `/v2/`, as podman does.
    pub(crate) fn base(&self, ep: &Endpoint) -> anyhow::Result<String> {
        let host = api_host(&ep.reference.registry).to_owned();
        if let Some(base) = self.state().bases.get(&host) {
            return Ok(base.clone());
        }
        let https = format!("https://{host}");
        let base = if !self.insecure(ep) {
            https
        } else {
            match self.unverified.get(format!("{https}/v2/")).call() {
                Ok(_) => https,
                Err(https_err) => {
                    let http = format!("http://{host}");
                    self.unverified
                        .get(format!("{http}/v2/"))
                        .call()
                        .map_err(|e| anyhow::anyhow!("{e} (and over https: {https_err})"))
                        .with_context(|| format!("connect to registry `{host}`"))?;
                    http
                }
            }
        };
        self.state().bases.insert(host, base.clone());
        Ok(base)
    }

    /// GETs `/v2/<repo>/<path>` with authentication and retries; any
    /// status is returned for the caller to judge.
    pub(crate) fn get(
        &self,
        ep: &Endpoint,
        path: &str,
        headers: &[(&str, String)],
        budget: &mut Budget,
    ) -> anyhow::Result<Response<Body>> {
        let base = self.base(ep)?;
        let mut url = format!("{base}/v2/{}/{path}", ep.reference.repository);
        let key = auth_key(ep);
        let mut authenticated = false;
        let mut hops = 0;
        loop {
            let mut req = self.agent(ep).get(&url);
            for (k, v) in headers {
                req = req.header(*k, v.as_str());
            }
            // Credentials stay with the registry: never sent along a
            // redirect to another origin (a blob store's signed URL).
            if same_origin(&url, &base) {
                if let Some(a) = self.state().auth.get(&key) {
                    req = req.header("Authorization", a.as_str());
                }
            }
            let resp = match req.call() {
                Ok(resp) => resp,
                Err(e) if is_transient(&e) && budget.retry(None) => continue,
                Err(e) => return Err(self.transport_error(e, ep, &url)),
            };
            let status = resp.status().as_u16();
            if is_redirect(status) {
                hops += 1;
                if hops > MAX_REDIRECTS {
                    anyhow::bail!(
                        "follow redirects from `{url}`: more than {MAX_REDIRECTS} (a redirect loop?)"
                    );
                }
                let location = header(resp.headers(), "location");
                url = redirect_target(&url, &location, self.insecure(ep))
                    .with_context(|| format!("follow the redirect from `{url}`"))?;
                continue;
            }
            if status == 401 && !authenticated && has_challenge(resp.headers()) {
                authenticated = true;
                let value = self.authorize(ep, resp.headers())?;
                self.state().auth.insert(key.clone(), value);
                continue;
            }
            if (status >= 500 || status == 429) && budget.retry(retry_after(resp.headers())) {
                continue;
            }
            return Ok(resp);
        }
    }

    fn transport_error(&self, e: ureq::Error, ep: &Endpoint, url: &str) -> anyhow::Error {
        // Only a failed TLS handshake suggests a plain-HTTP registry:
        // rustls reports it as Tls, or as an I/O error of kind InvalidData
        // ("received corrupt message"), or the server hangs up on the
        // ClientHello (UnexpectedEof). DNS and connection failures do not.
        use std::io::ErrorKind::{InvalidData, UnexpectedEof};
        let tls_failed = matches!(e, ureq::Error::Tls(_))
            || matches!(&e, ureq::Error::Io(io) if matches!(io.kind(), InvalidData | UnexpectedEof));
        let err = anyhow::anyhow!("{e}").context(format!("connect to `{url}`"));
        if !tls_failed || self.insecure(ep) {
            return err;
        }
        let host = &ep.reference.registry;
        hint(
            err,
            format!(
                "if `{host}` is a local registry serving plain HTTP, pass \
                 `--tls-verify=false` or mark it `insecure = true` in registries.conf"
            ),
        )
    }

    /// The `Authorization` value that answers the challenge in `headers`,
    /// with credentials from the auth files.
    fn authorize(&self, ep: &Endpoint, headers: &HeaderMap) -> anyhow::Result<String> {
        let creds = self.credentials(ep)?;
        let scope = format!("repository:{}:pull", ep.reference.repository);
        self.answer(ep, headers, creds.as_ref(), Some(&scope))
    }

    /// The `Authorization` value that answers the challenge in `headers`
    /// with `creds`: a token from a Bearer realm (asking for
    /// `default_scope` when the challenge names none), or Basic.
    fn answer(
        &self,
        ep: &Endpoint,
        headers: &HeaderMap,
        creds: Option<&Credentials>,
        default_scope: Option<&str>,
    ) -> anyhow::Result<String> {
        let challenges: Vec<Challenge> = headers
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(challenge::parse)
            .collect();
        let registry = &ep.reference.registry;
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            let token = self
                .token(ep, bearer, creds, default_scope)
                .with_context(|| format!("authenticate to `{registry}`"))?;
            return Ok(format!("Bearer {token}"));
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            let Some(creds) = creds else {
                let err = anyhow::anyhow!(
                    "authenticate to `{registry}`: it asks for a user name and password"
                );
                return Err(hint(err, format!("log in first: `hutch login {registry}`")));
            };
            return Ok(format!("Basic {}", creds.encode()));
        }
        anyhow::bail!("authenticate to `{registry}`: no supported scheme in `WWW-Authenticate`")
    }

    /// Checks `creds` against the registry of `ep` (`docker login`'s
    /// check): GET `/v2/`; a Basic challenge is answered by retrying with
    /// them, a Bearer one by asking its realm for a token without scope.
    pub(crate) fn check_login(&self, ep: &Endpoint, creds: &Credentials) -> anyhow::Result<()> {
        let registry = &ep.reference.registry;
        let url = format!("{}/v2/", self.base(ep)?);
        let resp = self.call_v2(ep, &url, None)?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        if status != 401 || !has_challenge(resp.headers()) {
            anyhow::bail!("log in to `{registry}`: `{url}` answered HTTP {status}");
        }
        let value = match self.answer(ep, resp.headers(), Some(creds), None) {
            Err(e) if e.chain().any(|c| c.is::<Refused>()) => return Err(refused(registry)),
            other => other?,
        };
        if value.starts_with("Bearer ") {
            return Ok(());
        }
        let status = self.call_v2(ep, &url, Some(&value))?.status().as_u16();
        match status {
            200..=299 => Ok(()),
            401 | 403 => Err(refused(registry)),
            _ => anyhow::bail!("log in to `{registry}`: `{url}` answered HTTP {status}"),
        }
    }

    /// GETs `url` once, with `authorization` if given; retries only
    /// transient failures.
    fn call_v2(
        &self,
        ep: &Endpoint,
        url: &str,
        authorization: Option<&str>,
    ) -> anyhow::Result<Response<Body>> {
        let mut budget = Budget::new();
        loop {
            let mut req = self.agent(ep).get(url);
            if let Some(a) = authorization {
                req = req.header("Authorization", a);
            }
            match req.call() {
                Ok(resp) => return Ok(resp),
                Err(e) if is_transient(&e) && budget.retry(None) => continue,
                Err(e) => return Err(self.transport_error(e, ep, url)),
            }
        }
    }

    fn credentials(&self, ep: &Endpoint) -> anyhow::Result<Option<Credentials>> {
        let r = &ep.reference;
        for path in &self.auth_files {
            if let Some(c) = auth::lookup_in(path, &r.registry, &r.repository)? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }

    /// GETs a token from the challenge's realm (RFC 6750; the Docker
    /// token protocol), sending basic credentials when we have them.
    fn token(
        &self,
        ep: &Endpoint,
        bearer: &Challenge,
        creds: Option<&Credentials>,
        default_scope: Option<&str>,
    ) -> anyhow::Result<String> {
        let realm = bearer.param("realm").unwrap_or_default();
        // Credentials go to the realm: never in clear text from a registry
        // that is itself reached over verified TLS.
        let plain_ok = self.insecure(ep) && realm.starts_with("http://");
        if !(realm.starts_with("https://") || plain_ok) {
            anyhow::bail!("read the token realm `{realm}`: not an https URL");
        }
        let mut query = Vec::new();
        if let Some(scope) = bearer.param("scope").or(default_scope) {
            query.push(("scope", scope));
        }
        if let Some(service) = bearer.param("service") {
            query.push(("service", service));
        }
        let mut req = self.agent(ep).get(realm);
        for (k, v) in query {
            req = req.query(k, v);
        }
        if let Some(c) = creds {
            req = req.header("Authorization", format!("Basic {}", c.encode()));
        }
        let resp = req
            .call()
            .with_context(|| format!("get a token from `{realm}`"))?;
        let status = resp.status().as_u16();
        let body = read_small(resp.into_body(), self.timeout)?;
        if status != 200 {
            let what = format!(
                "get a token from `{realm}`: HTTP {status}{}",
                error_detail(&body)
            );
            if status == 401 || status == 403 {
                let registry = &ep.reference.registry;
                return Err(hint(
                    Refused(what),
                    format!("check your login: `hutch login {registry}`"),
                ));
            }
            return Err(anyhow::anyhow!(what));
        }
        parse_token(&body).with_context(|| format!("read the token from `{realm}`"))
    }
}

/// A token realm turned the credentials down (HTTP 401 or 403).
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

fn refused(registry: &str) -> anyhow::Error {
    hint(
        anyhow::anyhow!("log in to `{registry}`: the registry refused the credentials"),
        "check the user name and password (or token) and try again",
    )
}

/// An agent whose every wait is bounded by `timeout` (connecting at
/// most 30 s): a registry that stalls fails the request, never hangs it.
fn agent(user_agent: &str, verify: bool, timeout: Duration) -> Agent {
    let tls = ureq::tls::TlsConfig::builder()
        .disable_verification(!verify)
        .build();
    Agent::config_builder()
        .http_status_as_error(false)
        .user_agent(user_agent)
        .tls_config(tls)
        // Redirects are followed by `Transport::get`, which checks each
        // target; elsewhere a redirect is an answer like any other.
        .max_redirects(0)
        .timeout_connect(Some(timeout.min(Duration::from_secs(30))))
        .timeout_recv_response(Some(timeout))
        .timeout_per_read(Some(timeout))
        .build()
        .new_agent()
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// A header's value as text, trimmed; empty when absent or not text.
pub(super) fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// `scheme://authority` of an absolute http(s) URL.
fn origin(url: &str) -> &str {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url;
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    url.get(..scheme.len() + 3 + end).unwrap_or(url)
}

fn same_origin(a: &str, b: &str) -> bool {
    origin(a).eq_ignore_ascii_case(origin(b))
}

/// The URL a redirect from `current` to `location` leads to (RFC 3986
/// reference resolution, the forms registries use); only http and https,
/// and https → http only when plain http is allowed anyway.
pub(crate) fn redirect_target(
    current: &str,
    location: &str,
    insecure: bool,
) -> anyhow::Result<String> {
    if location.is_empty() {
        anyhow::bail!("the redirect has no `Location`");
    }
    if location.chars().any(|c| c.is_control() || c == ' ') {
        anyhow::bail!("the redirect's `Location` is not a URL");
    }
    let scheme_end = location.find(':').filter(|&i| {
        let s = location.get(..i).unwrap_or_default();
        s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    let target = match scheme_end {
        Some(i) => {
            let scheme = location.get(..i).unwrap_or_default().to_ascii_lowercase();
            let rest = location.get(i + 1..).unwrap_or_default();
            if !matches!(scheme.as_str(), "http" | "https") || !rest.starts_with("//") {
                anyhow::bail!(
                    "`{location}`: only http and https URLs are followed (scheme `{scheme}`)"
                );
            }
            format!("{scheme}:{rest}")
        }
        None if location.starts_with("//") => {
            let scheme = current.split("://").next().unwrap_or("https");
            format!("{scheme}:{location}")
        }
        None if location.starts_with('/') => format!("{}{location}", origin(current)),
        None => {
            let path_end = current.find(['?', '#']).unwrap_or(current.len());
            let path = current.get(..path_end).unwrap_or(current);
            let dir = path
                .rfind('/')
                .map_or(path, |i| path.get(..=i).unwrap_or(path));
            format!("{dir}{location}")
        }
    };
    let authority = target.split_once("://").map_or("", |(_, r)| r);
    if authority.is_empty() || authority.starts_with('/') {
        anyhow::bail!("`{location}`: no host");
    }
    if current.starts_with("https://") && target.starts_with("http://") && !insecure {
        anyhow::bail!("`{location}`: from https down to plain http");
    }
    Ok(target)
}

fn auth_key(ep: &Endpoint) -> String {
    format!("{}/{}", ep.reference.registry, ep.reference.repository)
}

fn has_challenge(headers: &HeaderMap) -> bool {
    headers.contains_key("www-authenticate")
}

/// Connection resets, timeouts and dropped connections; not refused
/// connections, TLS or protocol errors, which a retry would only repeat.
pub(crate) fn is_transient(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Io(io) => is_transient_io(io.kind()),
        ureq::Error::Timeout(_) => true,
        _ => false,
    }
}

pub(crate) fn is_transient_io(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        kind,
        ConnectionReset | ConnectionAborted | BrokenPipe | TimedOut | UnexpectedEof | Interrupted
    )
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get("retry-after")?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Reads at most [`MAX_SMALL_BODY`] bytes of a body, at least
/// [`speed::FLOOR`] bytes per `window`.
pub(crate) fn read_small(body: Body, window: Duration) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    SpeedFloor::new(body.into_reader(), window)
        .take(MAX_SMALL_BODY.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(speed::explain)
        .context("read the response")?;
    if u64::try_from(buf.len()).map_or(true, |n| n > MAX_SMALL_BODY) {
        anyhow::bail!("read the response: larger than {MAX_SMALL_BODY} bytes");
    }
    Ok(buf)
}

fn parse_token(body: &[u8]) -> anyhow::Result<String> {
    #[derive(serde::Deserialize)]
    struct TokenResponse {
        token: Option<String>,
        access_token: Option<String>,
    }
    let t: TokenResponse = serde_json::from_slice(body).context("decode the token response")?;
    let token = t.token.or(t.access_token).unwrap_or_default();
    let printable = token.bytes().all(|b| b.is_ascii_graphic());
    if token.is_empty() || !printable {
        anyhow::bail!("decode the token response: no usable `token` or `access_token`");
    }
    Ok(token)
}

/// `: CODE: message` from an OCI error body, printable and short.
pub(crate) fn error_detail(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorItem {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let Ok(errors) = serde_json::from_slice::<Errors>(body) else {
        return String::new();
    };
    let Some(first) = errors.errors.first() else {
        return String::new();
    };
    let text: String = format!("{}: {}", first.code, first.message)
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    format!(" ({text})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_error_bodies_are_checked() {
        assert_eq!(parse_token(br#"{"token":"abc"}"#).unwrap(), "abc");
        assert_eq!(parse_token(br#"{"access_token":"xyz"}"#).unwrap(), "xyz");
        for bad in [
            &br#"{}"#[..],
            br#"{"token":""}"#,
            br#"{"token":"a\r\nX-Evil: 1"}"#,
            b"<html>",
        ] {
            assert!(parse_token(bad).is_err());
        }
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest\nunknown"}]}"#;
        assert_eq!(error_detail(body), " (MANIFEST_UNKNOWN: manifestunknown)");
        assert_eq!(error_detail(b"nope"), "");
        assert_eq!(error_detail(br#"{"errors":[]}"#), "");
    }

    #[test]
    fn redirect_targets_are_checked() {
        let cur = "https://reg.io:5000/v2/a/b/blobs/sha256:00?x=1";
        let ok = |loc: &str| redirect_target(cur, loc, false).unwrap();
        let bad = |loc: &str| format!("{:#}", redirect_target(cur, loc, false).unwrap_err());
        assert_eq!(ok("https://cdn.io/x?sig=1"), "https://cdn.io/x?sig=1");
        assert_eq!(ok("HTTPS://cdn.io/x"), "https://cdn.io/x");
        assert_eq!(ok("//cdn.io/x"), "https://cdn.io/x");
        assert_eq!(ok("/v2/other"), "https://reg.io:5000/v2/other");
        assert_eq!(
            ok("./sha256:11"),
            "https://reg.io:5000/v2/a/b/blobs/./sha256:11"
        );
        assert_eq!(ok("next"), "https://reg.io:5000/v2/a/b/blobs/next");
        for (loc, why) in [
            ("file:///etc/passwd", "only http and https"),
            ("ftp://127.0.0.1/x", "only http and https"),
            ("javascript:alert(1)", "only http and https"),
            ("sha256:11", "only http and https"),
            ("http:/x", "only http and https"),
            ("http://cdn.io/x", "down to plain http"),
            ("https:///x", "no host"),
            ("", "no `Location`"),
            ("https://a b/", "not a URL"),
            ("https://a/\r\nX: y", "not a URL"),
        ] {
            assert!(bad(loc).contains(why), "{loc}: {}", bad(loc));
        }
        // Plain http is fine where the registry itself is insecure.
        let http = redirect_target(cur, "http://cdn.io/x", true).unwrap();
        assert_eq!(http, "http://cdn.io/x");
        assert!(same_origin("https://A.io/x", "https://a.io"));
        assert!(!same_origin("https://a.io:1/x", "https://a.io"));
        assert!(!same_origin("http://a.io/x", "https://a.io"));
    }

    #[test]
    fn budget_is_bounded() {
        let mut b = Budget {
            tries_left: MAX_TRIES - 1,
            delay: Duration::from_millis(1),
        };
        assert!(b.retry(None));
        assert!(b.retry(Some(Duration::from_millis(1))));
        assert!(!b.retry(None));
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("quay.io"), "quay.io");
    }
}
