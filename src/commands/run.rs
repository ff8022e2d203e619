//! `hutch run`: plan, prepare the rootfs, launch, wait, clean up.

use crate::cli::RunArgs;

pub fn run(_args: RunArgs) -> anyhow::Result<i32> {
    anyhow::bail!("run: not implemented")
}
