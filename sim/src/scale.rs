//! `sim scale`: how long membership news takes to reach every node as the cluster grows, on the
//! fast engine, measured the way ANCHORS.md measured memberlist and ckit:
//! - "join seen by all": from the last node's join until every node lists all N;
//! - "crash seen by all": from an abrupt stop until every other node has dropped it;
//! - "silent loss seen by all": the same for a host that loses power (nothing answers: no
//!   refused connection, no closed one; only timeouts tell).
//!
//! "Lists" means holds alive or suspect, as memberlist's `Members()` does. Each run starts N-1
//! nodes at t=0 joining node-1, lets them settle until `JOIN_AT_S`, joins node-N, and crashes
//! one other node (picked by the seed) `CRASH_AFTER_JOIN_S` later, and powers off a third one
//! `LOSS_AFTER_CRASH_S` after that; the events fall at a seed-derived millisecond within their
//! second ([`offsets_ms`]). Runs are observed every
//! `resolution_ms` (default 50 ms) of simulated time, so the figures are exact to that step.
//!
//! This module owns the measurement, the per-size percentiles, the log-N fit, the report
//! (scale.json, scale.md) and its plot (scale.svg). It runs scenarios through the ordinary
//! engine; it does not check invariants (scenario runs do).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

use crate::engine::Engine;
use crate::engines::FastEngine;
use crate::observe::{EventRecord, Observation, ObservationSink, View};
use crate::scenario::{node_name, Scenario};

/// When node-N joins: the N-1 others have had this long to settle (1,000 nodes joining one seed
/// at once settle in ~10-20 s).
pub const JOIN_AT_S: u64 = 60;
/// When the victim crashes, after the join.
pub const CRASH_AFTER_JOIN_S: u64 = 60;
/// When another node loses power, after the crash.
pub const LOSS_AFTER_CRASH_S: u64 = 60;
/// How long the silent loss may take to be seen by all before the run ends (a "never" beyond
/// it). A crash not seen by all before the loss keeps being watched until the end.
pub const LOSS_WINDOW_S: u64 = 120;
/// Targets each node lists: ownership is not what is measured here; a few keep it cheap.
const TARGETS: u32 = 10;
/// Smallest and largest cluster measured.
pub const NODES_MIN: u32 = 3;
pub const NODES_MAX: u32 = 5_000;

/// Where, within a second, the join and the crash fall: derived from the seed. Nodes started
/// together run their gossip ticks in step (every 200 ms from t=0), so an event on a round
/// instant would always meet a tick at once; real joins and crashes fall anywhere.
pub fn offsets_ms(seed: u64) -> (u64, u64) {
    let h = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    ((h >> 20) % 1000, (h >> 40) % 1000)
}

/// The scenario of one measurement run (a TOML text, parsed like any scenario file).
pub fn scenario_for(nodes: u32, seed: u64) -> Scenario {
    assert!(
        (NODES_MIN..=NODES_MAX).contains(&nodes),
        "{nodes} nodes: {NODES_MIN}..={NODES_MAX}"
    );
    let (join_offset, crash_offset) = offsets_ms(seed);
    let join_ms = JOIN_AT_S * 1000 + join_offset;
    let crash_ms = (JOIN_AT_S + CRASH_AFTER_JOIN_S) * 1000 + crash_offset;
    let loss_ms = crash_ms - crash_offset + LOSS_AFTER_CRASH_S * 1000 + join_offset;
    let text = format!(
        "name = \"scale-{nodes}\"\n\
         description = \"{first} nodes settle, node-{nodes} joins at {join_ms}ms, {victim} crashes at {crash_ms}ms, {lost} powers off at {loss_ms}ms\"\n\
         engine = \"fast\"\n\
         seed = {seed}\n\
         duration = \"{end}s\"\n\
         [cluster]\nnodes = {first}\njoin = \"node-1\"\n\
         [targets]\ncount = {TARGETS}\n\
         [[event]]\nat = \"{join_ms}ms\"\njoin = \"node-{nodes}\"\n\
         [[event]]\nat = \"{crash_ms}ms\"\ncrash = \"{victim}\"\n\
         [[event]]\nat = \"{loss_ms}ms\"\npower_off = \"{lost}\"\n",
        first = nodes - 1,
        victim = victim(nodes, seed),
        lost = lost(nodes, seed),
        end = JOIN_AT_S + CRASH_AFTER_JOIN_S + LOSS_AFTER_CRASH_S + 1 + LOSS_WINDOW_S,
    );
    Scenario::parse(&format!("scale-{nodes}.toml"), &text).expect("a valid generated scenario")
}

/// The node that crashes: any of node-2 .. node-(N-1), by seed (not the join seed node-1, not
/// the newcomer).
pub fn victim(nodes: u32, seed: u64) -> String {
    node_name(2 + (seed % u64::from(nodes - 2)) as u32)
}

/// The node that loses power: the victim's successor among node-2 .. node-(N-1).
pub fn lost(nodes: u32, seed: u64) -> String {
    node_name(2 + ((seed + 1) % u64::from(nodes - 2)) as u32)
}

/// What one run measured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sample {
    pub seed: u64,
    /// From t=0 until the first N-1 nodes all listed each other (the start storm).
    pub start_seen_ms: Option<u64>,
    /// From node-N's join until every node listed all N; null if never within the run's
    /// window (the crash), or if the cluster had not settled before the join.
    pub join_seen_ms: Option<u64>,
    /// From the crash until every other node had dropped the victim; null if never.
    pub crash_seen_ms: Option<u64>,
    /// From the power-off until every other node had dropped that node; null if never.
    pub loss_seen_ms: Option<u64>,
}

/// An [`ObservationSink`] that times the start, the join and the crash.
struct Probe {
    nodes: usize,
    joiner: String,
    victim: String,
    lost: String,
    join_at_ms: Option<u64>,
    crash_at_ms: Option<u64>,
    loss_at_ms: Option<u64>,
    sample: Sample,
    /// Members listed (alive or suspect) per node, by view: recounted only when it changes.
    listed: BTreeMap<String, (View, usize)>,
}

impl Probe {
    fn listed(&mut self, name: &str, view: &View) -> usize {
        if let Some((v, n)) = self.listed.get(name) {
            if v.same(view) {
                return *n;
            }
        }
        let n = view.iter().filter(|m| !m.status.is_gone()).count();
        self.listed.insert(name.to_string(), (view.clone(), n));
        n
    }
}

impl ObservationSink for Probe {
    fn event(&mut self, record: &EventRecord) {
        if record.description == format!("join {}", self.joiner) {
            self.join_at_ms = Some(record.at_ms);
        } else if record.description == format!("crash {}", self.victim) {
            self.crash_at_ms = Some(record.at_ms);
        } else if record.description == format!("power_off {}", self.lost) {
            self.loss_at_ms = Some(record.at_ms);
        }
    }

    fn observe(&mut self, obs: &Observation) {
        let live: Vec<_> = obs.nodes.iter().filter(|n| n.live).collect();
        let counts: Vec<usize> = live
            .iter()
            .map(|n| self.listed(&n.name, &n.members))
            .collect();
        match (self.join_at_ms, self.crash_at_ms) {
            (None, _) => {
                if self.sample.start_seen_ms.is_none()
                    && live.len() == self.nodes - 1
                    && counts.iter().all(|c| *c == self.nodes - 1)
                {
                    self.sample.start_seen_ms = Some(obs.at_ms);
                }
            }
            (Some(join), None) => {
                if self.sample.join_seen_ms.is_none()
                    && self.sample.start_seen_ms.is_some()
                    && live.len() == self.nodes
                    && counts.iter().all(|c| *c == self.nodes)
                {
                    self.sample.join_seen_ms = Some(obs.at_ms - join);
                }
            }
            (Some(_), Some(crash)) => {
                let dropped = |who: &str| {
                    live.iter()
                        .all(|n| n.member(who).is_none_or(|m| m.status.is_gone()))
                };
                if self.sample.crash_seen_ms.is_none() && dropped(&self.victim) {
                    self.sample.crash_seen_ms = Some(obs.at_ms - crash);
                }
                if let Some(loss) = self.loss_at_ms {
                    if self.sample.loss_seen_ms.is_none() && dropped(&self.lost) {
                        self.sample.loss_seen_ms = Some(obs.at_ms - loss);
                    }
                }
            }
        }
    }
}

/// Runs one measurement.
pub fn measure(nodes: u32, seed: u64, resolution_ms: u64) -> Result<Sample, String> {
    let scenario = scenario_for(nodes, seed);
    let engine = FastEngine {
        observation_interval_ms: resolution_ms,
    };
    let mut probe = Probe {
        nodes: nodes as usize,
        joiner: node_name(nodes),
        victim: victim(nodes, seed),
        lost: lost(nodes, seed),
        join_at_ms: None,
        crash_at_ms: None,
        loss_at_ms: None,
        sample: Sample {
            seed,
            start_seen_ms: None,
            join_seen_ms: None,
            crash_seen_ms: None,
            loss_seen_ms: None,
        },
        listed: BTreeMap::new(),
    };
    engine
        .run(&scenario, seed, &mut probe)
        .map_err(|e| format!("{nodes} nodes, seed {seed}: {e}"))?;
    Ok(probe.sample)
}

/// Nearest-rank percentile (`q` in 0..=1) of times where `None` ("never") counts as longer
/// than any time; `None` if the percentile falls on a "never".
pub fn percentile(values: &[Option<u64>], q: f64) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted: Vec<u64> = values.iter().map(|v| v.unwrap_or(u64::MAX)).collect();
    sorted.sort_unstable();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    let v = sorted[rank - 1];
    (v != u64::MAX).then_some(v)
}

/// p50 / p99 / max of one measure over the seeds of one size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    pub p50_ms: Option<u64>,
    pub p99_ms: Option<u64>,
    pub max_ms: Option<u64>,
    /// Runs where it never happened (within the window).
    pub never: u64,
}

impl Percentiles {
    pub fn of(values: &[Option<u64>]) -> Self {
        Percentiles {
            p50_ms: percentile(values, 0.5),
            p99_ms: percentile(values, 0.99),
            max_ms: percentile(values, 1.0),
            never: values.iter().filter(|v| v.is_none()).count() as u64,
        }
    }
}

/// Everything measured at one cluster size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SizeResult {
    pub nodes: u32,
    pub start: Percentiles,
    pub join: Percentiles,
    pub crash: Percentiles,
    /// Silent loss (power-off) seen by all.
    pub loss: Percentiles,
    pub samples: Vec<Sample>,
}

/// `p50 = a + b x log10(N)`, least squares over the sizes, and how well it fits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogFit {
    pub a_ms: f64,
    pub b_ms_per_decade: f64,
    pub r2: f64,
}

/// Fits `ms = a + b log10(n)`; `None` with fewer than 3 points.
pub fn log_fit(points: &[(u32, u64)]) -> Option<LogFit> {
    if points.len() < 3 {
        return None;
    }
    let xs: Vec<f64> = points.iter().map(|(n, _)| f64::from(*n).log10()).collect();
    let ys: Vec<f64> = points.iter().map(|(_, y)| *y as f64).collect();
    let k = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / k, ys.iter().sum::<f64>() / k);
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let syy: f64 = ys.iter().map(|y| (y - my).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let b = sxy / sxx;
    let a = my - b * mx;
    let r2 = if syy == 0.0 {
        1.0
    } else {
        (sxy * sxy) / (sxx * syy)
    };
    let round = |v: f64| (v * 1000.0).round() / 1000.0;
    Some(LogFit {
        a_ms: round(a),
        b_ms_per_decade: round(b),
        r2: round(r2),
    })
}

/// A figure from ANCHORS.md ("Membership"), for the comparison table and plot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anchor {
    pub implementation: &'static str,
    pub config: &'static str,
    pub nodes: u32,
    pub join_seen_ms: u64,
    pub crash_seen_ms: u64,
}

/// hashicorp/memberlist 0.2.2 and grafana/ckit, N nodes in one process on 127.0.0.1,
/// medians, as ANCHORS.md lists them.
pub const ANCHORS: [Anchor; 5] = [
    Anchor {
        implementation: "memberlist",
        config: "LAN defaults (probe 1 s)",
        nodes: 10,
        join_seen_ms: 400,
        crash_seen_ms: 5_600,
    },
    Anchor {
        implementation: "memberlist",
        config: "LAN defaults (probe 1 s)",
        nodes: 25,
        join_seen_ms: 800,
        crash_seen_ms: 7_000,
    },
    Anchor {
        implementation: "memberlist",
        config: "LAN defaults (probe 1 s)",
        nodes: 50,
        join_seen_ms: 1_010,
        crash_seen_ms: 8_900,
    },
    Anchor {
        implementation: "ckit/Alloy",
        config: "probe 5 s, timeout 2 s",
        nodes: 10,
        join_seen_ms: 410,
        crash_seen_ms: 30_000,
    },
    Anchor {
        implementation: "ckit/Alloy",
        config: "probe 5 s, timeout 2 s",
        nodes: 50,
        join_seen_ms: 1_150,
        crash_seen_ms: 53_000,
    },
];

/// The sweep's report (`scale.json`). No wall-clock figure: same inputs, same bytes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScaleReport {
    pub engine: String,
    pub resolution_ms: u64,
    pub seeds: Vec<u64>,
    /// The protocol settings measured (the core's defaults).
    pub probe_interval_ms: u64,
    pub probe_timeout_ms: u64,
    pub gossip_interval_ms: u64,
    pub gossip_nodes: usize,
    pub suspicion_mult: u32,
    pub sizes: Vec<SizeResult>,
    pub join_p50_fit: Option<LogFit>,
    pub crash_p50_fit: Option<LogFit>,
    pub loss_p50_fit: Option<LogFit>,
    pub anchors: Vec<Anchor>,
}

impl ScaleReport {
    pub fn new(resolution_ms: u64, seeds: Vec<u64>, sizes: Vec<SizeResult>) -> Self {
        let c = cluster::Config::default();
        let fit = |pick: fn(&SizeResult) -> Option<u64>| {
            let points: Vec<(u32, u64)> = sizes
                .iter()
                .filter_map(|s| pick(s).map(|v| (s.nodes, v)))
                .collect();
            log_fit(&points)
        };
        ScaleReport {
            engine: "fast".to_string(),
            resolution_ms,
            seeds,
            probe_interval_ms: c.probe_interval.as_millis() as u64,
            probe_timeout_ms: c.probe_timeout.as_millis() as u64,
            gossip_interval_ms: c.gossip_interval.as_millis() as u64,
            gossip_nodes: c.gossip_nodes,
            suspicion_mult: c.suspicion_mult,
            join_p50_fit: fit(|s| s.join.p50_ms),
            crash_p50_fit: fit(|s| s.crash.p50_ms),
            loss_p50_fit: fit(|s| s.loss.p50_ms),
            sizes,
            anchors: ANCHORS.to_vec(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a scale report serializes") + "\n"
    }

    /// `scale.md`: our figures per size, then next to the anchors.
    pub fn to_markdown(&self) -> String {
        let s = |v: Option<u64>| {
            v.map_or("never".to_string(), |v| {
                format!("{:.2} s", v as f64 / 1000.0)
            })
        };
        let mut md = String::new();
        let _ = writeln!(md, "# Convergence vs cluster size (fast engine)\n");
        let _ = writeln!(
            md,
            "Measured as ANCHORS.md measured memberlist: **join** = from the last node's join until \
             every node lists all N; **crash** = from an abrupt stop until every other node has \
             dropped it (\"lists\" = alive or suspect); **silent loss** = the same for a host \
             that loses power (no refused or closed connection: only timeouts tell). N-1 nodes \
             start at t=0 joining node-1; node-N joins at {JOIN_AT_S} s; another node crashes \
             {CRASH_AFTER_JOIN_S} s later, and a third one loses power {LOSS_AFTER_CRASH_S} s \
             after that. \
             Observed every {} ms of simulated time; {} seeds per size ({}..={}). Protocol: core \
             defaults (probe {} ms, probe timeout {} ms, gossip {} ms to {} nodes, suspicion \
             multiplier {}).\n",
            self.resolution_ms,
            self.seeds.len(),
            self.seeds.first().copied().unwrap_or(0),
            self.seeds.last().copied().unwrap_or(0),
            self.probe_interval_ms,
            self.probe_timeout_ms,
            self.gossip_interval_ms,
            self.gossip_nodes,
            self.suspicion_mult
        );
        let _ = writeln!(
            md,
            "| N | start storm settled (p50) | join seen by all p50 | p99 | crash seen by all p50 | p99 | silent loss seen by all p50 | p99 | never (join / crash / loss) |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
        for r in &self.sizes {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} / {} / {} |",
                r.nodes,
                s(r.start.p50_ms),
                s(r.join.p50_ms),
                s(r.join.p99_ms),
                s(r.crash.p50_ms),
                s(r.crash.p99_ms),
                s(r.loss.p50_ms),
                s(r.loss.p99_ms),
                r.join.never,
                r.crash.never,
                r.loss.never
            );
        }
        let fit = |f: &Option<LogFit>| match f {
            Some(f) => format!(
                "{:.0} ms + {:.0} ms x log10(N) (R^2 = {:.2})",
                f.a_ms, f.b_ms_per_decade, f.r2
            ),
            None => "-".to_string(),
        };
        let _ = writeln!(md, "\nLeast-squares fit of the p50s against log10(N):\n");
        let _ = writeln!(md, "- join: {}", fit(&self.join_p50_fit));
        let _ = writeln!(md, "- crash: {}", fit(&self.crash_p50_fit));
        let _ = writeln!(md, "- silent loss: {}\n", fit(&self.loss_p50_fit));
        let _ = writeln!(md, "## Next to memberlist and ckit (ANCHORS.md)\n");
        let _ = writeln!(
            md,
            "| implementation | config | N | join seen by all | crash seen by all | silent loss seen by all |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|");
        let mut at: Vec<u32> = self.anchors.iter().map(|a| a.nodes).collect();
        at.sort_unstable();
        at.dedup();
        for n in at {
            for a in self.anchors.iter().filter(|a| a.nodes == n) {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | - |",
                    a.implementation,
                    a.config,
                    a.nodes,
                    s(Some(a.join_seen_ms)),
                    s(Some(a.crash_seen_ms))
                );
            }
            if let Some(r) = self.sizes.iter().find(|r| r.nodes == n) {
                let _ = writeln!(
                    md,
                    "| **ours** (fast engine, p50 / p99) | probe {} ms, timeout {} ms | {} | {} / {} | {} / {} | {} / {} |",
                    self.probe_interval_ms,
                    self.probe_timeout_ms,
                    r.nodes,
                    s(r.join.p50_ms),
                    s(r.join.p99_ms),
                    s(r.crash.p50_ms),
                    s(r.crash.p99_ms),
                    s(r.loss.p50_ms),
                    s(r.loss.p99_ms)
                );
            }
        }
        let _ = writeln!(
            md,
            "\nThe anchors are wall-clock medians of real processes on loopback; ours are simulated \
             time on the fast engine (in-memory delivery at the default 1-5 ms latency, no HTTP/2), \
             which the agreement test holds within 2x of the turmoil engine's real transport on \
             small clusters. memberlist and ckit learn of a crash only from probes that go \
             unanswered (their crash is our silent loss); ours also uses what the transport sees \
             when a process is killed (its connections close, its port refuses), which two \
             members' refusals make final without a suspicion timer.\n"
        );
        let _ = writeln!(md, "![convergence vs cluster size](scale.svg)");
        md
    }
}

/// Writes scale.json, scale.md and scale.svg into `dir`.
pub fn write_report(dir: &Path, report: &ScaleReport) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("scale.json"), report.to_json())?;
    std::fs::write(dir.join("scale.md"), report.to_markdown())?;
    let svg = render(report).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("scale.svg"), svg)
}

/// Two panels against N (log scale): join seen by all (top), crash seen by all (bottom); our
/// p50 and p99 as lines, the anchors as points.
pub fn render(report: &ScaleReport) -> Result<String, String> {
    let n_min = report
        .sizes
        .iter()
        .map(|s| s.nodes)
        .min()
        .unwrap_or(10)
        .min(10);
    let n_max = report
        .sizes
        .iter()
        .map(|s| s.nodes)
        .max()
        .unwrap_or(1000)
        .max(50);
    let x_range = (f64::from(n_min) * 0.8)..(f64::from(n_max) * 1.25);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 1350)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let panels = root.split_evenly((3, 1));
        type Pick = fn(&SizeResult) -> &Percentiles;
        type AnchorValue = fn(&Anchor) -> Option<u64>;
        let specs: [(&str, Pick, AnchorValue); 3] = [
            ("join seen by all", |s| &s.join, |a| Some(a.join_seen_ms)),
            ("crash seen by all", |s| &s.crash, |a| Some(a.crash_seen_ms)),
            ("silent loss seen by all", |s| &s.loss, |_| None),
        ];
        for (panel, (title, pick, anchor)) in panels.iter().zip(specs) {
            let ours_max = report
                .sizes
                .iter()
                .filter_map(|s| pick(s).p99_ms.or(pick(s).p50_ms))
                .max()
                .unwrap_or(0);
            let anchors_max = report.anchors.iter().filter_map(anchor).max().unwrap_or(0);
            let y_max = (ours_max.max(anchors_max) as f64 / 1000.0 * 1.15).max(1.0);
            let mut chart = ChartBuilder::on(panel)
                .caption(
                    format!("{title}: time (s) against cluster size N"),
                    ("sans-serif", 20),
                )
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(56)
                .build_cartesian_2d(x_range.clone().log_scale(), 0f64..y_max)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc("nodes (log scale)")
                .y_desc("seconds")
                .x_label_formatter(&|x| format!("{x:.0}"))
                .light_line_style(RGBColor(242, 242, 242))
                .draw()
                .map_err(|e| e.to_string())?;
            type Value = fn(&Percentiles) -> Option<u64>;
            let lines: [(&str, Value, RGBColor); 2] = [
                ("ours p50", |p| p.p50_ms, RGBColor(31, 119, 180)),
                ("ours p99", |p| p.p99_ms, RGBColor(255, 127, 14)),
            ];
            for (label, value, color) in lines {
                let points: Vec<(f64, f64)> = report
                    .sizes
                    .iter()
                    .filter_map(|s| value(pick(s)).map(|v| (f64::from(s.nodes), v as f64 / 1000.0)))
                    .collect();
                chart
                    .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                    .map_err(|e| e.to_string())?
                    .label(label)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                    });
                chart
                    .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(|e| e.to_string())?;
            }
            let marks: [(&str, RGBColor); 2] = [
                ("memberlist", RGBColor(44, 160, 44)),
                ("ckit/Alloy", RGBColor(214, 39, 40)),
            ];
            for (implementation, color) in marks {
                let points: Vec<(f64, f64)> = report
                    .anchors
                    .iter()
                    .filter(|a| a.implementation == implementation)
                    .filter_map(|a| anchor(a).map(|v| (f64::from(a.nodes), v as f64 / 1000.0)))
                    .collect();
                if points.is_empty() {
                    continue;
                }
                chart
                    .draw_series(
                        points
                            .iter()
                            .map(|&p| TriangleMarker::new(p, 7, color.filled())),
                    )
                    .map_err(|e| e.to_string())?
                    .label(format!("{implementation} (ANCHORS.md)"))
                    .legend(move |(x, y)| TriangleMarker::new((x + 8, y), 6, color.filled()));
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperLeft)
                .draw()
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}
