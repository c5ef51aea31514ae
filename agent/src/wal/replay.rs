//! Rebuilding a log's state when it is opened, and writing the checkpoints truncation
//! leaves behind.
//!
//! Replay reads the newest checkpoint (the series alive at the last truncation), then every
//! segment after it in order. A record that is damaged or cut short (a torn last write, a
//! disk error) ends its segment: the file is cut there, so readers and later replays see a
//! clean end, the corruption is counted and logged with the file and offset, and replay
//! goes on with the next segment. Nothing in a bad file stops the agent from starting.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::time::SystemTime;

use super::record::{self, Record};
use super::segment::{self, checkpoint_path, segment_path, Next, SegmentReader};
use super::{SealedSegment, WalMetrics};
use crate::scrape::Labels;

/// Series per record in a checkpoint.
const CHECKPOINT_SERIES_PER_RECORD: usize = 10_000;

/// What replay found.
pub(super) struct Replayed {
    /// Reference, labels, newest segment with a sample of it.
    pub series: Vec<(u64, Labels, u32)>,
    pub highest_timestamp_ms: i64,
    pub next_segment: u32,
    pub next_ref: u64,
    pub sealed: BTreeMap<u32, SealedSegment>,
}

pub(super) fn replay(dir: &Path, metrics: &WalMetrics) -> Result<Replayed, String> {
    let (segments, checkpoints) = segment::list(dir)
        .map_err(|e| format!("cannot list WAL directory {}: {e}", dir.display()))?;
    let mut series: BTreeMap<u64, (Labels, u32)> = BTreeMap::new();
    let mut highest = i64::MIN;
    let mut next_segment = 0;
    let checkpoint = checkpoints.last().copied();
    if let Some(c) = checkpoint {
        next_segment = c + 1;
        read_file(&checkpoint_path(dir, c), metrics, false, |rec| {
            if let Record::Series(s) = rec {
                for (r, l) in s {
                    series.insert(r, (l, c));
                }
            }
        });
        // A truncation that stopped between writing the checkpoint and removing segments.
        for &s in segments.iter().filter(|&&s| s <= c) {
            let _ = std::fs::remove_file(segment_path(dir, s));
        }
        remove_checkpoints_before(dir, c);
    }
    let mut sealed = BTreeMap::new();
    for &s in segments
        .iter()
        .filter(|&&s| checkpoint.is_none_or(|c| s > c))
    {
        let path = segment_path(dir, s);
        let mut samples = 0u64;
        let bytes = read_file(&path, metrics, true, |rec| match rec {
            Record::Series(list) => {
                for (r, l) in list {
                    series.insert(r, (l, s));
                }
            }
            Record::Samples(list) => {
                samples += list.len() as u64;
                for x in list {
                    highest = highest.max(x.timestamp_ms);
                    if let Some(e) = series.get_mut(&x.series) {
                        e.1 = s;
                    }
                }
            }
        });
        let last_write = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .unwrap_or_else(|_| SystemTime::now());
        sealed.insert(
            s,
            SealedSegment {
                bytes,
                samples,
                last_write,
            },
        );
        next_segment = s + 1;
    }
    let next_ref = series.keys().next_back().map_or(0, |r| r + 1);
    Ok(Replayed {
        series: series.into_iter().map(|(r, (l, s))| (r, l, s)).collect(),
        highest_timestamp_ms: if highest == i64::MIN { 0 } else { highest },
        next_segment,
        next_ref,
        sealed,
    })
}

/// Calls `each` with every good record of a file and returns the bytes kept. At the first bad
/// record the corruption is counted and, if `cut`, the file is cut there.
fn read_file(path: &Path, metrics: &WalMetrics, cut: bool, mut each: impl FnMut(Record)) -> u64 {
    let mut r = match SegmentReader::open(path, 0) {
        Ok(r) => r,
        Err(e) => {
            metrics.corruptions.fetch_add(1, Relaxed);
            tracing::error!(file = %path.display(), error = %e, "cannot read WAL file; skipping it");
            return 0;
        }
    };
    loop {
        let bad = match r.next(u64::MAX) {
            Ok(Next::Record {
                kind,
                payload,
                start,
                ..
            }) => match record::decode(kind & 0x7f, &payload) {
                Ok(rec) => {
                    metrics.replayed_records.fetch_add(1, Relaxed);
                    each(rec);
                    continue;
                }
                Err(e) => Some((start, format!("{e:?}"))),
            },
            Ok(Next::End) => None,
            Ok(Next::Bad { at, why, .. }) => Some((at, why)),
            Err(e) => Some((r.offset(), e.to_string())),
        };
        let kept = r.offset();
        if let Some((at, why)) = bad {
            metrics.corruptions.fetch_add(1, Relaxed);
            let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            tracing::warn!(file = %path.display(), offset = at, bytes_dropped = size.saturating_sub(at), why, "damaged or torn WAL record; replayed up to it");
            if cut {
                if let Err(e) = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .and_then(|f| f.set_len(at))
                {
                    tracing::error!(file = %path.display(), error = %e, "cannot cut the damaged WAL segment");
                }
            }
            return at;
        }
        return kept;
    }
}

/// Writes `checkpoint.upto` with `live` series: a temporary file, synced, then renamed.
pub(super) fn write_checkpoint(
    dir: &Path,
    upto: u32,
    live: &[(u64, Labels)],
) -> std::io::Result<()> {
    let path = checkpoint_path(dir, upto);
    let tmp = path.with_extension(format!("{upto:08}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    let (mut buf, mut scratch) = (Vec::new(), Vec::new());
    for chunk in live.chunks(CHECKPOINT_SERIES_PER_RECORD) {
        buf.clear();
        record::encode_series(&mut buf, chunk, &mut scratch);
        f.write_all(&buf)?;
    }
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, &path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Removes checkpoints older than `upto` and leftover temporary files.
pub(super) fn remove_checkpoints_before(dir: &Path, upto: u32) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix("checkpoint.") else {
            continue;
        };
        let old = rest.ends_with(".tmp") || rest.parse::<u32>().is_ok_and(|n| n < upto);
        if old {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
