//! The write-ahead log of one `prometheus.remote_write` component, under
//! `--storage.path/prometheus.remote_write.NAME/wal`. It owns durability of scraped samples
//! until every endpoint has them: appends, replay at start, checkpoints and truncation, the
//! size and age bounds, and its counters. Endpoints read it with a [`WalReader`] each.
//!
//! - Appends: each `append` call (one scrape's samples) becomes at most one series record
//!   (series seen for the first time) and one samples record, written with one `write` call,
//!   so a `kill -9` of the agent loses nothing that `append` returned from. The open segment is
//!   `fdatasync`ed every [`FSYNC_INTERVAL`] and when it is sealed: a power loss loses at most
//!   that interval.
//! - Series references are assigned here and shared with the readers through an in-memory
//!   table (readers never decode labels); series records exist for replay.
//! - Replay at open rebuilds the table from the newest checkpoint and every segment. A damaged
//!   or torn record ends its segment there: the file is cut at the bad record, counted in
//!   `corruptions_total`, and replay goes on with the next segment.
//! - Truncation (every `truncate_frequency`, and whenever the log is over `max_size`) removes
//!   the oldest segments that every endpoint has read past and that are older than
//!   `min_keepalive_time`; segments older than `max_keepalive_time`, or needed to get under
//!   `max_size`, go even if unsent, and their samples are counted as dropped by the endpoints
//!   that had not sent them. Series still alive are first written to a checkpoint.
//!
//! `segment.rs` names and reads files, `record.rs` encodes records, `reader.rs` tails the log
//! for one endpoint, `replay.rs` rebuilds state at open and writes checkpoints.

mod reader;
pub mod record;
mod replay;
pub mod segment;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use xxhash_rust::xxh64::Xxh64Builder;

pub use reader::{ReadBatch, WalReader};
pub use segment::Pos;

use crate::config::WalConfig;
use crate::scrape::{Labels, Sample};
use record::RefSample;

/// How often the open segment is flushed to stable storage.
pub const FSYNC_INTERVAL: Duration = Duration::from_secs(1);
/// A segment is sealed once it is this large (the record that crosses it ends the segment).
pub const SEGMENT_BYTES: u64 = 32 << 20;

/// The log's bounds: the component's `wal { ... }` block, and the segment size.
#[derive(Debug, Clone, PartialEq)]
pub struct WalOptions {
    pub truncate_frequency: Duration,
    pub min_keepalive_time: Duration,
    pub max_keepalive_time: Duration,
    pub max_size_bytes: u64,
    /// Segment size (not configurable; tests make it small).
    pub segment_bytes: u64,
}

impl From<&WalConfig> for WalOptions {
    fn from(c: &WalConfig) -> WalOptions {
        WalOptions {
            truncate_frequency: c.truncate_frequency,
            min_keepalive_time: c.min_keepalive_time,
            max_keepalive_time: c.max_keepalive_time,
            max_size_bytes: c.max_size_bytes,
            segment_bytes: SEGMENT_BYTES,
        }
    }
}

impl Default for WalOptions {
    fn default() -> WalOptions {
        WalOptions::from(&WalConfig::default())
    }
}

/// Counters of one WAL (`/metrics` names in brackets).
#[derive(Debug, Default)]
pub struct WalMetrics {
    /// Samples written (`prometheus_remote_write_wal_samples_appended_total`).
    pub samples_appended: AtomicU64,
    /// Samples the component refused because their timestamp was no later than its start
    /// (`agent_remote_write_samples_before_start_total`; counted by the component).
    pub samples_before_start: AtomicU64,
    /// Series created (`prometheus_remote_write_wal_storage_created_series_total`).
    pub series_created: AtomicU64,
    /// Series in the table (`prometheus_remote_write_wal_storage_active_series`).
    pub active_series: AtomicI64,
    /// Records read back at open (`prometheus_remote_write_wal_replayed_records_total`).
    pub replayed_records: AtomicU64,
    /// Damaged or torn records found (`prometheus_tsdb_wal_corruptions_total`).
    pub corruptions: AtomicU64,
    /// Failed writes; their samples are lost (`prometheus_tsdb_wal_writes_failed_total`).
    pub writes_failed: AtomicU64,
    /// Truncations (`prometheus_tsdb_wal_truncations_total`).
    pub truncations: AtomicU64,
    /// Checkpoints written (`prometheus_tsdb_checkpoint_creations_total`).
    pub checkpoints: AtomicU64,
    /// Bytes of segments on disk (`prometheus_tsdb_wal_storage_size_bytes`).
    pub size_bytes: AtomicI64,
    /// The open segment (`prometheus_tsdb_wal_segment_current`).
    pub segment_current: AtomicI64,
    /// Newest sample timestamp written, ms (`prometheus_remote_storage_highest_timestamp_in_seconds`).
    pub highest_timestamp_ms: AtomicI64,
}

/// An endpoint's standing with the log: everything before `acked` has been sent (or given
/// up on), so truncation may remove it.
#[derive(Debug, Default)]
pub struct Subscription {
    pub acked: Mutex<Pos>,
}

struct SeriesEntry {
    series: u64,
    /// The newest segment with a sample of this series.
    last_segment: u32,
}

/// A sealed segment's facts, for truncation.
#[derive(Debug, Clone, Copy)]
struct SealedSegment {
    bytes: u64,
    samples: u64,
    last_write: SystemTime,
}

struct Writer {
    file: Option<File>,
    head: Pos,
    /// Samples in the open segment.
    head_samples: u64,
    by_labels: HashMap<Labels, SeriesEntry, Xxh64Builder>,
    next_ref: u64,
    sealed: BTreeMap<u32, SealedSegment>,
    /// Sample counts of removed segments (the last few hundred), for readers that skip them.
    removed: BTreeMap<u32, u64>,
    unsynced: bool,
    buf: Vec<u8>,
    scratch: Vec<u8>,
    refs: Vec<RefSample>,
    new_series: Vec<(u64, Labels)>,
    /// The references of the last append that began with the same labels allocation.
    runs: HashMap<usize, Run, Xxh64Builder>,
}

/// One scrape's series in order, as last appended. A scrape loop hands the same label
/// allocations in the same order every scrape, so its next append finds each reference by
/// position instead of hashing and comparing label sets (the map lookup was the agent's
/// largest cost per sample). The newest segment of these series is kept here, for the run
/// as a whole, and folded into `by_labels` before a truncation.
struct Run {
    labels: Vec<Labels>,
    refs: Vec<u64>,
    segment: u32,
}

impl Writer {
    /// The reference of `labels`, created if new; marks it written in `segment`.
    fn lookup(&mut self, labels: &Labels, segment: u32) -> u64 {
        if let Some(e) = self.by_labels.get_mut(labels) {
            e.last_segment = segment;
            return e.series;
        }
        let r = self.next_ref;
        self.next_ref += 1;
        self.by_labels.insert(
            labels.clone(),
            SeriesEntry {
                series: r,
                last_segment: segment,
            },
        );
        self.new_series.push((r, labels.clone()));
        r
    }

    /// Records in `by_labels` that the run's series were written in its segment.
    fn fold(&mut self, run: &Run) {
        for l in &run.labels {
            if let Some(e) = self.by_labels.get_mut(l) {
                e.last_segment = e.last_segment.max(run.segment);
            }
        }
    }
}

/// An open write-ahead log.
pub struct Wal {
    dir: PathBuf,
    options: Mutex<WalOptions>,
    writer: Mutex<Writer>,
    /// Series reference to labels, for readers.
    series: RwLock<HashMap<u64, Labels, Xxh64Builder>>,
    head_tx: watch::Sender<Pos>,
    subscriptions: Mutex<Vec<Weak<Subscription>>>,
    metrics: Arc<WalMetrics>,
    /// Held for the life of the log: `flock` on `dir/lock`.
    _lock: File,
}

/// Segments whose sample counts are remembered after removal.
const REMOVED_REMEMBERED: usize = 512;

impl Wal {
    /// Opens (creating if needed) the log in `dir`, replays it, and starts a new segment.
    /// Fails if the directory cannot be created or written, or another agent holds it.
    pub fn open(dir: &Path, options: WalOptions) -> Result<Arc<Wal>, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create WAL directory {}: {e}", dir.display()))?;
        let lock = lock_dir(dir)?;
        let metrics = Arc::new(WalMetrics::default());
        let state = replay::replay(dir, &metrics)?;
        let hasher = Xxh64Builder::new(rand::random());
        let mut by_labels = HashMap::with_hasher(hasher);
        let mut series = HashMap::with_hasher(hasher);
        for (r, labels, last_segment) in state.series {
            series.insert(r, labels.clone());
            by_labels.insert(
                labels,
                SeriesEntry {
                    series: r,
                    last_segment,
                },
            );
        }
        metrics.active_series.store(by_labels.len() as i64, Relaxed);
        metrics
            .highest_timestamp_ms
            .store(state.highest_timestamp_ms, Relaxed);
        let head = Pos {
            segment: state.next_segment,
            offset: 0,
        };
        let file = create_segment(dir, head.segment)?;
        let size: u64 = state.sealed.values().map(|s| s.bytes).sum();
        metrics.size_bytes.store(size as i64, Relaxed);
        metrics.segment_current.store(head.segment as i64, Relaxed);
        let (head_tx, _) = watch::channel(head);
        let wal = Arc::new(Wal {
            dir: dir.to_path_buf(),
            options: Mutex::new(options),
            writer: Mutex::new(Writer {
                file: Some(file),
                head,
                head_samples: 0,
                by_labels,
                next_ref: state.next_ref,
                sealed: state.sealed,
                removed: BTreeMap::new(),
                unsynced: false,
                buf: Vec::new(),
                scratch: Vec::new(),
                refs: Vec::new(),
                new_series: Vec::new(),
                runs: HashMap::with_hasher(Xxh64Builder::new(0)),
            }),
            series: RwLock::new(series),
            head_tx,
            subscriptions: Mutex::new(Vec::new()),
            metrics,
            _lock: lock,
        });
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(background(Arc::downgrade(&wal)));
        }
        Ok(wal)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn metrics(&self) -> Arc<WalMetrics> {
        self.metrics.clone()
    }

    pub fn options(&self) -> WalOptions {
        self.options.lock().unwrap().clone()
    }

    /// New bounds take effect at the next truncation.
    pub fn set_options(&self, options: WalOptions) {
        *self.options.lock().unwrap() = options;
    }

    /// Where the next record will be written.
    pub fn head(&self) -> Pos {
        *self.head_tx.borrow()
    }

    /// The first segment still on disk, if any besides the open one.
    pub fn first_segment(&self) -> u32 {
        let w = self.writer.lock().unwrap();
        w.sealed.keys().next().copied().unwrap_or(w.head.segment)
    }

    /// Labels of a series reference, for readers.
    pub fn series(&self) -> std::sync::RwLockReadGuard<'_, HashMap<u64, Labels, Xxh64Builder>> {
        self.series.read().unwrap()
    }

    /// Registers an endpoint whose read position holds back truncation.
    pub fn subscribe(&self, acked: Pos) -> Arc<Subscription> {
        let sub = Arc::new(Subscription {
            acked: Mutex::new(acked),
        });
        let mut subs = self.subscriptions.lock().unwrap();
        subs.retain(|s| s.strong_count() > 0);
        subs.push(Arc::downgrade(&sub));
        sub
    }

    /// A reader from `from` (moved to the first segment on disk if that one is gone).
    pub fn reader(self: &Arc<Self>, from: Pos) -> WalReader {
        WalReader::new(self.clone(), from, self.head_tx.subscribe())
    }

    /// Samples in removed segments `from..to` (as far as remembered).
    pub(crate) fn removed_samples(&self, from: u32, to: u32) -> u64 {
        let w = self.writer.lock().unwrap();
        w.removed.range(from..to).map(|(_, n)| n).sum()
    }

    /// Writes the samples (one scrape's, typically). Never blocks on anything but the disk;
    /// a failed write is logged and counted and its samples are lost.
    pub fn append(&self, samples: &[Sample]) {
        if samples.is_empty() {
            return;
        }
        let segment_bytes = self.options.lock().unwrap().segment_bytes;
        let mut guard = self.writer.lock().unwrap();
        let w = &mut *guard;
        if w.head.offset >= segment_bytes || w.file.is_none() {
            self.roll(w);
        }
        let seg = w.head.segment;
        w.refs.clear();
        w.new_series.clear();
        let mut highest = i64::MIN;
        let key = samples[0].labels.addr();
        let mut run = w.runs.remove(&key);
        let mut whole_run = run
            .as_ref()
            .is_some_and(|r| r.labels.len() == samples.len());
        for (i, s) in samples.iter().enumerate() {
            let known = run.as_ref().and_then(|r| {
                r.labels
                    .get(i)
                    .filter(|l| l.same(&s.labels))
                    .map(|_| r.refs[i])
            });
            let series = match known {
                Some(r) => r,
                None => {
                    whole_run = false;
                    w.lookup(&s.labels, seg)
                }
            };
            highest = highest.max(s.timestamp_ms);
            w.refs.push(RefSample {
                series,
                timestamp_ms: s.timestamp_ms,
                value: s.value,
            });
        }
        match run.as_mut() {
            Some(r) if whole_run => r.segment = seg,
            _ => {
                // Fold what the old run knew, then remember this scrape's order.
                if let Some(old) = run.take() {
                    w.fold(&old);
                }
                run = Some(Run {
                    labels: samples.iter().map(|s| s.labels.clone()).collect(),
                    refs: w.refs.iter().map(|r| r.series).collect(),
                    segment: seg,
                });
            }
        }
        if let Some(r) = run {
            w.runs.insert(key, r);
        }
        w.buf.clear();
        if !w.new_series.is_empty() {
            record::encode_series(&mut w.buf, &w.new_series, &mut w.scratch);
            let mut table = self.series.write().unwrap();
            for (r, l) in &w.new_series {
                table.insert(*r, l.clone());
            }
            let n = w.new_series.len();
            self.metrics.series_created.fetch_add(n as u64, Relaxed);
            self.metrics.active_series.fetch_add(n as i64, Relaxed);
        }
        record::encode_samples(&mut w.buf, &w.refs, &mut w.scratch);
        let Some(file) = w.file.as_mut() else { return };
        match file.write_all(&w.buf) {
            Ok(()) => {
                w.head.offset += w.buf.len() as u64;
                w.head_samples += samples.len() as u64;
                w.unsynced = true;
                self.metrics
                    .samples_appended
                    .fetch_add(samples.len() as u64, Relaxed);
                self.metrics
                    .size_bytes
                    .fetch_add(w.buf.len() as i64, Relaxed);
                self.metrics
                    .highest_timestamp_ms
                    .fetch_max(highest, Relaxed);
                let head = w.head;
                self.head_tx.send_replace(head);
            }
            Err(e) => {
                let failures = self.metrics.writes_failed.fetch_add(1, Relaxed);
                if failures.is_power_of_two() || failures == 0 {
                    tracing::error!(dir = %self.dir.display(), error = %e, samples = samples.len(), failures = failures + 1, "WAL write failed; these samples are lost");
                }
                // Cut whatever part was written, so the segment stays a sequence of records;
                // if even that fails, continue in a new segment.
                if file.set_len(w.head.offset).is_err()
                    || std::io::Seek::seek(file, std::io::SeekFrom::Start(w.head.offset)).is_err()
                {
                    w.file = None;
                }
            }
        }
    }

    /// Seals the open segment and starts the next one.
    fn roll(&self, w: &mut Writer) {
        if let Some(f) = w.file.take() {
            sync_in_background(f);
        }
        w.sealed.insert(
            w.head.segment,
            SealedSegment {
                bytes: w.head.offset,
                samples: w.head_samples,
                last_write: SystemTime::now(),
            },
        );
        w.unsynced = false;
        let next = Pos {
            segment: w.head.segment + 1,
            offset: 0,
        };
        match create_segment(&self.dir, next.segment) {
            Ok(f) => w.file = Some(f),
            Err(e) => {
                let failures = self.metrics.writes_failed.fetch_add(1, Relaxed);
                if failures.is_power_of_two() || failures == 0 {
                    tracing::error!(error = %e, "cannot start a WAL segment");
                }
            }
        }
        w.head = next;
        w.head_samples = 0;
        self.metrics
            .segment_current
            .store(next.segment as i64, Relaxed);
        self.head_tx.send_replace(next);
    }

    /// Flushes the open segment to stable storage if it has unsynced writes.
    pub fn sync(&self) {
        let file = {
            let mut w = self.writer.lock().unwrap();
            if !std::mem::take(&mut w.unsynced) {
                return;
            }
            w.file.as_ref().and_then(|f| f.try_clone().ok())
        };
        if let Some(f) = file {
            if let Err(e) = f.sync_data() {
                tracing::warn!(dir = %self.dir.display(), error = %e, "WAL fsync failed");
            }
        }
    }

    /// Removes what the bounds allow (see the module doc). Returns the segments removed.
    pub fn truncate(&self) -> usize {
        let options = self.options();
        let now = SystemTime::now();
        let subs: Vec<Arc<Subscription>> = {
            let mut s = self.subscriptions.lock().unwrap();
            s.retain(|w| w.strong_count() > 0);
            s.iter().filter_map(|w| w.upgrade()).collect()
        };
        let acked: Vec<Pos> = subs.iter().map(|s| *s.acked.lock().unwrap()).collect();
        let mut guard = self.writer.lock().unwrap();
        let w = &mut *guard;
        // The open segment becomes removable at a later truncation.
        if w.head.offset > 0 {
            self.roll(w);
        }
        let older_than =
            |age: Duration, t: SystemTime| now.duration_since(t).is_ok_and(|d| d > age);
        let mut size: u64 = w.sealed.values().map(|s| s.bytes).sum::<u64>() + w.head.offset;
        let mut last_removed: Option<u32> = None;
        for (&n, seg) in &w.sealed {
            let sent = acked.iter().all(|a| a.segment > n);
            let removable = (sent && older_than(options.min_keepalive_time, seg.last_write))
                || older_than(options.max_keepalive_time, seg.last_write)
                || size > options.max_size_bytes;
            if !removable {
                break;
            }
            size -= seg.bytes;
            last_removed = Some(n);
        }
        let Some(upto) = last_removed else { return 0 };
        let runs = std::mem::take(&mut w.runs);
        for r in runs.values() {
            w.fold(r);
        }
        // Runs written only in removed segments may hold series that go now.
        w.runs = runs;
        w.runs.retain(|_, r| r.segment > upto);
        // Series whose newest sample is in a removed segment are gone with it; the others go
        // to the checkpoint, so a replay still knows them.
        let live: Vec<(u64, Labels)> = {
            let mut live: Vec<(u64, Labels)> = w
                .by_labels
                .iter()
                .filter(|(_, e)| e.last_segment > upto)
                .map(|(l, e)| (e.series, l.clone()))
                .collect();
            live.sort_unstable_by_key(|(r, _)| *r);
            live
        };
        if let Err(e) = replay::write_checkpoint(&self.dir, upto, &live) {
            tracing::error!(dir = %self.dir.display(), error = %e, "cannot write WAL checkpoint; not truncating");
            return 0;
        }
        self.metrics.checkpoints.fetch_add(1, Relaxed);
        let before = w.by_labels.len();
        w.by_labels.retain(|_, e| e.last_segment > upto);
        let removed_series = before - w.by_labels.len();
        if removed_series > 0 {
            let mut table = self.series.write().unwrap();
            table.retain(|_, l| w.by_labels.contains_key(l));
        }
        self.metrics
            .active_series
            .fetch_sub(removed_series as i64, Relaxed);
        let gone: Vec<u32> = w.sealed.range(..=upto).map(|(n, _)| *n).collect();
        for n in &gone {
            let seg = w.sealed.remove(n).unwrap_or(SealedSegment {
                bytes: 0,
                samples: 0,
                last_write: now,
            });
            w.removed.insert(*n, seg.samples);
            if let Err(e) = std::fs::remove_file(segment::segment_path(&self.dir, *n)) {
                tracing::warn!(segment = n, error = %e, "cannot remove WAL segment");
            }
            self.metrics.size_bytes.fetch_sub(seg.bytes as i64, Relaxed);
        }
        while w.removed.len() > REMOVED_REMEMBERED {
            w.removed.pop_first();
        }
        replay::remove_checkpoints_before(&self.dir, upto);
        self.metrics.truncations.fetch_add(1, Relaxed);
        tracing::info!(dir = %self.dir.display(), segments = gone.len(), upto, series_removed = removed_series, "WAL truncated");
        gone.len()
    }

    /// Whether the log is over its size bound (checked after each segment roll).
    fn over_size(&self) -> bool {
        let max = self.options.lock().unwrap().max_size_bytes;
        self.metrics.size_bytes.load(Relaxed).max(0) as u64 > max
    }

    /// Seals and syncs the open segment (for a graceful shutdown).
    pub fn close(&self) {
        self.sync();
    }
}

/// fsync every [`FSYNC_INTERVAL`], truncation every `truncate_frequency` or when over size.
async fn background(wal: Weak<Wal>) {
    let mut last_truncate = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(FSYNC_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(wal) = wal.upgrade() else { return };
        let due = last_truncate.elapsed() >= wal.options().truncate_frequency || wal.over_size();
        let w = wal.clone();
        let _ = tokio::task::spawn_blocking(move || {
            w.sync();
            if due {
                w.truncate();
            }
        })
        .await;
        if due {
            last_truncate = tokio::time::Instant::now();
        }
    }
}

fn sync_in_background(f: File) {
    let job = move || {
        let _ = f.sync_all();
    };
    match tokio::runtime::Handle::try_current() {
        Ok(h) => {
            h.spawn_blocking(job);
        }
        Err(_) => job(),
    }
}

fn create_segment(dir: &Path, n: u32) -> Result<File, String> {
    let path = segment::segment_path(dir, n);
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| format!("cannot create WAL segment {}: {e}", path.display()))
}

/// Takes `dir/lock` exclusively, so two agents never write one log.
fn lock_dir(dir: &Path) -> Result<File, String> {
    use std::os::fd::AsRawFd;
    let path = dir.join("lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    // SAFETY: flock on a file descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(format!(
            "the WAL directory {} is in use by another agent process (or another component); give each agent its own --storage.path",
            dir.display()
        ));
    }
    Ok(f)
}

#[cfg(test)]
mod tests;
