//! What one scrape of one target turns into, and what a scrape loop remembers between scrapes
//! for that (Prometheus' `scrapeCache` and `scrapeLoop.append`): labelled samples, staleness
//! markers for vanished series, the samples Prometheus' agent-mode storage would refuse
//! (dropped here, one by one, so they never reach a receiver), the five report series, and the
//! target's metric metadata. No I/O and no clock: the caller passes the scrape's timestamp.
//!
//! The rules, as Prometheus 2.42 applies them:
//! - A body that fails to parse midway (or a sample with an invalid metric name or a repeated
//!   label name) fails the scrape: nothing of it is kept but the staleness markers; the series
//!   read before the error count as seen (no marker for them), and `scrape_samples_scraped`
//!   is what was read, including a refused sample. A series never stored (only ever seen in
//!   failed scrapes) gets no staleness marker.
//! - A sample more than 10 minutes in the future (out of bounds) or older than the newest
//!   sample of its series from an earlier scrape (out of order) is dropped and the scrape goes
//!   on; it counts in `scrape_samples_post_metric_relabeling`, not in `scrape_series_added`.
//! - Series with explicit timestamps get no staleness markers.
//! - The cache keeps the series of the last successful scrape of a non-empty body (and what a
//!   failed scrape read since); it is flushed anyway once it doubles plus 1000. Metadata stays
//!   for 10 successful scrapes after its family was last seen.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::Duration;

use super::exposition::{self, Entry, Format, MetricType, Parser};
use super::sample::{stale_nan, Labels, Metadata, Sample};
use super::target::ScrapeTarget;

pub(crate) const REPORT_UP: &str = "up";
pub(crate) const REPORT_DURATION: &str = "scrape_duration_seconds";
pub(crate) const REPORT_SAMPLES: &str = "scrape_samples_scraped";
pub(crate) const REPORT_POST_RELABEL: &str = "scrape_samples_post_metric_relabeling";
pub(crate) const REPORT_SERIES_ADDED: &str = "scrape_series_added";
const REPORT_NAMES: [&str; 5] = [
    REPORT_UP,
    REPORT_DURATION,
    REPORT_SAMPLES,
    REPORT_POST_RELABEL,
    REPORT_SERIES_ADDED,
];

/// How far ahead of the scrape an explicit timestamp may be (Prometheus' `maxAheadTime`).
const MAX_AHEAD_MS: i64 = 10 * 60 * 1000;
/// Scrapes that metadata outlives its family (Prometheus' scrape cache).
const METADATA_KEPT_SCRAPES: u64 = 10;

/// The per-loop options that shape samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shaping {
    pub honor_labels: bool,
    pub honor_timestamps: bool,
}

/// What one scrape came to.
#[derive(Debug, Default)]
pub(crate) struct Scraped {
    /// Samples to deliver: the scrape's own (none if it failed), then staleness markers.
    pub samples: Vec<Sample>,
    /// Samples read (`scrape_samples_scraped`).
    pub total: usize,
    /// Samples kept after relabeling (`scrape_samples_post_metric_relabeling`).
    pub added: usize,
    /// Samples of series new to the cache that were kept (`scrape_series_added`).
    pub series_added: usize,
    /// Why the scrape failed, if it did.
    pub error: Option<String>,
}

/// See the module doc.
#[derive(Default)]
pub(crate) struct SeriesState {
    /// By xxhash64 of the series text as written, checked against `text`.
    cache: PreHashedMap<CachedSeries>,
    /// Series without explicit timestamps, by labels hash, with the scrape that last saw
    /// them and whether a sample of theirs was ever delivered.
    previous: PreHashedMap<Tracked>,
    /// Scrapes so far (successful or not).
    generation: u64,
    /// Prometheus' cache iteration: advanced by successful scrapes of a non-empty body.
    iter: u64,
    /// Cache and metadata entries after the last successful scrape.
    successful_count: usize,
    metadata: BTreeMap<Box<[u8]>, MetaEntry>,
    /// `metadata` as handed to receivers, rebuilt when it changed.
    metadata_list: Arc<[Metadata]>,
    metadata_dirty: bool,
    /// Labels of the report series, once built.
    report: Option<[Labels; 5]>,
    /// Whether report series were written (and so get staleness markers at the end).
    reported: bool,
}

struct Tracked {
    labels: Labels,
    seen: u64,
    /// Seen in a successful scrape. A series only ever seen in failed scrapes gets no
    /// staleness marker: nothing of it was stored (in Prometheus' agent mode its series record
    /// is rolled back, so its marker is never sent either).
    stored: bool,
}

struct CachedSeries {
    text: Box<[u8]>,
    labels: Labels,
    labels_hash: u64,
    /// The scrape that last saw it.
    generation: u64,
    /// Newest timestamp appended, and the newest before the scrape `ts_generation` (what a
    /// sample must not be older than: Prometheus' agent storage checks against committed
    /// samples only).
    last_ts: i64,
    committed_ts: i64,
    ts_generation: u64,
}

#[derive(Debug, Clone)]
struct MetaEntry {
    kind: MetricType,
    help: String,
    unit: String,
    last_iter: u64,
}

/// A map keyed by a hash already computed (the key is used as the hash).
type PreHashedMap<V> = HashMap<u64, V, BuildHasherDefault<PreHashed>>;

#[derive(Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are used; this keeps the hasher total.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

impl SeriesState {
    /// One scrape at `ts_ms` whose (decoded) body is `body` in `format`.
    pub(crate) fn scraped(
        &mut self,
        target: &ScrapeTarget,
        shaping: Shaping,
        ts_ms: i64,
        body: &[u8],
        format: Format,
    ) -> Scraped {
        self.generation += 1;
        let g = self.generation;
        let mut r = Scraped {
            samples: Vec::with_capacity(self.previous.len() + 8),
            ..Scraped::default()
        };
        let max_ts = ts_ms.saturating_add(MAX_AHEAD_MS);
        for entry in Parser::new(body, format) {
            let raw = match entry {
                Ok(Entry::Sample(raw)) => raw,
                Ok(Entry::Type { name, kind }) => {
                    self.set_metadata(name, |m| std::mem::replace(&mut m.kind, kind) != kind);
                    continue;
                }
                Ok(Entry::Help { name, help }) => {
                    self.set_metadata(name, |m| {
                        m.help != help && {
                            m.help = help.into_owned();
                            true
                        }
                    });
                    continue;
                }
                Ok(Entry::Unit { name, unit }) => {
                    let unit = String::from_utf8_lossy(unit);
                    self.set_metadata(name, |m| {
                        m.unit != unit && {
                            m.unit = unit.into_owned();
                            true
                        }
                    });
                    continue;
                }
                Ok(Entry::Comment) => continue,
                Err(e) => {
                    r.error = Some(format!("invalid exposition: {e}"));
                    break;
                }
            };
            r.total += 1;
            let explicit = raw.timestamp_ms.filter(|_| shaping.honor_timestamps);
            let t = explicit.unwrap_or(ts_ms);
            let key = xxhash_rust::xxh64::xxh64(raw.series, 0);
            let (labels, labels_hash) = match self.cache.get_mut(&key) {
                Some(c) if *c.text == *raw.series => {
                    c.generation = g;
                    if c.ts_generation != g {
                        c.committed_ts = c.last_ts;
                        c.ts_generation = g;
                    }
                    if t > max_ts || t < c.committed_ts {
                        // Out of bounds or out of order: dropped, the scrape goes on.
                        r.added += 1;
                        continue;
                    }
                    c.last_ts = c.last_ts.max(t);
                    (c.labels.clone(), c.labels_hash)
                }
                hit => {
                    let collision = hit.is_some();
                    let labels = match new_series(raw.series, format, target, shaping) {
                        Ok(l) => l,
                        Err(e) => {
                            r.error = Some(e);
                            break;
                        }
                    };
                    if t > max_ts {
                        // Not cached: Prometheus caches a series once a sample of it is stored.
                        r.added += 1;
                        continue;
                    }
                    let labels_hash = labels.hash();
                    if !collision {
                        self.cache.insert(
                            key,
                            CachedSeries {
                                text: raw.series.into(),
                                labels: labels.clone(),
                                labels_hash,
                                generation: g,
                                last_ts: t,
                                committed_ts: i64::MIN,
                                ts_generation: g,
                            },
                        );
                    }
                    r.series_added += 1;
                    (labels, labels_hash)
                }
            };
            if explicit.is_none() {
                match self.previous.get_mut(&labels_hash) {
                    Some(t) => t.seen = g,
                    None => {
                        self.previous.insert(
                            labels_hash,
                            Tracked {
                                labels: labels.clone(),
                                seen: g,
                                stored: false,
                            },
                        );
                    }
                }
            }
            r.samples.push(Sample {
                labels,
                timestamp_ms: t,
                value: raw.value,
            });
            r.added += 1;
        }
        if r.error.is_some() {
            // Rolled back: the samples are not stored, so they set no newest timestamp.
            r.samples.clear();
            for c in self.cache.values_mut() {
                if c.ts_generation == g {
                    c.last_ts = c.committed_ts;
                }
            }
        }
        self.mark_stale(ts_ms, r.error.is_none(), &mut r.samples);
        if r.error.is_none() && !body.is_empty() {
            self.flush();
        } else {
            self.flush_if_grown();
        }
        r
    }

    /// A scrape that got no body (the target did not answer, or not with a usable body):
    /// staleness markers for every series of the last scrape.
    pub(crate) fn failed(&mut self, ts_ms: i64) -> Vec<Sample> {
        self.generation += 1;
        let mut out = Vec::new();
        self.mark_stale(ts_ms, false, &mut out);
        self.flush_if_grown();
        out
    }

    /// Staleness markers for the stored series of the last scrape that this one did not see;
    /// with `success`, what this one saw is stored.
    fn mark_stale(&mut self, ts_ms: i64, success: bool, out: &mut Vec<Sample>) {
        let g = self.generation;
        self.previous.retain(|_, t| {
            if t.seen == g {
                t.stored |= success;
                return true;
            }
            if t.stored {
                out.push(Sample {
                    labels: t.labels.clone(),
                    timestamp_ms: ts_ms,
                    value: stale_nan(),
                });
            }
            false
        });
    }

    /// After a successful scrape: drop cache entries it did not see and metadata unseen for
    /// [`METADATA_KEPT_SCRAPES`] scrapes.
    fn flush(&mut self) {
        let g = self.generation;
        self.cache.retain(|_, c| c.generation == g);
        let iter = self.iter;
        let before = self.metadata.len();
        self.metadata
            .retain(|_, m| iter - m.last_iter <= METADATA_KEPT_SCRAPES);
        self.metadata_dirty |= self.metadata.len() != before;
        self.iter += 1;
        self.successful_count = self.cache.len() + self.metadata.len();
    }

    /// After a failure: flush anyway if the cache grew past twice its size at the last
    /// success plus 1000 (series of failing scrapes must not pile up).
    fn flush_if_grown(&mut self) {
        if self.cache.len() + self.metadata.len() > self.successful_count * 2 + 1000 {
            self.flush();
        }
    }

    /// Creates or updates the metadata of `name` with `change` (which says whether it
    /// changed anything).
    fn set_metadata(&mut self, name: &[u8], change: impl FnOnce(&mut MetaEntry) -> bool) {
        let iter = self.iter;
        let entry = match self.metadata.get_mut(name) {
            Some(e) => e,
            None => {
                self.metadata_dirty = true;
                self.metadata.entry(name.into()).or_insert(MetaEntry {
                    kind: MetricType::Unknown,
                    help: String::new(),
                    unit: String::new(),
                    last_iter: iter,
                })
            }
        };
        entry.last_iter = iter;
        if change(entry) {
            self.metadata_dirty = true;
        }
    }

    /// The target's metadata now, sorted by family name.
    pub(crate) fn metadata(&mut self) -> Arc<[Metadata]> {
        if self.metadata_dirty {
            self.metadata_list = self
                .metadata
                .iter()
                .map(|(name, m)| Metadata {
                    metric_family_name: String::from_utf8_lossy(name).into_owned(),
                    kind: m.kind,
                    help: m.help.clone(),
                    unit: m.unit.clone(),
                })
                .collect();
            self.metadata_dirty = false;
        }
        self.metadata_list.clone()
    }

    /// Appends the five report series.
    pub(crate) fn report(
        &mut self,
        target: &ScrapeTarget,
        ts_ms: i64,
        up: bool,
        duration: Duration,
        counts: (usize, usize, usize),
        out: &mut Vec<Sample>,
    ) {
        let values = [
            if up { 1.0 } else { 0.0 },
            duration.as_secs_f64(),
            counts.0 as f64,
            counts.1 as f64,
            counts.2 as f64,
        ];
        let labels = self.report_labels(target).clone();
        for (labels, value) in labels.into_iter().zip(values) {
            out.push(Sample {
                labels,
                timestamp_ms: ts_ms,
                value,
            });
        }
        self.reported = true;
    }

    fn report_labels(&mut self, target: &ScrapeTarget) -> &[Labels; 5] {
        self.report
            .get_or_insert_with(|| REPORT_NAMES.map(|name| report_labels(target, name)))
    }

    /// Staleness markers for everything this loop wrote last, when the target is gone.
    pub(crate) fn end_of_run(&mut self, target: &ScrapeTarget, ts_ms: i64) -> Vec<Sample> {
        let mut out = self.failed(ts_ms);
        if self.reported {
            for labels in self.report_labels(target).clone() {
                out.push(Sample {
                    labels,
                    timestamp_ms: ts_ms,
                    value: stale_nan(),
                });
            }
        }
        self.reported = false;
        out
    }

    #[cfg(test)]
    pub(crate) fn cached_series(&self) -> usize {
        self.cache.len()
    }
}

/// The labels of a series the cache has not seen, checked as Prometheus checks a new series:
/// a valid metric name, no label name twice.
fn new_series(
    series: &[u8],
    format: Format,
    target: &ScrapeTarget,
    shaping: Shaping,
) -> Result<Labels, String> {
    let (name, pairs) = exposition::parse_series(series, format)?;
    if !exposition::is_metric_name(&name) {
        return Err(format!(
            "invalid metric name {name:?}; expected [a-zA-Z_:][a-zA-Z0-9_:]* (no blanks before it)"
        ));
    }
    label_parts(&name, &pairs, &target.labels, shaping.honor_labels)
}

fn report_labels(target: &ScrapeTarget, name: &str) -> Labels {
    let mut pairs: Vec<(String, String)> = Vec::with_capacity(target.labels.len() + 1);
    pairs.push(("__name__".into(), name.into()));
    pairs.extend(
        target
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    Labels::from_pairs(pairs)
}

/// A scraped series' labels with the target's labels attached, as Prometheus'
/// `mutateSampleLabels` does:
/// - `honor_labels = true`: a target label is added only where the series has no label of
///   that name (an exposed empty value counts: the label is then dropped).
/// - `honor_labels = false`: target labels win; a clashing non-empty scraped value is kept as
///   `exported_NAME` (prefixed again while that name is taken; shorter names first).
/// - Empty values drop their label (every label of that name). A label name that is left
///   twice is an error.
pub(crate) fn label_parts(
    name: &str,
    scraped: &[(String, String)],
    target: &Labels,
    honor_labels: bool,
) -> Result<Labels, String> {
    let base: Vec<(&str, &str)> = std::iter::once(("__name__", name))
        .chain(scraped.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .collect();
    let has = |n: &str| base.iter().any(|(k, _)| *k == n);
    let get = |n: &str| base.iter().find(|(k, _)| *k == n).map_or("", |(_, v)| *v);
    // Prometheus' labels.Builder: `del` starts with the names that have an empty value.
    let mut del: Vec<&str> = base
        .iter()
        .filter(|(_, v)| v.is_empty())
        .map(|(k, _)| *k)
        .collect();
    let mut add: Vec<(String, String)> = Vec::with_capacity(target.len() + 1);
    fn set<'a>(add: &mut Vec<(String, String)>, del: &mut Vec<&'a str>, n: &'a str, v: &str) {
        if v.is_empty() {
            del.push(n);
        } else if let Some(a) = add.iter_mut().find(|(k, _)| k == n) {
            a.1 = v.to_string();
        } else {
            add.push((n.to_string(), v.to_string()));
        }
    }
    if honor_labels {
        for (n, v) in target.iter() {
            if !has(n) {
                set(&mut add, &mut del, n, v);
            }
        }
    } else {
        let mut conflicts: Vec<(String, String)> = Vec::new();
        for (n, v) in target.iter() {
            let existing = get(n);
            if !existing.is_empty() {
                conflicts.push((n.to_string(), existing.to_string()));
            }
            set(&mut add, &mut del, n, v);
        }
        conflicts.sort_by_key(|(n, _)| n.len());
        for i in 0..conflicts.len() {
            let mut renamed = conflicts[i].0.clone();
            loop {
                renamed = format!("exported_{renamed}");
                if !has(&renamed)
                    && target.get(&renamed).is_none()
                    && !conflicts[..i].iter().any(|(n, _)| *n == renamed)
                {
                    break;
                }
            }
            conflicts[i].0 = renamed;
        }
        for (n, v) in &conflicts {
            if let Some(a) = add.iter_mut().find(|(k, _)| k == n) {
                a.1 = v.clone();
            } else {
                add.push((n.clone(), v.clone()));
            }
        }
    }
    let mut out: Vec<(String, String)> = base
        .iter()
        .filter(|(k, _)| !del.contains(k) && !add.iter().any(|(a, _)| a == k))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    out.extend(add);
    out.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(w) = out.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(format!("label name {:?} is not unique", w[0].0));
    }
    Ok(Labels::from_pairs(out))
}

#[cfg(test)]
#[path = "scrape_cache_tests.rs"]
mod tests;
