//! Tails the write-ahead log for one endpoint: sample records in log order, from a position,
//! following the writer across segments and waiting at the head for new records.
//!
//! Series records are skipped (labels come from the log's in-memory table). A segment that
//! truncation removed before it was read is jumped over and its samples are counted as
//! skipped; a damaged record ends its segment (counted in the log's corruptions).

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use tokio::sync::watch;

use super::record::{self, Record, RefSample, KIND_SAMPLES};
use super::segment::{segment_path, Next, Pos, SegmentReader};
use super::Wal;
use crate::scrape::Labels;

/// One samples record: where it starts and ends in the log, and its samples.
#[derive(Debug, Clone)]
pub struct ReadBatch {
    pub start: Pos,
    pub end: Pos,
    pub samples: Vec<RefSample>,
}

/// A cursor over the log (see the module doc).
pub struct WalReader {
    wal: Arc<Wal>,
    head_rx: watch::Receiver<Pos>,
    pos: Pos,
    file: Option<SegmentReader>,
    /// Samples in segments removed before this reader got to them.
    skipped: u64,
    /// Labels of the last record that began with the same reference (see [`WalReader::labels`]).
    runs: HashMap<u64, (Vec<u64>, Vec<Option<Labels>>)>,
    run_series: usize,
}

impl WalReader {
    pub(super) fn new(wal: Arc<Wal>, from: Pos, head_rx: watch::Receiver<Pos>) -> WalReader {
        let mut r = WalReader {
            wal,
            head_rx,
            pos: from,
            file: None,
            skipped: 0,
            runs: HashMap::new(),
            run_series: 0,
        };
        let head = r.wal.head();
        if r.pos > head {
            r.pos = head;
        }
        r
    }

    /// Just past the last record returned: where reading continues.
    pub fn position(&self) -> Pos {
        self.pos
    }

    /// Samples this reader never saw because truncation removed them first.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The labels of each sample of `batch`, in order (`None`: a series truncation removed).
    /// A scrape's record repeats the previous one's references in the same order, so the
    /// labels found for a record are kept by its first reference and reused when the next
    /// record has the same references: one comparison of integers per sample instead of a
    /// lookup in the shared table. References never change meaning, so a kept entry is never
    /// wrong; the cache is dropped when it holds twice the log's live series.
    pub fn labels(&mut self, batch: &ReadBatch, out: &mut Vec<Option<Labels>>) {
        out.clear();
        let Some(first) = batch.samples.first().map(|s| s.series) else {
            return;
        };
        if let Some((refs, labels)) = self.runs.get(&first) {
            if refs.len() == batch.samples.len()
                && refs.iter().zip(&batch.samples).all(|(r, s)| *r == s.series)
            {
                out.extend(labels.iter().cloned());
                return;
            }
        }
        {
            let table = self.wal.series();
            out.extend(batch.samples.iter().map(|s| table.get(&s.series).cloned()));
        }
        let live = self.wal.metrics.active_series.load(Relaxed).max(0) as usize;
        if self.run_series > 2 * live + 1024 {
            self.runs.clear();
            self.run_series = 0;
        }
        let refs: Vec<u64> = batch.samples.iter().map(|s| s.series).collect();
        self.run_series += refs.len();
        if let Some((old, _)) = self.runs.insert(first, (refs, out.clone())) {
            self.run_series -= old.len();
        }
    }

    /// The next samples record, waiting for one to be written.
    pub async fn next(&mut self) -> ReadBatch {
        loop {
            let head = *self.head_rx.borrow_and_update();
            if let Some(b) = self.read(head) {
                return b;
            }
            if self.head_rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// The next samples record already written, if any.
    pub fn try_next(&mut self) -> Option<ReadBatch> {
        let head = self.wal.head();
        self.read(head)
    }

    fn read(&mut self, head: Pos) -> Option<ReadBatch> {
        loop {
            if self.pos >= head {
                return None;
            }
            let sealed = self.pos.segment < head.segment;
            if self.file.is_none() {
                let path = segment_path(self.wal.dir(), self.pos.segment);
                match SegmentReader::open(&path, self.pos.offset) {
                    Ok(f) => self.file = Some(f),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        self.jump_over_removed(head);
                        continue;
                    }
                    Err(e) => {
                        tracing::error!(segment = %path.display(), error = %e, "cannot read WAL segment; skipping it");
                        self.next_segment();
                        continue;
                    }
                }
            }
            let limit = if sealed { u64::MAX } else { head.offset };
            let f = self.file.as_mut()?;
            let next = match f.next(limit) {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(segment = self.pos.segment, error = %e, "WAL read failed; skipping the rest of the segment");
                    self.next_segment();
                    continue;
                }
            };
            match next {
                Next::Record {
                    kind,
                    payload,
                    start,
                    end,
                } => {
                    let start = Pos {
                        segment: self.pos.segment,
                        offset: start,
                    };
                    self.pos.offset = end;
                    if kind & 0x7f != KIND_SAMPLES {
                        continue;
                    }
                    match record::decode(kind & 0x7f, &payload) {
                        Ok(Record::Samples(samples)) => {
                            return Some(ReadBatch {
                                start,
                                end: self.pos,
                                samples,
                            });
                        }
                        Ok(Record::Series(_)) => continue,
                        Err(e) => {
                            self.damaged(start, &format!("{e:?}"));
                            continue;
                        }
                    }
                }
                Next::End if sealed => self.next_segment(),
                Next::End => return None,
                Next::Bad {
                    at,
                    why,
                    incomplete,
                } => {
                    if sealed || !incomplete {
                        self.damaged(
                            Pos {
                                segment: self.pos.segment,
                                offset: at,
                            },
                            &why,
                        );
                    } else {
                        return None;
                    }
                }
            }
        }
    }

    fn damaged(&mut self, at: Pos, why: &str) {
        self.wal.metrics.corruptions.fetch_add(1, Relaxed);
        tracing::warn!(
            segment = at.segment,
            offset = at.offset,
            why,
            "damaged WAL record; the rest of the segment is skipped"
        );
        self.next_segment();
    }

    fn next_segment(&mut self) {
        self.file = None;
        self.pos = Pos {
            segment: self.pos.segment + 1,
            offset: 0,
        };
    }

    /// The segment at `pos` is gone: continue at the first one on disk.
    fn jump_over_removed(&mut self, head: Pos) {
        self.file = None;
        let first = self.wal.first_segment().min(head.segment);
        let to = first.max(self.pos.segment + 1);
        self.skipped += self.wal.removed_samples(self.pos.segment, to);
        self.pos = Pos {
            segment: to,
            offset: 0,
        };
    }
}
