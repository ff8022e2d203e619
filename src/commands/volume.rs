//! `hutch volume create|ls|inspect|rm|prune`: named volumes
//! (`crate::volume`), as Docker's commands show them.

use std::io::Write as _;

use anyhow::Context;

use crate::cli::{VolumeArgs, VolumeCommand};
use crate::state::Dirs;
use crate::volume;

pub fn volume(args: VolumeArgs) -> anyhow::Result<i32> {
    let dirs = Dirs::new()?;
    let mut out = String::new();
    match args.command {
        VolumeCommand::Create { name } => {
            let name = match name {
                Some(n) => n,
                None => crate::state::new_id()?,
            };
            volume::ensure(&dirs.data, &name)?;
            out = format!("{name}\n");
        }
        VolumeCommand::Ls { quiet, format } => {
            let all = volume::list(&dirs)?;
            out = match (quiet, format.as_deref()) {
                (true, _) => all.iter().map(|v| format!("{}\n", v.name)).collect(),
                (false, Some("json")) => json(&all)?,
                (false, None | Some("table")) => {
                    let mut t = "DRIVER    VOLUME NAME\n".to_string();
                    t.extend(all.iter().map(|v| format!("{:<10}{}\n", v.driver, v.name)));
                    t
                }
                (false, Some(other)) => anyhow::bail!(
                    "use format `{}`: expected json or table",
                    other.escape_debug()
                ),
            };
        }
        VolumeCommand::Inspect { names } => {
            let found = names
                .iter()
                .map(|n| volume::find(&dirs, n))
                .collect::<anyhow::Result<Vec<_>>>()?;
            out = json(&found)?;
        }
        VolumeCommand::Rm { force, names } => {
            for n in &names {
                let v = volume::find(&dirs, n)?;
                volume::remove(&dirs, &v, force)?;
                out.push_str(&format!("{n}\n"));
            }
        }
        VolumeCommand::Prune { force: _ } => {
            let mut removed = 0;
            for v in volume::list(&dirs)?.iter().filter(|v| v.used_by.is_empty()) {
                volume::remove(&dirs, v, false)?;
                out.push_str(&format!("{}\n", v.name));
                removed += 1;
            }
            out.push_str(&format!("Removed {removed} unused volumes\n"));
        }
    }
    std::io::stdout()
        .write_all(out.as_bytes())
        .context("write to stdout")?;
    Ok(0)
}

fn json<T: serde::Serialize>(v: &T) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(v).context("encode volumes as JSON")? + "\n")
}
