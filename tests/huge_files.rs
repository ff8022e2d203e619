//! Layers that describe files far bigger than themselves (issue 7): a GNU
//! sparse member of 8 GiB, 8 GiB of zeros, and a decompression bomb of
//! non-zero bytes on a store too small for it. As the unprivileged user
//! hutch-t1; the layers are made with GNU tar (whose `--sparse` writes the
//! GNU sparse format found in real images) and put in the store with
//! `hutch pull oci-archive:`.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::layout::{self, Layout, OCI_LAYER_GZIP};
use common::registry::Registry;
use common::*;
use serde_json::json;

const MIB: u64 = 1 << 20;
const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// Runs a shell script as root in `dir` (no time bound: it writes and
/// reads gigabytes of zeros); panics when it fails. Returns stdout.
fn sh(dir: &Path, script: &str) -> String {
    let out = Command::new("sh")
        .args(["-euc", script])
        .current_dir(dir)
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The hex digest `sha256sum` printed first in `out`, as `sha256:HEX`.
fn digest_of(out: &str) -> String {
    let hex = out.split_whitespace().next().expect("a digest");
    assert_eq!(hex.len(), 64, "{out}");
    format!("sha256:{hex}")
}

/// Adds an already compressed layer (its diff id given) to `image`.
fn add_layer(l: &Layout, image: &mut layout::Image, media: &str, blob: &Path, diff_id: &str) {
    let desc = l.blob(media, &fs::read(blob).unwrap());
    image.layers.push(desc);
    image.config["rootfs"]["diff_ids"]
        .as_array_mut()
        .unwrap()
        .push(json!(diff_id));
}

/// A layout of the test image plus `layers` (media type, blob, diff id).
fn layout_with(u: &TestUser, name: &str, layers: &[(&str, PathBuf, String)]) -> Layout {
    let l = Layout::new(&u.root_scratch(&format!("{name}-layout")));
    let mut image = l.base(&images().oci, "latest");
    for (media, blob, diff_id) in layers {
        add_layer(&l, &mut image, media, blob, diff_id);
    }
    let m = l.manifest(&image);
    l.tag_latest(&m);
    l
}

/// `layout` as an oci-archive the test users can read.
fn archive_of(u: &TestUser, name: &str, layout: &Layout) -> String {
    let archive = u.root_dir.join(format!("{name}.oci.tar"));
    sh(
        &layout.dir,
        &format!("tar -cf {} --owner=0 --group=0 .", archive.display()),
    );
    fs::set_permissions(&archive, fs::Permissions::from_mode(0o644)).unwrap();
    format!("oci-archive:{}", archive.display())
}

/// Bytes allocated (st_blocks) by everything below `dir`, symlinks and
/// directories included.
fn allocated(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(m) = fs::symlink_metadata(e.path()) else {
                continue;
            };
            total += m.blocks() * 512;
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    total
}

/// Pulls `src` (an archive whose image has no name) and names it `name`.
fn pull_as(u: &TestUser, src: &str, name: &str) {
    let id = hutch_ok(u, &["pull", "-q", src]);
    hutch_ok(u, &["tag", id.trim(), name]);
}

fn run_long(u: &TestUser, args: &[&str]) -> Run {
    let r = run_hutch(
        u,
        args,
        &Opts {
            timeout: Duration::from_secs(900),
            ..Opts::default()
        },
    );
    assert!(!r.timed_out, "hutch {args:?} timed out\n{r}");
    r
}

#[test]
fn an_8_gib_sparse_file_and_8_gib_of_zeros_unpack_as_holes() {
    let Some(u) = TestUser::t1() else { return };
    let work = u.root_scratch("huge");
    let t0 = Instant::now();
    // A sparse lastlog: data at 0, at 4 GiB + 512 and 8 KiB before the
    // end, so the map ends in a hole. GNU tar writes it as a type `S`
    // member with its sparse map, a few KiB in all.
    let sparse = sh(
        &work,
        "mkdir -p l1/var/log l2
         f=l1/var/log/lastlog
         truncate -s 8G $f
         printf head | dd of=$f bs=1 conv=notrunc status=none
         printf middle | dd of=$f bs=512 seek=8388609 conv=notrunc status=none
         printf tail | dd of=$f bs=4096 seek=2097150 conv=notrunc status=none
         tar --format=gnu --sparse --owner=0 --group=0 -C l1 -cf layer1.tar var
         gzip -1 -k layer1.tar
         sha256sum layer1.tar",
    );
    // 8 GiB of zeros as a plain member: the tar is 8 GiB, its zstd blob
    // a few hundred KiB.
    let zeros = sh(
        &work,
        "truncate -s 8G l2/zeros
         mkfifo plain
         sha256sum < plain > layer2.sum &
         tar --format=gnu --owner=0 --group=0 -C l2 -cf - zeros | tee plain | zstd -1 -q -o layer2.tar.zst
         wait
         cat layer2.sum",
    );
    let blob_sizes = fs::metadata(work.join("layer1.tar.gz")).unwrap().len()
        + fs::metadata(work.join("layer2.tar.zst")).unwrap().len();
    eprintln!(
        "layers built in {:?}; compressed: {blob_sizes} bytes",
        t0.elapsed()
    );
    let l = layout_with(
        &u,
        "huge",
        &[
            (
                OCI_LAYER_GZIP,
                work.join("layer1.tar.gz"),
                digest_of(&sparse),
            ),
            (
                OCI_LAYER_ZSTD,
                work.join("layer2.tar.zst"),
                digest_of(&zeros),
            ),
        ],
    );
    let Some(reg) = Registry::start(&u, "needed to serve the huge layers") else {
        return;
    };
    // Pulled, not loaded: `load` would hash the 16 GiB of tar once more,
    // besides the check of each layer's diff_id when it is unpacked.
    reg.copy(
        &format!("oci:{}:latest", l.dir.display()),
        "test/huge:1",
        &[],
    );
    let name = reg.name("test/huge:1");
    let store = u.data_dir.join("hutch");
    hutch_ok(&u, &["pull", "-q", "--tls-verify=false", &name]);
    let before = allocated(&store);
    let t0 = Instant::now();
    let r = run_long(
        &u,
        &[
            "run",
            "--rm",
            &name,
            "sh",
            "-c",
            "f=/var/log/lastlog
             stat -c %s $f /zeros
             dd if=$f bs=1 count=4 status=none; echo
             dd if=$f bs=512 skip=8388609 count=1 status=none | tr -d '\\0'; echo
             dd if=$f bs=4096 skip=2097150 count=1 status=none | tr -d '\\0'; echo
             dd if=$f bs=4096 skip=2097151 count=1 status=none | tr -d '\\0' | wc -c
             dd if=/zeros bs=4096 skip=1048576 count=4 status=none | tr -d '\\0' | wc -c",
        ],
    );
    let grown = allocated(&store).saturating_sub(before);
    eprintln!(
        "run (unpacking 16 GiB apparent) took {:?}; the store grew by {grown} bytes",
        t0.elapsed()
    );
    assert_eq!(r.code(), Some(0), "{r}");
    assert_eq!(
        r.stdout, "8589934592\n8589934592\nhead\nmiddle\ntail\n0\n0\n",
        "{r}"
    );
    assert!(
        grown < 64 * MIB,
        "the store grew by {grown} bytes for 16 GiB of holes"
    );
}

/// A tmpfs mounted (as root) over the user's data dir, so that the store
/// lives on a small filesystem; unmounted on drop, also when the test
/// fails.
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    fn mount(u: &TestUser, size: &str) -> SmallDisk {
        let dir = u.data_dir.clone();
        let opts = format!("size={size},mode=0700,uid={},gid={}", u.uid, u.gid);
        let (ok, out) = host(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &opts,
                "hutch-small",
                &dir.display().to_string(),
            ],
        );
        assert!(ok, "mount a tmpfs: {out}");
        SmallDisk { dir }
    }

    /// Bytes in use on the filesystem.
    fn used(&self) -> u64 {
        let st = nix::sys::statvfs::statvfs(&self.dir).unwrap();
        (st.blocks() - st.blocks_free()) * st.fragment_size()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let (ok, out) = host("umount", &[&self.dir.display().to_string()]);
        if !ok {
            eprintln!("umount {}: {out}; detaching it", self.dir.display());
            let _ = host("umount", &["-l", &self.dir.display().to_string()]);
        }
    }
}

#[test]
fn a_layer_bigger_than_the_disk_fails_cleanly_and_the_store_keeps_working() {
    let Some(u) = TestUser::t1() else { return };
    let work = u.root_scratch("bomb");
    // 100 MiB of one non-zero byte: gzip makes it ~100 KiB.
    let bomb = sh(
        &work,
        "mkdir l
         head -c 100M /dev/zero | tr '\\0' A > l/bomb
         tar --format=gnu --owner=0 --group=0 -C l -cf layer.tar bomb
         gzip -9 -k layer.tar
         rm l/bomb
         sha256sum layer.tar",
    );
    let blob = work.join("layer.tar.gz");
    eprintln!(
        "bomb layer: 100 MiB in a {}-byte blob",
        fs::metadata(&blob).unwrap().len()
    );
    let l = layout_with(&u, "bomb", &[(OCI_LAYER_GZIP, blob, digest_of(&bomb))]);
    let src = archive_of(&u, "bomb", &l);

    let disk = SmallDisk::mount(&u, "48m");
    let good = format!("oci-archive:{}", images().archive.display());
    pull_as(&u, &good, "good");
    assert_eq!(
        hutch_ok(&u, &["run", "--rm", "good", "cat", "/etc/layer2"]),
        "layer2\n"
    );
    pull_as(&u, &src, "bomb");
    let before = disk.used();

    let r = hutch_run(&u, &["run", "--rm", "bomb", "echo", "ran"]);
    let after = disk.used();
    eprintln!("tmpfs in use: {before} bytes before the run, {after} after\n{r}");
    assert_eq!(r.code(), Some(125), "{r}");
    assert!(!r.stdout.contains("ran"), "{r}");
    assert!(r.stderr.contains("No space left on device"), "{r}");
    assert!(r.stderr.contains("hint: free space"), "{r}");
    let store = u.data_dir.join("hutch");
    assert!(temps(&store).is_empty(), "left: {:?}", temps(&store));
    assert!(
        after <= before + MIB,
        "the half-unpacked layer was not removed: {before} -> {after}"
    );
    // What the store held still works.
    let listed = hutch_ok(&u, &["images"]);
    assert!(listed.contains("good"), "{listed}");
    assert_eq!(
        hutch_ok(&u, &["run", "--rm", "good", "cat", "/etc/layer2"]),
        "layer2\n"
    );
    u.assert_no_leftover_containers();
}

#[test]
fn a_pull_onto_a_full_disk_reports_the_store_error_and_keeps_nothing() {
    let Some(u) = TestUser::t1() else { return };
    let work = u.root_scratch("full");
    // 40 MiB that gzip cannot shrink: a layer blob larger than the disk.
    let out = sh(
        &work,
        "mkdir l
         head -c 40M /dev/urandom > l/noise
         tar --format=gnu --owner=0 --group=0 -C l -cf layer.tar noise
         gzip -1 -k layer.tar
         rm l/noise
         sha256sum layer.tar",
    );
    let blob = work.join("layer.tar.gz");
    let l = layout_with(&u, "full", &[(OCI_LAYER_GZIP, blob, digest_of(&out))]);
    let Some(reg) = Registry::start(&u, "needed to pull onto a full disk") else {
        return;
    };
    reg.copy(&l.oci_ref(), "test/full:1", &[]);
    let _disk = SmallDisk::mount(&u, "24m");
    let r = hutch_run(
        &u,
        &["pull", "--tls-verify=false", &reg.name("test/full:1")],
    );
    assert_eq!(r.code(), Some(125), "{r}");
    // The store's own error and hint, not the download's broken pipe.
    assert!(r.stderr.contains("No space left on device"), "{r}");
    assert!(r.stderr.contains("hint: free space"), "{r}");
    assert!(!r.stderr.to_lowercase().contains("broken pipe"), "{r}");
    // Nothing stored: no temp file, no blob (not even the small layers
    // fetched beside the big one), no image record. Looked at before any
    // other hutch command: opening the store removes dead writers' temps.
    let store = u.data_dir.join("hutch/storage");
    assert!(temps(&store).is_empty(), "left: {:?}", temps(&store));
    let blobs: Vec<_> = fs::read_dir(store.join("blobs/sha256"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(blobs.is_empty(), "{blobs:?}\n{r}");
    let records: Vec<_> = fs::read_dir(store.join("images"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(records.is_empty(), "{records:?}\n{r}");
    assert!(hutch_ok(&u, &["images", "-q"]).trim().is_empty());
}
