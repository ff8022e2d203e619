//! The client against a fake registry: a std TcpListener on 127.0.0.1
//! answering canned responses, one request per connection. Bounded: each
//! server takes at most 100 connections and reads with a 5 s timeout.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::*;
use crate::image::registry::auth::{self, Credentials};
use crate::image::registry::manifest::{OCI_INDEX, OCI_MANIFEST};

#[derive(Debug, Clone)]
struct Req {
    path: String,
    headers: HashMap<String, String>,
}

type Handler = dyn Fn(&Req, usize) -> Vec<u8> + Send + Sync;

struct Server {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Req>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(handler: impl Fn(&Req, usize) -> Vec<u8> + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let (reqs, stopped) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming().take(100) {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                serve(stream, &*handler, &reqs);
            }
        });
        Server {
            addr,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    fn reference(&self, rest: &str) -> Reference {
        Reference::parse(&format!("{}/{rest}", self.addr)).unwrap()
    }

    fn requests(&self) -> Vec<Req> {
        self.requests.lock().unwrap().clone()
    }

    fn paths(&self) -> Vec<String> {
        self.requests().into_iter().map(|r| r.path).collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut stream: TcpStream, handler: &Handler, reqs: &Mutex<Vec<Req>>) {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 65536 {
        match stream.read(&mut chunk) {
            // A TLS ClientHello (0x16) is not for us: close at once.
            Ok(n) if n > 0 && chunk[0] != 0x16 => buf.extend_from_slice(&chunk[..n]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines = text.split("\r\n");
    let path = lines
        .next()
        .unwrap_or("")
        .split(' ')
        .nth(1)
        .unwrap_or("")
        .to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
        .collect();
    let req = Req { path, headers };
    let n = {
        let mut all = reqs.lock().unwrap();
        all.push(req.clone());
        all.len() - 1
    };
    let _ = stream.write_all(&handler(&req, n));
}

fn resp(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} X\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// A response whose body is delimited by closing the connection.
fn resp_unsized(body: &[u8]) -> Vec<u8> {
    let mut out = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
    out.extend_from_slice(body);
    out
}

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", blob::hex(&Sha256::digest(bytes)))
}

/// A one-layer image: (manifest, config, layer).
fn image(tag: &str) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let layer = format!("layer bytes of {tag}").repeat(1000).into_bytes();
    let config = format!(r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["{tag}"]}}}}"#)
        .into_bytes();
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(&layer), "size": layer.len()}],
    });
    (manifest.to_string().into_bytes(), config, layer)
}

/// A registry serving `blobs` (manifests and blobs by digest) and `tags`.
fn registry(tags: Vec<(&'static str, Vec<u8>)>, blobs: Vec<Vec<u8>>) -> Server {
    let by_digest: HashMap<String, Vec<u8>> = blobs.into_iter().map(|b| (sha(&b), b)).collect();
    let tags: HashMap<&str, Vec<u8>> = tags.into_iter().collect();
    Server::start(move |req, _| {
        let p = req.path.as_str();
        if p == "/v2/" {
            return resp(200, &[], b"{}");
        }
        let Some(rest) = p.strip_prefix("/v2/test/img/") else {
            return resp(
                404,
                &[],
                br#"{"errors":[{"code":"NAME_UNKNOWN","message":"no"}]}"#,
            );
        };
        let (kind, name) = rest.split_once('/').unwrap_or_default();
        let body = tags.get(name).or_else(|| by_digest.get(name));
        match (kind, body) {
            ("manifests", Some(b)) => {
                let media = serde_json::from_slice::<serde_json::Value>(b).unwrap()["mediaType"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                resp(200, &[("Content-Type", &media)], b)
            }
            ("blobs", Some(b)) => resp(200, &[], b),
            _ => resp(
                404,
                &[],
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}"#,
            ),
        }
    })
}

fn client_with(tls_verify: bool, conf: RegistriesConf, auth_files: Vec<PathBuf>) -> Client {
    Client::new(ClientOptions {
        tls_verify,
        platform: Platform::parse("linux/amd64").unwrap(),
        user_agent: "hutch-test".into(),
        conf,
        auth_files,
        timeout: Duration::from_secs(10),
    })
}

fn client() -> Client {
    client_with(false, RegistriesConf::default(), vec![])
}

fn fetch_all(c: &Client, r: &Reference, res: &Resolved) -> Vec<Vec<u8>> {
    res.manifest
        .layers
        .iter()
        .map(|l| {
            let mut out = Vec::new();
            c.fetch_blob(r, &l.digest, l.size, &mut out).unwrap();
            out
        })
        .collect()
}

#[test]
fn resolves_a_tag_and_fetches_its_blobs() {
    let (m, cfg, layer) = image("one");
    let server = registry(
        vec![("latest", m.clone())],
        vec![m.clone(), cfg.clone(), layer.clone()],
    );
    let c = client();
    let r = server.reference("test/img:latest");
    let res = c.resolve(&r).unwrap();
    assert_eq!(res.manifest_digest, sha(&m));
    assert_eq!(res.manifest_bytes, m);
    assert_eq!(res.config_digest, sha(&cfg));
    assert_eq!(res.config_bytes, cfg);
    assert_eq!(fetch_all(&c, &r, &res), [layer]);
    let by_digest = server.reference(&format!("test/img@{}", sha(&m)));
    assert_eq!(c.resolve(&by_digest).unwrap().manifest_digest, sha(&m));
    let accept = &server.requests()[1].headers["accept"];
    assert!(
        accept.contains(OCI_INDEX) && accept.contains("manifest.list.v2"),
        "{accept}"
    );
}

#[test]
fn chooses_the_platform_from_an_index_and_checks_each_manifest() {
    let (m_amd, cfg_amd, l_amd) = image("amd");
    let (m_arm, cfg_arm, l_arm) = image("arm");
    let entry = |m: &[u8], arch: &str| {
        serde_json::json!({"mediaType": OCI_MANIFEST, "digest": sha(m), "size": m.len(),
            "platform": {"os": "linux", "architecture": arch}})
    };
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [entry(&m_amd, "amd64"), entry(&m_arm, "arm64")]})
    .to_string()
    .into_bytes();
    let blobs = vec![
        m_amd.clone(),
        cfg_amd,
        l_amd,
        m_arm.clone(),
        cfg_arm.clone(),
        l_arm.clone(),
    ];
    let server = registry(vec![("multi", index.clone())], blobs);
    let r = server.reference("test/img:multi");
    let mut c = client();
    c.opts.platform = Platform::parse("linux/arm64").unwrap();
    let res = c.resolve(&r).unwrap();
    assert_eq!(res.manifest_digest, sha(&m_arm));
    assert_eq!(res.config_bytes, cfg_arm);
    assert_eq!(fetch_all(&c, &r, &res), [l_arm]);
    c.opts.platform = Platform::parse("linux/s390x").unwrap();
    let err = format!("{:#}", c.resolve(&r).unwrap_err());
    assert!(err.contains("linux/amd64, linux/arm64"), "{err}");

    // An index whose entry points at different bytes than it says.
    let (m_other, ..) = image("other");
    let lying = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [entry(&m_amd, "amd64")]});
    let d_amd = sha(&m_amd);
    let server = Server::start(move |req, _| match req.path.as_str() {
        "/v2/test/img/manifests/t" => resp(200, &[], lying.to_string().as_bytes()),
        p if p.ends_with(&d_amd) => resp(200, &[("Content-Type", OCI_MANIFEST)], &m_other),
        _ => resp(404, &[], b""),
    });
    let err = format!(
        "{:#}",
        client()
            .resolve(&server.reference("test/img:t"))
            .unwrap_err()
    );
    assert!(
        err.contains("verify manifest") && err.contains("its content has digest"),
        "{err}"
    );
}

#[test]
fn refuses_lying_oversized_and_schema1_manifests() {
    let (m, ..) = image("x");
    let wrong = sha(b"something else");
    let server = Server::start(move |req, _| match req.path.as_str() {
        "/v2/test/img/manifests/lies" => resp(
            200,
            &[
                ("Content-Type", OCI_MANIFEST),
                ("Docker-Content-Digest", &wrong),
            ],
            &m,
        ),
        "/v2/test/img/manifests/huge" => {
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5000000\r\n\r\n{".to_vec()
        }
        "/v2/test/img/manifests/endless" => resp_unsized(&vec![b' '; 5 * 1024 * 1024]),
        "/v2/test/img/manifests/old" => resp(
            200,
            &[(
                "Content-Type",
                "application/vnd.docker.distribution.manifest.v1+prettyjws",
            )],
            br#"{"schemaVersion":1}"#,
        ),
        _ => resp(404, &[], b""),
    });
    let c = client();
    for (tag, want) in [
        ("lies", "the registry says digest"),
        ("huge", "larger than 4194304 bytes"),
        ("endless", "larger than 4194304 bytes"),
        ("old", "schema 1"),
        ("missing", "HTTP 404"),
    ] {
        let err = format!(
            "{:#}",
            c.resolve(&server.reference(&format!("test/img:{tag}")))
                .unwrap_err()
        );
        assert!(err.contains(want), "{tag}: {err}");
    }
    let err = c
        .resolve(&server.reference("test/img:missing"))
        .unwrap_err();
    let (_, hints, _) = crate::errors::split(&err);
    assert!(hints[0].contains("check the image name"), "{hints:?}");
}

#[test]
fn blobs_must_match_size_and_digest() {
    let data = b"0123456789".repeat(100);
    let d = sha(&data);
    let body = data.clone();
    let server = Server::start(move |req, _| {
        let mut more = body.clone();
        more.extend_from_slice(b"EXTRA");
        match req.path.rsplit('/').next().unwrap_or("") {
            "v2" | "" => resp(200, &[], b"{}"),
            _ if req.path.starts_with("/v2/more/") => resp_unsized(&more),
            _ if req.path.starts_with("/v2/length/") => resp(200, &[], &more),
            _ if req.path.starts_with("/v2/short/") => resp_unsized(&body[..500]),
            _ if req.path.starts_with("/v2/flipped/") => {
                let mut b = body.clone();
                b[7] ^= 1;
                resp(200, &[], &b)
            }
            _ => resp(200, &[], &body),
        }
    });
    let c = client();
    let fetch = |repo: &str, size: u64| {
        let mut out = Vec::new();
        let r = c.fetch_blob(&server.reference(repo), &d, size, &mut out);
        (r.map_err(|e| format!("{e:#}")), out)
    };
    let (ok, out) = fetch("good/x", 1000);
    assert!(ok.is_ok(), "{ok:?}");
    assert_eq!(out, data);
    let (err, out) = fetch("more/x", 1000);
    assert!(err
        .unwrap_err()
        .contains("more bytes than the descriptor's 1000"));
    assert!(out.len() <= 1000);
    let (err, _) = fetch("length/x", 1000);
    assert!(err.unwrap_err().contains("sends 1005 bytes"));
    let (err, _) = fetch("flipped/x", 1000);
    assert!(err.unwrap_err().contains("its content has digest"));
    let (err, _) = fetch("good/x", 999);
    assert!(err.unwrap_err().contains("descriptor says 999"));
    let (err, _) = fetch("short/x", 1000);
    assert!(err.unwrap_err().contains("ended after 500 of 1000 bytes"));
    let mut out = Vec::new();
    let bad = c.fetch_blob(&server.reference("good/x"), "sha256:../../x", 1, &mut out);
    assert!(bad.is_err());
}

#[test]
fn retries_server_errors_then_gives_up() {
    let data = b"retry me".to_vec();
    let d = sha(&data);
    let body = data.clone();
    let server = Server::start(move |req, n| match req.path.as_str() {
        "/v2/" => resp(200, &[], b"{}"),
        p if p.starts_with("/v2/flaky/") && n < 3 => resp(503, &[("Retry-After", "0")], b""),
        p if p.starts_with("/v2/flaky/") => resp(200, &[], &body),
        _ => resp(500, &[], b""),
    });
    let c = client();
    let mut out = Vec::new();
    c.fetch_blob(&server.reference("flaky/x"), &d, 8, &mut out)
        .unwrap();
    assert_eq!(out, data);
    let before = server.requests().len();
    let started = std::time::Instant::now();
    let err = c
        .fetch_blob(&server.reference("down/x"), &d, 8, &mut Vec::new())
        .unwrap_err();
    assert!(format!("{err:#}").contains("HTTP 500"), "{err:#}");
    assert_eq!(server.requests().len() - before, http::MAX_TRIES as usize);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn resumes_a_dropped_stream_with_a_range_request() {
    let data: Vec<u8> = (0..=255u8).cycle().take(200_000).collect();
    let d = sha(&data);
    let body = data.clone();
    let server = Server::start(move |req, _| {
        if req.path == "/v2/" {
            return resp(200, &[], b"{}");
        }
        match req.headers.get("range") {
            None => {
                // Promise everything, send a third, hang up.
                let mut out = format!(
                    "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                out.extend_from_slice(&body[..70_000]);
                out
            }
            Some(range) => {
                let from: usize = range
                    .trim_start_matches("bytes=")
                    .trim_end_matches('-')
                    .parse()
                    .unwrap();
                let cr = format!("bytes {from}-{}/{}", body.len() - 1, body.len());
                let mut r = resp(200, &[("Content-Range", &cr)], &body[from..]);
                r[9..12].copy_from_slice(b"206");
                r
            }
        }
    });
    let mut out = Vec::new();
    client()
        .fetch_blob(&server.reference("r/x"), &d, 200_000, &mut out)
        .unwrap();
    assert_eq!(out.len(), data.len());
    assert!(out == data);
    let ranges: Vec<_> = server
        .requests()
        .iter()
        .filter_map(|r| r.headers.get("range").cloned())
        .collect();
    assert_eq!(ranges, ["bytes=70000-"]);
}

fn auth_file(dir: &tempfile::TempDir, key: &str) -> PathBuf {
    let path = dir.path().join("auth.json");
    let creds = Credentials {
        username: "alice".into(),
        password: "s3cret".into(),
    };
    auth::add(&path, key, &creds).unwrap();
    path
}

#[test]
fn bearer_challenge_gets_a_token_with_basic_credentials() {
    let (m, cfg, layer) = image("auth");
    let blobs: HashMap<String, Vec<u8>> = [m.clone(), cfg, layer]
        .into_iter()
        .map(|b| (sha(&b), b))
        .collect();
    let basic = format!(
        "Basic {}",
        Credentials {
            username: "alice".into(),
            password: "s3cret".into()
        }
        .encode()
    );
    let server = Server::start(move |req, _| {
        let host = req.headers.get("host").cloned().unwrap_or_default();
        let auth = req.headers.get("authorization").map(String::as_str);
        if req.path.starts_with("/token?") {
            let scoped = req.path.contains("scope=repository%3Atest%2Fimg%3Apull")
                || req.path.contains("scope=repository:test/img:pull");
            assert!(scoped, "{}", req.path);
            assert!(req.path.contains("service=fake"), "{}", req.path);
            return match auth == Some(basic.as_str()) {
                true => resp(200, &[], br#"{"token":"tok-123"}"#),
                false => resp(401, &[], b""),
            };
        }
        if auth != Some("Bearer tok-123") {
            let challenge = format!(
                r#"Bearer realm="http://{host}/token",service="fake",scope="repository:test/img:pull""#
            );
            return resp(401, &[("WWW-Authenticate", &challenge)], b"");
        }
        let name = req.path.rsplit('/').next().unwrap_or("");
        match (req.path.contains("/manifests/"), blobs.get(name)) {
            (true, _) => resp(200, &[("Content-Type", OCI_MANIFEST)], &blobs[&sha(&m)]),
            (false, Some(b)) => resp(200, &[], b),
            _ => resp(404, &[], b""),
        }
    });
    let r = server.reference("test/img:latest");
    let err = client().resolve(&r).unwrap_err();
    assert!(format!("{err:#}").contains("HTTP 401"), "{err:#}");
    let (_, hints, _) = crate::errors::split(&err);
    assert!(hints.iter().any(|h| h.contains("hutch login")), "{hints:?}");

    let dir = tempfile::tempdir().unwrap();
    let c = client_with(
        false,
        RegistriesConf::default(),
        vec![auth_file(&dir, &server.addr.to_string())],
    );
    let res = c.resolve(&r).unwrap();
    assert_eq!(fetch_all(&c, &r, &res).len(), 1);
    let tokens = server
        .paths()
        .iter()
        .filter(|p| p.starts_with("/token"))
        .count();
    assert_eq!(
        tokens, 2,
        "one failed anonymous try, then one token for the whole pull"
    );
}

#[test]
fn basic_challenge_and_redirects_keep_credentials_at_home() {
    let data = b"redirected blob".to_vec();
    let d = sha(&data);
    let body = data.clone();
    let server = Server::start(move |req, _| {
        let auth = req.headers.get("authorization");
        let port = req.headers["host"]
            .rsplit(':')
            .next()
            .unwrap_or("")
            .to_owned();
        match req.path.as_str() {
            "/v2/" => resp(200, &[], b"{}"),
            "/elsewhere" => resp(200, &[], &body),
            _ if auth.is_none() => resp(401, &[("WWW-Authenticate", r#"Basic realm="reg""#)], b""),
            _ => resp(
                307,
                &[("Location", &format!("http://localhost:{port}/elsewhere"))],
                b"",
            ),
        }
    });
    let r = server.reference("test/img:latest");
    let err = client()
        .fetch_blob(&r, &d, 15, &mut Vec::new())
        .unwrap_err();
    let (chain, hints, _) = crate::errors::split(&err);
    assert!(
        chain
            .join(": ")
            .contains("asks for a user name and password"),
        "{chain:?}"
    );
    assert!(hints[0].contains("hutch login 127.0.0.1:"), "{hints:?}");

    let dir = tempfile::tempdir().unwrap();
    let c = client_with(
        false,
        RegistriesConf::default(),
        vec![auth_file(&dir, "127.0.0.1")],
    );
    let mut out = Vec::new();
    // The key `127.0.0.1` does not match `127.0.0.1:PORT`.
    assert!(c.fetch_blob(&r, &d, 15, &mut out).is_err());
    let c = client_with(
        false,
        RegistriesConf::default(),
        vec![auth_file(&dir, &server.addr.to_string())],
    );
    c.fetch_blob(&r, &d, 15, &mut out).unwrap();
    assert_eq!(out, data);
    let reqs = server.requests();
    let elsewhere = reqs.iter().find(|r| r.path == "/elsewhere").unwrap();
    assert!(
        !elsewhere.headers.contains_key("authorization"),
        "{elsewhere:?}"
    );
    assert!(reqs.iter().any(|r| r
        .headers
        .get("authorization")
        .is_some_and(|a| a.starts_with("Basic "))));
}

#[test]
fn plain_http_needs_tls_verify_false_and_mirrors_come_first() {
    let (m, cfg, layer) = image("mirrored");
    let server = registry(vec![("latest", m)], vec![cfg, layer]);
    let r = server.reference("test/img:latest");
    let err = client_with(true, RegistriesConf::default(), vec![])
        .resolve(&r)
        .unwrap_err();
    let (_, hints, _) = crate::errors::split(&err);
    assert!(
        hints.iter().any(|h| h.contains("--tls-verify=false")),
        "{err:#} {hints:?}"
    );

    let mirror = Server::start(|_, _| resp(404, &[], b""));
    let text = format!(
        "[[registry]]\nlocation = \"{0}\"\ninsecure = true\n[[registry.mirror]]\nlocation = \"{1}\"\ninsecure = true\n",
        server.addr, mirror.addr
    );
    let conf = RegistriesConf::parse(&text, std::path::Path::new("t.conf")).unwrap();
    let c = client_with(true, conf, vec![]);
    let res = c.resolve(&r).unwrap();
    assert_eq!(res.source, r);
    assert!(mirror
        .paths()
        .iter()
        .any(|p| p.starts_with("/v2/test/img/manifests/")));
    assert_eq!(fetch_all(&c, &r, &res).len(), 1);
}

/// A registry whose `/v2/` answers `challenge` unless given `good`; its
/// `/token` realm hands out a token for `good` basic credentials only.
fn login_server(scheme: &'static str) -> Server {
    let good = Credentials {
        username: "alice".into(),
        password: "s3cret".into(),
    };
    let basic = format!("Basic {}", good.encode());
    Server::start(move |req, _| {
        let host = req.headers.get("host").cloned().unwrap_or_default();
        let auth = req.headers.get("authorization").map(String::as_str);
        if req.path.starts_with("/token") {
            assert!(!req.path.contains("scope="), "{}", req.path);
            assert!(req.path.contains("service=fake"), "{}", req.path);
            return match auth == Some(basic.as_str()) {
                true => resp(200, &[], br#"{"token":"tok"}"#),
                false => resp(401, &[], b""),
            };
        }
        if auth == Some(basic.as_str()) {
            return resp(200, &[], b"{}");
        }
        let challenge = match scheme {
            "bearer" => format!(r#"Bearer realm="http://{host}/token",service="fake""#),
            _ => r#"Basic realm="fake""#.to_owned(),
        };
        resp(401, &[("WWW-Authenticate", &challenge)], b"")
    })
}

#[test]
fn check_login_answers_basic_and_bearer_challenges() {
    let creds = |p: &str| Credentials {
        username: "alice".into(),
        password: p.into(),
    };
    for scheme in ["basic", "bearer"] {
        let server = login_server(scheme);
        let addr = server.addr.to_string();
        client().check_login(&addr, &creds("s3cret")).unwrap();
        let err = client().check_login(&addr, &creds("wrong")).unwrap_err();
        let (chain, hints, _) = crate::errors::split(&err);
        assert_eq!(
            chain,
            [format!(
                "log in to `{addr}`: the registry refused the credentials"
            )],
            "{scheme}"
        );
        assert_eq!(hints.len(), 1, "{scheme}: {hints:?}");
    }
    // An open registry takes anything; plain HTTP needs --tls-verify=false.
    let open = registry(vec![], vec![]);
    let addr = open.addr.to_string();
    client().check_login(&addr, &creds("any")).unwrap();
    let verified = client_with(true, RegistriesConf::default(), vec![]);
    assert!(verified.check_login(&addr, &creds("any")).is_err());
}
