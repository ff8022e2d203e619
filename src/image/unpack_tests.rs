//! Tests for layer unpacking with hostile tars built by hand in memory.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use super::unpack::unpack_tar;
use super::{UnpackOptions, UnpackReport};

/// A tar stream written header by header, so names are not sanitised.
#[derive(Default)]
pub(crate) struct RawTar(pub(crate) Vec<u8>);

impl RawTar {
    pub(crate) fn entry(
        &mut self,
        kind: EntryType,
        name: &str,
        link: &str,
        mode: u32,
        data: &[u8],
    ) -> &mut Self {
        let mut h = Header::new_ustar();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0, pad));
        self
    }

    pub(crate) fn file(&mut self, name: &str, data: &[u8], mode: u32) -> &mut Self {
        self.entry(EntryType::Regular, name, "", mode, data)
    }

    pub(crate) fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
        self.entry(EntryType::Directory, name, "", mode, b"")
    }

    fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(EntryType::Symlink, name, target, 0o777, b"")
    }

    fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(EntryType::Link, name, target, 0o644, b"")
    }

    fn owned(&mut self, name: &str, uid: u64) -> &mut Self {
        self.file(name, b"o", 0o640);
        let at = self.0.len() - 1024;
        let mut h = Header::new_ustar();
        h.as_mut_bytes().copy_from_slice(&self.0[at..at + 512]);
        h.set_uid(uid);
        h.set_gid(uid);
        h.set_cksum();
        self.0[at..at + 512].copy_from_slice(h.as_bytes());
        self
    }

    /// A PAX extended header carrying `key=value` for the next entry.
    pub(crate) fn pax(&mut self, key: &str, value: &str) -> &mut Self {
        let body = format!(" {key}={value}\n");
        let total = (1..10)
            .map(|digits| body.len() + digits)
            .find(|total| total.to_string().len() + body.len() == *total)
            .unwrap();
        let record = format!("{total}{body}");
        self.entry(EntryType::XHeader, "pax", "", 0o644, record.as_bytes())
    }

    /// A GNU sparse member (type `S`) of `real` bytes holding `blocks`
    /// (offset, data) and holes elsewhere; at most three blocks, each but
    /// the last a multiple of 512 bytes long. A zero-length block at
    /// `real` ends the map, as GNU tar writes it for a trailing hole.
    pub(crate) fn sparse(&mut self, name: &str, real: u64, blocks: &[(u64, &[u8])]) -> &mut Self {
        assert!(blocks.len() < 4, "only the header's own four map slots");
        let data: Vec<u8> = blocks.iter().flat_map(|(_, d)| d.iter().copied()).collect();
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::GNUSparse);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        let gnu = h.as_gnu_mut().unwrap();
        gnu.set_real_size(real);
        for (slot, (offset, d)) in gnu.sparse.iter_mut().zip(blocks) {
            slot.set_offset(*offset);
            slot.set_length(d.len() as u64);
        }
        gnu.sparse[blocks.len()].set_offset(real);
        gnu.sparse[blocks.len()].set_length(0);
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(&data);
        let pad = (512 - data.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0, pad));
        self
    }

    pub(crate) fn finish(&self) -> Vec<u8> {
        let mut out = self.0.clone();
        out.extend_from_slice(&[0; 1024]);
        out
    }
}

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    fs::create_dir(&root).unwrap();
    fs::create_dir(&outside).unwrap();
    Fixture {
        _tmp: tmp,
        root,
        outside,
    }
}

fn apply(root: &Path, tar: &RawTar) -> anyhow::Result<UnpackReport> {
    unpack_tar(&tar.finish()[..], root, &UnpackOptions::default())
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn unpacks_files_dirs_links_and_modes() {
    let f = fixture();
    let mut t = RawTar::default();
    t.dir("etc/", 0o755)
        .file("etc/hosts", b"127.0.0.1 localhost\n", 0o644)
        .file("bin/busybox", b"\x7fELF", 0o755)
        .file("bin/su", b"su", 0o4755)
        .file("bin/sgid", b"sg", 0o2711)
        .dir("tmp", 0o1777)
        .symlink("bin/sh", "busybox")
        .hardlink("bin/ls", "bin/busybox")
        .entry(EntryType::Fifo, "run/fifo", "", 0o600, b"")
        .entry(EntryType::Char, "dev/null", "", 0o666, b"");
    let report = apply(&f.root, &t).unwrap();
    let r = &f.root;
    assert_eq!(
        fs::read(r.join("etc/hosts")).unwrap(),
        b"127.0.0.1 localhost\n"
    );
    assert_eq!(mode(&r.join("etc")), 0o755);
    assert_eq!(mode(&r.join("bin")), 0o755, "implicit parent");
    assert_eq!(mode(&r.join("bin/su")), 0o4755);
    assert_eq!(mode(&r.join("bin/sgid")) & 0o777, 0o711);
    assert_eq!(mode(&r.join("tmp")), 0o1777);
    assert_eq!(
        fs::read_link(r.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    let ls = fs::metadata(r.join("bin/ls")).unwrap();
    assert_eq!(ls.ino(), fs::metadata(r.join("bin/busybox")).unwrap().ino());
    assert_eq!(ls.nlink(), 2);
    assert_eq!(
        fs::metadata(r.join("etc/hosts")).unwrap().mtime(),
        1_600_000_000
    );
    assert_eq!(fs::metadata(r.join("etc")).unwrap().mtime(), 1_600_000_000);
    assert!(fs::metadata(r.join("run/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    let null = fs::symlink_metadata(r.join("dev/null"));
    match null {
        Ok(m) => assert!(m.file_type().is_char_device() && report.skipped_devices == 0),
        Err(_) => assert_eq!(report.skipped_devices, 1),
    }
    // Without preserve_ownership everything belongs to whoever unpacked.
    let me = fs::metadata(&f.root).unwrap().uid();
    assert_eq!(fs::metadata(r.join("bin/su")).unwrap().uid(), me);
    assert_eq!(report.flattened_owners, 0);
}

#[test]
fn preserve_ownership_applies_or_counts_flattened() {
    let f = fixture();
    let mut t = RawTar::default();
    t.owned("owned", 4242).file("suid", b"x", 0o4755);
    let opts = UnpackOptions {
        preserve_ownership: true,
        overlay_whiteouts: false,
    };
    let report = unpack_tar(&t.finish()[..], &f.root, &opts).unwrap();
    let owned = fs::metadata(f.root.join("owned")).unwrap();
    assert!(
        owned.uid() == 4242 || report.flattened_owners >= 1,
        "{report:?}"
    );
    // chown happens before chmod, so setuid survives whatever the owner.
    assert_eq!(mode(&f.root.join("suid")), 0o4755);
}

#[test]
fn whiteout_removes_lower_entries_only() {
    let f = fixture();
    let mut lower = RawTar::default();
    lower
        .file("a/x", b"x", 0o644)
        .file("a/y", b"y", 0o644)
        .file("d/sub/f", b"f", 0o644);
    apply(&f.root, &lower).unwrap();
    let mut upper = RawTar::default();
    upper
        .file("a/.wh.x", b"", 0o644)
        .file("a/.wh.missing", b"", 0o644)
        .file(".wh.d", b"", 0o644)
        .file("a/new", b"n", 0o644)
        .file("a/.wh.new", b"", 0o644)
        .file("a/.wh..wh.plnk", b"", 0o644);
    apply(&f.root, &upper).unwrap();
    assert!(!f.root.join("a/x").exists());
    assert!(
        !f.root.join("a/.wh.x").exists(),
        "whiteouts are not written"
    );
    assert!(f.root.join("a/y").exists());
    assert!(!f.root.join("d").exists());
    assert!(f.root.join("a/new").exists(), "same-layer entries survive");
}

#[test]
fn opaque_dir_hides_lower_entries_but_keeps_same_layer_ones() {
    let f = fixture();
    let mut lower = RawTar::default();
    lower
        .file("o/old", b"1", 0o644)
        .file("o/gone/old2", b"2", 0o644)
        .file("o/s/lower", b"3", 0o644)
        .file("keep/me", b"4", 0o644);
    apply(&f.root, &lower).unwrap();
    let mut upper = RawTar::default();
    upper
        .dir("o/", 0o755)
        .file("o/new", b"n", 0o644)
        .dir("o/s/", 0o700)
        .file("o/s/upper", b"u", 0o644)
        .file("o/.wh..wh..opq", b"", 0o644)
        .file("o/after", b"a", 0o644);
    apply(&f.root, &upper).unwrap();
    let r = &f.root;
    assert!(!r.join("o/old").exists() && !r.join("o/gone").exists());
    assert!(!r.join("o/s/lower").exists());
    assert!(r.join("o/new").exists() && r.join("o/after").exists() && r.join("o/s/upper").exists());
    assert!(!r.join("o/.wh..wh..opq").exists());
    assert!(r.join("keep/me").exists());
}

#[test]
fn dotdot_entries_are_rejected_and_nothing_escapes() {
    let f = fixture();
    for name in ["../escape", "a/../../escape", "./../escape"] {
        let mut t = RawTar::default();
        t.file(name, b"pwned", 0o644);
        let err = format!("{:#}", apply(&f.root, &t).unwrap_err());
        assert!(
            err.contains(&format!("entry `{name}`")) && err.contains("leaves the root"),
            "{err}"
        );
    }
    assert!(!f.outside.parent().unwrap().join("escape").exists());
}

#[test]
fn absolute_paths_land_inside_root() {
    let f = fixture();
    let mut t = RawTar::default();
    t.file("/abs/file", b"in", 0o644).dir("/", 0o700);
    apply(&f.root, &t).unwrap();
    assert_eq!(fs::read(f.root.join("abs/file")).unwrap(), b"in");
    assert!(!Path::new("/abs/file").exists());
    assert_ne!(mode(&f.root), 0o700, "the root entry keeps dest's own mode");
}

#[test]
fn writes_through_symlinks_stay_inside_root() {
    let f = fixture();
    let outside = f.outside.to_str().unwrap().to_owned();
    let mut t = RawTar::default();
    t.symlink("up", "../../")
        .file("up/outside-file", b"x", 0o644)
        .symlink("slash", "/")
        .file("slash/slash-file", b"x", 0o644)
        .dir(&format!("{outside}/"), 0o755)
        .symlink("abs", &outside)
        .file("abs/pwned", b"x", 0o644)
        .symlink("dangling", &format!("{outside}/new"))
        .file("dangling", b"replaced", 0o644);
    apply(&f.root, &t).unwrap();
    let tmp = f.outside.parent().unwrap();
    assert!(!tmp.join("outside-file").exists() && f.root.join("outside-file").exists());
    assert!(f.root.join("slash-file").exists());
    assert!(!f.outside.join("pwned").exists());
    assert!(f
        .root
        .join(outside.trim_start_matches('/'))
        .join("pwned")
        .exists());
    assert!(
        !f.outside.join("new").exists(),
        "a file replaces the symlink"
    );
    assert_eq!(fs::read(f.root.join("dangling")).unwrap(), b"replaced");

    // Through a symlink whose target does not exist inside the root: an
    // error, never a directory created outside.
    let mut t = RawTar::default();
    t.symlink("far", &format!("{outside}/far"))
        .file("far/pwned", b"x", 0o644);
    let err = format!("{:#}", apply(&f.root, &t).unwrap_err());
    assert!(err.contains("entry `far/pwned`"), "{err}");
    assert!(!f.outside.join("far").exists());
}

#[test]
fn hardlinks_never_reach_outside() {
    let f = fixture();
    let mut t = RawTar::default();
    t.hardlink("passwd", "../../etc/passwd");
    let err = format!("{:#}", apply(&f.root, &t).unwrap_err());
    assert!(err.contains("leaves the root"), "{err}");
    assert!(!f.root.join("passwd").exists());

    let mut t = RawTar::default();
    t.file("etc/passwd", b"fake", 0o644)
        .symlink("hostetc", "/etc")
        .hardlink("x", "hostetc/passwd")
        .hardlink("y", "/etc/passwd");
    apply(&f.root, &t).unwrap();
    assert_eq!(fs::read(f.root.join("x")).unwrap(), b"fake");
    assert_eq!(fs::read(f.root.join("y")).unwrap(), b"fake");

    let mut t = RawTar::default();
    t.symlink("out", f.outside.to_str().unwrap())
        .hardlink("z", "out/nothing");
    fs::write(f.outside.join("nothing"), b"secret").unwrap();
    assert!(
        apply(&f.root, &t).is_err(),
        "the target resolves inside the root"
    );
    assert_eq!(fs::metadata(f.outside.join("nothing")).unwrap().nlink(), 1);
}

#[test]
fn replaces_dirs_files_and_symlinks_as_tar_does() {
    let f = fixture();
    fs::write(f.outside.join("target"), b"keep").unwrap();
    let mut lower = RawTar::default();
    lower
        .file("d/f", b"1", 0o644)
        .file("f", b"1", 0o644)
        .symlink("s", f.outside.join("target").to_str().unwrap())
        .symlink("sd", f.outside.to_str().unwrap());
    apply(&f.root, &lower).unwrap();
    let mut upper = RawTar::default();
    upper
        .file("d", b"file now", 0o644)
        .dir("f", 0o755)
        .file("s", b"mine", 0o600)
        .dir("sd", 0o755);
    apply(&f.root, &upper).unwrap();
    assert_eq!(fs::read(f.root.join("d")).unwrap(), b"file now");
    assert!(f.root.join("f").is_dir());
    assert_eq!(fs::read(f.root.join("s")).unwrap(), b"mine");
    assert!(fs::symlink_metadata(f.root.join("sd")).unwrap().is_dir());
    assert_eq!(fs::read(f.outside.join("target")).unwrap(), b"keep");
}

#[test]
fn stream_without_end_padding_is_accepted() {
    let f = fixture();
    let mut t = RawTar::default();
    t.file("a", b"hello", 0o644).file("b", b"", 0o644);
    unpack_tar(&t.0[..], &f.root, &UnpackOptions::default()).unwrap();
    assert_eq!(fs::read(f.root.join("a")).unwrap(), b"hello");
    assert!(f.root.join("b").exists());
}

#[test]
fn truncated_entry_is_an_error() {
    let f = fixture();
    let mut t = RawTar::default();
    t.file("big", &[7u8; 2000], 0o644);
    let cut = &t.0[..512 + 1000];
    let err = format!(
        "{:#}",
        unpack_tar(cut, &f.root, &UnpackOptions::default()).unwrap_err()
    );
    assert!(
        err.contains("entry `big`") && err.contains("1000 of its 2000 bytes"),
        "{err}"
    );
    let cut = &t.0[..300];
    assert!(
        unpack_tar(cut, &f.root, &UnpackOptions::default()).is_err(),
        "half a header"
    );
}

#[test]
fn gzip_layers_are_detected_by_magic() {
    let f = fixture();
    let mut t = RawTar::default();
    t.file("gz/file", b"zipped", 0o644);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&t.finish()).unwrap();
    let gz = enc.finish().unwrap();
    unpack_tar(&gz[..], &f.root, &UnpackOptions::default()).unwrap();
    assert_eq!(fs::read(f.root.join("gz/file")).unwrap(), b"zipped");
}

#[test]
fn zstd_layers_unpack_and_corrupt_ones_fail() {
    let f = fixture();
    let mut t = RawTar::default();
    t.file("etc/zstd-file", b"from zstd\n", 0o644);
    let zst = zstd::stream::encode_all(&t.finish()[..], 3).unwrap();
    unpack_tar(&zst[..], &f.root, &UnpackOptions::default()).unwrap();
    assert_eq!(
        fs::read_to_string(f.root.join("etc/zstd-file")).unwrap(),
        "from zstd\n"
    );
    let corrupt = [0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0];
    assert!(unpack_tar(&corrupt[..], &f.root, &UnpackOptions::default()).is_err());
}

#[test]
fn pax_xattrs_are_applied_or_ignored() {
    let f = fixture();
    let mut t = RawTar::default();
    t.pax("SCHILY.xattr.user.test", "v")
        .file("x", b"x", 0o644)
        .pax("SCHILY.xattr.trusted.evil", "v")
        .file("y", b"y", 0o644)
        .pax("path", "long/pax/name")
        .file("short", b"z", 0o644);
    apply(&f.root, &t).unwrap();
    assert!(f.root.join("x").exists() && f.root.join("y").exists());
    assert_eq!(fs::read(f.root.join("long/pax/name")).unwrap(), b"z");
}

#[test]
fn pax_sparse_members_are_refused_not_unpacked_as_their_map() {
    let f = fixture();
    let mut t = RawTar::default();
    t.pax("GNU.sparse.major", "1")
        .file("var/log/GNUSparseFile.0/lastlog", b"1\n0\n4\nabcd", 0o644);
    let err = format!("{:#}", apply(&f.root, &t).unwrap_err());
    assert!(err.contains("GNU.sparse.major"), "{err}");
    assert!(!f.root.join("var/log/GNUSparseFile.0/lastlog").exists());
}

#[test]
fn restrictive_dir_modes_are_applied_after_children() {
    let f = fixture();
    fs::set_permissions(&f.outside, fs::Permissions::from_mode(0o755)).unwrap();
    let outside = f.outside.to_str().unwrap().to_owned();
    let mut t = RawTar::default();
    t.dir("ro/", 0o555)
        .file("ro/f", b"f", 0o444)
        .dir("locked/", 0o000)
        .dir("locked/inner/", 0o750)
        .dir("swapped/", 0o500)
        .symlink("swapped", &outside);
    apply(&f.root, &t).unwrap();
    assert_eq!(mode(&f.root.join("ro")), 0o555);
    assert_eq!(mode(&f.root.join("locked")), 0o000);
    assert_eq!(fs::read(f.root.join("ro/f")).unwrap(), b"f");
    assert_eq!(mode(&f.outside), 0o755, "a later symlink is not followed");
    // Open up again so any user can look inside and clean up.
    for d in ["ro", "locked"] {
        fs::set_permissions(f.root.join(d), fs::Permissions::from_mode(0o700)).unwrap();
    }
    assert_eq!(mode(&f.root.join("locked/inner")), 0o750);
}

#[test]
fn overlay_whiteouts_are_kept_as_overlayfs_markers() {
    use std::os::unix::fs::FileTypeExt;
    let f = fixture();
    let mut t = RawTar::default();
    t.file("etc/kept", b"k", 0o644)
        .file("etc/.wh.gone", b"", 0o644)
        .file("opq/.wh..wh..opq", b"", 0o644)
        .file("opq/new", b"n", 0o644);
    let opts = UnpackOptions {
        preserve_ownership: false,
        overlay_whiteouts: true,
    };
    unpack_tar(&t.finish()[..], &f.root, &opts).unwrap();
    let gone = fs::symlink_metadata(f.root.join("etc/gone")).unwrap();
    assert!(
        gone.file_type().is_char_device() && gone.rdev() == 0,
        "a 0/0 whiteout device"
    );
    assert!(!f.root.join("etc/.wh.gone").exists());
    assert!(crate::sys::probe::has_xattr(
        &f.root.join("opq"),
        c"user.overlay.opaque"
    ));
    assert_eq!(fs::read(f.root.join("opq/new")).unwrap(), b"n");
    // An image cannot plant overlay markers of its own.
    let mut t = RawTar::default();
    t.pax("SCHILY.xattr.user.overlay.opaque", "y")
        .file("planted/x", b"x", 0o644);
    unpack_tar(&t.finish()[..], &f.root, &opts).unwrap();
    assert!(!crate::sys::probe::has_xattr(
        &f.root.join("planted/x"),
        c"user.overlay.opaque"
    ));
}

// ---- holes: sparse members and runs of zeros ---------------------------------

const MIB: u64 = 1024 * 1024;

/// Bytes the file really occupies on disk.
fn allocated(p: &Path) -> u64 {
    fs::metadata(p).unwrap().blocks() * 512
}

/// `len` bytes of `p` from `offset`.
fn read_at(p: &Path, offset: u64, len: usize) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0; len];
    fs::File::open(p)
        .unwrap()
        .read_exact_at(&mut buf, offset)
        .unwrap();
    buf
}

#[test]
fn sparse_members_unpack_with_their_holes() {
    let f = fixture();
    let mut t = RawTar::default();
    let a = [b'a'; 4096];
    t.sparse(
        "var/log/lastlog",
        64 * MIB,
        &[
            (0, &b"head"[..]),
            (MIB, &a[..]),
            (32 * MIB + 5, &b"tail"[..]),
        ],
    );
    // "head" is not a multiple of 512: the tar reader refuses the map.
    assert!(apply(&f.root, &t).is_err());

    let f = fixture();
    let mut t = RawTar::default();
    let head = [b'h'; 512];
    t.sparse(
        "var/log/lastlog",
        64 * MIB,
        &[(0, &head[..]), (MIB, &a[..]), (32 * MIB + 5, &b"tail"[..])],
    );
    apply(&f.root, &t).unwrap();
    let p = f.root.join("var/log/lastlog");
    assert_eq!(fs::metadata(&p).unwrap().len(), 64 * MIB, "the real size");
    assert_eq!(read_at(&p, 0, 513), [&head[..], b"\0"].concat());
    assert_eq!(read_at(&p, MIB - 1, 4098), [&b"\0"[..], &a, b"\0"].concat());
    assert_eq!(read_at(&p, 32 * MIB + 4, 6), b"\0tail\0");
    assert_eq!(read_at(&p, 64 * MIB - 3, 3), b"\0\0\0", "the trailing hole");
    assert!(
        allocated(&p) <= 64 * 1024,
        "{} bytes allocated",
        allocated(&p)
    );
}

#[test]
fn runs_of_zeros_become_holes_and_data_stays_exact() {
    let f = fixture();
    let mut zeros = vec![0u8; 16 * MIB as usize];
    zeros[5 * MIB as usize..][..3].copy_from_slice(b"mid");
    // Not a multiple of the block size, and ending in zeros.
    let odd: Vec<u8> = (0..5000u32)
        .map(|i| (i % 251) as u8)
        .chain([0; 100])
        .collect();
    let mut t = RawTar::default();
    t.file("zeros", &zeros, 0o644)
        .file("trailing", &[&b"x"[..], &[0; MIB as usize]].concat(), 0o644)
        .file("odd", &odd, 0o644)
        .file("aligned", &[&b"y"[..], &[0; 262_143]].concat(), 0o644)
        .file("empty", b"", 0o644);
    apply(&f.root, &t).unwrap();
    let p = f.root.join("zeros");
    assert_eq!(fs::read(&p).unwrap(), zeros);
    assert!(
        allocated(&p) <= 64 * 1024,
        "{} bytes allocated",
        allocated(&p)
    );
    let p = f.root.join("trailing");
    assert_eq!(
        fs::metadata(&p).unwrap().len(),
        MIB + 1,
        "a trailing hole keeps the length"
    );
    assert_eq!(read_at(&p, 0, 2), b"x\0");
    assert!(
        allocated(&p) <= 64 * 1024,
        "{} bytes allocated",
        allocated(&p)
    );
    assert_eq!(fs::read(f.root.join("odd")).unwrap(), odd);
    // A hole up to a multiple of the read size: the reader's end comes
    // in a read of its own.
    assert_eq!(fs::metadata(f.root.join("aligned")).unwrap().len(), 262_144);
    assert_eq!(fs::metadata(f.root.join("empty")).unwrap().len(), 0);
}

#[test]
fn members_longer_than_their_stream_still_fail() {
    // A regular member of zeros cut short: no hole makes up the rest.
    let f = fixture();
    let mut t = RawTar::default();
    t.file("big", &[0u8; 20_000], 0o644);
    let err = format!(
        "{:#}",
        unpack_tar(&t.0[..512 + 9000], &f.root, &UnpackOptions::default()).unwrap_err()
    );
    assert!(err.contains("9000 of its 20000 bytes"), "{err}");
    // A sparse member whose data ends early.
    let f = fixture();
    let mut t = RawTar::default();
    let d = [b'd'; 2048];
    t.sparse("s", 10 * MIB, &[(MIB, &d[..])]);
    let err = unpack_tar(&t.0[..512 + 1024], &f.root, &UnpackOptions::default()).unwrap_err();
    assert!(format!("{err:#}").contains("entry `s`"), "{err:#}");
}

#[test]
fn the_hole_copier_handles_short_reads() {
    /// Hands out at most 7 bytes per read.
    struct Trickle<'a>(&'a [u8]);
    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(7).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let f = fixture();
    let mut data = vec![0u8; 300_000];
    data[4095] = 1;
    data[200_000] = 2;
    let p = f.root.join("f");
    let file = fs::File::create(&p).unwrap();
    let n = super::holes::HoleCopier::default()
        .copy(&mut Trickle(&data), &file)
        .unwrap();
    assert_eq!(n, 300_000);
    assert_eq!(fs::read(&p).unwrap(), data);
}

#[test]
fn a_gnu_tar_sparse_member_unpacks() {
    // The fuzz seed, made by `tar --format=gnu --sparse` (GNU tar 1.34)
    // from a 64 KiB file holding "root pts/0" at 0 and "user" at 32 KiB.
    let seed = include_bytes!("../../fuzz/corpus/unpack/seed-gnu-sparse");
    let f = fixture();
    unpack_tar(&seed[..], &f.root, &UnpackOptions::default()).unwrap();
    let p = f.root.join("var/log/lastlog");
    assert_eq!(fs::metadata(&p).unwrap().len(), 64 * 1024);
    assert_eq!(read_at(&p, 0, 11), b"root pts/0\0");
    assert_eq!(read_at(&p, 32 * 1024 - 1, 6), b"\0user\0");
    assert_eq!(read_at(&p, 64 * 1024 - 1, 1), b"\0");
    assert!(
        allocated(&p) <= 16 * 1024,
        "{} bytes allocated",
        allocated(&p)
    );
}
