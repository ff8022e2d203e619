//! `hutch image ls|inspect|rm|prune`.

use anyhow::Context;
use serde_json::{json, Value};

use crate::cli::{ImageArgs, ImageCommand, InspectArgs, PruneArgs};
use crate::state::Dirs;
use crate::store::{split_name, tags_of, Digest, ImageRecord, Store};

pub fn image(args: ImageArgs) -> anyhow::Result<i32> {
    match args.command {
        ImageCommand::Ls(a) => super::images::images(a),
        ImageCommand::Inspect(a) => inspect(a),
        ImageCommand::Rm(a) => super::rmi::rmi(a),
        ImageCommand::Prune(a) => prune(a),
    }
}

/// A JSON array shaped like `podman image inspect`.
fn inspect(args: InspectArgs) -> anyhow::Result<i32> {
    let store = Store::open(&Dirs::new()?)?;
    let mut out = Vec::new();
    for key in &args.images {
        let rec = store.find(key)?;
        out.push(inspect_one(&store, &rec)?);
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(0)
}

fn inspect_one(store: &Store, rec: &ImageRecord) -> anyhow::Result<Value> {
    let id = Digest::parse(&rec.id)?;
    let bytes = store.read_json_blob(&id, Some(rec.config_size))?;
    let config: Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("decode config of image `{}`", id.short()))?;
    let run = config.get("config").cloned().unwrap_or(Value::Null);
    let pick = |k: &str| run.get(k).cloned().unwrap_or(Value::Null);
    // Each repository with the manifest digest, and each digest name as
    // pulled (an index's digest when pulled by it).
    let mut repo_digests: Vec<String> = rec
        .names
        .iter()
        .map(|n| format!("{}@{}", split_name(n).0, rec.manifest_digest))
        .chain(rec.names.iter().filter(|n| n.contains('@')).cloned())
        .collect();
    repo_digests.sort();
    repo_digests.dedup();
    Ok(json!({
        "Id": id.hex(),
        "Digest": rec.manifest_digest,
        "RepoTags": tags_of(rec),
        "RepoDigests": repo_digests,
        "Created": config.get("created").cloned().unwrap_or(Value::Null),
        "Architecture": config.get("architecture").cloned().unwrap_or(Value::Null),
        "Os": config.get("os").cloned().unwrap_or(Value::Null),
        "Size": rec.size,
        "Config": {
            "Env": pick("Env"),
            "Cmd": pick("Cmd"),
            "Entrypoint": pick("Entrypoint"),
            "WorkingDir": pick("WorkingDir"),
            "User": pick("User"),
            "Labels": pick("Labels"),
            "ExposedPorts": pick("ExposedPorts"),
            "StopSignal": pick("StopSignal"),
            "Volumes": pick("Volumes"),
        },
        // Podman repeats the labels at the top, and lists the history.
        "Labels": pick("Labels"),
        "History": config.get("history").cloned().unwrap_or(Value::Null),
        "RootFS": {"Type": "layers", "Layers": rec.diff_ids},
        "ManifestType": rec.manifest_media_type,
        "Source": rec.source,
    }))
}

/// Removes dangling images and unreferenced blobs, after asking as
/// Docker does when a person is at the terminal.
fn prune(args: PruneArgs) -> anyhow::Result<i32> {
    if !args.force && !super::confirm("all dangling images")? {
        return Ok(0);
    }
    let dirs = Dirs::new()?;
    let store = Store::open(&dirs)?;
    let report = store.prune()?;
    let (_, maps) = crate::userns::plan(crate::userns::Mode::Root)?;
    let layers = crate::rootfs::remove_unused_layers(&store, &dirs, &maps)?;
    if layers > 0 {
        println!("Removed {layers} unpacked layers no image or container uses");
    }
    if !report.images.is_empty() {
        println!("Deleted Images:");
        for id in &report.images {
            println!("deleted: {id}");
        }
        println!();
    }
    if report.kept_for_writers {
        eprintln!("note: unused blobs were kept because a load or pull is running");
    }
    println!(
        "Total reclaimed space: {}",
        super::images::human_size(report.reclaimed)
    );
    Ok(0)
}
