//! One short function per subcommand; each returns the process exit code.

mod container;
mod control;
mod cp;
mod doctor;
mod exec;
mod image;
mod images;
mod info;
mod load;
mod login;
mod logs;
mod port;
mod progress;
mod ps;
pub(crate) mod pull;
mod rm;
mod rmi;
mod run;
mod save;
mod start;
mod stop;
mod tag;
mod top;
mod volume;

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Context;

use crate::cli::{Cli, Command};

pub fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Doctor(args) => doctor::doctor(args),
        Command::Info(args) => info::info(args),
        Command::Volume(args) => volume::volume(args),
        Command::Ps(args) => ps::ps(args),
        Command::Port(args) => port::port(args),
        Command::Rm(args) => rm::rm(args),
        Command::Create(args) => run::run(crate::cli::RunArgs {
            create_only: true,
            ..args
        }),
        Command::Start(args) => start::start(args),
        Command::Restart(args) => start::restart(args),
        Command::Logs(args) => logs::logs(args),
        Command::Stop(args) => stop::stop(args),
        Command::Kill(args) => stop::kill(args),
        Command::Wait(args) => stop::wait(args),
        Command::Inspect(args) => container::inspect(args),
        Command::Container(args) => container::container(args),
        Command::Images(args) => images::images(args),
        Command::Image(args) => image::image(args),
        Command::Tag(args) => tag::tag(args),
        Command::Rmi(args) => rmi::rmi(args),
        Command::Load(args) => load::load(args),
        Command::Pull(args) => pull::pull(args),
        Command::Save(args) => save::save(args),
        Command::Login(args) => login::login(args),
        Command::Logout(args) => login::logout(args),
        Command::Exec(args) => exec::exec(args),
        Command::Top(args) => top::top(args),
        Command::Cp(args) => cp::cp(args),
    }
}

/// Removes a container's directories. The unpacked rootfs holds files of
/// subordinate ids, which only root of a user namespace with the same
/// maps may delete; the runtime directory is the caller's own.
pub(crate) fn remove_container(
    c: &crate::state::Container,
    maps: Option<&crate::userns::IdMaps>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let data = c.data_dir.clone();
    let remove_data =
        || std::fs::remove_dir_all(&data).with_context(|| format!("remove `{}`", data.display()));
    let has_files = std::fs::read_dir(&data).is_ok_and(|mut d| d.next().is_some());
    crate::rootfs::open_overlay_workdir(&data);
    match maps {
        // Records, logs and what container root wrote are the caller's own
        // and go directly; only files of subordinate ids (or modes container
        // root set) need the user namespace, which costs a clone and two
        // setuid helper runs: it is the fallback, not the rule.
        Some(maps) if has_files && remove_data().is_err() => crate::sandbox::nsexec::run_in_userns(
            maps,
            "remove the container's files",
            remove_data,
        )?,
        Some(_) if has_files => {}
        _ if data.exists() => remove_data()?,
        _ => {}
    }
    match std::fs::remove_dir_all(&c.run_dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("remove `{}`", c.run_dir.display()))
        }
        _ => Ok(()),
    }
}

/// Docker's prune prompt on a terminal: true to go on. Without a terminal
/// (scripts) there is nobody to ask, and prune goes on as Docker's does.
pub(crate) fn confirm(what: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Ok(true);
    }
    print!("WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ");
    std::io::stdout().flush().context("write prompt")?;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("read answer")?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "Yes"))
}
