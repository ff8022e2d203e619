//! `hutch doctor`: every check of [`crate::preflight`], its result, its fix.

use crate::cli::DoctorArgs;

pub fn doctor(_args: DoctorArgs) -> anyhow::Result<i32> {
    anyhow::bail!("doctor: not implemented") // helper implements
}
