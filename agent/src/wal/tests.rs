//! The log's promises: what was appended is read back in order, across reopen; torn and
//! damaged records end their segment and are counted, never stop the open; truncation
//! respects the endpoints' positions and the bounds.

use std::time::Duration;

use super::*;
use crate::scrape::{Labels, Sample};

fn sample(series: usize, t: i64) -> Sample {
    Sample {
        labels: Labels::from_pairs([("__name__", "m".to_string()), ("i", series.to_string())]),
        timestamp_ms: t,
        value: t as f64 * 0.5 + series as f64,
    }
}

fn scrape(t: i64, series: usize) -> Vec<Sample> {
    (0..series).map(|i| sample(i, t)).collect()
}

fn small(segment_bytes: u64) -> WalOptions {
    WalOptions {
        segment_bytes,
        ..WalOptions::default()
    }
}

/// Every sample the reader returns from `from`, as (labels, t, v).
fn read_all(wal: &Arc<Wal>, from: Pos) -> Vec<(Labels, i64, f64)> {
    let mut r = wal.reader(from);
    let mut out = Vec::new();
    while let Some(b) = r.try_next() {
        let table = wal.series();
        for s in b.samples {
            out.push((table[&s.series].clone(), s.timestamp_ms, s.value));
        }
    }
    out
}

fn expected(scrapes: std::ops::Range<i64>, series: usize) -> Vec<(Labels, i64, f64)> {
    scrapes
        .flat_map(|t| scrape(t, series))
        .map(|s| (s.labels, s.timestamp_ms, s.value))
        .collect()
}

#[test]
fn appended_samples_are_read_back_in_order_across_segments_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let wal = Wal::open(dir.path(), small(4096)).unwrap();
        for t in 0..200 {
            wal.append(&scrape(t, 20));
        }
        assert!(wal.head().segment > 3, "the test needs several segments");
        assert_eq!(read_all(&wal, Pos::default()), expected(0..200, 20));
        wal.close();
    }
    let wal = Wal::open(dir.path(), small(4096)).unwrap();
    let m = wal.metrics();
    assert_eq!(m.corruptions.load(Relaxed), 0);
    assert!(m.replayed_records.load(Relaxed) >= 200);
    assert_eq!(m.active_series.load(Relaxed), 20);
    assert_eq!(m.highest_timestamp_ms.load(Relaxed), 199);
    // Known series keep their references; new appends go after the replayed data.
    wal.append(&scrape(200, 21));
    assert_eq!(m.series_created.load(Relaxed), 1);
    let all = read_all(&wal, Pos::default());
    assert_eq!(&all[..4000], &expected(0..200, 20)[..]);
    assert_eq!(all[4000..].to_vec(), expected(200..201, 21));
}

#[test]
fn a_torn_last_record_is_cut_counted_and_the_log_opens() {
    let dir = tempfile::tempdir().unwrap();
    let last = {
        let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
        for t in 0..10 {
            wal.append(&scrape(t, 5));
        }
        wal.close();
        wal.head().segment
    };
    let path = segment::segment_path(dir.path(), last);
    let len = std::fs::metadata(&path).unwrap().len();
    // The last write was cut short by a crash.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(wal.metrics().corruptions.load(Relaxed), 1);
    assert_eq!(read_all(&wal, Pos::default()), expected(0..9, 5));
    assert!(
        std::fs::metadata(&path).unwrap().len() < len - 7,
        "the torn record is cut off"
    );
    wal.append(&scrape(10, 5));
    assert_eq!(read_all(&wal, Pos::default()).len(), 50);
}

#[test]
fn a_damaged_record_ends_its_segment_and_later_segments_replay() {
    let dir = tempfile::tempdir().unwrap();
    {
        let wal = Wal::open(dir.path(), small(1024)).unwrap();
        for t in 0..60 {
            wal.append(&scrape(t, 10));
        }
        wal.close();
    }
    let (segments, _) = segment::list(dir.path()).unwrap();
    assert!(segments.len() >= 4);
    let victim = segment::segment_path(dir.path(), segments[1]);
    let mut bytes = std::fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    std::fs::write(&victim, &bytes).unwrap();
    let wal = Wal::open(dir.path(), small(1024)).unwrap();
    assert_eq!(wal.metrics().corruptions.load(Relaxed), 1);
    let all = read_all(&wal, Pos::default());
    let want = expected(0..60, 10);
    // Everything but the damaged record and the rest of its segment.
    assert!(
        all.len() < want.len() && all.len() > want.len() / 2,
        "{} of {}",
        all.len(),
        want.len()
    );
    let lost = want.len() - all.len();
    assert!(all.iter().all(|x| want.contains(x)));
    assert_eq!(
        all.last(),
        want.last(),
        "segments after the damaged one are read"
    );
    assert!(lost.is_multiple_of(10), "whole records are lost, {lost}");
}

#[test]
fn truncation_keeps_what_an_endpoint_has_not_sent_and_checkpoints_live_series() {
    let dir = tempfile::tempdir().unwrap();
    let opts = WalOptions {
        min_keepalive_time: Duration::ZERO,
        ..small(2048)
    };
    let wal = Wal::open(dir.path(), opts.clone()).unwrap();
    let sub = wal.subscribe(Pos::default());
    for t in 0..100 {
        wal.append(&scrape(t, 10));
    }
    assert_eq!(wal.truncate(), 0, "nothing is sent yet");
    // The endpoint has sent half.
    let mut r = wal.reader(Pos::default());
    let mut n = 0;
    while n < 500 {
        n += r.try_next().unwrap().samples.len();
    }
    *sub.acked.lock().unwrap() = r.position();
    let removed = wal.truncate();
    assert!(removed > 0);
    assert!(wal.first_segment() <= r.position().segment);
    assert_eq!(wal.metrics().checkpoints.load(Relaxed), 1);
    let rest = read_all(&wal, r.position());
    assert_eq!(rest, expected(50..100, 10));
    // A reader left behind skips the removed segments and counts what it missed.
    let mut behind = wal.reader(Pos::default());
    let mut got = 0;
    while let Some(b) = behind.try_next() {
        got += b.samples.len() as u64;
    }
    assert_eq!(got + behind.skipped(), 1000);
    drop((wal, r, behind, sub));
    // The checkpoint keeps the live series' references across reopen.
    let wal = Wal::open(dir.path(), opts).unwrap();
    assert_eq!(wal.metrics().active_series.load(Relaxed), 10);
    wal.append(&scrape(100, 10));
    assert_eq!(wal.metrics().series_created.load(Relaxed), 0);
}

#[test]
fn the_size_bound_removes_the_oldest_segments_even_unsent() {
    let dir = tempfile::tempdir().unwrap();
    let opts = WalOptions {
        max_size_bytes: 8192,
        ..small(2048)
    };
    let wal = Wal::open(dir.path(), opts).unwrap();
    let _sub = wal.subscribe(Pos::default());
    for t in 0..200 {
        wal.append(&scrape(t, 10));
    }
    assert!(wal.metrics().size_bytes.load(Relaxed) > 8192);
    assert!(wal.truncate() > 0);
    assert!(wal.metrics().size_bytes.load(Relaxed) <= 8192);
    let mut r = wal.reader(Pos::default());
    let mut got = 0;
    while let Some(b) = r.try_next() {
        got += b.samples.len() as u64;
    }
    assert!(r.skipped() > 0);
    assert_eq!(
        got + r.skipped(),
        2000,
        "every sample is either read or counted as dropped"
    );
}

#[tokio::test]
async fn a_reader_at_the_head_wakes_for_new_records() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), small(1024)).unwrap();
    let mut r = wal.reader(wal.head());
    let w = wal.clone();
    let writer = tokio::spawn(async move {
        for t in 0..50 {
            tokio::time::sleep(Duration::from_millis(2)).await;
            w.append(&scrape(t, 3));
        }
    });
    let mut seen = Vec::new();
    while seen.len() < 150 {
        let b = tokio::time::timeout(Duration::from_secs(10), r.next())
            .await
            .expect("reader woke");
        seen.extend(b.samples.iter().map(|s| s.timestamp_ms));
    }
    writer.await.unwrap();
    let want: Vec<i64> = (0..50).flat_map(|t| [t; 3]).collect();
    assert_eq!(seen, want);
}

#[test]
fn a_second_agent_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    let err = Wal::open(dir.path(), WalOptions::default()).err().unwrap();
    assert!(err.contains("in use by another agent"), "{err}");
}

#[test]
fn a_scrape_loop_reusing_its_label_sets_keeps_its_references_through_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let opts = WalOptions {
        min_keepalive_time: Duration::ZERO,
        ..small(1024)
    };
    let wal = Wal::open(dir.path(), opts.clone()).unwrap();
    let sub = wal.subscribe(Pos::default());
    // One scrape loop: the same label allocations every scrape (the fast path), then a
    // series appears in the middle and one goes (the slow path, and a new run).
    let labels: Vec<Labels> = scrape(0, 10).into_iter().map(|s| s.labels).collect();
    let at = |t: i64, ls: &[Labels]| -> Vec<Sample> {
        ls.iter()
            .map(|l| Sample {
                labels: l.clone(),
                timestamp_ms: t,
                value: t as f64,
            })
            .collect()
    };
    for t in 0..100 {
        wal.append(&at(t, &labels));
    }
    let mut changed = labels.clone();
    changed.insert(5, sample(99, 0).labels);
    changed.pop();
    for t in 100..200 {
        wal.append(&at(t, &changed));
    }
    assert_eq!(wal.metrics().series_created.load(Relaxed), 11);
    let all = read_all(&wal, Pos::default());
    assert_eq!(all.len(), 2000);
    assert!(all[..1000]
        .iter()
        .zip(at(0, &labels).iter().cycle())
        .all(|(a, s)| a.0 == s.labels));
    assert!(all[1000..]
        .iter()
        .zip(at(0, &changed).iter().cycle())
        .all(|(a, s)| a.0 == s.labels));
    // Everything sent; truncation removes all but the newest segment (the one being written).
    // The series still scraped (known only through the run) must survive into the checkpoint.
    *sub.acked.lock().unwrap() = wal.head();
    assert!(wal.truncate() > 0);
    let (segments, checkpoints) = segment::list(dir.path()).unwrap();
    assert_eq!(checkpoints.len(), 1);
    assert!(segments.len() <= 2, "{segments:?}");
    drop((wal, sub));
    let wal = Wal::open(dir.path(), opts).unwrap();
    assert_eq!(
        wal.metrics().active_series.load(Relaxed),
        10,
        "the 10 live series, not the dropped one"
    );
    wal.append(&at(200, &changed));
    assert_eq!(
        wal.metrics().series_created.load(Relaxed),
        0,
        "references survived"
    );
}

#[test]
fn the_reader_gives_each_sample_its_labels_for_repeated_and_changed_records() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    let labels: Vec<Labels> = scrape(0, 5).into_iter().map(|s| s.labels).collect();
    let at = |t: i64, ls: &[Labels]| -> Vec<Sample> {
        ls.iter()
            .map(|l| Sample {
                labels: l.clone(),
                timestamp_ms: t,
                value: 0.0,
            })
            .collect()
    };
    let mut shorter = labels.clone();
    shorter.truncate(3);
    let mut reordered = labels.clone();
    reordered.swap(1, 2);
    let appended = [
        at(0, &labels),
        at(1, &labels),
        at(2, &shorter),
        at(3, &reordered),
        at(4, &labels),
    ];
    for a in &appended {
        wal.append(a);
    }
    let mut r = wal.reader(Pos::default());
    let mut out = Vec::new();
    for a in &appended {
        let b = r.try_next().unwrap();
        r.labels(&b, &mut out);
        let got: Vec<Labels> = out.iter().map(|l| l.clone().unwrap()).collect();
        let want: Vec<Labels> = a.iter().map(|s| s.labels.clone()).collect();
        assert_eq!(got, want);
    }
    assert!(r.try_next().is_none());
}
