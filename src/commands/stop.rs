//! `hutch stop`, `hutch kill` and `hutch wait`: one short function each,
//! over `control.rs`. Run in the caller's process.

use std::time::Duration;

use crate::cli::{KillArgs, StopArgs, WaitArgs};
use crate::errors::{WithHint, EXIT_HUTCH};
use crate::state::{self, Container, Dirs, Status};

use super::control;

/// Runs `f` for each container named, reporting each failure; Docker
/// goes on with the rest and exits 1 (we say 125: hutch failed).
pub(super) fn each(keys: &[String], mut f: impl FnMut(&str) -> anyhow::Result<()>) -> i32 {
    let mut code = 0;
    for key in keys {
        if let Err(e) = f(key) {
            crate::errors::report(&e);
            code = EXIT_HUTCH;
        }
    }
    code
}

pub fn stop(args: StopArgs) -> anyhow::Result<i32> {
    let dirs = Dirs::new()?;
    let timeout = Duration::from_secs(args.time);
    Ok(each(&args.containers, |key| {
        let s = state::find(&dirs, key)?;
        control::stop(&dirs, &s, timeout)?;
        println!("{key}");
        Ok(())
    }))
}

pub fn kill(args: KillArgs) -> anyhow::Result<i32> {
    let dirs = Dirs::new()?;
    let sig = control::parse_signal(&args.signal)?;
    Ok(each(&args.containers, |key| {
        let s = state::find(&dirs, key)?;
        if !control::signal(&s, sig)? {
            return Err(anyhow::anyhow!("kill container `{key}`: it is not running"))
                .hint("`hutch ps -a` shows its status");
        }
        println!("{key}");
        Ok(())
    }))
}

/// Blocks until each container exits, then prints its exit code.
pub fn wait(args: WaitArgs) -> anyhow::Result<i32> {
    let dirs = Dirs::new()?;
    Ok(each(&args.containers, |key| {
        let code = wait_one(&dirs, key)?;
        println!("{code}");
        Ok(())
    }))
}

fn wait_one(dirs: &Dirs, key: &str) -> anyhow::Result<i32> {
    let c = Container::open(dirs, &state::find(dirs, key)?.id);
    let removed = || anyhow::anyhow!("wait for container `{key}`: it was removed");
    let _reader = c.lock_waiters().map_err(|_| removed())?;
    // Bounded only for a record that stays "created": a day.
    for _ in 0..864_000 {
        let s = c.load().map_err(|_| removed())?;
        match s.status {
            Status::Exited => return Ok(s.exit_code.unwrap_or(255)),
            Status::Running => {
                if let Some(init) = s.init() {
                    control::wait_proc(&init, None);
                }
                return recorded_exit(&c).ok_or_else(removed);
            }
            Status::Created => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    anyhow::bail!("wait for container `{key}`: it never started")
}

/// The init has exited: the exit code its supervisor records, or 255
/// when the supervisor is gone without recording one.
fn recorded_exit(c: &Container) -> Option<i32> {
    for _ in 0..500 {
        let s = c.load().ok()?;
        if s.status == Status::Exited {
            return Some(s.exit_code.unwrap_or(255));
        }
        if !s.supervisor.as_ref().is_some_and(|p| p.is_alive()) {
            // It may have recorded the exit just before it ended.
            let s = c.load().ok()?;
            return Some(
                s.exit_code
                    .filter(|_| s.status == Status::Exited)
                    .unwrap_or(255),
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(255)
}
