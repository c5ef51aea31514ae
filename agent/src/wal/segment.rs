//! Files of the write-ahead log directory: segment and checkpoint names, listing, and a
//! sequential reader of the records of one segment.
//!
//! Layout of a WAL directory: `lock` (held with `flock` by the one agent using it), segments
//! `00000000`, `00000001`, ... (records appended, never rewritten except to cut a damaged
//! tail at replay), `checkpoint.NNNNNNNN` (the series still alive when segments up to NNNNNNNN
//! were removed), and `endpoints/` (one read position per remote_write endpoint).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::record::{read_frame, RecordError};

/// A place in the log: a segment and a byte offset in it. Ordered as the log is.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Pos {
    pub segment: u32,
    pub offset: u64,
}

/// Bytes read from a segment at a time.
const CHUNK_BYTES: usize = 1 << 20;

pub fn segment_path(dir: &Path, n: u32) -> PathBuf {
    dir.join(format!("{n:08}"))
}

pub fn checkpoint_path(dir: &Path, n: u32) -> PathBuf {
    dir.join(format!("checkpoint.{n:08}"))
}

/// Segment numbers (ascending) and checkpoint numbers (ascending) found in `dir`. Other
/// files are ignored.
pub fn list(dir: &Path) -> io::Result<(Vec<u32>, Vec<u32>)> {
    let (mut segments, mut checkpoints) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.len() == 8 && name.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(n) = name.parse() {
                segments.push(n);
            }
        } else if let Some(n) = name.strip_prefix("checkpoint.") {
            if n.len() == 8 && n.bytes().all(|b| b.is_ascii_digit()) {
                if let Ok(n) = n.parse() {
                    checkpoints.push(n);
                }
            }
        }
    }
    segments.sort_unstable();
    checkpoints.sort_unstable();
    Ok((segments, checkpoints))
}

/// What [`SegmentReader::next`] found.
pub enum Next {
    /// A record: its kind, decompressed payload, and where it starts and ends.
    Record {
        kind: u8,
        payload: Vec<u8>,
        start: u64,
        end: u64,
    },
    /// No complete record before `limit` (yet).
    End,
    /// Bytes at `at` are not a record (damage or a torn write, per `incomplete`).
    Bad {
        at: u64,
        why: String,
        incomplete: bool,
    },
}

/// Reads the records of one segment file in order, from an offset, never past a limit.
pub struct SegmentReader {
    file: File,
    /// File offset of `buf[0]`.
    buf_start: u64,
    buf: Vec<u8>,
    /// Bytes of `buf` already returned as records.
    used: usize,
}

impl SegmentReader {
    pub fn open(path: &Path, offset: u64) -> io::Result<SegmentReader> {
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(offset))?;
        Ok(SegmentReader {
            file,
            buf_start: offset,
            buf: Vec::new(),
            used: 0,
        })
    }

    /// The offset just past the last record returned.
    pub fn offset(&self) -> u64 {
        self.buf_start + self.used as u64
    }

    /// The next record that ends at or before `limit` (`u64::MAX`: the end of the file).
    pub fn next(&mut self, limit: u64) -> io::Result<Next> {
        loop {
            match read_frame(&self.buf[self.used..]) {
                Ok((kind, payload, len)) => {
                    let start = self.offset();
                    if start + len as u64 > limit {
                        return Ok(Next::End);
                    }
                    self.used += len;
                    return Ok(Next::Record {
                        kind,
                        payload: payload.into_owned(),
                        start,
                        end: self.offset(),
                    });
                }
                Err(RecordError::Corrupt(why)) => {
                    return Ok(Next::Bad {
                        at: self.offset(),
                        why,
                        incomplete: false,
                    })
                }
                Err(RecordError::Incomplete) => {
                    if !self.fill(limit)? {
                        if self.used < self.buf.len() && limit == u64::MAX {
                            return Ok(Next::Bad {
                                at: self.offset(),
                                why: "record cut short".into(),
                                incomplete: true,
                            });
                        }
                        return Ok(Next::End);
                    }
                }
            }
        }
    }

    /// Reads more bytes (up to `limit`); false if there are none.
    fn fill(&mut self, limit: u64) -> io::Result<bool> {
        if self.used > 0 {
            self.buf.drain(..self.used);
            self.buf_start += self.used as u64;
            self.used = 0;
        }
        let file_at = self.buf_start + self.buf.len() as u64;
        if file_at >= limit {
            return Ok(false);
        }
        let want = (limit - file_at).min(CHUNK_BYTES as u64) as usize;
        let have = self.buf.len();
        self.buf.resize(have + want, 0);
        let n = loop {
            match self.file.read(&mut self.buf[have..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.buf.truncate(have);
                    return Err(e);
                }
            }
        };
        self.buf.truncate(have + n);
        Ok(n > 0)
    }
}
