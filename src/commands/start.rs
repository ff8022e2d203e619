//! `hutch create` keeps what starting needs (`launch.json`: the plan, the
//! rootfs and its overlay options) next to the record; `hutch start [-a]`
//! and `hutch restart` launch the container again from it, detached
//! under a new supervisor or attached in the foreground. Runs in the
//! caller's process.

use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::run::{self, Launch};
use super::stop::each;
use crate::cli::{StartArgs, StopArgs};
use crate::errors::WithHint;
use crate::plan::{self, Plan};
use crate::state::{self, Container, Dirs};

/// What `launch.json` holds.
#[derive(Serialize, Deserialize)]
struct Saved {
    plan: Plan,
    rootfs: PathBuf,
    /// How the rootfs is mounted (storage driver).
    mount: crate::rootfs::RootfsMount,
}

/// Keeps what starting the container again needs (atomically).
pub(super) fn save_launch(c: &Container, l: &Launch<'_>) -> anyhow::Result<()> {
    let saved = Saved {
        plan: l.plan.clone(),
        rootfs: l.rootfs.to_path_buf(),
        mount: l.mount.clone(),
    };
    let path = c.data_dir.join("launch.json");
    let tmp = c.data_dir.join(".launch.json.tmp");
    let bytes = serde_json::to_vec_pretty(&saved).context("encode launch.json")?;
    std::fs::write(&tmp, bytes).with_context(|| format!("write `{}`", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("replace `{}`", path.display()))
}

fn load_launch(c: &Container) -> anyhow::Result<Saved> {
    let path = c.data_dir.join("launch.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("read `{}`", path.display()))
        .hint("this container was made by an older hutch: remove it and run it again")?;
    serde_json::from_str(&text).with_context(|| format!("parse `{}`", path.display()))
}

pub fn start(args: StartArgs) -> anyhow::Result<i32> {
    let dirs = Dirs::new()?;
    if args.attach {
        let [key] = args.containers.as_slice() else {
            anyhow::bail!("start: -a takes one container");
        };
        return start_one(&dirs, key, true);
    }
    Ok(each(&args.containers, |key| {
        start_one(&dirs, key, false)?;
        println!("{key}");
        Ok(())
    }))
}

pub fn restart(args: StopArgs) -> anyhow::Result<i32> {
    let dirs = Dirs::new()?;
    let timeout = Duration::from_secs(args.time);
    Ok(each(&args.containers, |key| {
        let s = state::find(&dirs, key)?;
        super::control::stop(&dirs, &s, timeout)?;
        start_one(&dirs, key, false)?;
        println!("{key}");
        Ok(())
    }))
}

/// Starts one container; with `attach`, waits and returns its exit code.
fn start_one(dirs: &Dirs, key: &str, attach: bool) -> anyhow::Result<i32> {
    let c = Container::open(dirs, &state::find(dirs, key)?.id);
    let _once = c.lock_start()?;
    let mut record = c.load()?;
    if state::is_alive(&record) {
        return Ok(0); // as Docker: starting a running container is a no-op
    }
    if record.supervisor.is_some() {
        super::control::settle(dirs, &record.id)?;
        record = c.load()?;
    }
    let saved = load_launch(&c)?;
    let maps = run::id_maps(&saved.plan)?;
    // The runtime directory does not outlive a reboot: made again.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&c.run_dir)
        .with_context(|| format!("create `{}`", c.run_dir.display()))?;
    let shared = run::shared_network(dirs, &saved.plan, &maps)?;
    run::write_etc_files(&c, &saved.plan, shared.as_ref())?;
    plan::spec::write(
        &saved.plan,
        &saved.rootfs,
        &maps,
        &c.run_dir.join("config.json"),
    )?;
    // The published host ports must still be free.
    crate::net::ports::check_free(&mut saved.plan.ports.clone())?;
    let launch = Launch {
        plan: &saved.plan,
        rootfs: &saved.rootfs,
        mount: &saved.mount,
        maps: &maps,
        run_dir: &c.run_dir,
        join: shared.as_ref().map(|s| &s.init),
    };
    if !attach {
        if saved.plan.process.terminal {
            return Err(anyhow::anyhow!(
                "start container `{key}` in the background: it has a terminal (-t)"
            ))
            .hint("start it with `hutch start -a`");
        }
        run::start_detached(&launch, dirs, &c, &mut record)?;
        return Ok(0);
    }
    let code = run::start_and_wait(&launch, dirs, &c, &mut record)?;
    if saved.plan.remove {
        c.forget(dirs)?;
        super::remove_container(&c, Some(&maps))?;
    }
    Ok(code)
}
