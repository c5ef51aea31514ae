//! One remote write endpoint: reads the component's WAL from its own position, hands each
//! sample to a shard by series, and keeps the shard count fitted to the load.
//!
//! - Start: the endpoint's position file says how far each shard got; reading resumes at the
//!   oldest of those and skips, per shard, what was already sent, so a restart resends at
//!   most the requests that were in flight. An endpoint without a file (new in the
//!   configuration) starts at the newest data; one with a damaged file at the oldest.
//! - Every second the oldest unsent record becomes the endpoint's acknowledgement to the WAL
//!   (what truncation may remove), and idle shards move their saved position up.
//! - Every [`RESHARD_INTERVAL`] the desired shard count is computed (see `reshard.rs`); the
//!   reader then lets the shards drain and starts the new set, so no series is ever in two
//!   shards at once.
//! - Shutdown: the reader stops, shards send what they hold until the deadline; whatever is
//!   left is still in the WAL and is sent after the restart.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use super::metadata::MetadataStore;
use super::metrics::EndpointMetrics;
use super::positions::{self, PositionFile, Saved, Slot};
use super::reshard::{desired_shards, Ewma, Measured, RESHARD_INTERVAL};
use super::send::Sender;
use super::shards::{self, Shard};
use crate::config::EndpointConfig;
use crate::http_client::{HttpClient, USER_AGENT};
use crate::scrape::{Labels, Sample};
use crate::wal::{Pos, ReadBatch, Subscription, Wal, WalReader};

/// How often the acknowledgement and idle shards' positions are updated.
const ACK_INTERVAL: Duration = Duration::from_secs(1);

/// The shard of a series reference among `n`.
fn shard_of(series: u64, n: usize) -> usize {
    ((series.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % n as u64) as usize
}

struct Running {
    shards: Vec<Arc<Shard>>,
    tasks: Vec<JoinHandle<()>>,
    positions: Arc<PositionFile>,
}

struct Inner {
    sender: Arc<Sender>,
    wal: Arc<Wal>,
    subscription: Arc<Subscription>,
    pos_path: PathBuf,
    running: Mutex<Option<Running>>,
    /// Where the reader is: records before it are in the shards or sent.
    floor: Mutex<Pos>,
    desired: AtomicUsize,
    stop: Notify,
    space: Arc<Notify>,
    /// Set by shutdown.
    deadline: Mutex<Option<Instant>>,
    /// True once the reader task has ended (a restarted component waits for it).
    stopped: watch::Sender<bool>,
}

/// A running endpoint.
pub struct Endpoint {
    inner: Arc<Inner>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Endpoint {
    /// Starts reading `wal` for this endpoint on the current tokio runtime, once `previous`
    /// (the same endpoint of a component being replaced) has stopped. Fails if the client
    /// settings name a file that cannot be read or used.
    pub fn start(
        config: EndpointConfig,
        mut external_labels: Vec<(String, String)>,
        wal: Arc<Wal>,
        metadata: Arc<MetadataStore>,
        previous: Option<watch::Receiver<bool>>,
    ) -> Result<Endpoint, String> {
        let client = HttpClient::new(&config.client, USER_AGENT).map_err(|e| e.to_string())?;
        external_labels.sort();
        external_labels.dedup_by(|a, b| a.0 == b.0);
        let metrics = Arc::new(EndpointMetrics::default());
        metrics
            .shards_min
            .store(config.queue.min_shards as i64, Relaxed);
        metrics
            .shards_max
            .store(config.queue.max_shards as i64, Relaxed);
        let pos_path = positions::path(wal.dir(), &config.name);
        let inner = Arc::new(Inner {
            subscription: wal.subscribe(Pos::default()),
            sender: Arc::new(Sender {
                config,
                external_labels,
                client,
                metrics,
            }),
            wal,
            pos_path,
            running: Mutex::new(None),
            floor: Mutex::new(Pos::default()),
            desired: AtomicUsize::new(0),
            stop: Notify::new(),
            space: Arc::new(Notify::new()),
            deadline: Mutex::new(None),
            stopped: watch::channel(false).0,
        });
        // A new endpoint starts at the data written from now on.
        let head = inner.wal.head();
        let reader = tokio::spawn(read_loop(inner.clone(), previous, head));
        let upkeep = tokio::spawn(upkeep(Arc::downgrade(&inner)));
        let mut tasks = vec![reader, upkeep];
        let md = &inner.sender.config.metadata;
        if md.send {
            tasks.push(tokio::spawn(super::metadata::run(
                inner.sender.clone(),
                metadata,
                md.clone(),
            )));
        }
        Ok(Endpoint {
            inner,
            tasks: Mutex::new(tasks),
        })
    }

    pub fn config(&self) -> &EndpointConfig {
        &self.inner.sender.config
    }

    pub fn metrics(&self) -> Arc<EndpointMetrics> {
        self.inner.sender.metrics.clone()
    }

    /// Becomes true when this endpoint has stopped reading and sending.
    pub fn stopped(&self) -> watch::Receiver<bool> {
        self.inner.stopped.subscribe()
    }

    /// Stops reading, lets the shards send what they hold until `flush_timeout`, saves the
    /// positions. What is left is still in the WAL.
    pub async fn shutdown(&self, flush_timeout: Duration) {
        let deadline = Instant::now() + flush_timeout;
        *self.inner.deadline.lock().unwrap() = Some(deadline);
        self.inner.stop.notify_one();
        let mut tasks = std::mem::take(&mut *self.tasks.lock().unwrap()).into_iter();
        let grace = flush_timeout + Duration::from_millis(200);
        if let Some(mut reader) = tasks.next() {
            if tokio::time::timeout(grace, &mut reader).await.is_err() {
                reader.abort();
            }
        }
        // The upkeep and the metadata sender hold nothing that must be kept.
        tasks.for_each(|t| t.abort());
        finish(&self.inner, grace).await;
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
        if let Some(r) = self.inner.running.lock().unwrap().take() {
            r.tasks.iter().for_each(|t| t.abort());
        }
        self.inner.stopped.send_replace(true);
    }
}

/// Stops the shards (with the shutdown deadline), saves positions and the acknowledgement.
async fn finish(inner: &Arc<Inner>, grace: Duration) {
    let deadline = *inner.deadline.lock().unwrap();
    let running = inner.running.lock().unwrap().take();
    if let Some(r) = running {
        for s in &r.shards {
            s.drain(deadline);
        }
        let sleep = tokio::time::sleep(grace);
        tokio::pin!(sleep);
        for mut t in r.tasks {
            tokio::select! {
                _ = &mut t => {}
                _ = &mut sleep => t.abort(),
            }
        }
        let left: usize = r.shards.iter().map(|s| s.queued()).sum();
        inner
            .sender
            .metrics
            .samples_pending
            .fetch_sub(left as i64, Relaxed);
        r.positions.sync();
        inner.sender.metrics.shards.store(0, Relaxed);
    }
    inner.stopped.send_replace(true);
}

/// Starts `slots.len()` shards, writing a fresh position file.
fn start_shards(inner: &Arc<Inner>, slots: &[Slot]) -> Result<(), String> {
    let positions = Arc::new(
        PositionFile::create(&inner.pos_path, slots)
            .map_err(|e| format!("cannot write {}: {e}", inner.pos_path.display()))?,
    );
    let capacity = inner.sender.config.queue.capacity;
    let shards: Vec<Arc<Shard>> = slots
        .iter()
        .enumerate()
        .map(|(i, s)| Shard::new(i, capacity, *s, inner.space.clone()))
        .collect();
    let tasks = shards
        .iter()
        .map(|s| {
            tokio::spawn(shards::run(
                s.clone(),
                inner.sender.clone(),
                positions.clone(),
            ))
        })
        .collect();
    inner
        .sender
        .metrics
        .shards
        .store(shards.len() as i64, Relaxed);
    *inner.running.lock().unwrap() = Some(Running {
        shards,
        tasks,
        positions,
    });
    Ok(())
}

/// What was already sent before a restart, per shard of the run that saved it.
struct Resume {
    slots: Vec<Slot>,
    /// Samples of each old shard seen in the current record.
    seen: Vec<u32>,
    record: Pos,
    /// Past this record nothing is skipped any more.
    until: Pos,
}

impl Resume {
    fn keep(&mut self, record: Pos, series: u64) -> bool {
        if record != self.record {
            self.record = record;
            self.seen.iter_mut().for_each(|s| *s = 0);
        }
        let k = shard_of(series, self.slots.len());
        let nth = self.seen[k];
        self.seen[k] += 1;
        !self.slots[k].covers(record, nth)
    }
}

async fn read_loop(inner: Arc<Inner>, previous: Option<watch::Receiver<bool>>, head: Pos) {
    if let Some(mut prev) = previous {
        let _ = prev.wait_for(|s| *s).await;
    }
    let q = &inner.sender.config.queue;
    let fresh = |record: Pos| vec![Slot { record, count: 0 }; q.min_shards.max(1)];
    let (slots, mut resume) = match positions::load(&inner.pos_path) {
        Saved::Slots(slots) => {
            let until = slots.iter().map(|s| s.record).max().unwrap_or_default();
            let n = slots.len();
            (
                slots.clone(),
                Some(Resume {
                    slots,
                    seen: vec![0; n],
                    record: Pos::default(),
                    until,
                }),
            )
        }
        Saved::None => (fresh(head), None),
        Saved::Damaged => (
            fresh(Pos {
                segment: inner.wal.first_segment(),
                offset: 0,
            }),
            None,
        ),
    };
    let from = slots.iter().map(|s| s.record).min().unwrap_or_default();
    *inner.floor.lock().unwrap() = from;
    *inner.subscription.acked.lock().unwrap() = from;
    if let Err(e) = start_shards(&inner, &slots) {
        tracing::error!(endpoint = %inner.sender.config.name, error = %e, "remote_write endpoint cannot keep its position; not sending");
        inner.stopped.send_replace(true);
        return;
    }
    inner.desired.store(slots.len(), Relaxed);
    let mut reader = inner.wal.reader(from);
    let mut counted_skips = 0;
    let mut labels: Vec<Option<Labels>> = Vec::new();
    loop {
        let batch: ReadBatch = tokio::select! {
            b = reader.next() => b,
            _ = inner.stop.notified() => return,
        };
        let skipped = reader.skipped() - counted_skips;
        if skipped > 0 {
            counted_skips = reader.skipped();
            inner
                .sender
                .metrics
                .samples_dropped_total
                .fetch_add(skipped, Relaxed);
            tracing::warn!(endpoint = %inner.sender.config.name, samples = skipped, "WAL data was removed before this endpoint sent it (max_keepalive_time or size bound)");
        }
        *inner.floor.lock().unwrap() = batch.start;
        if resume.as_ref().is_some_and(|r| batch.start > r.until) {
            resume = None;
        }
        reader.labels(&batch, &mut labels);
        if !dispatch(&inner, &batch, &labels, resume.as_mut()).await {
            return;
        }
        *inner.floor.lock().unwrap() = reader.position();
        if resume.is_none() && !reshard_if_needed(&inner, &reader).await {
            return;
        }
    }
}

/// Hands a record's samples to the shards, waiting for room. False if stopped meanwhile.
async fn dispatch(
    inner: &Arc<Inner>,
    batch: &ReadBatch,
    labels: &[Option<Labels>],
    mut resume: Option<&mut Resume>,
) -> bool {
    let m = &inner.sender.metrics;
    let (shards, per_send) = {
        let running = inner.running.lock().unwrap();
        let Some(r) = running.as_ref() else {
            return false;
        };
        (
            r.shards.clone(),
            inner.sender.config.queue.max_samples_per_send,
        )
    };
    let n = shards.len();
    let mut per_shard: Vec<VecDeque<Sample>> = (0..n).map(|_| VecDeque::new()).collect();
    let mut missing = 0u64;
    for (s, labels) in batch.samples.iter().zip(labels) {
        if let Some(r) = resume.as_deref_mut() {
            if !r.keep(batch.start, s.series) {
                continue;
            }
        }
        let Some(labels) = labels else {
            missing += 1;
            continue;
        };
        let sample = Sample {
            labels: labels.clone(),
            timestamp_ms: s.timestamp_ms,
            value: s.value,
        };
        per_shard[shard_of(s.series, n)].push_back(sample);
    }
    let kept: u64 = per_shard.iter().map(|q| q.len() as u64).sum();
    m.samples_in_total.fetch_add(kept + missing, Relaxed);
    if missing > 0 {
        m.samples_dropped_total.fetch_add(missing, Relaxed);
    }
    for (shard, mut queue) in shards.iter().zip(per_shard) {
        while !queue.is_empty() {
            let space = inner.space.notified();
            let pushed = shard.push(batch.start, &mut queue, per_send);
            if pushed > 0 {
                m.samples_pending.fetch_add(pushed as i64, Relaxed);
                continue;
            }
            tokio::select! {
                _ = space => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = inner.stop.notified() => return false,
            }
        }
    }
    true
}

/// Between records: if a different shard count is wanted, drains the shards and starts the
/// new set. False if stopped meanwhile.
async fn reshard_if_needed(inner: &Arc<Inner>, reader: &WalReader) -> bool {
    let want = inner.desired.load(Relaxed);
    let old = {
        let mut running = inner.running.lock().unwrap();
        match running.as_ref() {
            Some(r) if r.shards.len() != want && want > 0 => running.take(),
            _ => return true,
        }
    };
    let Some(old) = old else { return true };
    tracing::info!(endpoint = %inner.sender.config.name, from = old.shards.len(), to = want, "remote_write resharding");
    for s in &old.shards {
        s.drain(None);
    }
    let mut tasks = old.tasks;
    let mut i = 0;
    while i < tasks.len() {
        tokio::select! {
            _ = &mut tasks[i] => i += 1,
            _ = inner.stop.notified() => {
                // Shutdown during the drain: `finish` stops these shards.
                *inner.running.lock().unwrap() = Some(Running { shards: old.shards, tasks, positions: old.positions });
                return false;
            }
        }
    }
    let floor = reader.position();
    if let Err(e) = start_shards(
        inner,
        &vec![
            Slot {
                record: floor,
                count: 0
            };
            want
        ],
    ) {
        tracing::error!(endpoint = %inner.sender.config.name, error = %e, "remote_write endpoint cannot keep its position; not sending");
        return false;
    }
    true
}

/// Acknowledgement, idle shards' positions and the shard count, on their timers.
async fn upkeep(inner: std::sync::Weak<Inner>) {
    let mut tick = tokio::time::interval(ACK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_reshard = Instant::now();
    let (mut in_rate, mut out_rate, mut send_rate) =
        (Ewma::default(), Ewma::default(), Ewma::default());
    let mut last = Counters::default();
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let floor = *inner.floor.lock().unwrap();
        let acked = {
            let running = inner.running.lock().unwrap();
            let Some(r) = running.as_ref() else { continue };
            for s in &r.shards {
                s.advance_idle(floor, &r.positions);
            }
            // Positions survive a crash of the process as written; this makes them survive
            // one of the machine too (at most a second behind).
            r.positions.sync();
            r.shards
                .iter()
                .filter_map(|s| s.oldest_unsent())
                .chain([floor])
                .min()
                .unwrap_or(floor)
        };
        *inner.subscription.acked.lock().unwrap() = acked;
        let elapsed = last_reshard.elapsed();
        if elapsed < RESHARD_INTERVAL {
            continue;
        }
        last_reshard = Instant::now();
        let m = &inner.sender.metrics;
        let now = Counters::read(&inner);
        in_rate.update(now.appended - last.appended, elapsed);
        out_rate.update(now.sent - last.sent, elapsed);
        send_rate.update((now.send_nanos - last.send_nanos) / 1000, elapsed);
        last = now;
        let q = &inner.sender.config.queue;
        let current = m.shards.load(Relaxed).max(1) as usize;
        let highest = inner.wal.metrics().highest_timestamp_ms.load(Relaxed);
        let sent = m.highest_sent_timestamp_ms.load(Relaxed);
        let desired = desired_shards(&Measured {
            samples_in_rate: in_rate.rate(),
            samples_out_rate: out_rate.rate(),
            send_seconds_rate: send_rate.rate() / 1e6,
            behind_seconds: if sent > 0 {
                (highest - sent) as f64 / 1000.0
            } else {
                0.0
            },
            current,
            min: q.min_shards,
            max: q.max_shards,
        });
        m.shards_desired.store(desired as i64, Relaxed);
        if !m.failing.load(Relaxed) {
            inner.desired.store(desired, Relaxed);
        }
    }
}

#[derive(Default)]
struct Counters {
    appended: u64,
    sent: u64,
    send_nanos: u64,
}

impl Counters {
    fn read(inner: &Inner) -> Counters {
        let m = &inner.sender.metrics;
        Counters {
            appended: inner.wal.metrics().samples_appended.load(Relaxed),
            sent: m.samples_sent_total.load(Relaxed),
            send_nanos: m.send_nanos_total.load(Relaxed),
        }
    }
}
