//! Drawing: the start panel (horizontal bars with ratios to hutch) and the
//! growth panels (lines over the number of running containers), stacked
//! into one PNG by plotters' bitmap backend.

use crate::data::{Growth, Series, Start};
use anyhow::Context;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

const WIDTH: u32 = 1500;
const BAR_H: u32 = 46;
const GROWTH_H: u32 = 470;
const HUTCH: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const PEER: RGBColor = RGBColor(0x9a, 0x9a, 0x9a);
const PODMAN: RGBColor = RGBColor(0x89, 0x2c, 0xa0);

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Maps plotters' errors, which borrow the backend, to anyhow.
fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("draw the chart: {e:?}")
}

pub fn render(out: &Path, start: Option<&Start>, growth: Option<&Growth>) -> anyhow::Result<()> {
    let start_h = start.map_or(0, |s| 110 + BAR_H * s.rows.len() as u32);
    let growth_h = growth.map_or(0, |_| GROWTH_H);
    let root = BitMapBackend::new(out, (WIDTH, start_h + growth_h)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (top, bottom) = root.split_vertically(start_h);
    if let Some(s) = start {
        start_panel(&top, s)?;
    }
    if let Some(g) = growth {
        growth_panels(&bottom, g)?;
    }
    root.present()
        .map_err(err)
        .with_context(|| format!("write `{}`", out.display()))
}

/// The label after a bar: its median and its ratio to hutch --rootfs.
fn bar_label(median: f64, reference: Option<f64>) -> String {
    match reference {
        Some(r) if r > 0.0 => format!("{median:.1} ms  ({:.2}x hutch --rootfs)", median / r),
        _ => format!("{median:.1} ms"),
    }
}

fn start_panel(area: &Area<'_>, s: &Start) -> anyhow::Result<()> {
    let n = s.rows.len() as i32;
    let max = s
        .rows
        .iter()
        .filter_map(|r| r.median_ms)
        .fold(1.0, f64::max);
    let labels: Vec<String> = s.rows.iter().map(|r| r.label.clone()).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(&s.title, ("sans-serif", 19))
        .margin(14)
        .x_label_area_size(36)
        .y_label_area_size(470)
        .build_cartesian_2d(0.0..max * 1.42, (0..n - 1).into_segmented())
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(WHITE)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_labels(labels.len())
        .y_label_style(("sans-serif", 15))
        .x_label_style(("sans-serif", 14))
        .x_desc("median wall time, ms (lower is better)")
        .y_label_formatter(&|v| match v {
            // Row 0 at the top, as in the printed table.
            SegmentValue::CenterOf(i) => labels
                .get((n - 1 - *i) as usize)
                .cloned()
                .unwrap_or_default(),
            _ => String::new(),
        })
        .draw()
        .map_err(err)?;
    for (i, row) in s.rows.iter().enumerate() {
        let i = n - 1 - i as i32;
        let at = (0.0, SegmentValue::CenterOf(i));
        let Some(m) = row.median_ms else {
            let why = row.unavailable.as_deref().unwrap_or("no samples");
            let why: String = why.chars().take(90).collect();
            let style = ("sans-serif", 14)
                .into_font()
                .color(&PEER)
                .pos(Pos::new(HPos::Left, VPos::Center));
            chart
                .draw_series([Text::new(format!("unavailable: {why}"), at, style)])
                .map_err(err)?;
            continue;
        };
        let color = if row.is_hutch { HUTCH } else { PEER };
        let mut bar = Rectangle::new(
            [
                (0.0, SegmentValue::Exact(i)),
                (m, SegmentValue::Exact(i + 1)),
            ],
            color.filled(),
        );
        bar.set_margin(7, 7, 0, 0);
        chart.draw_series([bar]).map_err(err)?;
        let style = ("sans-serif", 15)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Center));
        let label = Text::new(
            bar_label(m, s.reference_ms),
            (m + max * 0.01, SegmentValue::CenterOf(i)),
            style,
        );
        chart.draw_series([label]).map_err(err)?;
    }
    Ok(())
}

fn tool_color(tool: &str) -> RGBColor {
    match tool {
        "hutch" => HUTCH,
        "podman" => PODMAN,
        _ => PEER,
    }
}

fn growth_panels(area: &Area<'_>, g: &Growth) -> anyhow::Result<()> {
    let (title, body) = area.split_vertically(40);
    title
        .draw(&Text::new(g.title.clone(), (14, 12), ("sans-serif", 19)))
        .map_err(err)?;
    let (left, right) = body.split_horizontally(WIDTH / 2);
    let lat = Lines {
        title: "run -d latency, median of the starts in each band (ms)",
        y_desc: "ms",
        dashed: &[],
        solid: &g.latency,
    };
    lines_panel(&left, &lat, &g.levels)?;
    let mem = Lines {
        title: "memory per container of the keeper: hutch supervisor, podman conmon (KiB)",
        y_desc: "KiB per container",
        solid: &g.keeper_pss,
        dashed: &g.keeper_rss,
    };
    lines_panel(&right, &mem, &g.levels)
}

struct Lines<'a> {
    title: &'a str,
    y_desc: &'a str,
    solid: &'a [Series],
    dashed: &'a [Series],
}

fn lines_panel(area: &Area<'_>, l: &Lines<'_>, levels: &[f64]) -> anyhow::Result<()> {
    let all = l.solid.iter().chain(l.dashed);
    let ymax = all
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(1.0, f64::max);
    let xmax = levels.iter().copied().fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption(l.title, ("sans-serif", 16))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..xmax * 1.05, 0.0..ymax * 1.55)
        .map_err(err)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .x_desc("containers running")
        .y_desc(l.y_desc)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    for (series, dashed) in l
        .solid
        .iter()
        .map(|s| (s, false))
        .chain(l.dashed.iter().map(|s| (s, true)))
    {
        let c = tool_color(&series.tool);
        let name = if l.dashed.is_empty() {
            series.tool.clone()
        } else {
            format!("{} {}", series.tool, if dashed { "RSS" } else { "PSS" })
        };
        let style = if dashed {
            c.stroke_width(1)
        } else {
            c.stroke_width(3)
        };
        chart
            .draw_series(LineSeries::new(series.points.iter().copied(), style))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
        chart
            .draw_series(series.points.iter().map(|p| Circle::new(*p, 4, c.filled())))
            .map_err(err)?;
        let font = ("sans-serif", 13)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Bottom));
        chart
            .draw_series(
                series
                    .points
                    .iter()
                    .map(|p| Text::new(format!("{:.0}", p.1), (p.0, p.1), font.clone())),
            )
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::bar_label;

    #[test]
    fn bar_labels_carry_the_ratio_to_hutch() {
        assert_eq!(
            bar_label(41.0, Some(20.5)),
            "41.0 ms  (2.00x hutch --rootfs)"
        );
        assert_eq!(bar_label(41.0, None), "41.0 ms");
        assert_eq!(bar_label(41.0, Some(0.0)), "41.0 ms");
    }
}
