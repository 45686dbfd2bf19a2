//! The Raft state machine of one DLedger node, pure and deterministic: no clock, no I/O, no
//! threads. Inputs are [`Core::tick`] (the time in ms), [`Core::step`] (a message from a peer) and
//! [`Core::on_local_append`] (the owner appended to the leader's log); outputs are [`Action`]s the
//! owner carries out in order (persist the vote before sending anything, apply log changes,
//! publish the commit index, send messages). The log itself is read through [`LogView`]; entries
//! travel as an opaque `E` (the real driver uses the wire entry with its body; tests a number).
//!
//! The election follows `DLedgerLeaderElector` (0.3.1.2):
//! - a node starts as CANDIDATE; a follower that heard no heartbeat for `maxHeartBeatLeak *
//!   heartBeatTimeIntervalMs` becomes CANDIDATE **in the same term**;
//! - a candidate first asks for votes in its current term; it moves to a new term only after a
//!   round in which a majority answered without electing it (`WAIT_TO_VOTE_NEXT`), or when it
//!   learned a larger term. A round without a majority of answers (a partitioned node) or with
//!   `REJECT_ALREADY_HAS_LEADER` keeps the term. This is DLedger's protection against a
//!   partitioned node deposing a healthy leader when it comes back: it has no separate pre-vote
//!   RPC, its same-term vote round plays that part (voters in a term that has a leader answer
//!   ALREADY_HAS_LEADER), and its term cannot run away while it is cut off;
//! - a vote is refused to a candidate whose log is behind (`ledgerEndTerm`, `ledgerEndIndex`),
//!   checked before the term, so a stale node never makes anyone step down; a larger term in a vote
//!   or heartbeat makes the receiver a candidate that adopts it (`REJECT_TERM_NOT_READY`,
//!   `TERM_NOT_READY`), and the candidate re-votes at once.
//!
//! Replication follows `DLedgerEntryPusher`'s push modes: COMPARE (walk back to the last entry
//! the follower shares with the leader), TRUNCATE (cut the follower's suffix after it), APPEND
//! (stream entries, a bounded window in flight) and COMMIT. Where DLedger 0.3.1.2 is unsafe this
//! core is stricter, keeping the wire format:
//! - a follower appends entry `i` only if entry `i-1` was verified in this term (Raft's
//!   log-matching check; DLedger trusts the leader's mode), and takes a commit index only up to
//!   the last verified entry (DLedger takes `min(commitIndex, ledgerEnd)`);
//! - the leader commits only entries of its own term (Raft §5.4.2; DLedger 0.3.1.2 counts acks
//!   of older entries too), and a new leader with an uncommitted tail asks its owner to append an
//!   empty entry ([`Action::AppendNoop`]), so that the tail commits without waiting for a client;
//! - fencing: a leader that has not heard a successful answer from a majority within
//!   `maxHeartBeatLeak * heartBeatTimeIntervalMs` steps down to CANDIDATE at once.
//!
//! Leadership transfer (`preferredLeaderId`): the leader, once the preferred peer has its whole
//! log, stops taking appends and sends it LEADERSHIP_TRANSFER (take leadership); the transferee
//! moves to the next term and asks for votes at once; voters in that term refuse others while it
//! is taking leadership. A transfer that did not finish within an election timeout is dropped.

use std::collections::{BTreeMap, BTreeSet};

use super::wire::{code, PushType, VoteResult};

/// Timing and membership of one node.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// This node (`dLegerSelfId`).
    pub self_id: String,
    /// Every member, this node included (the ids of `dLegerPeers`).
    pub peers: Vec<String>,
    /// `heartBeatTimeIntervalMs` (2000).
    pub heartbeat_ms: u64,
    /// `maxHeartBeatLeak` (3).
    pub max_heartbeat_leak: u64,
    /// `minVoteIntervalMs` (300).
    pub min_vote_ms: u64,
    /// `maxVoteIntervalMs` (1000).
    pub max_vote_ms: u64,
    /// Push answers awaited this long before sending again (`maxPushTimeOutMs`, 1000).
    pub push_timeout_ms: u64,
    /// Entries pushed to one follower before waiting for its answers.
    pub push_window: i64,
    /// `enableBatchPush`: several pending entries travel in one PUSH (`batchEntry`).
    pub batch_push: bool,
    /// `maxBatchPushSize`: a batch is closed once its entries' sizes reach this many bytes (as
    /// DLedger, the entry that reaches it is still in the batch; a single larger entry travels alone).
    pub max_batch_bytes: u64,
    /// `preferredLeaderId`.
    pub preferred_leader: Option<String>,
    /// Seed of the election timeouts' randomness.
    pub seed: u64,
}

impl CoreConfig {
    /// DLedger's default timing.
    pub fn new(self_id: &str, peers: &[String]) -> Self {
        CoreConfig {
            self_id: self_id.to_string(),
            peers: peers.to_vec(),
            heartbeat_ms: 2000,
            max_heartbeat_leak: 3,
            min_vote_ms: 300,
            max_vote_ms: 1000,
            push_timeout_ms: 1000,
            push_window: 256,
            batch_push: false,
            max_batch_bytes: 4 * 1024,
            preferred_leader: None,
            seed: 0x9E37_79B9_7F4A_7C15,
        }
    }
    /// The time without news after which a follower stands and a leader steps down.
    pub fn election_timeout_ms(&self) -> u64 {
        self.heartbeat_ms * self.max_heartbeat_leak
    }
}

/// `MemberState.Role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Asking for votes.
    Candidate,
    /// Following a leader.
    Follower,
    /// Leading.
    Leader,
}

/// What the core reads of the log.
pub trait LogView<E> {
    /// Last index (-1 if empty).
    fn last_index(&self) -> i64;
    /// Term of the last entry (-1 if empty).
    fn last_term(&self) -> i64;
    /// First index held (0 for a log that was never cleaned).
    fn begin_index(&self) -> i64;
    /// Term of the entry at `index` (`None` outside the log).
    fn term_at(&self, index: i64) -> Option<i64>;
    /// The entry at `index`, to send.
    fn entry(&self, index: i64) -> Option<E>;
    /// The size of the entry at `index` in bytes (what a batch push counts), 0 outside the log.
    fn entry_size(&self, index: i64) -> u64;
}

/// A message between two nodes (the wire structs without the JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg<E> {
    /// VOTE request from a candidate.
    Vote {
        /// Candidate's term.
        term: i64,
        /// Its `ledgerEndIndex`.
        last_index: i64,
        /// Its `ledgerEndTerm`.
        last_term: i64,
    },
    /// VOTE answer.
    VoteResp {
        /// The term of the request answered.
        req_term: i64,
        /// The voter's term.
        term: i64,
        /// The vote.
        result: VoteResult,
    },
    /// HEART_BEAT from a leader.
    HeartBeat {
        /// Leader's term.
        term: i64,
    },
    /// HEART_BEAT answer.
    HeartBeatResp {
        /// The term of the request answered.
        req_term: i64,
        /// The follower's term.
        term: i64,
        /// A [`code`].
        code: i32,
    },
    /// PUSH from a leader.
    Push {
        /// Leader's term.
        term: i64,
        /// Mode.
        kind: PushType,
        /// Index of the entry (-1 for COMMIT).
        index: i64,
        /// Term of the entry (-1 for COMMIT).
        entry_term: i64,
        /// The entry (APPEND, TRUNCATE).
        entry: Option<E>,
        /// Leader's commit index.
        commit: i64,
    },
    /// Batch APPEND from a leader (`batchEntry`): consecutive entries from `first` on.
    PushBatch {
        /// Leader's term.
        term: i64,
        /// Index of the first entry.
        first: i64,
        /// Each entry with its term, in index order.
        entries: Vec<(i64, E)>,
        /// Leader's commit index.
        commit: i64,
    },
    /// PUSH answer.
    PushResp {
        /// The term of the request answered.
        req_term: i64,
        /// The mode of the request answered.
        kind: PushType,
        /// The index of the request answered (the first entry of a batch).
        index: i64,
        /// Entries in the request answered (1 for a single APPEND, 0 without entry).
        count: i64,
        /// The follower's term.
        term: i64,
        /// A [`code`].
        code: i32,
        /// The follower's last index.
        end_index: i64,
    },
    /// LEADERSHIP_TRANSFER to the transferee: take leadership.
    TakeLeadership {
        /// Leader's term.
        term: i64,
        /// Leader's last index.
        ledger_index: i64,
    },
    /// Its answer.
    TakeLeadershipResp {
        /// The term of the request answered.
        req_term: i64,
        /// A [`code`].
        code: i32,
    },
}

/// A message with its sender and receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<E> {
    /// Sender.
    pub from: String,
    /// Receiver.
    pub to: String,
    /// Content.
    pub msg: Msg<E>,
}

/// What the owner must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action<E> {
    /// Write `currterm` durably before anything after it.
    PersistTerm {
        /// `currTerm`.
        term: i64,
        /// `voteLeader`.
        vote_for: Option<String>,
    },
    /// Drop every entry from this index on.
    Truncate {
        /// First index dropped.
        from: i64,
    },
    /// Append this entry (follower); it is the next index.
    Append {
        /// Index.
        index: i64,
        /// Term.
        term: i64,
        /// The entry.
        entry: E,
    },
    /// Drop the whole log and restart it at `index` with this entry at its own position (the
    /// leader's log begins there: it deleted every entry before it, all committed, and this log
    /// cannot continue up to it). DLedger's follower rebuilds its files at the entry's `pos` on
    /// such a TRUNCATE. The entries before `index` count as committed.
    Reset {
        /// The leader's begin index, the new first index.
        index: i64,
        /// Term of the entry.
        term: i64,
        /// The entry.
        entry: E,
    },
    /// As new leader with an uncommitted tail: append an empty entry in the current term and call
    /// [`Core::on_local_append`].
    AppendNoop,
    /// The committed index rose to this.
    Commit {
        /// New committed index.
        index: i64,
    },
    /// The role (or term, or leader) changed.
    Role {
        /// New role.
        role: Role,
        /// Term.
        term: i64,
        /// Known leader.
        leader: Option<String>,
    },
    /// Send a message.
    Send(Envelope<E>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parse {
    WaitToRevote,
    WaitToVoteNext,
}

#[derive(Debug, Default)]
struct Round {
    term: i64,
    deadline: u64,
    answered: BTreeSet<String>,
    valid: usize,
    accepted: usize,
    not_ready: usize,
    bigger_ledger: usize,
    has_leader: bool,
    max_term: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Compare,
    Truncate,
    Append,
}

#[derive(Debug)]
struct Peer {
    mode: Mode,
    /// COMPARE / TRUNCATE: the index in question.
    probe: i64,
    /// Highest index known to be on the follower (this term).
    matched: i64,
    /// APPEND: next index to send.
    next: i64,
    /// When the last push that expects progress was sent (0 = none outstanding).
    sent_at: u64,
    /// Earliest time to push again after an error.
    retry_at: u64,
    /// Commit index last sent.
    sent_commit: i64,
    last_commit_push: u64,
    last_ack: u64,
}

/// One node's Raft state.
#[derive(Debug)]
pub struct Core {
    cfg: CoreConfig,
    rng: u64,
    term: i64,
    vote_for: Option<String>,
    role: Role,
    leader: Option<String>,
    commit: i64,
    known_max_term: i64,
    need_increase: bool,
    parse: Parse,
    next_vote_at: u64,
    round: Option<Round>,
    last_leader_contact: u64,
    /// Follower: highest index verified to match the leader in this term.
    verified: i64,
    peers: BTreeMap<String, Peer>,
    last_heartbeat: u64,
    transferee: Option<(String, u64)>,
    take_leadership_term: i64,
}

impl Core {
    /// A node after a (re)start: CANDIDATE in its persisted term, with its persisted vote and the
    /// committed index of its checkpoint.
    pub fn new(cfg: CoreConfig, term: i64, vote_for: Option<String>, commit: i64, now: u64) -> Self {
        let rng = cfg.seed
            ^ cfg.self_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
        let mut c = Core {
            cfg,
            rng: rng | 1,
            term,
            vote_for,
            role: Role::Candidate,
            leader: None,
            commit,
            known_max_term: term,
            need_increase: false,
            parse: Parse::WaitToRevote,
            next_vote_at: 0,
            round: None,
            last_leader_contact: now,
            verified: -1,
            peers: BTreeMap::new(),
            last_heartbeat: 0,
            transferee: None,
            take_leadership_term: -1,
        };
        c.next_vote_at = now + c.vote_interval();
        c
    }

    /// Current term.
    pub fn term(&self) -> i64 {
        self.term
    }
    /// Current role.
    pub fn role(&self) -> Role {
        self.role
    }
    /// Known leader.
    pub fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }
    /// Committed index.
    pub fn commit_index(&self) -> i64 {
        self.commit
    }
    /// The vote of this term.
    pub fn vote_for(&self) -> Option<&str> {
        self.vote_for.as_deref()
    }
    /// This node's id.
    pub fn self_id(&self) -> &str {
        &self.cfg.self_id
    }
    /// The configuration.
    pub fn config(&self) -> &CoreConfig {
        &self.cfg
    }
    /// Whether the owner may append as leader now (leader, no transfer under way).
    pub fn can_append(&self) -> bool {
        self.role == Role::Leader && self.transferee.is_none()
    }
    /// The owner could not carry out a log change this core asked for (append, truncate,
    /// reset): forget what was verified, so that no later answer claims entries the log lacks;
    /// the next push starts from the log as it is.
    pub fn log_write_failed(&mut self) {
        self.verified = -1;
    }
    /// Whether a leadership transfer is under way.
    pub fn transferring(&self) -> bool {
        self.transferee.is_some()
    }

    fn quorum(&self) -> usize {
        self.cfg.peers.len() / 2 + 1
    }
    fn is_member(&self, id: &str) -> bool {
        self.cfg.peers.iter().any(|p| p == id)
    }

    fn next_rand(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn vote_interval(&mut self) -> u64 {
        let span = self.cfg.max_vote_ms.saturating_sub(self.cfg.min_vote_ms).max(1);
        self.cfg.min_vote_ms + self.next_rand() % span
    }

    fn send<E>(&self, out: &mut Vec<Action<E>>, to: &str, msg: Msg<E>) {
        out.push(Action::Send(Envelope { from: self.cfg.self_id.clone(), to: to.to_string(), msg }));
    }

    fn persist<E>(&self, out: &mut Vec<Action<E>>) {
        out.push(Action::PersistTerm { term: self.term, vote_for: self.vote_for.clone() });
    }

    fn role_changed<E>(&self, out: &mut Vec<Action<E>>) {
        out.push(Action::Role { role: self.role, term: self.term, leader: self.leader.clone() });
    }

    /// `changeRoleToCandidate(term)`: stop leading/following; a larger term is adopted at the
    /// next vote round (at once when `term` is larger than ours).
    fn become_candidate<E>(&mut self, term: i64, now: u64, out: &mut Vec<Action<E>>) {
        if term < self.term {
            return;
        }
        if term > self.known_max_term {
            self.known_max_term = term;
        }
        if term > self.term {
            self.need_increase = true;
            self.round = None;
        }
        let changed = self.role != Role::Candidate || self.leader.is_some();
        self.role = Role::Candidate;
        self.leader = None;
        self.verified = -1;
        self.peers.clear();
        self.transferee = None;
        if changed {
            self.round = None;
            self.next_vote_at = now + self.vote_interval();
            self.role_changed(out);
        }
    }

    fn become_follower<E>(&mut self, leader: &str, now: u64, out: &mut Vec<Action<E>>) {
        self.parse = Parse::WaitToRevote;
        self.role = Role::Follower;
        self.leader = Some(leader.to_string());
        self.last_leader_contact = now;
        self.round = None;
        self.verified = -1;
        self.peers.clear();
        self.transferee = None;
        self.role_changed(out);
    }

    fn become_leader<E, L: LogView<E>>(&mut self, now: u64, log: &L, out: &mut Vec<Action<E>>) {
        self.role = Role::Leader;
        self.leader = Some(self.cfg.self_id.clone());
        self.round = None;
        self.transferee = None;
        self.last_heartbeat = 0;
        self.peers.clear();
        let last = log.last_index();
        for p in self.cfg.peers.iter().filter(|p| **p != self.cfg.self_id) {
            self.peers.insert(
                p.clone(),
                Peer {
                    mode: Mode::Compare,
                    probe: last,
                    matched: -1,
                    next: last + 1,
                    sent_at: 0,
                    retry_at: 0,
                    sent_commit: -1,
                    last_commit_push: 0,
                    last_ack: now,
                },
            );
        }
        self.role_changed(out);
        if last > self.commit && log.last_term() != self.term {
            out.push(Action::AppendNoop);
        }
    }

    /// Advances time: elections, heartbeats, pushes, fencing, transfer.
    pub fn tick<E, L: LogView<E>>(&mut self, now: u64, log: &L) -> Vec<Action<E>> {
        let mut out = Vec::new();
        match self.role {
            Role::Follower => {
                if now.saturating_sub(self.last_leader_contact) > self.cfg.election_timeout_ms() {
                    let t = self.term;
                    self.become_candidate(t, now, &mut out);
                }
            }
            Role::Candidate => self.maintain_candidate(now, log, &mut out),
            Role::Leader => self.maintain_leader(now, log, &mut out),
        }
        out
    }

    fn maintain_candidate<E, L: LogView<E>>(&mut self, now: u64, log: &L, out: &mut Vec<Action<E>>) {
        if let Some(r) = &self.round {
            if now >= r.deadline {
                self.finish_round(now, log, out);
            }
            return;
        }
        if now < self.next_vote_at && !self.need_increase {
            return;
        }
        if self.parse == Parse::WaitToVoteNext || self.need_increase {
            // `nextTerm`.
            self.term = if self.known_max_term > self.term { self.known_max_term } else { self.term + 1 };
            self.known_max_term = self.term;
            self.vote_for = None;
            self.parse = Parse::WaitToRevote;
            self.persist(out);
            self.role_changed(out);
        }
        if self.need_increase {
            self.need_increase = false;
            self.next_vote_at = now + self.vote_interval();
            return;
        }
        let term = self.term;
        let wait = self.cfg.heartbeat_ms + self.next_rand() % self.cfg.max_vote_ms.max(1);
        self.round = Some(Round { term, deadline: now + wait, max_term: term, ..Round::default() });
        let (last_index, last_term) = (log.last_index(), log.last_term());
        // Our own vote first (`handleVote(request, true)`).
        let me = self.cfg.self_id.clone();
        let (_, result) = self.judge_vote(&me, term, last_index, last_term, true, now, log, out);
        self.count_vote(&me, term, term, result);
        for p in self.cfg.peers.clone() {
            if p != me {
                self.send(out, &p, Msg::Vote { term, last_index, last_term });
            }
        }
        if self.round_done() {
            self.finish_round(now, log, out);
        }
    }

    fn count_vote(&mut self, from: &str, req_term: i64, term: i64, result: VoteResult) {
        let Some(r) = self.round.as_mut() else { return };
        if r.term != req_term || !r.answered.insert(from.to_string()) {
            return;
        }
        if result != VoteResult::Unknown {
            r.valid += 1;
        }
        match result {
            VoteResult::Accept => r.accepted += 1,
            VoteResult::RejectAlreadyHasLeader => r.has_leader = true,
            VoteResult::RejectTermSmallThanLedger | VoteResult::RejectExpiredVoteTerm => {
                r.max_term = r.max_term.max(term)
            }
            VoteResult::RejectExpiredLedgerTerm | VoteResult::RejectSmallLedgerEndIndex => r.bigger_ledger += 1,
            VoteResult::RejectTermNotReady => r.not_ready += 1,
            _ => {}
        }
    }

    fn round_done(&self) -> bool {
        let Some(r) = &self.round else { return false };
        let q = self.quorum();
        // Also done once the members yet to answer could not make it a win even by accepting (a
        // dead peer never answers: DLedger waits for the round's deadline, 2-3 s, before its next
        // term; the outcome is already known).
        let remaining = self.cfg.peers.len().saturating_sub(r.answered.len());
        r.has_leader
            || r.accepted >= q
            || r.accepted + r.not_ready >= q
            || r.accepted + r.not_ready + remaining < q
            || r.answered.len() == self.cfg.peers.len()
    }

    fn finish_round<E, L: LogView<E>>(&mut self, now: u64, log: &L, out: &mut Vec<Action<E>>) {
        let Some(r) = self.round.take() else { return };
        if self.role != Role::Candidate || r.term != self.term {
            return;
        }
        let q = self.quorum();
        let jitter = self.vote_interval();
        if r.max_term > r.term {
            self.parse = Parse::WaitToVoteNext;
            self.next_vote_at = now + jitter;
            self.known_max_term = self.known_max_term.max(r.max_term);
        } else if r.has_leader {
            self.parse = Parse::WaitToRevote;
            self.next_vote_at = now + jitter + self.cfg.election_timeout_ms();
        } else if r.valid < q {
            self.parse = Parse::WaitToRevote;
            self.next_vote_at = now + jitter;
        } else if r.valid - r.bigger_ledger < q {
            self.parse = Parse::WaitToRevote;
            self.next_vote_at = now + jitter + self.cfg.max_vote_ms;
        } else if r.accepted >= q {
            self.become_leader(now, log, out);
            self.maintain_leader(now, log, out);
        } else if r.accepted + r.not_ready >= q {
            // REVOTE_IMMEDIATELY.
            self.parse = Parse::WaitToRevote;
            self.next_vote_at = now;
        } else {
            self.parse = Parse::WaitToVoteNext;
            self.next_vote_at = now + jitter;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn judge_vote<E, L: LogView<E>>(
        &mut self,
        from: &str,
        term: i64,
        last_index: i64,
        last_term: i64,
        is_self: bool,
        now: u64,
        log: &L,
        out: &mut Vec<Action<E>>,
    ) -> (i64, VoteResult) {
        if !self.is_member(from) {
            return (self.term, VoteResult::RejectUnknownLeader);
        }
        if !is_self && from == self.cfg.self_id {
            return (self.term, VoteResult::RejectUnexpectedLeader);
        }
        let (my_index, my_term) = (log.last_index(), log.last_term());
        if last_term < my_term {
            return (self.term, VoteResult::RejectExpiredLedgerTerm);
        }
        if last_term == my_term && last_index < my_index {
            return (self.term, VoteResult::RejectSmallLedgerEndIndex);
        }
        if term < self.term {
            return (self.term, VoteResult::RejectExpiredVoteTerm);
        }
        if term > self.term {
            self.become_candidate(term, now, out);
            return (self.term, VoteResult::RejectTermNotReady);
        }
        match &self.vote_for {
            Some(v) if v != from => {
                return if self.leader.is_some() {
                    (self.term, VoteResult::RejectAlreadyHasLeader)
                } else {
                    (self.term, VoteResult::RejectAlreadyVoted)
                };
            }
            _ => {}
        }
        if term < my_term {
            return (my_term, VoteResult::RejectTermSmallThanLedger);
        }
        if !is_self && self.taking_leadership() && last_term == my_term && my_index >= last_index {
            return (self.term, VoteResult::RejectTakingLeadership);
        }
        if self.vote_for.as_deref() != Some(from) {
            self.vote_for = Some(from.to_string());
            self.persist(out);
        }
        (self.term, VoteResult::Accept)
    }

    fn taking_leadership(&self) -> bool {
        self.take_leadership_term == self.term
            && self.cfg.preferred_leader.as_deref() == Some(self.cfg.self_id.as_str())
    }

    /// Handles a message from a peer.
    pub fn step<E: Clone, L: LogView<E>>(&mut self, now: u64, env: Envelope<E>, log: &L) -> Vec<Action<E>> {
        let mut out = Vec::new();
        let from = env.from;
        if !self.is_member(&from) || from == self.cfg.self_id {
            return out;
        }
        match env.msg {
            Msg::Vote { term, last_index, last_term } => {
                let (t, result) = self.judge_vote(&from, term, last_index, last_term, false, now, log, &mut out);
                self.send(&mut out, &from, Msg::VoteResp { req_term: term, term: t, result });
            }
            Msg::VoteResp { req_term, term, result } => {
                if self.role == Role::Candidate {
                    self.count_vote(&from, req_term, term, result);
                    if self.round_done() {
                        self.finish_round(now, log, &mut out);
                    }
                }
            }
            Msg::HeartBeat { term } => {
                let (t, c) = self.on_heartbeat(&from, term, now, &mut out);
                self.send(&mut out, &from, Msg::HeartBeatResp { req_term: term, term: t, code: c });
            }
            Msg::HeartBeatResp { req_term, term, code: c } => {
                if self.role == Role::Leader && req_term == self.term {
                    if c == code::SUCCESS {
                        if let Some(p) = self.peers.get_mut(&from) {
                            p.last_ack = now;
                        }
                    } else if c == code::EXPIRED_TERM && term > self.term {
                        self.become_candidate(term, now, &mut out);
                    } else if c == code::INCONSISTENT_LEADER {
                        let t = self.term;
                        self.become_candidate(t, now, &mut out);
                    }
                }
            }
            Msg::Push { term, kind, index, entry_term, entry, commit } => {
                let count = i64::from(entry.is_some() || kind == PushType::Compare);
                let (c, end) = self.on_push(&from, term, kind, index, entry_term, entry, commit, log, &mut out);
                let resp =
                    Msg::PushResp { req_term: term, kind, index, count, term: self.term, code: c, end_index: end };
                self.send(&mut out, &from, resp);
            }
            Msg::PushBatch { term, first, entries, commit } => {
                let count = entries.len() as i64;
                let (c, end) = self.on_push_batch(&from, term, first, entries, commit, log, &mut out);
                let resp = Msg::PushResp {
                    req_term: term,
                    kind: PushType::Append,
                    index: first,
                    count,
                    term: self.term,
                    code: c,
                    end_index: end,
                };
                self.send(&mut out, &from, resp);
            }
            Msg::PushResp { req_term, kind, index, count, term, code: c, end_index } => {
                if self.role == Role::Leader {
                    if term > self.term {
                        self.become_candidate(term, now, &mut out);
                    } else if req_term == self.term {
                        // The last index the request carried (DLedger: `index + count - 1`).
                        let last = index + count.max(1) - 1;
                        self.on_push_resp(&from, kind, index, last, c, end_index, now, log);
                        self.maintain_leader(now, log, &mut out);
                    }
                }
            }
            Msg::TakeLeadership { term, ledger_index: _ } => {
                let c = if term != self.term {
                    code::INCONSISTENT_TERM
                } else {
                    self.take_leadership_term = term + 1;
                    self.become_candidate(term + 1, now, &mut out);
                    // Move to the new term and ask at once.
                    self.need_increase = false;
                    self.term = term + 1;
                    self.known_max_term = self.term;
                    self.vote_for = None;
                    self.parse = Parse::WaitToRevote;
                    self.round = None;
                    self.next_vote_at = now;
                    self.persist(&mut out);
                    self.role_changed(&mut out);
                    code::SUCCESS
                };
                self.send(&mut out, &from, Msg::TakeLeadershipResp { req_term: term, code: c });
            }
            Msg::TakeLeadershipResp { req_term, code: c } => {
                if req_term == self.term && c != code::SUCCESS {
                    self.transferee = None;
                }
            }
        }
        out
    }

    fn on_heartbeat<E>(&mut self, from: &str, term: i64, now: u64, out: &mut Vec<Action<E>>) -> (i64, i32) {
        if term < self.term {
            return (self.term, code::EXPIRED_TERM);
        }
        if term > self.term {
            self.become_candidate(term, now, out);
            return (self.term, code::TERM_NOT_READY);
        }
        match self.leader.as_deref() {
            None => {
                self.become_follower(from, now, out);
                (self.term, code::SUCCESS)
            }
            Some(l) if l == from => {
                self.last_leader_contact = now;
                (self.term, code::SUCCESS)
            }
            Some(_) => (self.term, code::INCONSISTENT_LEADER),
        }
    }

    /// The checks every PUSH passes first; `Err` is the answer of a push to refuse. Raises
    /// `verified` to what is known to match.
    fn push_prelude<E, L: LogView<E>>(&mut self, from: &str, term: i64, log: &L) -> Result<i64, (i32, i64)> {
        let end = log.last_index();
        if term != self.term {
            return Err((code::INCONSISTENT_TERM, end));
        }
        if self.role != Role::Follower {
            return Err((code::NOT_FOLLOWER, end));
        }
        if self.leader.as_deref() != Some(from) {
            return Err((code::INCONSISTENT_LEADER, end));
        }
        // Entries of the current term come only from this term's leader, which never rewrites its
        // own log, and each was appended after its predecessor was verified: a log ending in this
        // term matches the leader's up to its end. Never drop them, even for a stale TRUNCATE
        // (delayed or duplicated) that predates appends already acknowledged.
        if log.last_term() == self.term && end > self.verified {
            self.verified = end;
        }
        // Committed entries are in every later leader's log at the same places (leader
        // completeness): they match too, and nothing at or below the commit index is ever dropped.
        if self.commit.min(end) > self.verified {
            self.verified = self.commit.min(end);
        }
        Ok(end)
    }

    /// APPEND of one entry (alone or within a batch); `end` and `last_term` are the log's end as
    /// it is after the actions already pushed to `out`.
    #[allow(clippy::too_many_arguments)]
    fn append_one<E, L: LogView<E>>(
        &mut self,
        index: i64,
        entry_term: i64,
        entry: Option<E>,
        end: &mut i64,
        last_term: &mut i64,
        log: &L,
        out: &mut Vec<Action<E>>,
    ) -> i32 {
        if index <= self.verified
            && index <= *end
            && (self.term_of(index, *end, *last_term, log) == Some(entry_term) || self.deleted_committed(index, log))
        {
            code::SUCCESS
        } else if index == *end + 1 && self.verified == index - 1 && entry_term >= *last_term {
            match entry {
                Some(e) => {
                    out.push(Action::Append { index, term: entry_term, entry: e });
                    self.verified = index;
                    *end = index;
                    *last_term = entry_term;
                    code::SUCCESS
                }
                None => code::UNEXPECTED_ARGUMENT,
            }
        } else {
            code::INCONSISTENT_STATE
        }
    }

    /// The term at `index` of the log as it is after this call's pending appends (entries past
    /// the log view's end were appended by this call; only the last one's term is asked).
    fn term_of<E, L: LogView<E>>(&self, index: i64, end: i64, last_term: i64, log: &L) -> Option<i64> {
        if index > log.last_index() {
            (index == end).then_some(last_term)
        } else {
            log.term_at(index)
        }
    }

    /// Whether `index` lies below this log's begin index (its file was deleted) and was committed
    /// here: it matches the leader's entry there (leader completeness), though its term is gone.
    fn deleted_committed<E, L: LogView<E>>(&self, index: i64, log: &L) -> bool {
        index >= 0 && index < log.begin_index() && index <= self.commit
    }

    /// Raises the commit index to what the leader committed, up to the last verified entry.
    fn follow_commit<E>(&mut self, commit: i64, out: &mut Vec<Action<E>>) {
        let upto = commit.min(self.verified);
        if upto > self.commit {
            self.commit = upto;
            out.push(Action::Commit { index: upto });
        }
    }

    /// A batch APPEND: each entry as a single APPEND, in order, stopping at the first that does not
    /// fit (the entries before it stay: each was appended after its verified predecessor). The
    /// answer is SUCCESS only if every entry is on the log, as DLedger's follower answers a batch.
    #[allow(clippy::too_many_arguments)]
    fn on_push_batch<E: Clone, L: LogView<E>>(
        &mut self,
        from: &str,
        term: i64,
        first: i64,
        entries: Vec<(i64, E)>,
        commit: i64,
        log: &L,
        out: &mut Vec<Action<E>>,
    ) -> (i32, i64) {
        let mut end = match self.push_prelude(from, term, log) {
            Ok(end) => end,
            Err(r) => return r,
        };
        let mut last_term = log.last_term();
        let mut c = if entries.is_empty() { code::UNEXPECTED_ARGUMENT } else { code::SUCCESS };
        for (k, (t, e)) in entries.into_iter().enumerate() {
            c = self.append_one(first + k as i64, t, Some(e), &mut end, &mut last_term, log, out);
            if c != code::SUCCESS {
                break;
            }
        }
        self.follow_commit(commit, out);
        (c, end)
    }

    #[allow(clippy::too_many_arguments)]
    fn on_push<E: Clone, L: LogView<E>>(
        &mut self,
        from: &str,
        term: i64,
        kind: PushType,
        index: i64,
        entry_term: i64,
        entry: Option<E>,
        commit: i64,
        log: &L,
        out: &mut Vec<Action<E>>,
    ) -> (i32, i64) {
        let mut end = match self.push_prelude(from, term, log) {
            Ok(end) => end,
            Err(r) => return r,
        };
        let c = match kind {
            PushType::Append => {
                let mut last_term = log.last_term();
                self.append_one(index, entry_term, entry, &mut end, &mut last_term, log, out)
            }
            PushType::Compare => {
                if index >= 0 && (log.term_at(index) == Some(entry_term) || self.deleted_committed(index, log)) {
                    self.verified = self.verified.max(index);
                    code::SUCCESS
                } else {
                    code::INCONSISTENT_STATE
                }
            }
            PushType::Truncate => {
                if index <= self.verified {
                    // A repeated TRUNCATE: keep what was verified, drop only what was not.
                    if end > self.verified {
                        out.push(Action::Truncate { from: self.verified + 1 });
                        end = self.verified;
                    }
                    code::SUCCESS
                } else if index >= 0 && log.term_at(index) == Some(entry_term) {
                    if end > index {
                        out.push(Action::Truncate { from: index + 1 });
                        end = index;
                    }
                    self.verified = index;
                    code::SUCCESS
                } else if index >= log.begin_index().max(0)
                    && (index == 0 || (index - 1 <= self.verified && index <= end + 1))
                {
                    match entry {
                        Some(e) if index > self.commit => {
                            if end >= index {
                                out.push(Action::Truncate { from: index });
                            }
                            out.push(Action::Append { index, term: entry_term, entry: e });
                            self.verified = index;
                            end = index;
                            code::SUCCESS
                        }
                        Some(_) => code::INCONSISTENT_STATE,
                        None => code::UNEXPECTED_ARGUMENT,
                    }
                } else if index > 0 && index > self.commit && commit >= index - 1 {
                    // The leader's commit covers every entry before `index` and this log cannot
                    // reach `index` by itself (it ends before `index - 1`, or what it holds there
                    // is unverified, or `index` lies below its own begin): the leader sends a
                    // TRUNCATE there only at its begin index, after deleting what came before.
                    // Start over at `index`, as DLedger's follower does; what is dropped is
                    // committed (the group has it) or was never committed.
                    match entry {
                        Some(e) => {
                            out.push(Action::Reset { index, term: entry_term, entry: e });
                            self.verified = index;
                            end = index;
                            code::SUCCESS
                        }
                        None => code::UNEXPECTED_ARGUMENT,
                    }
                } else {
                    code::INCONSISTENT_STATE
                }
            }
            PushType::Commit => code::SUCCESS,
        };
        self.follow_commit(commit, out);
        (c, end)
    }

    #[allow(clippy::too_many_arguments)]
    fn on_push_resp<E, L: LogView<E>>(
        &mut self,
        from: &str,
        kind: PushType,
        index: i64,
        last_sent: i64,
        c: i32,
        end_index: i64,
        now: u64,
        log: &L,
    ) {
        let begin = log.begin_index().max(0);
        let last = log.last_index();
        let push_timeout = self.cfg.push_timeout_ms;
        let Some(p) = self.peers.get_mut(from) else { return };
        if c == code::SUCCESS {
            p.last_ack = now;
        }
        // The follower's log ends at `end_index`: what it acknowledged past that is gone. It may
        // drop entries of older terms it had acknowledged (not committed, not of this term): after
        // it stood as candidate and followed again in the same term it has forgotten what it
        // verified, and a TRUNCATE then cuts its log after a matching entry. Without this the
        // leader resumed after `matched`, the follower refused every push there, COMPARE found it
        // at its end, and the leader went back to `matched + 1`: a livelock, found by the property
        // test (`raft_safety_three_nodes`, "did not converge after healing").
        if (c == code::SUCCESS || c == code::INCONSISTENT_STATE) && end_index < p.matched {
            p.matched = end_index;
        }
        match (kind, c == code::SUCCESS) {
            (PushType::Commit, _) => {}
            (PushType::Append, true) => {
                if last_sent > p.matched {
                    p.matched = last_sent;
                }
                if p.mode == Mode::Append && p.matched + 1 >= p.next {
                    p.sent_at = 0;
                }
            }
            (PushType::Append, false) if p.mode == Mode::Append && last_sent > p.matched => {
                p.mode = Mode::Compare;
                p.probe = end_index.min(last).min(p.next - 1);
                p.sent_at = 0;
                if c != code::INCONSISTENT_STATE {
                    p.retry_at = now + push_timeout;
                }
            }
            (PushType::Compare, true) if p.mode == Mode::Compare && index == p.probe => {
                p.matched = p.matched.max(index);
                if end_index > index {
                    p.mode = Mode::Truncate;
                } else {
                    p.mode = Mode::Append;
                    p.next = index + 1;
                }
                p.sent_at = 0;
            }
            (PushType::Compare, false) if p.mode == Mode::Compare && index == p.probe => {
                if c == code::INCONSISTENT_STATE {
                    p.probe = (index - 1).min(end_index);
                    if p.probe < begin {
                        p.probe = begin;
                        p.mode = Mode::Truncate;
                    }
                } else {
                    p.retry_at = now + push_timeout;
                }
                p.sent_at = 0;
            }
            (PushType::Truncate, true) if p.mode == Mode::Truncate && index == p.probe => {
                p.matched = p.matched.max(index);
                p.mode = Mode::Append;
                p.next = index + 1;
                p.sent_at = 0;
            }
            (PushType::Truncate, false) if p.mode == Mode::Truncate && index == p.probe => {
                p.mode = Mode::Compare;
                p.probe = (index - 1).min(end_index).max(begin);
                p.sent_at = 0;
                if c != code::INCONSISTENT_STATE {
                    p.retry_at = now + push_timeout;
                }
            }
            _ => {}
        }
    }

    /// The owner appended to the leader's log: replicate it.
    pub fn on_local_append<E, L: LogView<E>>(&mut self, now: u64, log: &L) -> Vec<Action<E>> {
        let mut out = Vec::new();
        if self.role == Role::Leader {
            self.maintain_leader(now, log, &mut out);
        }
        out
    }

    fn maintain_leader<E, L: LogView<E>>(&mut self, now: u64, log: &L, out: &mut Vec<Action<E>>) {
        if self.role != Role::Leader {
            return;
        }
        // Fencing: without a majority answering recently we are not the leader any more.
        let timeout = self.cfg.election_timeout_ms();
        let fresh = 1 + self.peers.values().filter(|p| now.saturating_sub(p.last_ack) <= timeout).count();
        if fresh < self.quorum() {
            let t = self.term;
            self.become_candidate(t, now, out);
            return;
        }
        if self.last_heartbeat == 0 || now.saturating_sub(self.last_heartbeat) >= self.cfg.heartbeat_ms {
            self.last_heartbeat = now.max(1);
            let term = self.term;
            for p in self.peers.keys() {
                self.send(out, p, Msg::HeartBeat { term });
            }
        }
        self.advance_commit(log, out);
        self.pump(now, log, out);
        self.maybe_transfer(now, log, out);
    }

    fn advance_commit<E, L: LogView<E>>(&mut self, log: &L, out: &mut Vec<Action<E>>) {
        let mut m: Vec<i64> = self.peers.values().map(|p| p.matched).collect();
        m.push(log.last_index());
        m.sort_unstable_by(|a, b| b.cmp(a));
        let q = m[self.quorum() - 1];
        if q > self.commit && log.term_at(q) == Some(self.term) {
            self.commit = q;
            out.push(Action::Commit { index: q });
        }
    }

    fn pump<E, L: LogView<E>>(&mut self, now: u64, log: &L, out: &mut Vec<Action<E>>) {
        let (term, commit, last) = (self.term, self.commit, log.last_index());
        let begin = log.begin_index().max(0);
        let (timeout, window, hb) = (self.cfg.push_timeout_ms, self.cfg.push_window.max(1), self.cfg.heartbeat_ms);
        let (batch, max_bytes) = (self.cfg.batch_push, self.cfg.max_batch_bytes);
        let me = self.cfg.self_id.clone();
        let mut sends: Vec<(String, Msg<E>)> = Vec::new();
        for (id, p) in self.peers.iter_mut() {
            if now < p.retry_at {
                continue;
            }
            if p.sent_at != 0 && now.saturating_sub(p.sent_at) >= timeout {
                // No answer in time: send again from what is known.
                p.sent_at = 0;
                if p.mode == Mode::Append {
                    p.next = p.matched + 1;
                }
            }
            if p.mode == Mode::Append && p.sent_at == 0 && p.matched + 1 < begin {
                // What this follower needs next was deleted (below the begin index, e.g. while it
                // was down): find where its log ends; a COMPARE below the begin becomes a
                // TRUNCATE at the begin, which restarts its log there.
                p.mode = Mode::Compare;
                p.probe = last;
            }
            match p.mode {
                Mode::Compare | Mode::Truncate => {
                    if last < 0 || p.sent_at != 0 {
                        continue;
                    }
                    if p.probe > last {
                        p.probe = last;
                    }
                    if p.probe < begin {
                        p.probe = begin;
                        p.mode = Mode::Truncate;
                    }
                    let kind = if p.mode == Mode::Compare { PushType::Compare } else { PushType::Truncate };
                    let Some(t) = log.term_at(p.probe) else { continue };
                    let entry = if kind == PushType::Truncate { log.entry(p.probe) } else { None };
                    sends.push((id.clone(), Msg::Push { term, kind, index: p.probe, entry_term: t, entry, commit }));
                    p.sent_at = now.max(1);
                    p.sent_commit = commit;
                }
                Mode::Append => {
                    if p.next <= p.matched {
                        p.next = p.matched + 1;
                    }
                    while p.next <= last && p.next <= p.matched + window {
                        // One entry, or with batch push every pending entry the window allows up to
                        // `maxBatchPushSize` bytes.
                        let first = p.next;
                        let mut entries = Vec::new();
                        let mut bytes = 0u64;
                        while p.next <= last
                            && p.next <= p.matched + window
                            && (entries.is_empty() || (batch && bytes < max_bytes))
                        {
                            let (Some(t), Some(e)) = (log.term_at(p.next), log.entry(p.next)) else { break };
                            bytes += log.entry_size(p.next);
                            entries.push((t, e));
                            p.next += 1;
                        }
                        let msg = match entries.len() {
                            0 => break,
                            1 => {
                                let Some((t, e)) = entries.pop() else { break };
                                let index = first;
                                Msg::Push { term, kind: PushType::Append, index, entry_term: t, entry: Some(e), commit }
                            }
                            _ => Msg::PushBatch { term, first, entries, commit },
                        };
                        sends.push((id.clone(), msg));
                        if p.sent_at == 0 {
                            p.sent_at = now.max(1);
                        }
                        p.sent_commit = commit;
                    }
                    if p.next > last
                        && (p.sent_commit < commit || now.saturating_sub(p.last_commit_push) >= hb)
                        && p.sent_at == 0
                    {
                        sends.push((
                            id.clone(),
                            Msg::Push { term, kind: PushType::Commit, index: -1, entry_term: -1, entry: None, commit },
                        ));
                        p.sent_commit = commit;
                        p.last_commit_push = now;
                    }
                }
            }
        }
        for (to, msg) in sends {
            out.push(Action::Send(Envelope { from: me.clone(), to, msg }));
        }
    }

    fn maybe_transfer<E, L: LogView<E>>(&mut self, now: u64, log: &L, out: &mut Vec<Action<E>>) {
        if let Some((_, deadline)) = &self.transferee {
            if now >= *deadline {
                self.transferee = None;
            }
            return;
        }
        let Some(pref) = self.cfg.preferred_leader.clone() else { return };
        if pref == self.cfg.self_id {
            return;
        }
        let Some(p) = self.peers.get(&pref) else { return };
        let last = log.last_index();
        if p.matched != last || now.saturating_sub(p.last_ack) > self.cfg.heartbeat_ms || self.commit != last {
            return;
        }
        self.transferee = Some((pref.clone(), now + self.cfg.election_timeout_ms()));
        let term = self.term;
        self.send(out, &pref, Msg::TakeLeadership { term, ledger_index: last });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log of `(term, value)` from index 0.
    struct VecLog(Vec<(i64, u64)>);

    impl LogView<u64> for VecLog {
        fn last_index(&self) -> i64 {
            self.0.len() as i64 - 1
        }
        fn last_term(&self) -> i64 {
            self.0.last().map_or(-1, |e| e.0)
        }
        fn begin_index(&self) -> i64 {
            0
        }
        fn term_at(&self, index: i64) -> Option<i64> {
            usize::try_from(index).ok().and_then(|i| self.0.get(i)).map(|e| e.0)
        }
        fn entry(&self, index: i64) -> Option<u64> {
            usize::try_from(index).ok().and_then(|i| self.0.get(i)).map(|e| e.1)
        }
        fn entry_size(&self, _index: i64) -> u64 {
            1
        }
    }

    fn pushes_to(acts: &[Action<u64>], to: &str) -> Vec<Msg<u64>> {
        acts.iter()
            .filter_map(|a| match a {
                Action::Send(e) if e.to == to && matches!(e.msg, Msg::Push { .. } | Msg::PushBatch { .. }) => {
                    Some(e.msg.clone())
                }
                _ => None,
            })
            .collect()
    }

    fn resp(term: i64, kind: PushType, index: i64, code: i32, end_index: i64) -> Envelope<u64> {
        let count = i64::from(kind != PushType::Commit);
        Envelope {
            from: "n1".into(),
            to: "n0".into(),
            msg: Msg::PushResp { req_term: term, kind, index, count, term, code, end_index },
        }
    }

    /// The livelock fix: a follower that refuses a push and reports an end below what the leader
    /// counted as matched (it dropped entries of older terms it had acknowledged: a TRUNCATE after
    /// it stood as candidate and followed again) makes the leader lower `matched` to that end, so
    /// that after COMPARE finds it there the leader pushes from `end + 1`. Without it the leader
    /// went back to its old `matched + 1`, the follower refused again, forever.
    #[test]
    fn leader_lowers_matched_to_a_refusing_followers_end() {
        let peers: Vec<String> = ["n0", "n1", "n2"].iter().map(|s| s.to_string()).collect();
        let mut cfg = CoreConfig::new("n0", &peers);
        cfg.batch_push = false;
        let mut log = VecLog((0..10).map(|i| (1 + i / 5, i as u64)).collect());
        // Term 3 (the log ends in term 2), elected with n1's vote.
        let mut core = Core::new(cfg, 3, None, -1, 0);
        let acts = core.tick(2_000, &log);
        assert!(acts.iter().any(|a| matches!(a, Action::Send(Envelope { msg: Msg::Vote { .. }, .. }))));
        let vote = Envelope {
            from: "n1".into(),
            to: "n0".into(),
            msg: Msg::VoteResp { req_term: 3, term: 3, result: VoteResult::Accept },
        };
        let acts = core.step(2_010, vote, &log);
        assert_eq!(core.role(), Role::Leader);
        assert!(
            pushes_to(&acts, "n1").iter().any(|m| matches!(m, Msg::Push { kind: PushType::Compare, index: 9, .. })),
            "{acts:?}"
        );
        // The leader appends a no-op (an uncommitted tail of an older term).
        assert!(acts.contains(&Action::AppendNoop));
        log.0.push((3, 0));
        core.on_local_append(2_010, &log);
        let last = log.last_index();
        // n1 has the leader's log up to 9: APPEND from 10; it acknowledges 10 (matched = 10).
        let acts = core.step(2_020, resp(3, PushType::Compare, 9, code::SUCCESS, 9), &log);
        assert!(
            pushes_to(&acts, "n1")
                .iter()
                .any(|m| matches!(m, Msg::Push { kind: PushType::Append, index, .. } if *index == last)),
            "{acts:?}"
        );
        core.step(2_030, resp(3, PushType::Append, last, code::SUCCESS, last), &log);
        // Two more entries; n1 meanwhile lost everything after 5 (its end is 5 now): it refuses
        // the APPEND of 11 with INCONSISTENT_STATE and end 5.
        log.0.push((3, 11));
        log.0.push((3, 12));
        let acts = core.on_local_append(2_040, &log);
        assert!(
            pushes_to(&acts, "n1").iter().any(|m| matches!(m, Msg::Push { kind: PushType::Append, index: 11, .. })),
            "{acts:?}"
        );
        let acts = core.step(2_050, resp(3, PushType::Append, 11, code::INCONSISTENT_STATE, 5), &log);
        assert!(
            pushes_to(&acts, "n1").iter().any(|m| matches!(m, Msg::Push { kind: PushType::Compare, index: 5, .. })),
            "COMPARE at the follower's end: {acts:?}"
        );
        // COMPARE at 5 matches: the next APPEND must start at 6, not after the old matched (10).
        let acts = core.step(2_060, resp(3, PushType::Compare, 5, code::SUCCESS, 5), &log);
        let first_append = pushes_to(&acts, "n1").into_iter().find_map(|m| match m {
            Msg::Push { kind: PushType::Append, index, .. } => Some(index),
            Msg::PushBatch { first, .. } => Some(first),
            _ => None,
        });
        assert_eq!(first_append, Some(6), "the leader resumes after the follower's end: {acts:?}");
    }
}
