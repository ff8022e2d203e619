//! Several writers on one store at once: each thread opens its own
//! `Store` (its own lock file description, like a separate process) and
//! adds, tags, removes and prunes images while the others do too. After
//! all of them finish, every record parses, every blob it names exists,
//! every name points at a record, and no temp file or lease is left.

use std::path::Path;
use std::sync::{Arc, Barrier};

use super::record;
use super::tests::{make_image, store};
use super::Store;

const ROUNDS: usize = 15;

fn writer(root: &Path, t: usize) {
    let shared: &[u8] = b"a layer every image shares";
    for i in 0..ROUNDS {
        // A fresh store per round: its lease ends with the round, so
        // concurrent prunes really do delete blobs in between.
        let store = Store::open_at(root).unwrap();
        let unique = format!("layer {t}/{i}");
        let own = format!("t{t}:{i}");
        let rec = make_image(
            &store,
            &format!("{t}-{i}"),
            &[shared, unique.as_bytes()],
            &[&own, "shared"],
        );
        store.add_image(rec).unwrap();
        if i % 4 == 0 {
            store.tag(&own, &format!("copy{t}:{i}")).unwrap();
        }
        if i % 3 == 1 {
            let r = store.untag_or_remove(&own, false).unwrap();
            assert_eq!(r.untagged.len(), 1);
        }
    }
}

fn pruner(root: &Path) {
    for _ in 0..ROUNDS {
        let store = Store::open_at(root).unwrap();
        store.prune().unwrap();
        for rec in store.images().unwrap() {
            // Readers see whole records even mid-churn.
            rec.validate().unwrap();
        }
    }
}

fn check_invariants(store: &Store) {
    let images = store.images().unwrap();
    assert!(!images.is_empty());
    for rec in &images {
        for blob in rec.blobs() {
            assert!(store.has_blob(blob), "{} lacks {blob}", rec.id);
        }
    }
    let table = record::read_names(&store.names_path()).unwrap();
    for (name, id) in &table {
        assert!(images.iter().any(|r| &r.id == id), "{name} -> missing {id}");
    }
    let shared = store.find("shared").unwrap();
    assert!(shared
        .names
        .contains(&"docker.io/library/shared:latest".to_owned()));
    for dir in [
        store.blob_dir(),
        store.images_dir(),
        store.root.clone(),
        store.leases_dir(),
    ] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                !name.starts_with(".tmp-"),
                "leftover {name} in {}",
                dir.display()
            );
            assert!(dir != store.leases_dir(), "leftover lease {name}");
        }
    }
}

#[test]
fn concurrent_writers_keep_the_store_consistent() {
    let (_dir, store) = store();
    let root = Arc::new(store.root.clone());
    let barrier = Arc::new(Barrier::new(6));
    let mut handles = Vec::new();
    for t in 0..4 {
        let (root, barrier) = (Arc::clone(&root), Arc::clone(&barrier));
        handles.push(std::thread::spawn(move || {
            barrier.wait();
            writer(&root, t);
        }));
    }
    for _ in 0..2 {
        let (root, barrier) = (Arc::clone(&root), Arc::clone(&barrier));
        handles.push(std::thread::spawn(move || {
            barrier.wait();
            pruner(&root);
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    drop(store); // its own lease, if any
    let store = Store::open_at(&root).unwrap();
    check_invariants(&store);
    // Every image still named has all its names; removed ones are gone.
    for t in 0..4 {
        for i in 0..ROUNDS {
            let found = store.find(&format!("t{t}:{i}"));
            assert_eq!(found.is_ok(), i % 3 != 1, "t{t}:{i}");
        }
    }
    store.prune().unwrap();
    check_invariants(&store);
}

#[test]
fn lock_is_reentrant_within_a_thread_and_exclusive_across_stores() {
    let (_dir, store) = store();
    let rec = make_image(&store, "l", &[b"l"], &["l"]);
    let guard = store.lock().unwrap();
    // The holder may still use the store's methods.
    store.add_image(rec).unwrap();
    assert_eq!(store.images().unwrap().len(), 1);
    let other = Store::open_at(&store.root).unwrap();
    let root = store.root.clone();
    let waiter = std::thread::spawn(move || {
        let start = std::time::Instant::now();
        let _ = other.images().unwrap();
        drop(root);
        start.elapsed()
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    drop(guard);
    let waited = waiter.join().unwrap();
    assert!(
        waited >= std::time::Duration::from_millis(150),
        "{waited:?}"
    );
}
