//! `hutch-bench-chart`: draws the results of `bench/hutch-bench` as one PNG.
//! It reads the JSON files the bench writes (the same medians its tables
//! print, so the picture shows no number the bench did not print) and is
//! run by the bench at its end, as the invoking user, never by `hutch`.
//!
//! ```text
//! hutch-bench-chart --out FILE.png [--start START.json] [--growth GROWTH.json] [--font TTF]
//! ```
//!
//! Panels: start latency (one bar per row, median ms, labelled with its
//! ratio to `hutch --rootfs`); and, given the growth results, `run -d`
//! latency and per-container keeper memory (hutch's supervisor against
//! podman's conmon) as the number of running containers grows.

mod data;
mod draw;

use anyhow::{bail, Context};
use plotters::style::{register_font, FontStyle};
use std::path::PathBuf;

const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

struct Args {
    out: PathBuf,
    start: Option<PathBuf>,
    growth: Option<PathBuf>,
    font: PathBuf,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut out = None;
    let (mut start, mut growth) = (None, None);
    let mut font = PathBuf::from(DEFAULT_FONT);
    let mut it = std::env::args_os().skip(1);
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .map(PathBuf::from)
                .with_context(|| format!("read the value of `{}`", a.to_string_lossy()))
        };
        match a.to_str() {
            Some("--out") => out = Some(value()?),
            Some("--start") => start = Some(value()?),
            Some("--growth") => growth = Some(value()?),
            Some("--font") => font = value()?,
            _ => bail!(
                "unknown argument `{}`; usage: hutch-bench-chart --out FILE.png [--start START.json] [--growth GROWTH.json] [--font TTF]",
                a.to_string_lossy()
            ),
        }
    }
    let Some(out) = out else {
        bail!("missing `--out FILE.png`")
    };
    if start.is_none() && growth.is_none() {
        bail!("nothing to draw: give `--start` and/or `--growth`");
    }
    Ok(Args {
        out,
        start,
        growth,
        font,
    })
}

/// Registers the TTF at `path` as plotters' sans-serif font.
fn load_font(path: &PathBuf) -> anyhow::Result<()> {
    let bytes = std::fs::read(path).with_context(|| {
        format!(
            "read font `{}` (Debian: fonts-dejavu-core; or pass --font)",
            path.display()
        )
    })?;
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow::anyhow!("parse font `{}`", path.display()))?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    load_font(&args.font)?;
    let start = args.start.as_deref().map(data::Start::read).transpose()?;
    let growth = args.growth.as_deref().map(data::Growth::read).transpose()?;
    draw::render(&args.out, start.as_ref(), growth.as_ref())?;
    println!("{}", args.out.display());
    Ok(())
}
