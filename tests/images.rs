//! `hutch load|images|image inspect|tag|save|rmi|image prune` through the
//! real binary, as the unprivileged user hutch-t1, each test with its own
//! XDG directories (so its own store).
//!
//! Needs skopeo and the test images; without them a test is skipped with a
//! reason, or fails under CI (`common::require`).

mod common;

use std::path::Path;

use common::*;

fn full_id(u: &TestUser, name: &str) -> String {
    let out = hutch_ok(u, &["image", "inspect", name]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0]["Id"].as_str().unwrap().to_owned()
}

#[test]
fn load_list_save_round_trip_rmi_prune() {
    let Some(u) = TestUser::t1() else { return };
    let Some(archive) = docker_archive(&u, "test/busybox:latest") else {
        return;
    };
    let archive = archive.to_str().unwrap();
    let out = hutch_ok(&u, &["load", "-i", archive]);
    assert_eq!(out, "Loaded image: docker.io/test/busybox:latest\n");

    let list = hutch_ok(&u, &["images"]);
    let mut lines = list.lines();
    let header = lines.next().unwrap();
    for col in ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"] {
        assert!(header.contains(col), "{header}");
    }
    let row: Vec<&str> = lines
        .next()
        .unwrap()
        .split("   ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(row[0], "docker.io/test/busybox");
    assert_eq!(row[1], "latest");
    assert_eq!(row[2].len(), 12);
    assert!(row[3].ends_with(" ago"), "{row:?}");
    assert!(row[4].ends_with("MB"), "{row:?}");

    let id = full_id(&u, "test/busybox");
    assert!(id.starts_with(row[2]));
    assert_eq!(hutch_ok(&u, &["images", "-q"]).trim(), row[2]);
    assert_eq!(
        hutch_ok(&u, &["images", "-q", "--no-trunc"]).trim(),
        format!("sha256:{id}")
    );
    let json: serde_json::Value =
        serde_json::from_str(&hutch_ok(&u, &["images", "--format", "json"])).unwrap();
    assert_eq!(json[0]["Id"], id.as_str());
    let inspect: serde_json::Value =
        serde_json::from_str(&hutch_ok(&u, &["image", "inspect", &id[..5]])).unwrap();
    assert_eq!(inspect[0]["Os"], "linux");
    assert_eq!(inspect[0]["RootFS"]["Layers"].as_array().unwrap().len(), 2);

    hutch_ok(&u, &["tag", "test/busybox", "example.com/copy:v1"]);
    assert!(hutch_ok(&u, &["image", "ls"]).contains("example.com/copy"));

    let out_dir = u.scratch("saved");
    for format in ["docker-archive", "oci-archive"] {
        let saved = out_dir.join(format!("saved-{format}.tar"));
        let saved = saved.to_str().unwrap();
        hutch_ok(
            &u,
            &[
                "save",
                "--format",
                format,
                "-o",
                saved,
                "example.com/copy:v1",
            ],
        );
        // A fresh store (the same user, new XDG directories).
        let Some(second) = TestUser::t1() else { return };
        let out = hutch_ok(&second, &["load", "-i", saved]);
        assert_eq!(out, "Loaded image: example.com/copy:v1\n", "{format}");
        assert_eq!(full_id(&second, "example.com/copy:v1"), id, "{format}");
        // Other tools read what we write.
        let (ok, out) = host(
            "skopeo",
            &["inspect", "--raw", &format!("{format}:{saved}")],
        );
        assert!(ok, "skopeo inspect {format}: {out}");
    }

    let out = hutch_as(&u, &["rmi", &id[..12]]);
    assert!(!out.status.success(), "an id with two names needs -f");
    assert!(String::from_utf8_lossy(&out.stderr).contains("hint:"));
    assert_eq!(
        hutch_ok(&u, &["rmi", "example.com/copy:v1"]),
        "Untagged: example.com/copy:v1\n"
    );
    let out = hutch_ok(&u, &["rmi", "test/busybox"]);
    assert_eq!(
        out,
        format!("Untagged: docker.io/test/busybox:latest\nDeleted: sha256:{id}\n")
    );
    assert_eq!(hutch_ok(&u, &["images", "-q"]), "");
    let out = hutch_as(&u, &["rmi", "test/busybox"]);
    assert_eq!(out.status.code(), Some(1));

    let out = hutch_ok(&u, &["image", "prune", "-f"]);
    assert!(out.contains("Total reclaimed space: "), "{out}");
    let blobs = u.data_dir.join("hutch/storage/blobs/sha256");
    assert_eq!(std::fs::read_dir(blobs).unwrap().count(), 0);
}

#[test]
fn parallel_loads_removals_and_prunes() {
    let Some(u) = TestUser::t1() else { return };
    let Some(archive) = docker_archive(&u, "test/busybox:latest") else {
        return;
    };
    let archive = archive.to_str().unwrap().to_owned();
    hutch_ok(&u, &["load", "-i", &archive]);
    let spawn = |args: &[&str]| spawn_hutch(&u, args, &Opts::default());
    let mut loads = Vec::new();
    let mut others = Vec::new();
    for i in 0..4 {
        loads.push(spawn(&["load", "-i", &archive]));
        others.push(spawn(&["image", "prune", "-f"]));
        others.push(spawn(&["tag", "test/busybox", &format!("copy:{i}")]));
        others.push(spawn(&["rmi", &format!("copy:{i}")]));
    }
    for child in loads {
        let r = child.wait();
        assert!(!r.timed_out, "load timed out\n{r}");
        assert_eq!(r.code(), Some(0), "load\n{r}");
    }
    for child in others {
        // tag/rmi may find nothing to act on; they must not corrupt anything.
        let r = child.wait();
        assert!(!r.timed_out, "tag/rmi/prune timed out\n{r}");
    }
    let id = full_id(&u, "test/busybox");
    let saved = u.scratch("check").join("check.tar");
    hutch_ok(&u, &["save", "-o", saved.to_str().unwrap(), "test/busybox"]);
    let Some(second) = TestUser::t1() else { return };
    hutch_ok(&second, &["load", "-i", saved.to_str().unwrap()]);
    assert_eq!(full_id(&second, "test/busybox"), id);
    assert!(Path::new(&u.data_dir.join("hutch/storage/leases"))
        .read_dir()
        .unwrap()
        .next()
        .is_none());
}
