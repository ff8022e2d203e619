//! The `unpack` fuzz target: a layer applied below a fresh directory,
//! with every file around that directory compared before and after.
//!
//! The input is either a raw layer (tar, gzip or zstd, as a registry
//! would send it) or, when it starts with `#`, a script of tar members
//! that this module writes as a tar stream with the checksums right, so
//! that the fuzzer spends its time on hostile names, links and whiteouts
//! rather than on headers the tar reader rejects:
//!
//! ```text
//! #[o][g|z]            o: overlayfs whiteouts; g: gzip, z: zstd the stream
//! f PATH DATA          regular file        F PATH SIZE DATA  header size lies
//! d PATH [MODE]        directory           l PATH TARGET     symlink
//! h PATH TARGET        hard link           c|b|p PATH        char/block dev, fifo
//! x KEY=VALUE          a pax record for the next member (path, linkpath, xattrs)
//! ```
//!
//! Names are raw bytes (long ones as GNU long-name members), so `..`,
//! absolute paths and `.wh.` names reach the unpacker as an image would
//! send them. Around the root, three levels of parent directories hold
//! canary files, and `$TMPDIR/hutch-fuzz-canary` is a fixed directory for
//! absolute targets: any change to them panics.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::image::UnpackOptions;

/// The fixed directory that absolute link targets in the corpus name.
pub const CANARY: &str = "hutch-fuzz-canary";

static RUN: AtomicU64 = AtomicU64::new(0);

/// Unpacks `input` (a raw layer or a `#` script) and panics if anything
/// outside the root changed.
pub fn unpack(input: &[u8]) {
    confined(input, |stream, root, overlay| {
        let opts = UnpackOptions {
            preserve_ownership: false,
            overlay_whiteouts: overlay,
        };
        let _ = crate::image::unpack::unpack_tar(stream, root, &opts);
    });
}

/// Runs `apply(stream, root, overlay)` on a fresh root surrounded by
/// canaries and panics if any of them changed or the root was replaced.
pub(super) fn confined(input: &[u8], apply: impl FnOnce(&[u8], &Path, bool)) {
    let (stream, overlay) = match input.first() {
        Some(b'#') => script(input),
        _ => (input.to_vec(), false),
    };
    let tmp = std::env::temp_dir();
    let canary = tmp.join(CANARY);
    let n = RUN.fetch_add(1, Ordering::Relaxed);
    plant_canary(
        &canary,
        &tmp.join(format!("hutch-fuzz-{}-{n}.canary", std::process::id())),
    );
    let base = tmp.join(format!("hutch-fuzz-{}-{n}", std::process::id()));
    let root = base.join("a/b/c/root");
    for (dir, i) in [
        (base.clone(), 0),
        (base.join("a"), 1),
        (base.join("a/b"), 2),
    ] {
        let _ = fs::create_dir_all(dir.join("outside"));
        let _ = fs::write(dir.join("outside/secret"), format!("canary {i}"));
        let _ = std::os::unix::fs::symlink("outside/secret", dir.join("link"));
    }
    if fs::create_dir_all(&root).is_err() {
        return;
    }
    let before = (
        snapshot(&base, &root, true),
        snapshot(&canary, &root, false),
    );
    apply(&stream, &root, overlay);
    let after = (
        snapshot(&base, &root, true),
        snapshot(&canary, &root, false),
    );
    let root_still_dir = fs::symlink_metadata(&root).is_ok_and(|m| m.is_dir());
    remove(&base);
    assert!(root_still_dir, "the root was replaced");
    assert_eq!(before.0, after.0, "a file outside the root changed");
    assert_eq!(before.1, after.1, "the absolute canary changed");
}

/// Makes `canary/secret` once, atomically (written aside, then linked
/// into place, which fails if it exists): fuzz jobs in parallel processes
/// and replay tests in parallel threads share it, and a rewrite would
/// look like a change to the others' snapshots.
fn plant_canary(canary: &Path, aside: &Path) {
    let _ = fs::create_dir_all(canary);
    let secret = canary.join("secret");
    if secret.exists() {
        return;
    }
    if fs::write(aside, b"canary").is_ok() {
        let _ = fs::hard_link(aside, &secret);
    }
    let _ = fs::remove_file(aside);
}

/// Every path below `dir` except `skip`, with type, mode, size, link
/// target, (small) content and, with `links`, the link count (a hard
/// link made to it from inside the root). The shared canary is compared
/// without it: another process planting it links it for a moment.
fn snapshot(dir: &Path, skip: &Path, links: bool) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p == skip {
                continue;
            }
            let Ok(m) = fs::symlink_metadata(&p) else {
                continue;
            };
            let what = if m.is_dir() {
                stack.push(p.clone());
                String::from("dir")
            } else if m.file_type().is_symlink() {
                format!("link {:?}", fs::read_link(&p).ok())
            } else {
                let content = fs::read(&p).ok().filter(|c| c.len() <= 4096);
                let nlink = if links { m.nlink() } else { 0 };
                format!("file {} {content:?} nlink {nlink}", m.len())
            };
            out.insert(p, format!("{what} mode {:o}", m.mode()));
        }
    }
    out
}

/// Removes a tree the unpack may have left without write or search
/// permission.
fn remove(base: &Path) {
    if fs::remove_dir_all(base).is_ok() {
        return;
    }
    let mut stack = vec![base.to_path_buf()];
    while let Some(d) = stack.pop() {
        let _ = fs::set_permissions(&d, fs::Permissions::from_mode(0o700));
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    let _ = fs::remove_dir_all(base);
}

/// Writes the `#` script as a tar stream; returns it and whether
/// overlayfs whiteouts are asked for.
fn script(input: &[u8]) -> (Vec<u8>, bool) {
    let mut lines = input.split(|b| *b == b'\n');
    let flags = lines.next().unwrap_or_default();
    let mut tar = Vec::new();
    let mut pax = Vec::new();
    for line in lines {
        member(&mut tar, &mut pax, line);
    }
    tar.extend_from_slice(&[0u8; 1024]);
    let stream = if flags.contains(&b'g') {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let _ = gz.write_all(&tar);
        gz.finish().unwrap_or_default()
    } else if flags.contains(&b'z') {
        zstd::stream::encode_all(&tar[..], 1).unwrap_or_default()
    } else {
        tar
    };
    (stream, flags.contains(&b'o'))
}

/// Appends one member for a script line (with pending pax records).
fn member(tar: &mut Vec<u8>, pax: &mut Vec<u8>, line: &[u8]) {
    let mut fields = line.splitn(3, |b| *b == b' ');
    let (Some(kind), Some(path)) = (fields.next(), fields.next()) else {
        return;
    };
    let arg = fields.next().unwrap_or_default();
    let &[kind] = kind else { return };
    if kind == b'x' {
        // `LEN KEY=VALUE\n`, LEN counting its own digits.
        let body = path.len() + 2;
        let mut len = body + 1;
        while body + len.to_string().len() != len {
            len = body + len.to_string().len();
        }
        pax.extend_from_slice(format!("{len} ").as_bytes());
        pax.extend_from_slice(path);
        pax.push(b'\n');
        return;
    }
    if !pax.is_empty() {
        let records = std::mem::take(pax);
        raw(
            tar,
            b'x',
            b"pax",
            b"",
            records.len() as u64,
            0o644,
            &records,
        );
    }
    let (link, data, size, mode): (&[u8], &[u8], Option<u64>, u32) = match kind {
        b'f' => (b"", arg, None, 0o644),
        b'F' => {
            let (size, data) = split_word(arg);
            let size = std::str::from_utf8(size).ok().and_then(|s| s.parse().ok());
            (b"", data, size, 0o644)
        }
        b'd' => {
            let mode = std::str::from_utf8(arg).ok();
            let mode = mode.and_then(|m| u32::from_str_radix(m, 8).ok());
            (b"", b"", None, mode.unwrap_or(0o755))
        }
        b'l' | b'h' => (arg, b"", None, 0o777),
        _ => (b"", b"", None, 0o644),
    };
    let flag = match kind {
        b'f' | b'F' => b'0',
        b'd' => b'5',
        b'l' => b'2',
        b'h' => b'1',
        b'c' => b'3',
        b'b' => b'4',
        b'p' => b'6',
        other => other,
    };
    if path.len() > 100 {
        let mut long = path.to_vec();
        long.push(0);
        raw(
            tar,
            b'L',
            b"././@LongLink",
            b"",
            long.len() as u64,
            0o644,
            &long,
        );
    }
    if link.len() > 100 {
        let mut long = link.to_vec();
        long.push(0);
        raw(
            tar,
            b'K',
            b"././@LongLink",
            b"",
            long.len() as u64,
            0o644,
            &long,
        );
    }
    let size = size.unwrap_or(data.len() as u64);
    raw(tar, flag, path, link, size, mode, data);
}

fn split_word(s: &[u8]) -> (&[u8], &[u8]) {
    match s.iter().position(|b| *b == b' ') {
        Some(at) => (
            s.get(..at).unwrap_or_default(),
            s.get(at + 1..).unwrap_or_default(),
        ),
        None => (s, b""),
    }
}

/// One GNU header (names cut at 100 bytes) and `data`, padded to 512.
fn raw(tar: &mut Vec<u8>, flag: u8, name: &[u8], link: &[u8], size: u64, mode: u32, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    copy_field(&mut h.as_old_mut().name, name);
    copy_field(&mut h.as_old_mut().linkname, link);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::new(flag));
    if matches!(flag, b'3' | b'4') {
        let _ = h.set_device_major(1);
        let _ = h.set_device_minor(3);
    }
    h.set_cksum();
    tar.extend_from_slice(h.as_bytes());
    tar.extend_from_slice(data);
    let pad = (512 - data.len() % 512) % 512;
    tar.extend(std::iter::repeat_n(0u8, pad));
}

fn copy_field(field: &mut [u8], value: &[u8]) {
    for (slot, b) in field.iter_mut().zip(value) {
        *slot = *b;
    }
}
