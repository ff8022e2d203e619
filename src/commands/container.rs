//! `hutch inspect`, `hutch container prune` and the `hutch container
//! ls|rm|inspect|stop|...` group. Runs in the caller's process.

use serde_json::{json, Value};

use crate::cli::{ContainerArgs, ContainerCommand, InspectContainersArgs, PruneArgs, RunArgs};
use crate::errors::EXIT_HUTCH;
use crate::net::PortMapping;
use crate::state::{self, Container, Dirs, State, Status};

pub fn container(args: ContainerArgs) -> anyhow::Result<i32> {
    match args.command {
        ContainerCommand::Ls(a) => super::ps::ps(a),
        ContainerCommand::Rm(a) => super::rm::rm(a),
        ContainerCommand::Inspect(a) => inspect(a),
        ContainerCommand::Stop(a) => super::stop::stop(a),
        ContainerCommand::Kill(a) => super::stop::kill(a),
        ContainerCommand::Wait(a) => super::stop::wait(a),
        ContainerCommand::Logs(a) => super::logs::logs(a),
        ContainerCommand::Prune(a) => prune(a),
        ContainerCommand::Create(a) => super::run::run(RunArgs {
            create_only: true,
            ..a
        }),
        ContainerCommand::Start(a) => super::start::start(a),
        ContainerCommand::Restart(a) => super::start::restart(a),
    }
}

/// A JSON array with one object per container, in Docker's shape.
pub fn inspect(args: InspectContainersArgs) -> anyhow::Result<i32> {
    let dirs = Dirs::new()?;
    let mut out = Vec::new();
    let mut code = 0;
    for key in &args.containers {
        match state::find(&dirs, key) {
            Ok(s) => out.push(document(&s, &Container::open(&dirs, &s.id))),
            Err(e) => {
                crate::errors::report(&e);
                code = EXIT_HUTCH;
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(code)
}

fn document(s: &State, c: &Container) -> Value {
    let (status, code) = s.effective();
    let running = status == Status::Running;
    let zero = "0001-01-01T00:00:00Z".to_string();
    let created = crate::clock::rfc3339(std::time::Duration::from_secs(s.created));
    let mounts: Vec<Value> = s
        .config
        .mounts
        .iter()
        .map(|m| {
            let mode = if m.rw { "" } else { "ro" };
            match &m.name {
                Some(name) => json!({"Type": "volume", "Name": name, "Source": m.source,
                    "Destination": m.destination, "Driver": "local", "Mode": mode,
                    "RW": m.rw, "Propagation": ""}),
                None => json!({"Type": "bind", "Source": m.source, "Destination": m.destination,
                    "Mode": mode, "RW": m.rw, "Propagation": "rprivate"}),
            }
        })
        .collect();
    // The storage driver; a `--rootfs` container has none.
    let driver = s.storage.as_ref().map(|c| c.driver.name()).unwrap_or("");
    json!({
        "Id": s.id,
        "Name": format!("/{}", s.name.as_deref().unwrap_or("")),
        "Created": created,
        "Path": s.command.first(),
        "Args": s.command.get(1..).unwrap_or_default(),
        "State": {
            "Status": format!("{status:?}").to_lowercase(),
            "Running": running,
            "Pid": if running { s.pid.unwrap_or(0) } else { 0 },
            "ExitCode": code.unwrap_or(0),
            "StartedAt": s.started_at.clone().unwrap_or_else(|| zero.clone()),
            "FinishedAt": if running { zero.clone() } else { s.finished_at.clone().unwrap_or(zero) },
        },
        "Image": s.image_id,
        "LogPath": c.log_path(),
        "Config": {
            "Hostname": s.config.hostname,
            "User": s.config.user.clone().unwrap_or_default(),
            "Env": s.config.env,
            "Cmd": s.command,
            "Image": s.image,
            "WorkingDir": s.config.working_dir,
        },
        "GraphDriver": {"Name": driver, "Data": {"MergedDir": s.rootfs}},
        "Mounts": mounts,
        "NetworkSettings": {
            "Networks": {s.config.network.clone(): {}},
            "Ports": ports(&s.ports),
        },
    })
}

/// Published ports in Docker's shape: `{"80/tcp": [{"HostIp":
/// "127.0.0.1", "HostPort": "8080"}]}`, one key per container port.
fn ports(mappings: &[PortMapping]) -> Value {
    let mut out = serde_json::Map::new();
    for m in mappings {
        let host_ip = m
            .host_ip
            .map_or_else(|| "0.0.0.0".to_string(), |ip| ip.to_string());
        for i in 0..m.count {
            let key = format!(
                "{}/{}",
                m.container_port.saturating_add(i),
                m.proto.as_str()
            );
            let binding = json!({
                "HostIp": host_ip,
                "HostPort": m.host_port.saturating_add(i).to_string(),
            });
            match out.entry(key).or_insert_with(|| json!([])) {
                Value::Array(a) => a.push(binding),
                other => *other = json!([binding]),
            }
        }
    }
    Value::Object(out)
}

/// Removes every container that is not running.
fn prune(args: PruneArgs) -> anyhow::Result<i32> {
    if !args.force && !super::confirm("all stopped containers")? {
        return Ok(0);
    }
    let dirs = Dirs::new()?;
    let mut code = 0;
    println!("Deleted Containers:");
    for s in state::list(&dirs)? {
        let preparing =
            s.status == Status::Created && s.owner.as_ref().is_some_and(|p| p.is_alive());
        if s.effective().0 == Status::Running || preparing {
            continue;
        }
        match super::control::remove(&dirs, &s, false) {
            Ok(()) => println!("{}", s.id),
            Err(e) => {
                crate::errors::report(&e);
                code = EXIT_HUTCH;
            }
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::ports::Proto;

    #[test]
    fn ports_take_dockers_shape() {
        let map = |ip: Option<&str>, host, ctr, count, proto| PortMapping {
            host_ip: ip.map(|i| i.parse().unwrap()),
            host_port: host,
            container_port: ctr,
            count,
            proto,
        };
        let got = ports(&[
            map(Some("127.0.0.1"), 8080, 80, 1, Proto::Tcp),
            map(None, 9080, 80, 1, Proto::Tcp),
            map(Some("::1"), 5000, 53, 2, Proto::Udp),
        ]);
        assert_eq!(
            got,
            json!({
                "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"},
                           {"HostIp": "0.0.0.0", "HostPort": "9080"}],
                "53/udp": [{"HostIp": "::1", "HostPort": "5000"}],
                "54/udp": [{"HostIp": "::1", "HostPort": "5001"}],
            })
        );
        assert_eq!(ports(&[]), json!({}));
    }
}
