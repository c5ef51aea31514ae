//! The wire format: versioned, compact, bounded.
//!
//! Every message starts with an envelope: magic `CK`, format version, kind, cluster name and the
//! sender's name and advertised address. Integers are LEB128 varints, strings are a varint
//! length (at most [`STR_BYTES_MAX`]) and UTF-8 bytes, lists are a varint count bounded by what
//! the remaining bytes could hold. Decoding never panics and never allocates more than the input
//! justifies; anything malformed is a [`WireError`].
//!
//! This module owns bytes <-> values only. It does not decide what a message means.

use std::fmt;

use crate::state::NodeState;

/// First bytes of every message.
pub const MAGIC: [u8; 2] = *b"CK";
/// Format version written by this build; others are refused with [`WireError::Version`].
pub const VERSION: u8 = 1;
/// Longest name, address or cluster name (bytes).
pub const STR_BYTES_MAX: usize = 255;
/// HTTP content type of every body.
pub const CONTENT_TYPE: &str = "application/x.ckit";

/// What a message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Packet = 1,
    PushPullRequest = 2,
    PushPullResponse = 3,
    Rejected = 4,
}

/// Who sent a message and for which cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub kind: Kind,
    pub cluster: String,
    pub sender_name: String,
    pub sender_addr: String,
}

/// The request part of a packet; gossip updates ride along with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Primary {
    /// Are you alive? `target` is the name the sender believes it is probing; `digest`
    /// summarises the sender's view of the live members and their states, so the receiver can
    /// tell that their views differ and exchange full state.
    Ping {
        seq: u32,
        target: String,
        digest: u32,
    },
    /// Please probe `target` at `addr` for me and answer with my `seq`.
    IndirectPing {
        seq: u32,
        target: String,
        addr: String,
    },
    Ack {
        seq: u32,
    },
    /// An indirect prober could not reach the target (Lifeguard).
    Nack {
        seq: u32,
    },
}

/// Membership member status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    Alive = 0,
    Suspect = 1,
    Dead = 2,
    Left = 3,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Alive => "alive",
            Status::Suspect => "suspect",
            Status::Dead => "dead",
            Status::Left => "left",
        }
    }

    fn from_wire(b: u8) -> Option<Status> {
        Some(match b {
            0 => Status::Alive,
            1 => Status::Suspect,
            2 => Status::Dead,
            3 => Status::Left,
            _ => return None,
        })
    }
}

/// A gossiped change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    Alive {
        name: String,
        addr: String,
        incarnation: u64,
    },
    /// `from` suspects `name` at `incarnation`. `refused`: the accuser's own evidence is that
    /// nothing listens at the member's address (its connection was refused), which a live
    /// member cannot cause; without it the evidence is a probe that went unanswered.
    Suspect {
        name: String,
        incarnation: u64,
        from: String,
        refused: bool,
    },
    /// `from` declared `name` dead at `incarnation`; `refused` as for [`Update::Suspect`].
    Dead {
        name: String,
        incarnation: u64,
        from: String,
        refused: bool,
    },
    Left {
        name: String,
        incarnation: u64,
    },
    /// ckit node state with its Lamport time.
    State {
        name: String,
        state: NodeState,
        lamport: u64,
    },
}

impl Update {
    /// The member this update is about.
    pub fn subject(&self) -> &str {
        match self {
            Update::Alive { name, .. }
            | Update::Suspect { name, .. }
            | Update::Dead { name, .. }
            | Update::Left { name, .. }
            | Update::State { name, .. } => name,
        }
    }
}

/// One member in a full-state exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    pub name: String,
    pub addr: String,
    pub incarnation: u64,
    pub status: Status,
    /// Node state and its Lamport time; `None` if never heard.
    pub state: Option<(NodeState, u64)>,
}

/// Why a push/pull was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The joining node's name is held by a live member at another address.
    NameConflict { name: String, holder_addr: String },
    /// The joining node belongs to another cluster.
    ClusterMismatch { ours: String, theirs: String },
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::NameConflict { name, holder_addr } => write!(
                f,
                "node name {name:?} is already used by a live member at {holder_addr}; \
                 choose another --cluster.node-name or wait until that node has left"
            ),
            Rejection::ClusterMismatch { ours, theirs } => write!(
                f,
                "peer belongs to cluster {ours:?} but this node is in cluster {theirs:?} \
                 (--cluster.name)"
            ),
        }
    }
}

/// An [`Update`] still in the bytes it was decoded from: a receiver can tell that it is old
/// news without allocating (most gossiped updates are, in a large cluster).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateRef<'a> {
    Alive {
        name: &'a str,
        addr: &'a str,
        incarnation: u64,
    },
    Suspect {
        name: &'a str,
        incarnation: u64,
        from: &'a str,
        refused: bool,
    },
    Dead {
        name: &'a str,
        incarnation: u64,
        from: &'a str,
        refused: bool,
    },
    Left {
        name: &'a str,
        incarnation: u64,
    },
    State {
        name: &'a str,
        state: NodeState,
        lamport: u64,
    },
}

impl UpdateRef<'_> {
    pub fn to_owned(&self) -> Update {
        match *self {
            UpdateRef::Alive {
                name,
                addr,
                incarnation,
            } => Update::Alive {
                name: name.into(),
                addr: addr.into(),
                incarnation,
            },
            UpdateRef::Suspect {
                name,
                incarnation,
                from,
                refused,
            } => Update::Suspect {
                name: name.into(),
                incarnation,
                from: from.into(),
                refused,
            },
            UpdateRef::Dead {
                name,
                incarnation,
                from,
                refused,
            } => Update::Dead {
                name: name.into(),
                incarnation,
                from: from.into(),
                refused,
            },
            UpdateRef::Left { name, incarnation } => Update::Left {
                name: name.into(),
                incarnation,
            },
            UpdateRef::State {
                name,
                state,
                lamport,
            } => Update::State {
                name: name.into(),
                state,
                lamport,
            },
        }
    }

    /// Short name used in metrics (`cluster_node_gossip_received_events_total{event}`).
    pub fn event_name(&self) -> &'static str {
        match self {
            UpdateRef::Alive { .. } => "alive",
            UpdateRef::Suspect { .. } => "suspect",
            UpdateRef::Dead { .. } => "dead",
            UpdateRef::Left { .. } => "left",
            UpdateRef::State { .. } => "node_state",
        }
    }
}

/// A decoded message.
pub type Body = BodyOf<Update, MemberRecord>;

/// A decoded message whose packet updates are `U` and full-state members `M` ([`Update`] and
/// [`MemberRecord`], or [`UpdateRef`] and [`MemberRecordRef`] borrowing the bytes: see
/// [`decode_ref`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyOf<U, M> {
    Packet {
        primary: Option<Primary>,
        updates: Vec<U>,
    },
    PushPull {
        join: bool,
        members: Vec<M>,
    },
    Rejected(Rejection),
}

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    TooLarge { len: usize, max: usize },
    Truncated { what: &'static str },
    BadMagic,
    Version { got: u8 },
    BadTag { what: &'static str, tag: u8 },
    BadString { what: &'static str },
    BadVarint,
    TrailingBytes { count: usize },
    UnexpectedKind { expected: &'static str, got: Kind },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::TooLarge { len, max } => {
                write!(f, "message of {len} bytes exceeds the limit of {max} bytes")
            }
            WireError::Truncated { what } => write!(f, "message truncated while reading {what}"),
            WireError::BadMagic => write!(f, "not a cluster message (bad magic bytes)"),
            WireError::Version { got } => write!(
                f,
                "unsupported wire format version {got} (this node speaks version {VERSION})"
            ),
            WireError::BadTag { what, tag } => write!(f, "unknown {what} tag {tag}"),
            WireError::BadString { what } => {
                write!(
                    f,
                    "{what} is not valid UTF-8 or longer than {STR_BYTES_MAX} bytes"
                )
            }
            WireError::BadVarint => write!(f, "malformed varint"),
            WireError::TrailingBytes { count } => {
                write!(f, "{count} unexpected bytes after the message")
            }
            WireError::UnexpectedKind { expected, got } => {
                write!(f, "expected a {expected} message, got {got:?}")
            }
        }
    }
}

impl std::error::Error for WireError {}

// ---------------------------------------------------------------------------------------------
// Encoding

/// Appends wire values to a buffer.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new(env: &Envelope) -> Self {
        let mut w = Writer {
            buf: Vec::with_capacity(128),
        };
        w.buf.extend_from_slice(&MAGIC);
        w.buf.push(VERSION);
        w.buf.push(env.kind as u8);
        w.str(&env.cluster);
        w.str(&env.sender_name);
        w.str(&env.sender_addr);
        w
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn varint(&mut self, mut v: u64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.buf.push(byte);
                return;
            }
            self.buf.push(byte | 0x80);
        }
    }

    /// Strings longer than [`STR_BYTES_MAX`] are a bug in the caller: names and addresses are
    /// validated where they enter the node.
    pub fn str(&mut self, s: &str) {
        debug_assert!(
            s.len() <= STR_BYTES_MAX,
            "string too long for the wire: {s:?}"
        );
        let bytes = &s.as_bytes()[..s.len().min(STR_BYTES_MAX)];
        self.varint(bytes.len() as u64);
        self.buf.extend_from_slice(bytes);
    }

    pub fn primary(&mut self, p: Option<&Primary>) {
        match p {
            None => self.u8(0),
            Some(Primary::Ping {
                seq,
                target,
                digest,
            }) => {
                self.u8(1);
                self.varint(*seq as u64);
                self.str(target);
                self.buf.extend_from_slice(&digest.to_le_bytes());
            }
            Some(Primary::IndirectPing { seq, target, addr }) => {
                self.u8(2);
                self.varint(*seq as u64);
                self.str(target);
                self.str(addr);
            }
            Some(Primary::Ack { seq }) => {
                self.u8(3);
                self.varint(*seq as u64);
            }
            Some(Primary::Nack { seq }) => {
                self.u8(4);
                self.varint(*seq as u64);
            }
        }
    }

    /// Append one already-encoded update (see [`encode_update`]).
    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
}

/// Encode one update on its own, so the broadcast queue can size and reuse it.
pub fn encode_update(u: &Update) -> Vec<u8> {
    let mut w = Writer { buf: Vec::new() };
    match u {
        Update::Alive {
            name,
            addr,
            incarnation,
        } => {
            w.u8(1);
            w.str(name);
            w.str(addr);
            w.varint(*incarnation);
        }
        Update::Suspect {
            name,
            incarnation,
            from,
            refused,
        } => {
            // Tags 6 and 7 carry the refused-connection evidence; the layout is the same, so
            // the plain tags stay byte-identical to what earlier builds send.
            w.u8(if *refused { 6 } else { 2 });
            w.str(name);
            w.varint(*incarnation);
            w.str(from);
        }
        Update::Dead {
            name,
            incarnation,
            from,
            refused,
        } => {
            w.u8(if *refused { 7 } else { 3 });
            w.str(name);
            w.varint(*incarnation);
            w.str(from);
        }
        Update::Left { name, incarnation } => {
            w.u8(4);
            w.str(name);
            w.varint(*incarnation);
        }
        Update::State {
            name,
            state,
            lamport,
        } => {
            w.u8(5);
            w.str(name);
            w.u8(state.to_wire());
            w.varint(*lamport);
        }
    }
    w.buf
}

/// Encode a packet: envelope, primary, then the pre-encoded updates.
pub fn encode_packet(env: &Envelope, primary: Option<&Primary>, updates: &[&[u8]]) -> Vec<u8> {
    let mut w = Writer::new(env);
    w.primary(primary);
    w.varint(updates.len() as u64);
    for u in updates {
        w.raw(u);
    }
    w.finish()
}

/// Encode a full-state exchange.
pub fn encode_push_pull(env: &Envelope, join: bool, members: &[MemberRecord]) -> Vec<u8> {
    let body = encode_member_records(members.iter().map(|m| MemberRecordRef {
        name: &m.name,
        addr: &m.addr,
        incarnation: m.incarnation,
        status: m.status,
        state: m.state,
    }));
    encode_push_pull_body(env, join, &body)
}

/// One member of a full-state exchange, borrowed from a member table or from received bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberRecordRef<'a> {
    pub name: &'a str,
    pub addr: &'a str,
    pub incarnation: u64,
    pub status: Status,
    pub state: Option<(NodeState, u64)>,
}

impl MemberRecordRef<'_> {
    pub fn to_owned(&self) -> MemberRecord {
        MemberRecord {
            name: self.name.into(),
            addr: self.addr.into(),
            incarnation: self.incarnation,
            status: self.status,
            state: self.state,
        }
    }
}

/// The member list of a full-state exchange (count, then records), to be framed by
/// [`encode_push_pull_body`]. A node whose table did not change can send the same body again.
pub fn encode_member_records<'a>(
    records: impl ExactSizeIterator<Item = MemberRecordRef<'a>>,
) -> Vec<u8> {
    let mut w = Writer {
        buf: Vec::with_capacity(16 + 48 * records.len()),
    };
    w.varint(records.len() as u64);
    for m in records {
        w.str(m.name);
        w.str(m.addr);
        w.varint(m.incarnation);
        w.u8(m.status as u8);
        match m.state {
            None => w.u8(0xff),
            Some((s, t)) => {
                w.u8(s.to_wire());
                w.varint(t);
            }
        }
    }
    w.buf
}

/// Frame a member list from [`encode_member_records`] as a full-state exchange.
pub fn encode_push_pull_body(env: &Envelope, join: bool, body: &[u8]) -> Vec<u8> {
    let mut w = Writer::new(env);
    w.u8(join as u8);
    w.raw(body);
    w.finish()
}

/// Encode a refusal.
pub fn encode_rejected(env: &Envelope, r: &Rejection) -> Vec<u8> {
    let mut w = Writer::new(env);
    match r {
        Rejection::NameConflict { name, holder_addr } => {
            w.u8(1);
            w.str(name);
            w.str(holder_addr);
        }
        Rejection::ClusterMismatch { ours, theirs } => {
            w.u8(2);
            w.str(ours);
            w.str(theirs);
        }
    }
    w.finish()
}

// ---------------------------------------------------------------------------------------------
// Decoding

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or(WireError::Truncated { what })?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self, what: &'static str) -> Result<u64, WireError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8(what)?;
            let part = (b & 0x7f) as u64;
            if i == 9 && part > 1 {
                return Err(WireError::BadVarint);
            }
            v |= part << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(WireError::BadVarint)
    }

    fn u32_le(&mut self, what: &'static str) -> Result<u32, WireError> {
        let end = self.pos + 4;
        let bytes = self
            .buf
            .get(self.pos..end)
            .ok_or(WireError::Truncated { what })?;
        self.pos = end;
        Ok(u32::from_le_bytes(bytes.try_into().expect("four bytes")))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        u32::try_from(self.varint(what)?).map_err(|_| WireError::BadVarint)
    }

    fn str(&mut self, what: &'static str) -> Result<String, WireError> {
        self.str_ref(what).map(str::to_owned)
    }

    fn str_ref(&mut self, what: &'static str) -> Result<&'a str, WireError> {
        let len = self.varint(what)? as usize;
        if len > STR_BYTES_MAX {
            return Err(WireError::BadString { what });
        }
        if len > self.remaining() {
            return Err(WireError::Truncated { what });
        }
        let bytes = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        std::str::from_utf8(bytes).map_err(|_| WireError::BadString { what })
    }

    /// A list count, bounded by what the remaining bytes could hold at `min_item_bytes` each.
    fn count(&mut self, what: &'static str, min_item_bytes: usize) -> Result<usize, WireError> {
        let n = self.varint(what)? as usize;
        if n.saturating_mul(min_item_bytes) > self.remaining() {
            return Err(WireError::Truncated { what });
        }
        Ok(n)
    }

    fn state(&mut self) -> Result<NodeState, WireError> {
        let tag = self.u8("node state")?;
        NodeState::from_wire(tag).ok_or(WireError::BadTag {
            what: "node state",
            tag,
        })
    }

    fn update(&mut self) -> Result<UpdateRef<'a>, WireError> {
        let tag = self.u8("update tag")?;
        Ok(match tag {
            1 => UpdateRef::Alive {
                name: self.str_ref("alive.name")?,
                addr: self.str_ref("alive.addr")?,
                incarnation: self.varint("alive.incarnation")?,
            },
            2 | 6 => UpdateRef::Suspect {
                name: self.str_ref("suspect.name")?,
                incarnation: self.varint("suspect.incarnation")?,
                from: self.str_ref("suspect.from")?,
                refused: tag == 6,
            },
            3 | 7 => UpdateRef::Dead {
                name: self.str_ref("dead.name")?,
                incarnation: self.varint("dead.incarnation")?,
                from: self.str_ref("dead.from")?,
                refused: tag == 7,
            },
            4 => UpdateRef::Left {
                name: self.str_ref("left.name")?,
                incarnation: self.varint("left.incarnation")?,
            },
            5 => UpdateRef::State {
                name: self.str_ref("state.name")?,
                state: self.state()?,
                lamport: self.varint("state.lamport")?,
            },
            tag => {
                return Err(WireError::BadTag {
                    what: "update",
                    tag,
                })
            }
        })
    }
}

/// Decode a whole message of at most `max_bytes`.
pub fn decode(bytes: &[u8], max_bytes: usize) -> Result<(Envelope, Body), WireError> {
    let (env, body) = decode_ref(bytes, max_bytes)?;
    let body = match body {
        BodyOf::Packet { primary, updates } => Body::Packet {
            primary,
            updates: updates.iter().map(UpdateRef::to_owned).collect(),
        },
        BodyOf::PushPull { join, members } => Body::PushPull {
            join,
            members: members.iter().map(MemberRecordRef::to_owned).collect(),
        },
        BodyOf::Rejected(r) => Body::Rejected(r),
    };
    Ok((env, body))
}

/// Only the envelope (kind, cluster and sender) of a message: what a transport needs to check
/// who speaks before the node decodes the rest.
pub fn decode_envelope(bytes: &[u8]) -> Result<Envelope, WireError> {
    read_envelope(&mut Reader { buf: bytes, pos: 0 })
}

fn read_envelope(r: &mut Reader<'_>) -> Result<Envelope, WireError> {
    if r.remaining() < 2 || r.buf[..2] != MAGIC {
        return Err(WireError::BadMagic);
    }
    r.pos = 2;
    let version = r.u8("version")?;
    if version != VERSION {
        return Err(WireError::Version { got: version });
    }
    let kind = match r.u8("kind")? {
        1 => Kind::Packet,
        2 => Kind::PushPullRequest,
        3 => Kind::PushPullResponse,
        4 => Kind::Rejected,
        tag => return Err(WireError::BadTag { what: "kind", tag }),
    };
    Ok(Envelope {
        kind,
        cluster: r.str("cluster name")?,
        sender_name: r.str("sender name")?,
        sender_addr: r.str("sender address")?,
    })
}

/// [`decode`], leaving a packet's updates in `bytes`.
pub fn decode_ref(
    bytes: &[u8],
    max_bytes: usize,
) -> Result<(Envelope, BodyOf<UpdateRef<'_>, MemberRecordRef<'_>>), WireError> {
    if bytes.len() > max_bytes {
        return Err(WireError::TooLarge {
            len: bytes.len(),
            max: max_bytes,
        });
    }
    let mut r = Reader { buf: bytes, pos: 0 };
    let env = read_envelope(&mut r)?;
    let kind = env.kind;
    let body = match kind {
        Kind::Packet => {
            let primary = match r.u8("primary tag")? {
                0 => None,
                1 => Some(Primary::Ping {
                    seq: r.u32("ping.seq")?,
                    target: r.str("ping.target")?,
                    digest: r.u32_le("ping.digest")?,
                }),
                2 => Some(Primary::IndirectPing {
                    seq: r.u32("indirect.seq")?,
                    target: r.str("indirect.target")?,
                    addr: r.str("indirect.addr")?,
                }),
                3 => Some(Primary::Ack {
                    seq: r.u32("ack.seq")?,
                }),
                4 => Some(Primary::Nack {
                    seq: r.u32("nack.seq")?,
                }),
                tag => {
                    return Err(WireError::BadTag {
                        what: "primary",
                        tag,
                    })
                }
            };
            let n = r.count("update count", 3)?;
            let mut updates = Vec::with_capacity(n);
            for _ in 0..n {
                updates.push(r.update()?);
            }
            BodyOf::Packet { primary, updates }
        }
        Kind::PushPullRequest | Kind::PushPullResponse => {
            let join = match r.u8("join flag")? {
                0 => false,
                1 => true,
                tag => {
                    return Err(WireError::BadTag {
                        what: "join flag",
                        tag,
                    })
                }
            };
            let n = r.count("member count", 5)?;
            let mut members = Vec::with_capacity(n);
            for _ in 0..n {
                let name = r.str_ref("member.name")?;
                let addr = r.str_ref("member.addr")?;
                let incarnation = r.varint("member.incarnation")?;
                let tag = r.u8("member.status")?;
                let status = Status::from_wire(tag).ok_or(WireError::BadTag {
                    what: "member status",
                    tag,
                })?;
                let state = match r.u8("member.state")? {
                    0xff => None,
                    tag => {
                        let s = NodeState::from_wire(tag).ok_or(WireError::BadTag {
                            what: "node state",
                            tag,
                        })?;
                        Some((s, r.varint("member.lamport")?))
                    }
                };
                members.push(MemberRecordRef {
                    name,
                    addr,
                    incarnation,
                    status,
                    state,
                });
            }
            BodyOf::PushPull { join, members }
        }
        Kind::Rejected => BodyOf::Rejected(match r.u8("rejection tag")? {
            1 => Rejection::NameConflict {
                name: r.str("conflict.name")?,
                holder_addr: r.str("conflict.holder_addr")?,
            },
            2 => Rejection::ClusterMismatch {
                ours: r.str("mismatch.ours")?,
                theirs: r.str("mismatch.theirs")?,
            },
            tag => {
                return Err(WireError::BadTag {
                    what: "rejection",
                    tag,
                })
            }
        }),
    };
    if r.remaining() != 0 {
        return Err(WireError::TrailingBytes {
            count: r.remaining(),
        });
    }
    Ok((env, body))
}

#[cfg(test)]
mod tests;
