//! `hutch inspect`, `hutch container prune` and the `hutch container
//! ls|rm|inspect|stop|...` group. Runs in the caller's process.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Context;
use serde_json::{json, Value};

use crate::cli::{ContainerArgs, ContainerCommand, InspectContainersArgs, PruneArgs, RunArgs};
use crate::errors::EXIT_HUTCH;
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
            json!({"Type": "bind", "Source": m.source, "Destination": m.destination,
                   "Mode": if m.rw { "" } else { "ro" }, "RW": m.rw})
        })
        .collect();
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
        "GraphDriver": {"Data": {"MergedDir": s.rootfs}},
        "Mounts": mounts,
        "NetworkSettings": {"Networks": {s.config.network.clone(): {}}},
    })
}

/// Removes every container that is not running.
fn prune(args: PruneArgs) -> anyhow::Result<i32> {
    if !args.force && std::io::stdin().is_terminal() && !confirm()? {
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

fn confirm() -> anyhow::Result<bool> {
    print!(
        "WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] "
    );
    std::io::stdout().flush().context("write prompt")?;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("read answer")?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "Yes"))
}
