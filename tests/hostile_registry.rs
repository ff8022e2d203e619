//! `hutch pull` from hostile registries: a fake registry in this test
//! process (std TcpListener on 127.0.0.1, one thread per connection)
//! that redirects, stalls, trickles, sends more than the descriptor
//! says, or never ends a body. hutch runs as the unprivileged user hutch-t1.
//!
//! Every case pulls a good image first, then the hostile one, and checks
//! what a user would: a clear error (exit 125), no new image, no new blob
//! but verified ones, no temporary files left, every blob of the store
//! still matching its digest, and the earlier image still running.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::layout::{self, Entry, Layout};
use common::*;
use serde_json::Value;

/// What the fake registry does with one request.
enum Reply {
    /// Write these bytes and close.
    Bytes(Vec<u8>),
    /// Write the head, then keep the connection open, silent, until the
    /// server stops (at most 60 s).
    Stall(Vec<u8>),
    /// Write the head, then zeros (chunked or not) until the client hangs
    /// up, the server stops, or 1 GiB / 60 s have gone.
    Endless { head: Vec<u8>, chunked: bool },
    /// Write the head, then `body` `chunk` bytes at a time, sleeping
    /// `every` before each, until done, the client hangs up, the server
    /// stops, or 60 s have gone.
    Trickle {
        head: Vec<u8>,
        body: Vec<u8>,
        chunk: usize,
        every: Duration,
    },
}

type Handler = dyn Fn(&str) -> Reply + Send + Sync;

/// A fake registry; stops (and ends every connection) on drop.
struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(handler: impl Fn(&str) -> Reply + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let stopped = stop.clone();
        let thread = thread::spawn(move || {
            let mut workers = Vec::new();
            for stream in listener.incoming().take(300) {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (h, s) = (handler.clone(), stopped.clone());
                workers.push(thread::spawn(move || serve(stream, &*h, &s)));
            }
            for w in workers {
                let _ = w.join();
            }
        });
        Server {
            addr,
            stop,
            thread: Some(thread),
        }
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

fn serve(mut stream: TcpStream, handler: &Handler, stop: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 65536 {
        match stream.read(&mut chunk) {
            Ok(n) if n > 0 && chunk[0] != 0x16 => buf.extend_from_slice(&chunk[..n]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let path = text.split(' ').nth(1).unwrap_or("").to_owned();
    let end = Instant::now() + Duration::from_secs(60);
    match handler(&path) {
        Reply::Bytes(b) => {
            let _ = stream.write_all(&b);
        }
        Reply::Stall(head) => {
            let _ = stream.write_all(&head);
            while !stop.load(Ordering::SeqCst) && Instant::now() < end {
                thread::sleep(Duration::from_millis(50));
            }
        }
        Reply::Endless { head, chunked } => {
            if stream.write_all(&head).is_err() {
                return;
            }
            let zeros = vec![b'0'; 64 * 1024];
            let mut frame = format!("{:x}\r\n", zeros.len()).into_bytes();
            frame.extend_from_slice(&zeros);
            frame.extend_from_slice(b"\r\n");
            let piece = if chunked { &frame } else { &zeros };
            for _ in 0..(1 << 14) {
                if stop.load(Ordering::SeqCst) || Instant::now() > end {
                    break;
                }
                if stream.write_all(piece).is_err() {
                    break;
                }
            }
        }
        Reply::Trickle {
            head,
            body,
            chunk,
            every,
        } => {
            if stream.write_all(&head).is_err() {
                return;
            }
            for piece in body.chunks(chunk) {
                thread::sleep(every);
                if stop.load(Ordering::SeqCst) || Instant::now() > end {
                    break;
                }
                if stream
                    .write_all(piece)
                    .and_then(|_| stream.flush())
                    .is_err()
                {
                    break;
                }
            }
        }
    }
}

fn resp(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Reply {
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
    Reply::Bytes(out)
}

fn head(headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = String::from("HTTP/1.1 200 OK\r\nConnection: close\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

fn redirect(to: &str) -> Reply {
    resp(307, &[("Location", to)], b"")
}

/// How the hostile repository misbehaves on its attacked request.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Attack {
    /// None: serve honestly (the control).
    Honest,
    /// The new layer's blob redirects to a second loopback server.
    RedirectElsewhere,
    /// The new layer's blob redirects to itself, forever.
    RedirectLoop,
    /// The new layer's blob redirects to `file:///etc/passwd`.
    RedirectFile,
    /// The new layer's blob redirects to `ftp://`.
    RedirectFtp,
    /// Half of the new layer, then silence.
    Stall,
    /// The new layer (16 KiB of it incompressible) one byte every 0.3 s:
    /// never silent for a read timeout of 2 s, but under the floor of
    /// 1 KiB per 2 s; whole, it would take 80 minutes.
    Trickle,
    /// The new layer (16 KiB of it incompressible) at 4 KiB/s: slow, but
    /// over the floor (the control for `Trickle`).
    Slowish,
    /// The new layer with a Content-Length and a body 1000 bytes longer.
    TooLongDeclared,
    /// The new layer and 1000 bytes more, the body ended by closing.
    TooLongUnsized,
    /// The new layer as a chunked body that never ends.
    ChunkedBlob,
    /// The manifest with `Content-Length: 1 GiB` and zeros after it.
    GiantManifest,
    /// The manifest as a chunked body that never ends.
    ChunkedManifest,
    /// An honest registry, a lying image: one layer of its own whose
    /// config claims the diff_id of the good image's bottom layer, so
    /// that a store keyed by diff_id would serve it to the good image.
    StolenDiffId,
}

/// The good image (`good/img:latest`: the test busybox image) and a
/// hostile one (`evil/img:latest`: busybox plus one small layer of its
/// own, so its blob is new to the store), from an OCI layout on disk.
struct Images {
    blobs: HashMap<String, Vec<u8>>,
    good_manifest: Vec<u8>,
    evil_manifest: Vec<u8>,
    /// The digest of the evil image's own layer: the attacked blob.
    evil_layer: String,
}

impl Images {
    fn build(u: &TestUser, attack: Attack) -> Images {
        let tag = format!("{attack:?}");
        let dir = u.root_scratch(&format!("layout-{tag}"));
        let l = Layout::new(&dir);
        let good = l.base(&images().oci, "latest");
        let good_desc = l.manifest(&good);
        let mut evil = good.clone();
        let marker = format!("layer of {tag}\n");
        // A slow layer must span windows (and a trickled one outlast the
        // test): bytes gzip cannot shrink (xorshift).
        let slow = matches!(attack, Attack::Trickle | Attack::Slowish);
        let filler_len = if slow { 16 * 1024 } else { 0 };
        let mut x: u32 = 0x9e37_79b9;
        let filler: Vec<u8> = (0..filler_len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let mut entries = vec![Entry::File("hostile-marker", marker.as_bytes())];
        if !filler.is_empty() {
            entries.push(Entry::File("filler", &filler));
        }
        l.add_layer(&mut evil, &layout::tar(&entries));
        if attack == Attack::StolenDiffId {
            let good_bottom = good.config["rootfs"]["diff_ids"][0].clone();
            evil.layers = vec![evil.layers.pop().unwrap()];
            evil.config["rootfs"]["diff_ids"] = serde_json::json!([good_bottom]);
        }
        let evil_layer = evil.layers.last().unwrap()["digest"]
            .as_str()
            .unwrap()
            .to_owned();
        let evil_desc = l.manifest(&evil);
        let mut blobs = HashMap::new();
        for e in fs::read_dir(dir.join("blobs/sha256")).unwrap().flatten() {
            let name = format!("sha256:{}", e.file_name().to_string_lossy());
            blobs.insert(name, fs::read(e.path()).unwrap());
        }
        let manifest = |d: &Value| blobs[d["digest"].as_str().unwrap()].clone();
        Images {
            good_manifest: manifest(&good_desc),
            evil_manifest: manifest(&evil_desc),
            evil_layer,
            blobs,
        }
    }
}

/// Serves `images`, misbehaving on `evil/img` as `attack` says;
/// `elsewhere` is the base URL of a second server for redirects.
fn registry(images: Arc<Images>, attack: Attack, elsewhere: String) -> Server {
    Server::start(move |path| {
        let ok_manifest = |b: &[u8]| resp(200, &[("Content-Type", layout::OCI_MANIFEST)], b);
        if path == "/v2/" {
            return resp(200, &[], b"{}");
        }
        let (repo, rest) = match path.strip_prefix("/v2/good/img/") {
            Some(rest) => ("good", rest),
            None => match path.strip_prefix("/v2/evil/img/") {
                Some(rest) => ("evil", rest),
                None => return resp(404, &[], b""),
            },
        };
        if rest == "manifests/latest" {
            return match (repo, attack) {
                ("good", _) => ok_manifest(&images.good_manifest),
                (_, Attack::GiantManifest) => Reply::Endless {
                    head: head(&[
                        ("Content-Type", layout::OCI_MANIFEST),
                        ("Content-Length", "1073741824"),
                    ]),
                    chunked: false,
                },
                (_, Attack::ChunkedManifest) => Reply::Endless {
                    head: head(&[
                        ("Content-Type", layout::OCI_MANIFEST),
                        ("Transfer-Encoding", "chunked"),
                    ]),
                    chunked: true,
                },
                _ => ok_manifest(&images.evil_manifest),
            };
        }
        if let Some(n) = rest.strip_prefix("loop/") {
            let n: u32 = n.parse().unwrap_or(0);
            return redirect(&format!("/v2/evil/img/loop/{}", n + 1));
        }
        let Some(digest) = rest.strip_prefix("blobs/") else {
            return resp(404, &[], b"");
        };
        let Some(blob) = images.blobs.get(digest) else {
            return resp(404, &[], b"");
        };
        if repo == "good" || digest != images.evil_layer {
            return resp(200, &[], blob);
        }
        let len = blob.len().to_string();
        match attack {
            Attack::Honest | Attack::StolenDiffId => resp(200, &[], blob),
            Attack::RedirectElsewhere => redirect(&format!("{elsewhere}/elsewhere/{digest}")),
            Attack::RedirectLoop => redirect("/v2/evil/img/loop/0"),
            Attack::RedirectFile => redirect("file:///etc/passwd"),
            Attack::RedirectFtp => redirect("ftp://127.0.0.1:21/blob"),
            Attack::Stall => {
                let mut h = head(&[("Content-Length", &len)]);
                h.extend_from_slice(&blob[..blob.len() / 2]);
                Reply::Stall(h)
            }
            Attack::Trickle | Attack::Slowish => {
                let (chunk, every) = match attack {
                    Attack::Trickle => (1, Duration::from_millis(300)),
                    _ => (1024, Duration::from_millis(250)),
                };
                Reply::Trickle {
                    head: head(&[("Content-Length", &len)]),
                    body: blob.clone(),
                    chunk,
                    every,
                }
            }
            Attack::TooLongDeclared | Attack::TooLongUnsized => {
                let more = (blob.len() + 1000).to_string();
                let mut out = match attack {
                    Attack::TooLongDeclared => head(&[("Content-Length", &more)]),
                    _ => head(&[]),
                };
                out.extend_from_slice(blob);
                out.extend_from_slice(&[0u8; 1000]);
                Reply::Bytes(out)
            }
            Attack::ChunkedBlob => Reply::Endless {
                head: head(&[("Transfer-Encoding", "chunked")]),
                chunked: true,
            },
            Attack::GiantManifest | Attack::ChunkedManifest => resp(200, &[], blob),
        }
    })
}

/// A second server that serves any blob at `/elsewhere/DIGEST`.
fn elsewhere(images: Arc<Images>) -> Server {
    Server::start(move |path| {
        let blob = path
            .strip_prefix("/elsewhere/")
            .and_then(|d| images.blobs.get(d));
        match blob {
            Some(b) => resp(200, &[], b),
            None => resp(404, &[], b""),
        }
    })
}

/// Every file below the user's storage dir with its size.
fn store_files(u: &TestUser) -> BTreeMap<PathBuf, u64> {
    let root = u.data_dir.join("hutch/storage");
    let mut out = BTreeMap::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let Ok(m) = fs::symlink_metadata(&p) else {
                continue;
            };
            if m.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(&root).unwrap().to_path_buf(), m.len());
            }
        }
    }
    out
}

/// An empty `downloads/HEX` lock file (serialises fetches of one blob).
fn is_lock(u: &TestUser, rel: &Path) -> bool {
    let full = u.data_dir.join("hutch/storage").join(rel);
    rel.starts_with("downloads") && fs::metadata(full).is_ok_and(|m| m.len() == 0)
}

/// Every blob in the store matches the digest it is named by.
fn assert_blobs_verify(u: &TestUser) {
    let dir = u.data_dir.join("hutch/storage/blobs/sha256");
    let mut n = 0;
    for e in fs::read_dir(&dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with('.') {
            continue;
        }
        let got = layout::sha256(&fs::read(e.path()).unwrap());
        assert_eq!(got, format!("sha256:{name}"), "blob {name} is corrupt");
        n += 1;
    }
    assert!(n >= 3, "the store holds the good image's blobs");
}

/// Pulls the good image, then the hostile one under `attack`; returns the
/// hostile pull, its duration and the store files it added.
fn pull_hostile(u: &TestUser, attack: Attack) -> (Run, Duration, Vec<PathBuf>, Server) {
    let images = Arc::new(Images::build(u, attack));
    let other = elsewhere(images.clone());
    let reg = registry(images, attack, format!("http://{}", other.addr));
    let good = format!("{}/good/img:latest", reg.addr);
    let r = hutch_run(u, &["pull", "-q", "--tls-verify=false", &good]);
    assert_eq!(r.code(), Some(0), "good pull: {r}");
    let before = store_files(u);
    let evil = format!("{}/evil/img:latest", reg.addr);
    let opts = Opts {
        env: vec![("HUTCH_REGISTRY_TIMEOUT".into(), "2".into())],
        timeout: Duration::from_secs(60),
        ..Opts::default()
    };
    let start = Instant::now();
    let run = run_hutch(u, &["pull", "--tls-verify=false", &evil], &opts);
    let took = start.elapsed();
    assert!(!run.timed_out, "the hostile pull hung: {run}");
    let after = store_files(u);
    let added = after
        .keys()
        .filter(|p| !before.contains_key(*p))
        .cloned()
        .collect();
    drop(other);
    (run, took, added, reg)
}

/// The checks after a refused pull: exit 125 with `expect` in the error,
/// no image recorded, nothing added to the store but verified blobs, no
/// temporary files, and the good image still listed and running.
/// Returns the refused pull.
fn assert_refused(u: &TestUser, attack: Attack, expect: &[&str]) -> Run {
    let (r, took, added, reg) = pull_hostile(u, attack);
    eprintln!("{attack:?} after {took:?}: {}", r.stderr.trim());
    assert_eq!(r.code(), Some(125), "{attack:?}: {r}");
    let err = r.stderr.to_lowercase();
    assert!(
        expect.iter().any(|e| err.contains(e)),
        "{attack:?}: the error names none of {expect:?}: {r}"
    );
    assert!(took < Duration::from_secs(45), "{attack:?} took {took:?}");
    let listed = hutch_ok(u, &["images"]);
    assert!(!listed.contains("evil/img"), "{attack:?}: {listed}");
    assert!(listed.contains("good/img"), "{attack:?}: {listed}");
    // Only whole, verified blobs (the new config) may have been kept,
    // besides the empty per-digest download lock files.
    let blobs: Vec<_> = added.iter().filter(|p| !is_lock(u, p)).collect();
    for p in &blobs {
        let s = p.to_string_lossy();
        assert!(
            s.starts_with("blobs/sha256/") && !s.contains(".tmp") && !s.contains("/."),
            "{attack:?}: the failed pull left `{s}` in the store"
        );
    }
    assert!(blobs.len() <= 1, "{attack:?}: added {blobs:?}");
    assert_blobs_verify(u);
    let good = format!("{}/good/img:latest", reg.addr);
    let out = hutch_ok(
        u,
        &["run", "--rm", "--pull=never", &good, "echo", "still ok"],
    );
    assert_eq!(out, "still ok\n", "{attack:?}");
    r
}

#[test]
fn honest_registry_and_a_redirect_to_another_loopback_server_pull() {
    let Some(u) = TestUser::t1() else { return };
    for attack in [Attack::Honest, Attack::RedirectElsewhere] {
        let (r, _, _, reg) = pull_hostile(&u, attack);
        assert_eq!(r.code(), Some(0), "{attack:?}: {r}");
        let evil = format!("{}/evil/img:latest", reg.addr);
        let out = hutch_ok(&u, &["run", "--rm", &evil, "cat", "/hostile-marker"]);
        assert_eq!(out, format!("layer of {attack:?}\n"));
        assert_blobs_verify(&u);
        hutch_ok(&u, &["rmi", &evil]);
    }
}

#[test]
fn a_redirect_loop_ends_with_a_clear_error() {
    let Some(u) = TestUser::t1() else { return };
    assert_refused(&u, Attack::RedirectLoop, &["redirect"]);
}

#[test]
fn a_redirect_to_a_file_or_ftp_url_is_refused() {
    let Some(u) = TestUser::t1() else { return };
    assert_refused(&u, Attack::RedirectFile, &["scheme", "file"]);
    assert_refused(&u, Attack::RedirectFtp, &["scheme", "ftp"]);
}

#[test]
fn a_registry_stalling_mid_blob_fails_the_pull_in_bounded_time() {
    let Some(u) = TestUser::t1() else { return };
    assert_refused(&u, Attack::Stall, &["timeout", "timed out"]);
}

/// A registry sending a byte every 0.3 s never lets a 2 s read timeout
/// fire; the speed floor (1 KiB per window of HUTCH_REGISTRY_TIMEOUT)
/// ends each try after one window, three tries in all: about 8 s here
/// (`assert_refused` allows 45). Without the floor the pull hangs.
#[test]
fn a_registry_trickling_a_blob_fails_the_pull_in_bounded_time() {
    let Some(u) = TestUser::t1() else { return };
    let r = assert_refused(&u, Attack::Trickle, &["too slow"]);
    for want in ["/evil/img`", "in the last 2 s", "HUTCH_REGISTRY_TIMEOUT"] {
        assert!(r.stderr.contains(want), "the error lacks `{want}`: {r}");
    }
}

/// The control: a registry sending 4 KiB/s, slow but eight times the
/// floor at a 2 s window, still pulls; the layer spans windows.
#[test]
fn a_slow_but_steady_registry_still_pulls() {
    let Some(u) = TestUser::t1() else { return };
    let (r, took, _, reg) = pull_hostile(&u, Attack::Slowish);
    assert_eq!(r.code(), Some(0), "{r}");
    assert!(took > Duration::from_secs(2), "not slow: {took:?}");
    let evil = format!("{}/evil/img:latest", reg.addr);
    let out = hutch_ok(&u, &["run", "--rm", &evil, "cat", "/hostile-marker"]);
    assert_eq!(out, "layer of Slowish\n");
    assert_blobs_verify(&u);
    hutch_ok(&u, &["rmi", &evil]);
}

#[test]
fn a_blob_longer_than_its_descriptor_is_refused() {
    let Some(u) = TestUser::t1() else { return };
    assert_refused(&u, Attack::TooLongDeclared, &["descriptor"]);
    assert_refused(&u, Attack::TooLongUnsized, &["descriptor"]);
    assert_refused(&u, Attack::ChunkedBlob, &["descriptor"]);
}

#[test]
fn a_giant_or_endless_manifest_is_refused() {
    let Some(u) = TestUser::t1() else { return };
    assert_refused(&u, Attack::GiantManifest, &["larger than"]);
    assert_refused(&u, Attack::ChunkedManifest, &["larger than"]);
}

/// The control for the timeout: without `HUTCH_REGISTRY_TIMEOUT` the
/// variable is not required, and a malformed one is refused clearly.
#[test]
fn the_registry_timeout_setting_is_checked() {
    let Some(u) = TestUser::t1() else { return };
    let opts = Opts {
        env: vec![("HUTCH_REGISTRY_TIMEOUT".into(), "soon".into())],
        ..Opts::default()
    };
    let r = run_hutch(
        &u,
        &["pull", "--tls-verify=false", "127.0.0.1:1/x/y"],
        &opts,
    );
    assert_eq!(r.code(), Some(125), "{r}");
    assert!(r.stderr.contains("HUTCH_REGISTRY_TIMEOUT"), "{r}");
}

/// Unpacked layers are shared by diff_id: an image whose config names
/// another layer's diff_id for its own content must not get that content
/// stored under it (it would then appear in every image with that layer).
/// The pull is honest bytes; running it is refused, and the good image,
/// unpacked afterwards, has its own files only.
#[test]
fn a_layer_claiming_another_layers_diff_id_is_refused_and_poisons_nothing() {
    let Some(u) = TestUser::t1() else { return };
    let (r, _, _, reg) = pull_hostile(&u, Attack::StolenDiffId);
    assert_eq!(
        r.code(),
        Some(0),
        "the blobs are what the manifest says: {r}"
    );
    let evil = format!("{}/evil/img:latest", reg.addr);
    let good = format!("{}/good/img:latest", reg.addr);
    // Control: the evil layer does hold the marker (a lie the config tells).
    let blob = fs::read_dir(u.data_dir.join("hutch/storage/blobs/sha256"))
        .unwrap()
        .flatten()
        .any(|e| {
            let b = fs::read(e.path()).unwrap_or_default();
            b.starts_with(&[0x1f, 0x8b])
                && layout::gunzip(&b)
                    .windows(14)
                    .any(|w| w == b"hostile-marker")
        });
    assert!(blob, "the evil layer with its marker is in the store");
    let r = hutch_run(
        &u,
        &[
            "run",
            "--rm",
            "--pull=never",
            &evil,
            "cat",
            "/hostile-marker",
        ],
    );
    assert_eq!(r.code(), Some(125), "{r}");
    assert!(r.stderr.contains("diff_id"), "the error says why: {r}");
    eprintln!("{}", r.stderr.trim());
    let r = hutch_run(
        &u,
        &[
            "run",
            "--rm",
            "--pull=never",
            &good,
            "cat",
            "/hostile-marker",
        ],
    );
    assert_eq!(r.code(), Some(1), "the good image has no marker: {r}");
    assert!(r.stderr.contains("No such file"), "{r}");
    let out = hutch_ok(
        &u,
        &["run", "--rm", "--pull=never", &good, "echo", "still ok"],
    );
    assert_eq!(out, "still ok\n");
}

/// Names in `dir` (none when it does not exist).
fn dir_names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

/// Issue 3: a pull killed (SIGKILL) in the middle of a layer leaves the
/// store as it was. The registry stalls after half of the new layer; the
/// kill comes only once that half is in a temp file beside the blobs (the
/// control: the kill lands mid-download), and the store is looked at
/// before any other hutch command runs (opening the store removes dead
/// writers' temp files, which would hide a leak). Then a pull of the same
/// image from an honest registry completes, and no temp file is left.
#[test]
fn a_pull_killed_mid_blob_leaves_the_store_as_it_was() {
    let Some(u) = TestUser::t1() else { return };
    let images = Arc::new(Images::build(&u, Attack::Stall));
    let stalling = registry(images.clone(), Attack::Stall, String::new());
    let good = format!("{}/good/img:latest", stalling.addr);
    hutch_ok(&u, &["pull", "-q", "--tls-verify=false", &good]);
    let store = u.data_dir.join("hutch/storage");
    let blob_dir = store.join("blobs/sha256");
    let records = dir_names(&store.join("images"));
    assert_eq!(records.len(), 1, "the good image's record: {records:?}");

    let evil = format!("{}/evil/img:latest", stalling.addr);
    let opts = Opts {
        // Far longer than the test waits: the pull must not give up first.
        env: vec![("HUTCH_REGISTRY_TIMEOUT".into(), "60".into())],
        timeout: Duration::from_secs(60),
        ..Opts::default()
    };
    let p = spawn_hutch(&u, &["pull", "--tls-verify=false", &evil], &opts);
    let half = (images.blobs[&images.evil_layer].len() / 2) as u64;
    let end = Instant::now() + Duration::from_secs(30);
    let temp = loop {
        let found = fs::read_dir(&blob_dir)
            .into_iter()
            .flatten()
            .flatten()
            .find(|e| {
                e.file_name().to_string_lossy().starts_with(".tmp-")
                    && e.metadata().is_ok_and(|m| m.len() == half)
            });
        if let Some(e) = found {
            break e.path();
        }
        assert!(
            Instant::now() < end,
            "no temp file holding half of the layer after 30 s; store: {:?}\n{}",
            dir_names(&blob_dir),
            p.stderr_now()
        );
        thread::sleep(Duration::from_millis(20));
    };
    // The child is hutch itself (the wrapper shell and setpriv exec'd it).
    let comm = proc_read(p.pid(), "comm").unwrap_or_default();
    assert_eq!(comm.trim(), "hutch", "killing the wrong process");
    p.signal(Signal::SIGKILL);
    let r = p.wait();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        r.status.signal(),
        Some(9),
        "hutch ended before the kill: {r}"
    );
    drop(stalling);

    // No hutch command has run since the kill.
    let hex = images.evil_layer.trim_start_matches("sha256:");
    assert!(
        !blob_dir.join(hex).exists(),
        "the half-downloaded layer was stored as a blob"
    );
    assert_eq!(dir_names(&store.join("images")), records, "an image record");
    let names = fs::read_to_string(store.join("names.json")).unwrap_or_default();
    assert!(
        !names.contains("evil/img"),
        "the killed pull named its image: {names}"
    );
    assert!(temp.exists(), "the kill left its temp file: {temp:?}");
    assert_blobs_verify(&u);

    // The same image from an honest registry: pulled whole, temps gone.
    let honest = registry(images.clone(), Attack::Honest, String::new());
    let evil = format!("{}/evil/img:latest", honest.addr);
    hutch_ok(&u, &["pull", "-q", "--tls-verify=false", &evil]);
    let left: Vec<_> = store_files(&u)
        .into_keys()
        .filter(|p| p.to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(left.is_empty(), "temp files left: {left:?}");
    assert!(blob_dir.join(hex).is_file(), "the layer is stored now");
    assert_blobs_verify(&u);
    let out = hutch_ok(&u, &["run", "--rm", &evil, "cat", "/hostile-marker"]);
    assert_eq!(out, "layer of Stall\n");
    hutch_ok(&u, &["rmi", &evil]);
}
