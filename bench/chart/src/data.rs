//! The bench's JSON results, read into what the chart draws. Only fields
//! the bench writes are read; a missing one is an error naming it.

use anyhow::{bail, Context};
use serde_json::Value;
use std::path::Path;

/// One row of the start group: a median, or why it has none.
pub struct StartRow {
    pub label: String,
    pub median_ms: Option<f64>,
    pub unavailable: Option<String>,
    pub is_hutch: bool,
}

pub struct Start {
    pub title: String,
    pub rows: Vec<StartRow>,
    /// The median of `hutch --rootfs`, the reference of the ratios.
    pub reference_ms: Option<f64>,
}

/// A series of points (level or band end, value) for one tool.
pub struct Series {
    pub tool: String,
    pub points: Vec<(f64, f64)>,
}

pub struct Growth {
    pub title: String,
    pub latency: Vec<Series>,
    pub keeper_pss: Vec<Series>,
    pub keeper_rss: Vec<Series>,
    pub levels: Vec<f64>,
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("read `{}`", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parse `{}` as JSON", path.display()))
}

fn field<'a>(v: &'a Value, key: &str) -> anyhow::Result<&'a Value> {
    v.get(key).with_context(|| format!("find field `{key}`"))
}

fn text(v: &Value, key: &str) -> anyhow::Result<String> {
    field(v, key)?
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("read `{key}` as text"))
}

fn num(v: &Value, key: &str) -> anyhow::Result<f64> {
    field(v, key)?
        .as_f64()
        .with_context(|| format!("read `{key}` as a number"))
}

fn list<'a>(v: &'a Value, key: &str) -> anyhow::Result<&'a Vec<Value>> {
    field(v, key)?
        .as_array()
        .with_context(|| format!("read `{key}` as a list"))
}

impl Start {
    pub fn read(path: &Path) -> anyhow::Result<Start> {
        let v = read_json(path)?;
        if v.get("benchmark").and_then(Value::as_str) != Some("start") {
            bail!("`{}` holds no start results", path.display());
        }
        let mut rows = Vec::new();
        let mut reference_ms = None;
        for r in list(&v, "results")? {
            let row = text(r, "row")?;
            let median_ms = r.get("median_ms").and_then(Value::as_f64);
            if row == "hutch_rootfs" {
                reference_ms = median_ms;
            }
            rows.push(StartRow {
                label: format!("{} {}", text(r, "tool")?, text(r, "how")?),
                median_ms,
                unavailable: r
                    .get("unavailable")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                is_hutch: row.starts_with("hutch"),
            });
        }
        let title = format!(
            "start latency, run /bin/true and see it exit ({} mode, {} repetitions, median); {}",
            text(&v, "mode")?,
            num(&v, "repetitions")?,
            text(&v, "machine")?
        );
        Ok(Start {
            title,
            rows,
            reference_ms,
        })
    }
}

/// Groups `items` by their `tool` into series of (`x`, `y`).
fn series(items: &[Value], x: &str, y: &str) -> anyhow::Result<Vec<Series>> {
    let mut out: Vec<Series> = Vec::new();
    for it in items {
        let tool = text(it, "tool")?;
        let p = (num(it, x)?, num(it, y)?);
        match out.iter_mut().find(|s| s.tool == tool) {
            Some(s) => s.points.push(p),
            None => out.push(Series {
                tool,
                points: vec![p],
            }),
        }
    }
    Ok(out)
}

impl Growth {
    pub fn read(path: &Path) -> anyhow::Result<Growth> {
        let v = read_json(path)?;
        if v.get("benchmark").and_then(Value::as_str) != Some("growth") {
            bail!("`{}` holds no growth results", path.display());
        }
        let mem = list(&v, "memory")?;
        let levels = list(&v, "levels")?
            .iter()
            .filter_map(Value::as_f64)
            .collect();
        let title = format!(
            "cost growth, detached containers running sleep ({} mode); {}",
            text(&v, "mode")?,
            text(&v, "machine")?
        );
        Ok(Growth {
            title,
            latency: series(list(&v, "start")?, "to", "median_ms")?,
            keeper_pss: series(mem, "n", "keeper_pss_per_container_kib")?,
            keeper_rss: series(mem, "n", "keeper_rss_per_container_kib")?,
            levels,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_group_by_tool_in_order() {
        let items: Vec<Value> = serde_json::from_str(
            r#"[{"tool":"hutch","n":1,"y":5},{"tool":"podman","n":1,"y":9},{"tool":"hutch","n":10,"y":6}]"#,
        )
        .unwrap();
        let s = series(&items, "n", "y").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].tool, "hutch");
        assert_eq!(s[0].points, vec![(1.0, 5.0), (10.0, 6.0)]);
        assert_eq!(s[1].points, vec![(1.0, 9.0)]);
    }

    #[test]
    fn a_missing_field_is_named() {
        let items: Vec<Value> = serde_json::from_str(r#"[{"tool":"hutch","n":1}]"#).unwrap();
        let e = series(&items, "n", "y").err().unwrap();
        assert!(format!("{e:#}").contains("`y`"));
    }
}
