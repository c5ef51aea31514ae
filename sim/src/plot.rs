//! The two SVG plots of a report: participants seen by each node, and targets owned by each
//! node, over simulated time, with the scenario's events marked.
//!
//! Owns drawing only; the series come from `timeline`. Up to `NODE_LINES_MAX` nodes get a line
//! each; larger clusters are drawn as min / median / max across live nodes, which stays
//! readable (and small) at 1,000 nodes.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;

use crate::timeline::{Point, Timeline};

/// Most nodes drawn as individual lines.
pub const NODE_LINES_MAX: usize = 20;
const SIZE: (u32, u32) = (960, 540);

/// Which number of a [`Point`] to plot.
#[derive(Debug, Clone, Copy)]
pub enum Metric {
    ParticipantsSeen,
    OwnedTargets,
}

impl Metric {
    fn of(self, p: &Point) -> u32 {
        match self {
            Metric::ParticipantsSeen => p.participants_seen,
            Metric::OwnedTargets => p.owned_targets,
        }
    }

    fn title(self) -> &'static str {
        match self {
            Metric::ParticipantsSeen => "participants seen by each node",
            Metric::OwnedTargets => "targets owned by each node",
        }
    }

    fn file(self) -> &'static str {
        match self {
            Metric::ParticipantsSeen => "participants.svg",
            Metric::OwnedTargets => "owned_targets.svg",
        }
    }
}

/// Writes `participants.svg` and `owned_targets.svg` into `dir`.
pub fn write_plots(dir: &Path, timeline: &Timeline, duration_ms: u64) -> std::io::Result<()> {
    for metric in [Metric::ParticipantsSeen, Metric::OwnedTargets] {
        let svg = render(timeline, duration_ms, metric).map_err(std::io::Error::other)?;
        std::fs::write(dir.join(metric.file()), svg)?;
    }
    Ok(())
}

/// One plot as SVG text.
pub fn render(timeline: &Timeline, duration_ms: u64, metric: Metric) -> Result<String, String> {
    let series = series(timeline, metric);
    let y_max = series
        .iter()
        .flat_map(|(_, segments)| segments.iter().flatten().map(|(_, y)| *y))
        .fold(1.0f64, f64::max)
        * 1.1;
    let x_max = (duration_ms as f64 / 1000.0).max(0.001);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(metric.title(), ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("simulated time (s); red lines: events")
            .y_label_formatter(&|y| format!("{y:.0}"))
            .light_line_style(RGBColor(242, 242, 242))
            .y_desc(match metric {
                Metric::ParticipantsSeen => "participants",
                Metric::OwnedTargets => "targets",
            })
            .draw()
            .map_err(|e| e.to_string())?;
        for (at_ms, _) in &timeline.events {
            let x = *at_ms as f64 / 1000.0;
            chart
                .draw_series(LineSeries::new(
                    vec![(x, 0.0), (x, y_max)],
                    RGBColor(230, 110, 110).mix(0.6),
                ))
                .map_err(|e| e.to_string())?;
        }
        for (i, (label, segments)) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            for (k, segment) in segments.iter().enumerate() {
                let drawn = chart
                    .draw_series(LineSeries::new(
                        segment.iter().copied(),
                        color.stroke_width(2),
                    ))
                    .map_err(|e| e.to_string())?;
                if k == 0 {
                    drawn.label(label.as_str()).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                    });
                }
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

type Segment = Vec<(f64, f64)>;

/// Lines to draw: one per node (split where the node was down), or min/median/max.
fn series(timeline: &Timeline, metric: Metric) -> Vec<(String, Vec<Segment>)> {
    let index: BTreeMap<u64, usize> = timeline
        .times_ms
        .iter()
        .enumerate()
        .map(|(i, t)| (*t, i))
        .collect();
    if timeline.nodes.len() <= NODE_LINES_MAX {
        return timeline
            .nodes
            .iter()
            .map(|(name, points)| {
                let mut segments: Vec<Segment> = Vec::new();
                let mut last: Option<usize> = None;
                for p in points {
                    let i = index[&p.at_ms];
                    if last.is_none_or(|l| l + 1 != i) {
                        segments.push(Vec::new());
                    }
                    last = Some(i);
                    segments
                        .last_mut()
                        .expect("pushed above")
                        .push((p.at_ms as f64 / 1000.0, f64::from(metric.of(p))));
                }
                (name.clone(), segments)
            })
            .collect();
    }
    let mut at: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
    for points in timeline.nodes.values() {
        for p in points {
            at.entry(p.at_ms).or_default().push(metric.of(p));
        }
    }
    let mut lines = vec![
        ("min over nodes".to_string(), Vec::new()),
        ("median".to_string(), Vec::new()),
        ("max over nodes".to_string(), Vec::new()),
    ];
    for (t, mut values) in at {
        values.sort_unstable();
        let x = t as f64 / 1000.0;
        lines[0].1.push((x, f64::from(values[0])));
        lines[1].1.push((x, f64::from(values[values.len() / 2])));
        lines[2].1.push((x, f64::from(values[values.len() - 1])));
    }
    lines
        .into_iter()
        .map(|(name, points)| (name, vec![points]))
        .collect()
}
