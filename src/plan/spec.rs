//! The OCI runtime spec (config.json) of a plan: the same decisions in
//! the format runc, crun and youki read, written to the container's
//! runtime directory for inspection. Pure except for [`write`].
//!
//! hutch executes the [`Plan`], not this file; both come from the same
//! data (the mount table, the capability set, the id maps), so they
//! cannot disagree. The user is resolved inside the container (from its
//! /etc/passwd), so `process.user` is 0:0 and the request is kept in the
//! annotation `io.hutch.user`; the seccomp profile is hutch's built-in
//! one, recorded as the annotation `io.hutch.seccomp`.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::Context;
use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxIdMapping, LinuxIdMappingBuilder,
    LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType, MountBuilder, ProcessBuilder,
    RootBuilder, Spec, SpecBuilder, UserBuilder,
};

use super::{Network, Plan};
use crate::userns::{IdMapEntry, IdMaps};

/// Builds the spec for `plan` running on `rootfs` with `maps`.
pub fn build(plan: &Plan, rootfs: &Path, maps: &IdMaps) -> anyhow::Result<Spec> {
    let caps: HashSet<Capability> = plan
        .caps
        .iter()
        .map(|c| serde_json::from_value(serde_json::Value::String(c.clone())))
        .collect::<Result<_, _>>()
        .context("map capabilities to the OCI spec")?;
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build()?;
    let process = ProcessBuilder::default()
        .terminal(plan.process.terminal)
        .user(UserBuilder::default().uid(0u32).gid(0u32).build()?)
        .args(plan.process.args.clone())
        .env(plan.process.env.clone())
        .cwd(plan.process.cwd.clone())
        .capabilities(capabilities)
        .no_new_privileges(plan.no_new_privs)
        .build()?;
    let mounts = plan
        .mounts
        .iter()
        .map(|m| {
            let mut b = MountBuilder::default()
                .destination(m.destination.clone())
                .typ(m.kind.fstype())
                .options(m.options.clone());
            b = b.source(m.source.clone().unwrap_or_else(|| m.kind.fstype().into()));
            b.build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let linux = LinuxBuilder::default()
        .namespaces(namespaces(plan.network)?)
        .uid_mappings(mappings(&maps.uid_map)?)
        .gid_mappings(mappings(&maps.gid_map)?)
        .masked_paths(plan.masked_paths.clone())
        .readonly_paths(plan.readonly_paths.clone())
        .build()?;
    let mut annotations = HashMap::new();
    annotations.insert(
        "io.hutch.user".to_string(),
        plan.process.user.clone().unwrap_or_default(),
    );
    let seccomp = if plan.seccomp {
        "default"
    } else {
        "unconfined"
    };
    annotations.insert("io.hutch.seccomp".to_string(), seccomp.to_string());
    annotations.insert("io.hutch.init".to_string(), plan.init.to_string());
    Ok(SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path(rootfs)
                .readonly(false)
                .build()?,
        )
        .hostname(plan.hostname.clone())
        .process(process)
        .mounts(mounts)
        .linux(linux)
        .annotations(annotations)
        .build()?)
}

fn namespaces(network: Network) -> anyhow::Result<Vec<LinuxNamespace>> {
    let mut types = vec![
        LinuxNamespaceType::User,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Cgroup,
    ];
    if network.own_namespace() {
        types.push(LinuxNamespaceType::Network);
    }
    types
        .into_iter()
        .map(|t| {
            LinuxNamespaceBuilder::default()
                .typ(t)
                .build()
                .map_err(Into::into)
        })
        .collect()
}

fn mappings(map: &[IdMapEntry]) -> anyhow::Result<Vec<LinuxIdMapping>> {
    map.iter()
        .map(|e| {
            LinuxIdMappingBuilder::default()
                .container_id(e.inside)
                .host_id(e.outside)
                .size(e.count)
                .build()
                .map_err(Into::into)
        })
        .collect()
}

/// Writes config.json (replaced atomically).
pub fn write(plan: &Plan, rootfs: &Path, maps: &IdMaps, path: &Path) -> anyhow::Result<()> {
    let spec = build(plan, rootfs, maps)?;
    let text = serde_json::to_vec_pretty(&spec).context("encode config.json")?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("write `{}`", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replace `{}`", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::userns::{Facts, Mode};

    #[test]
    fn spec_mirrors_the_plan() {
        let mut plan = super::super::tests::plan_for(&[
            "--cap-drop",
            "all",
            "--cap-add",
            "kill",
            "oci:x",
            "echo",
            "hi",
        ]);
        plan.network = Network::None;
        let facts = Facts {
            user: "u".into(),
            uid: 1000,
            gid: 1000,
            ..Default::default()
        };
        let maps = IdMaps::new(&facts, Mode::Root);
        let spec = build(&plan, Path::new("/r"), &maps).unwrap();
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["process"]["args"], serde_json::json!(["echo", "hi"]));
        assert_eq!(
            json["process"]["capabilities"]["bounding"],
            serde_json::json!(["CAP_KILL"])
        );
        assert_eq!(json["linux"]["uidMappings"][0]["hostID"], 1000);
        let ns: Vec<&str> = json["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert!(ns.contains(&"network") && ns.contains(&"user"));
        let mounts = json["mounts"].as_array().unwrap();
        assert_eq!(mounts.len(), plan.mounts.len());
        assert_eq!(mounts[0]["destination"], "/proc");
        assert_eq!(json["root"]["path"], "/r");
    }
}
