//! How far each shard of an endpoint has sent, kept on disk next to the WAL
//! (`wal/endpoints/<hash of the endpoint name>.pos`), so a restart — graceful or `kill -9` —
//! resends only what the receiver may not have.
//!
//! The file is a header (magic, shard count) and one fixed-size slot per shard, each with
//! its own CRC. A shard rewrites its slot in place right after every accepted request, so at
//! most the one request in flight at a crash is sent again (identical samples, which
//! Prometheus accepts). A slot `(record, count)` says: every sample of this shard in records
//! before `record` was sent, and the first `count` of this shard in `record`. A damaged slot
//! falls back to the oldest good one, resending more rather than losing anything.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::wal::Pos;

const MAGIC: &[u8; 8] = b"RWPOS\x001\n";
const HEADER_BYTES: u64 = 12;
const SLOT_BYTES: u64 = 20;
/// More shards than any configuration allows: a file claiming more is damaged.
const MAX_SHARDS: u32 = 4096;

/// One shard's progress (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Slot {
    pub record: Pos,
    pub count: u32,
}

impl Slot {
    /// Whether `sample` (the `nth` of this shard in the record starting at `record`, 0-based)
    /// was already sent.
    pub fn covers(&self, record: Pos, nth: u32) -> bool {
        record < self.record || (record == self.record && nth < self.count)
    }
}

/// The path of an endpoint's file.
pub fn path(wal_dir: &Path, endpoint: &str) -> PathBuf {
    let h = xxhash_rust::xxh64::xxh64(endpoint.as_bytes(), 0);
    wal_dir.join("endpoints").join(format!("{h:016x}.pos"))
}

/// What an endpoint's file says.
#[derive(Debug, PartialEq, Eq)]
pub enum Saved {
    /// No file: a new endpoint (it starts with the data written from now on).
    None,
    /// A file that cannot be read (a crash of the machine, a disk error): the endpoint
    /// resends everything still in the log rather than lose any of it.
    Damaged,
    Slots(Vec<Slot>),
}

/// The slots saved for an endpoint.
pub fn load(path: &Path) -> Saved {
    let b = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Saved::None,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "unreadable remote_write position file; the endpoint resends what the WAL holds");
            return Saved::Damaged;
        }
    };
    match decode(&b) {
        Some(slots) => Saved::Slots(slots),
        None => {
            tracing::warn!(file = %path.display(), "damaged remote_write position file; the endpoint resends what the WAL holds");
            Saved::Damaged
        }
    }
}

fn decode(b: &[u8]) -> Option<Vec<Slot>> {
    if b.len() < HEADER_BYTES as usize || &b[..8] != MAGIC {
        return None;
    }
    let n = u32::from_le_bytes(b[8..12].try_into().ok()?);
    if n == 0 || n > MAX_SHARDS || b.len() as u64 != HEADER_BYTES + n as u64 * SLOT_BYTES {
        return None;
    }
    let slots: Vec<Option<Slot>> = b[HEADER_BYTES as usize..]
        .chunks_exact(SLOT_BYTES as usize)
        .map(decode_slot)
        .collect();
    // A damaged slot resends from the oldest good one.
    let floor = slots.iter().flatten().map(|s| s.record).min()?;
    Some(
        slots
            .into_iter()
            .map(|s| {
                s.unwrap_or(Slot {
                    record: floor,
                    count: 0,
                })
            })
            .collect(),
    )
}

fn encode_slot(s: Slot) -> [u8; SLOT_BYTES as usize] {
    let mut b = [0u8; SLOT_BYTES as usize];
    b[0..4].copy_from_slice(&s.record.segment.to_le_bytes());
    b[4..12].copy_from_slice(&s.record.offset.to_le_bytes());
    b[12..16].copy_from_slice(&s.count.to_le_bytes());
    let crc = crc32fast::hash(&b[..16]);
    b[16..20].copy_from_slice(&crc.to_le_bytes());
    b
}

fn decode_slot(b: &[u8]) -> Option<Slot> {
    let crc = u32::from_le_bytes(b[16..20].try_into().ok()?);
    if crc32fast::hash(&b[..16]) != crc {
        return None;
    }
    Some(Slot {
        record: Pos {
            segment: u32::from_le_bytes(b[0..4].try_into().ok()?),
            offset: u64::from_le_bytes(b[4..12].try_into().ok()?),
        },
        count: u32::from_le_bytes(b[12..16].try_into().ok()?),
    })
}

/// An endpoint's open file; shards write their own slot.
pub struct PositionFile {
    file: File,
    path: PathBuf,
}

impl PositionFile {
    /// Writes a whole new file (a temporary, renamed over the old) with `slots`.
    pub fn create(path: &Path, slots: &[Slot]) -> std::io::Result<PositionFile> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        let mut b = Vec::with_capacity((HEADER_BYTES + SLOT_BYTES * slots.len() as u64) as usize);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&(slots.len() as u32).to_le_bytes());
        for s in slots {
            b.extend_from_slice(&encode_slot(*s));
        }
        let tmp = path.with_extension("pos.tmp");
        std::fs::write(&tmp, &b)?;
        std::fs::rename(&tmp, path)?;
        let file = std::fs::OpenOptions::new().write(true).open(path)?;
        Ok(PositionFile {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Overwrites shard `i`'s slot in place (one `pwrite`; survives the process dying).
    pub fn write(&self, i: usize, slot: Slot) {
        let at = HEADER_BYTES + SLOT_BYTES * i as u64;
        if let Err(e) = self.file.write_all_at(&encode_slot(slot), at) {
            tracing::warn!(file = %self.path.display(), error = %e, "cannot save remote_write position");
        }
    }

    /// Flushes the slots to stable storage.
    pub fn sync(&self) {
        let _ = self.file.sync_data();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(segment: u32, offset: u64, count: u32) -> Slot {
        Slot {
            record: Pos { segment, offset },
            count,
        }
    }

    #[test]
    fn slots_round_trip_and_a_damaged_slot_falls_back_to_the_oldest_good_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), "https://a/api/v1/write");
        assert_eq!(load(&p), Saved::None);
        let f = PositionFile::create(&p, &[slot(0, 0, 0); 3]).unwrap();
        f.write(0, slot(2, 100, 7));
        f.write(1, slot(1, 50, 1));
        f.write(2, slot(3, 10, 2));
        assert_eq!(
            load(&p),
            Saved::Slots(vec![slot(2, 100, 7), slot(1, 50, 1), slot(3, 10, 2)])
        );
        let mut b = std::fs::read(&p).unwrap();
        b[(HEADER_BYTES + SLOT_BYTES * 2 + 3) as usize] ^= 1;
        std::fs::write(&p, &b).unwrap();
        assert_eq!(
            load(&p),
            Saved::Slots(vec![slot(2, 100, 7), slot(1, 50, 1), slot(1, 50, 0)])
        );
        std::fs::write(&p, b"garbage").unwrap();
        assert_eq!(load(&p), Saved::Damaged);
    }

    #[test]
    fn a_slot_covers_earlier_records_and_the_first_count_samples_of_its_own() {
        let s = slot(2, 100, 2);
        assert!(s.covers(
            Pos {
                segment: 1,
                offset: 900
            },
            50
        ));
        assert!(s.covers(
            Pos {
                segment: 2,
                offset: 100
            },
            1
        ));
        assert!(!s.covers(
            Pos {
                segment: 2,
                offset: 100
            },
            2
        ));
        assert!(!s.covers(
            Pos {
                segment: 2,
                offset: 101
            },
            0
        ));
    }
}
