//! Two machines wired in memory on a virtual clock (the model: quinn-proto's
//! `tests/util.rs` `Pair`). Each node has an in-memory disk and history; the pair carries
//! out every action at once and delivers frames in order, so a test is a deterministic
//! script: no sockets, no threads, no sleeps.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use peerchat_proto::message::{PeerFeatures, PeerFrame};
use sha2::{Digest as _, Sha256};

use super::super::{
    Action, ClientMachine, Command, DiskEvent, DiskJob, Expected, FriendEntry, LinkEnd, LinkEvent,
    LinkId, MachineConfig, PersistOp, Persisted, ServerInput, TransferRecord,
};
use crate::events::{Event, LinkPath};
use crate::ids::{MessageId, TransferId};

/// Which node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// Files of one node.
#[derive(Debug, Default)]
pub struct MemDisk {
    /// Source files by path.
    pub files: HashMap<PathBuf, Vec<u8>>,
    /// `.part` files by transfer.
    pub parts: HashMap<TransferId, Vec<u8>>,
    /// Finished files by transfer.
    pub done: HashMap<TransferId, Vec<u8>>,
    /// ReadChunk jobs are held (a sender that stalls).
    pub stall_reads: bool,
    /// Held ReadChunk jobs.
    pub held_reads: Vec<DiskJob>,
    /// Verify jobs are held (a verification still running, R34).
    pub stall_verify: bool,
    /// Held Verify jobs.
    pub held_verify: Vec<DiskJob>,
    /// Append jobs fail (a full disk, R45).
    pub fail_writes: bool,
}

/// The history database of one node.
#[derive(Debug, Default)]
pub struct MemHistory {
    /// Received messages in the order stored: (friend, id, text).
    pub incoming: Vec<(String, MessageId, String)>,
    stored: HashSet<(String, MessageId)>,
    /// Our messages in outbox order.
    pub outbox: Vec<(String, MessageId)>,
    /// Acknowledged ids.
    pub delivered: HashSet<MessageId>,
    /// The last record of each transfer.
    pub transfers: HashMap<TransferId, TransferRecord>,
    /// StoreIncoming fails (C7).
    pub fail_store: bool,
    /// AppendOutbox results are held (a sync still running while the message travels,
    /// §8.1 r2), until [`Pair::release_outbox`].
    pub hold_outbox: bool,
    /// Held AppendOutbox ops.
    pub held_outbox: Vec<PersistOp>,
    /// AppendOutbox fails (a full disk).
    pub fail_outbox: bool,
}

/// One client: its machine and what its driver would own.
#[derive(Debug)]
pub struct Node {
    pub me: String,
    pub fingerprint: String,
    pub m: ClientMachine,
    pub disk: MemDisk,
    pub history: MemHistory,
    /// Every action carried out, with the virtual time.
    pub log: Vec<(Instant, Action)>,
    /// Dial attempts (time, friend).
    pub dials: Vec<(Instant, String)>,
    /// `ConnectServer` actions.
    pub server_connects: usize,
}

impl Node {
    fn new(me: &str, now: Instant) -> Self {
        let mut c = MachineConfig::new(me, PathBuf::from("/downloads"));
        c.chunk_size = 10;
        let _ = now;
        Self {
            me: me.to_owned(),
            fingerprint: format!("SHA256:{me}"),
            m: ClientMachine::new(c),
            disk: MemDisk::default(),
            history: MemHistory::default(),
            log: Vec::new(),
            dials: Vec::new(),
            server_connects: 0,
        }
    }

    /// Every event emitted so far.
    pub fn events(&self) -> Vec<Event> {
        self.log
            .iter()
            .filter_map(|(_, a)| match a {
                Action::Emit(e) => Some(e.clone()),
                _ => None,
            })
            .collect()
    }

    /// Frames sent so far, with their time.
    pub fn sent(&self) -> Vec<(Instant, LinkId, PeerFrame)> {
        self.log
            .iter()
            .filter_map(|(t, a)| match a {
                Action::SendFrame { link, frame } => Some((*t, *link, frame.clone())),
                _ => None,
            })
            .collect()
    }

    /// Close actions so far.
    pub fn closes(&self) -> Vec<(LinkId, Option<peerchat_proto::wire::CloseReason>)> {
        self.log
            .iter()
            .filter_map(|(_, a)| match a {
                Action::CloseLink { link, reason } => Some((*link, *reason)),
                _ => None,
            })
            .collect()
    }
}

/// Two machines, a virtual clock and the links between them.
#[derive(Debug)]
pub struct Pair {
    pub a: Node,
    pub b: Node,
    pub now: Instant,
    epoch: Instant,
    /// Open links: id → the side that dialled.
    links: HashMap<LinkId, Side>,
    next_link: u64,
    /// Frames in flight: (link, receiver, frame).
    wire: VecDeque<(LinkId, Side, PeerFrame)>,
    /// Whether a dial reaches the other side.
    pub reachable: bool,
    /// Frames sent by B are lost (a friend that went silent).
    pub mute_b: bool,
    /// The features both hellos of a new link name.
    pub features: PeerFeatures,
    actions: VecDeque<(Side, Action)>,
}

impl Pair {
    /// Alice and Bob, friends, both logged in; no link yet.
    pub fn new() -> Self {
        let epoch = Instant::now();
        let mut p = Self {
            a: Node::new("alice", epoch),
            b: Node::new("bob", epoch),
            now: epoch,
            epoch,
            links: HashMap::new(),
            next_link: 0,
            wire: VecDeque::new(),
            reachable: true,
            mute_b: false,
            features: PeerFeatures::default(),
            actions: VecDeque::new(),
        };
        let fa = p.a.fingerprint.clone();
        let fb = p.b.fingerprint.clone();
        let now = p.now;
        p.a.m.handle_server_event(
            ServerInput::LoggedIn {
                friends: vec![FriendEntry {
                    userid: "bob".into(),
                    fingerprint: fb,
                    online: true,
                }],
            },
            now,
        );
        p.b.m.handle_server_event(
            ServerInput::LoggedIn {
                friends: vec![FriendEntry {
                    userid: "alice".into(),
                    fingerprint: fa,
                    online: true,
                }],
            },
            now,
        );
        p.drive();
        p
    }

    /// Alice and Bob with a link Alice dialled, idle.
    pub fn connected() -> (Self, LinkId) {
        let mut p = Self::new();
        let link = p.open_link(Side::A);
        p.drive();
        (p, link)
    }

    pub fn node(&mut self, s: Side) -> &mut Node {
        match s {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    /// Wall clock at `now`, Unix ms.
    pub fn unix_ms(&self) -> u64 {
        1_700_000_000_000 + self.now.duration_since(self.epoch).as_millis() as u64
    }

    /// A link dialled by `from` reaches OPEN on both sides (no dial action needed).
    pub fn open_link(&mut self, from: Side) -> LinkId {
        self.next_link += 1;
        let link = LinkId(self.next_link);
        self.links.insert(link, from);
        let (now, features) = (self.now, self.features);
        for side in [from, from.other()] {
            let peer_fp = self.node(side.other()).fingerprint.clone();
            let peer = self.node(side.other()).me.clone();
            self.node(side).m.handle_link_event(
                LinkEvent::Up {
                    link,
                    friend: peer,
                    initiated_by_me: side == from,
                    path: LinkPath::Direct,
                    fingerprint: peer_fp,
                    features,
                },
                now,
            );
            self.collect(side);
        }
        link
    }

    /// The link breaks (no Close): frames in flight on it are lost; both sides see a drop.
    pub fn drop_link(&mut self, link: LinkId) {
        self.links.remove(&link);
        self.wire.retain(|(l, _, _)| *l != link);
        let now = self.now;
        for side in [Side::A, Side::B] {
            self.node(side).m.handle_link_event(
                LinkEvent::Down {
                    link,
                    end: LinkEnd::Dropped,
                },
                now,
            );
            self.collect(side);
        }
    }

    /// A frame arrives at `to` on `link`, as if the other side sent it.
    pub fn inject(&mut self, to: Side, link: LinkId, frame: PeerFrame) {
        let (now, ms) = (self.now, self.unix_ms());
        self.node(to).m.handle_peer_frame(link, frame, now, ms);
        self.run_actions();
    }

    /// A file frame whose values failed validation arrives at `to` on `link` (R2, R3, R21,
    /// R25, S2, C10).
    pub fn inject_invalid(
        &mut self,
        to: Side,
        link: LinkId,
        frame: peerchat_proto::message::InvalidFileFrame,
    ) {
        let now = self.now;
        self.node(to).m.handle_invalid_file_frame(link, frame, now);
        self.run_actions();
    }

    /// A command on `side` (panics if the machine refuses it).
    pub fn command(&mut self, side: Side, cmd: Command) {
        let now = self.now;
        let r = self.node(side).m.handle_command(cmd, now);
        assert_eq!(r, Ok(()));
        self.run_actions();
    }

    /// A server event on `side`.
    pub fn server(&mut self, side: Side, ev: ServerInput) {
        let now = self.now;
        self.node(side).m.handle_server_event(ev, now);
        self.run_actions();
    }

    /// Alice sends `text` to Bob (a fresh id from `n`).
    pub fn say(&mut self, side: Side, n: u8, text: &str) -> MessageId {
        let id = MessageId([n; 16]);
        let friend = self.node(side.other()).me.clone();
        let sent_at_unix_ms = self.unix_ms();
        self.command(
            side,
            Command::SendMessage {
                friend,
                id,
                text: text.into(),
                sent_at_unix_ms,
            },
        );
        id
    }

    /// `side` offers a file with `content` (registered on its disk) as transfer `n`.
    pub fn send_file(&mut self, side: Side, n: u8, content: &[u8]) -> TransferId {
        let id = TransferId([n; 16]);
        let path = PathBuf::from(format!("/src/file{n}"));
        self.node(side)
            .disk
            .files
            .insert(path.clone(), content.to_vec());
        let friend = self.node(side.other()).me.clone();
        self.command(
            side,
            Command::SendFile {
                friend,
                id,
                path,
                name: format!("file{n}.bin"),
                size: content.len() as u64,
                sha256: Some(Sha256::digest(content).into()),
            },
        );
        id
    }

    fn collect(&mut self, side: Side) {
        while let Some(a) = self.node(side).m.poll_action() {
            self.actions.push_back((side, a));
        }
    }

    /// Carries out every action and delivers every frame until nothing moves.
    pub fn drive(&mut self) {
        self.drive_until(|_, _| false);
    }

    /// As [`Pair::drive`], but stops right after delivering a frame for which `stop` is
    /// true (the frames behind it stay in flight).
    pub fn drive_until(&mut self, mut stop: impl FnMut(Side, &PeerFrame) -> bool) -> bool {
        self.collect(Side::A);
        self.collect(Side::B);
        loop {
            if let Some((side, a)) = self.actions.pop_front() {
                self.carry_out(side, a);
                continue;
            }
            let Some((link, to, frame)) = self.wire.pop_front() else {
                return false;
            };
            if !self.links.contains_key(&link) {
                continue;
            }
            let hit = stop(to, &frame);
            let (now, ms) = (self.now, self.unix_ms());
            self.node(to).m.handle_peer_frame(link, frame, now, ms);
            self.collect(to);
            if hit {
                // Finish the local work this frame caused, not the wire.
                while let Some((side, a)) = self.actions.pop_front() {
                    self.carry_out(side, a);
                }
                return true;
            }
        }
    }

    /// Carries out the queued actions without delivering any frame.
    pub fn run_actions(&mut self) {
        self.collect(Side::A);
        self.collect(Side::B);
        while let Some((side, a)) = self.actions.pop_front() {
            self.carry_out(side, a);
        }
    }

    /// Moves the clock forward by `d`, firing every timer on the way.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.drive();
            let next = [self.a.m.poll_timeout(), self.b.m.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    let now = self.now;
                    self.a.m.handle_timeout(now);
                    self.collect(Side::A);
                    self.b.m.handle_timeout(now);
                    self.collect(Side::B);
                }
                _ => break,
            }
        }
        self.now = end;
        let now = self.now;
        self.a.m.handle_timeout(now);
        self.collect(Side::A);
        self.b.m.handle_timeout(now);
        self.collect(Side::B);
        self.drive();
    }

    fn carry_out(&mut self, side: Side, a: Action) {
        let now = self.now;
        self.node(side).log.push((now, a.clone()));
        match a {
            Action::SendFrame { link, frame } => {
                if side == Side::B && self.mute_b {
                    return;
                }
                if self.links.contains_key(&link) {
                    self.wire.push_back((link, side.other(), frame));
                }
            }
            Action::SendRawCancel { .. } => {}
            Action::CloseLink { link, reason } => {
                if !self.links.contains_key(&link) {
                    return;
                }
                if let Some(reason) = reason {
                    // The Close goes out, then the link ends (CLOSING; the other side
                    // closes at once when it reads it, L30–L35).
                    if !(side == Side::B && self.mute_b) {
                        self.wire.push_back((
                            link,
                            side.other(),
                            PeerFrame::Close {
                                reason,
                                message: String::new(),
                            },
                        ));
                        // Deliver it before the link is gone.
                        let mut rest: VecDeque<_> = std::mem::take(&mut self.wire);
                        let mut keep = VecDeque::new();
                        while let Some((l, to, f)) = rest.pop_front() {
                            if l == link {
                                let ms = self.unix_ms();
                                self.node(to).m.handle_peer_frame(l, f, now, ms);
                                self.collect(to);
                            } else {
                                keep.push_back((l, to, f));
                            }
                        }
                        self.wire = keep;
                    } else {
                        let other = side.other();
                        self.node(other).m.handle_link_event(
                            LinkEvent::Down {
                                link,
                                end: LinkEnd::Dropped,
                            },
                            now,
                        );
                        self.collect(other);
                    }
                }
                self.links.remove(&link);
            }
            Action::Dial { friend } => {
                self.node(side).dials.push((now, friend));
                if self.reachable {
                    self.open_link(side);
                } else {
                    let friend = self.node(side.other()).me.clone();
                    self.node(side)
                        .m
                        .handle_link_event(LinkEvent::DialFailed { friend }, now);
                    self.collect(side);
                }
            }
            Action::ConnectServer => self.node(side).server_connects += 1,
            Action::Disk(job) => {
                if let Some(ev) = self.disk_job(side, job) {
                    self.node(side).m.handle_disk(ev, now);
                    self.collect(side);
                }
            }
            Action::Persist(op) => self.write(side, op),
            Action::Emit(_) => {}
        }
    }

    /// Applies `op` to `side`'s history and feeds its result, if any, back.
    fn write(&mut self, side: Side, op: PersistOp) {
        if let Some(done) = self.persist(side, op) {
            let now = self.now;
            self.node(side).m.handle_persisted(done, now);
            self.collect(side);
        }
    }

    /// Writes the AppendOutbox ops `side` held and feeds their results back.
    pub fn release_outbox(&mut self, side: Side) {
        let h = &mut self.node(side).history;
        h.hold_outbox = false;
        for op in std::mem::take(&mut h.held_outbox) {
            self.write(side, op);
        }
        self.drive();
    }

    /// Releases the Verify jobs `side` held.
    pub fn release_verify(&mut self, side: Side) {
        let held = std::mem::take(&mut self.node(side).disk.held_verify);
        self.node(side).disk.stall_verify = false;
        let now = self.now;
        for job in held {
            if let Some(ev) = self.disk_job(side, job) {
                self.node(side).m.handle_disk(ev, now);
                self.collect(side);
            }
        }
        self.drive();
    }

    /// Releases the ReadChunk jobs `side` held.
    #[allow(dead_code)]
    pub fn release_reads(&mut self, side: Side) {
        let held = std::mem::take(&mut self.node(side).disk.held_reads);
        self.node(side).disk.stall_reads = false;
        let now = self.now;
        for job in held {
            if let Some(ev) = self.disk_job(side, job) {
                self.node(side).m.handle_disk(ev, now);
                self.collect(side);
            }
        }
        self.drive();
    }

    fn disk_job(&mut self, side: Side, job: DiskJob) -> Option<DiskEvent> {
        let disk = &mut self.node(side).disk;
        match job {
            DiskJob::CreatePart { id, .. } => {
                disk.parts.insert(id, Vec::new());
                None
            }
            DiskJob::Append { id, .. } if disk.fail_writes => Some(DiskEvent::WriteFailed { id }),
            job @ DiskJob::Verify { .. } if disk.stall_verify => {
                disk.held_verify.push(job);
                None
            }
            DiskJob::Append { id, offset, data } => match disk.parts.get_mut(&id) {
                Some(p) if p.len() as u64 == offset => {
                    p.extend_from_slice(&data);
                    None
                }
                _ => Some(DiskEvent::WriteFailed { id }),
            },
            DiskJob::Verify { id, expect } => {
                let part = disk.parts.get(&id).cloned().unwrap_or_default();
                let matched = match expect {
                    Expected::Sha256(h) => <[u8; 32]>::from(Sha256::digest(&part)) == h,
                    Expected::Blake3(h) => *blake3::hash(&part).as_bytes() == h,
                };
                if !matched {
                    disk.parts.remove(&id);
                }
                Some(DiskEvent::Verified { id, matched })
            }
            DiskJob::Rename { id } => match disk.parts.remove(&id) {
                Some(part) => {
                    disk.done.insert(id, part);
                    Some(DiskEvent::Renamed {
                        id,
                        path: format!("/downloads/{id}"),
                    })
                }
                None => Some(DiskEvent::WriteFailed { id }),
            },
            DiskJob::HashSource { id, path, size } => Some(DiskEvent::SourceHashed {
                id,
                sha256: disk
                    .files
                    .get(&path)
                    .filter(|f| f.len() as u64 == size)
                    .map(|f| Sha256::digest(f).into()),
            }),
            DiskJob::Digest { id, path, size } => Some(DiskEvent::Digested {
                id,
                blake3: disk
                    .files
                    .get(&path)
                    .filter(|f| f.len() as u64 == size)
                    .map(|f| *blake3::hash(f).as_bytes()),
            }),
            DiskJob::DeletePart { id } => {
                disk.parts.remove(&id);
                None
            }
            job @ DiskJob::ReadChunk { .. } if disk.stall_reads => {
                disk.held_reads.push(job);
                None
            }
            DiskJob::ReadChunk {
                id,
                path,
                offset,
                len,
            } => {
                let f = disk.files.get(&path)?;
                let start = offset as usize;
                match f.get(start..start + len) {
                    Some(b) => Some(DiskEvent::ChunkRead {
                        id,
                        offset,
                        data: Bytes::copy_from_slice(b),
                    }),
                    None => Some(DiskEvent::ReadFailed { id }),
                }
            }
            DiskJob::CheckSource { id, path, size } => Some(DiskEvent::SourceChecked {
                id,
                ok: disk
                    .files
                    .get(&path)
                    .is_some_and(|f| f.len() as u64 == size),
            }),
        }
    }

    fn persist(&mut self, side: Side, op: PersistOp) -> Option<Persisted> {
        let h = &mut self.node(side).history;
        match op {
            PersistOp::StoreIncoming { friend, frame, .. } => {
                let id = MessageId(frame.id);
                if h.fail_store {
                    return Some(Persisted::Incoming {
                        friend,
                        id,
                        fresh: None,
                    });
                }
                let fresh = h.stored.insert((friend.clone(), id));
                if fresh {
                    h.incoming.push((friend.clone(), id, frame.text));
                }
                Some(Persisted::Incoming {
                    friend,
                    id,
                    fresh: Some(fresh),
                })
            }
            op @ PersistOp::AppendOutbox { .. } if h.hold_outbox => {
                h.held_outbox.push(op);
                None
            }
            PersistOp::AppendOutbox { friend, frame } => {
                let id = MessageId(frame.id);
                if !h.fail_outbox {
                    h.outbox.push((friend.clone(), id));
                }
                Some(Persisted::Outbox {
                    friend,
                    id,
                    ok: !h.fail_outbox,
                })
            }
            PersistOp::MarkDelivered { id, .. } => {
                h.delivered.insert(id);
                None
            }
            PersistOp::Transfer(rec) => {
                h.transfers.insert(rec.id, rec);
                None
            }
        }
    }
}

/// "Retry now", the friends half (issue #15; the server half is
/// `client/tests/e2e_login_retry.rs`): after a failed dial, a friend's redial back-off is an
/// hour, so time alone does not bring a queued message through within the test; only
/// `RetryNow` does, at once, on a dial of its own. (The harness's own tests live in
/// `tests/mod.rs`; this one is here to keep clear of the files other work is changing.)
#[test]
fn retry_now_dials_a_friend_inside_a_long_back_off() {
    let mut p = Pair::new();
    let hour = Duration::from_secs(3600);
    let mut config = p.a.m.config().clone();
    config.redial_min = hour;
    config.redial_max = hour;
    p.a.m = ClientMachine::new(config);
    let fb = p.b.fingerprint.clone();
    p.server(
        Side::A,
        ServerInput::LoggedIn {
            friends: vec![FriendEntry {
                userid: "bob".into(),
                fingerprint: fb,
                online: true,
            }],
        },
    );
    p.drive();
    assert!(p.a.dials.is_empty(), "nothing pending, nothing dialled");

    // bob cannot be reached: the first dial fails and the next may start in an hour.
    p.reachable = false;
    let id = p.say(Side::A, 1, "only Retry now brings this");
    p.drive();
    assert_eq!(p.a.dials.len(), 1, "the message starts one dial");
    let failed_at = p.now;
    assert!(
        p.a.m.poll_timeout().is_some_and(|t| t >= failed_at + hour),
        "the redial waits out the hour"
    );

    // bob is reachable again, but nothing tells alice (no FriendOnline): 59 minutes pass
    // with nothing dialled and nothing delivered.
    p.reachable = true;
    p.advance(Duration::from_secs(59 * 60));
    assert_eq!(p.a.dials.len(), 1, "no dial inside the back-off");
    assert!(p.b.history.incoming.is_empty());

    // The user presses Retry now: one dial at once, and the message is delivered.
    p.command(Side::A, Command::RetryNow);
    p.drive();
    assert_eq!(p.a.dials.len(), 2, "Retry now dials bob");
    assert_eq!(p.a.dials[1], (p.now, "bob".to_owned()));
    assert!(p.now < failed_at + hour, "inside the back-off");
    assert_eq!(super::texts(&p), ["only Retry now brings this"]);
    assert!(p.a.history.delivered.contains(&id), "and acknowledged");
}
