//! A linearizability checker for the client-observed history of one znode.
//!
//! # Model
//!
//! The checked object is a single znode path; call [`check`] once per path. Its [`State`] is
//! `None` while the node is absent and `Some((data, version))` while it exists. A create
//! succeeds only on an absent node and gives it version 0 (otherwise `NodeExists`). A set or
//! delete fails with `NoNode` on an absent node and with `BadVersion` when its expected
//! version does not match (an expected version of `None`, or `Some(-1)` as on the wire,
//! matches any); a successful set bumps the version by one. A read is a get issued after a
//! sync, so it must observe the linearized state.
//!
//! A history is a list of [`Entry`]s with call and return times. Each completed entry must
//! take effect at one instant between its call and its return, in an order the model accepts
//! with the recorded outcomes. An entry whose call never returned (lost connection, timeout)
//! may take effect at any instant after its call, or never; reads of that kind are dropped.
//! Events at equal times count as overlapping (calls sort before returns).
//!
//! # Algorithm
//!
//! Wing & Gong's backtracking search with Lowe's memoization. The call and return events of
//! completed operations are sorted by time into a doubly linked list. The search places
//! (linearizes) an operation whose call comes before the first remaining return event, if
//! the model accepts its recorded outcome in the current state, unlinks its events and goes
//! on; reaching the first return event means the operation returning there can no longer be
//! placed, so the search undoes its last choice and tries the next candidate. Each node
//! reached (set of placed operations as a bitset, state) is cached; a node already explored
//! without success is not explored again. The history is linearizable once every completed
//! operation is placed; if the search runs out of choices it is not, and the deepest dead end
//! is reported.
//!
//! Refinements, none of which loses a solution:
//!
//! - A candidate completed operation that agrees with the current state without changing it
//!   (a read, a failed write) is placed at once, with no alternatives tried.
//! - Operations of unknown outcome have no return event and need not be placed. They wait in
//!   a pool, are tried after the completed candidates (most recently called first) and only
//!   where they change the state. Since they impose no deadline, a node counts as explored
//!   when one with the same completed operations and state, which had placed a subset of
//!   its unknown-outcome operations, failed (Lowe's cache with dominance).
//! - Data no read returned is merged into one value (nothing else looks at data), and
//!   identical unknown-outcome operations are interchangeable, so only one of them is tried.
//! - A quick first pass never places two unknown-outcome operations back to back, which
//!   keeps stale lost writes from being stacked everywhere; only the full second pass can
//!   report a violation.
//!
//! Checking linearizability is NP-complete in general; [`check_with_budget`] bounds the work.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

/// The state of the checked znode: `None` if absent, else its data and version.
pub type State = Option<(Vec<u8>, i32)>;

/// An operation a client issued on the checked znode.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Op {
    /// Create the znode with `data`; a new znode has version 0.
    Create {
        /// The data the znode is created with.
        data: Vec<u8>,
    },
    /// Replace the znode's data, optionally only if its version matches.
    Set {
        /// The new data.
        data: Vec<u8>,
        /// The version the znode must have; `None` (or `Some(-1)`) matches any.
        expected_version: Option<i32>,
    },
    /// Delete the znode, optionally only if its version matches.
    Delete {
        /// The version the znode must have; `None` (or `Some(-1)`) matches any.
        expected_version: Option<i32>,
    },
    /// A linearizable read (a get issued after a sync) of the data and version.
    Read,
}

/// The result a client observed for an operation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A create or delete succeeded (for a set: it succeeded, new version not recorded).
    Ok,
    /// A set succeeded, reporting the znode's new version if it was recorded.
    SetOk {
        /// The version after the set as the server reported it, if recorded.
        new_version: Option<i32>,
    },
    /// A create failed because the znode existed.
    NodeExists,
    /// A set or delete failed because the znode did not exist.
    NoNode,
    /// A conditional set or delete failed because the version did not match.
    BadVersion,
    /// A read returned this state (`None`: the read failed with `NoNode`).
    Value(State),
}

/// One operation in a client history.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Entry {
    /// The client (or session) that issued the operation; only used in reports.
    pub client: u64,
    /// The operation.
    pub op: Op,
    /// When the call was issued, in nanoseconds of a monotonic clock shared by all clients.
    pub call: u64,
    /// When the response arrived; `None` if it never did (the outcome is unknown).
    pub ret: Option<u64>,
    /// The observed result; `Some` exactly when `ret` is `Some`.
    pub outcome: Option<Outcome>,
}

impl Entry {
    /// A completed operation: called at `call`, returned `outcome` at `ret`.
    pub fn completed(client: u64, op: Op, call: u64, ret: u64, outcome: Outcome) -> Entry {
        Entry {
            client,
            op,
            call,
            ret: Some(ret),
            outcome: Some(outcome),
        }
    }

    /// An operation called at `call` that never returned, so its outcome is unknown.
    pub fn unknown(client: u64, op: Op, call: u64) -> Entry {
        Entry {
            client,
            op,
            call,
            ret: None,
            outcome: None,
        }
    }
}

/// Evidence that a history is not linearizable: how far the search got and what was stuck.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The longest linearizable prefix found, as (history index, entry) in linearization order.
    pub prefix: Vec<(usize, Entry)>,
    /// The znode's state after `prefix`.
    pub state: State,
    /// The history index of the completed operation that returned before it could be placed.
    pub blocked: usize,
    /// The unplaced operations that could have gone next (`blocked` among them); none fit.
    pub candidates: Vec<(usize, Entry)>,
    /// How many completed operations the history has (all of them had to be placed).
    pub completed: usize,
}

/// Why [`check_with_budget`] did not accept a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckError {
    /// The history is not linearizable.
    Violation(Violation),
    /// The search took more than `max_steps` steps without reaching a verdict.
    BudgetExceeded {
        /// The step budget that ran out.
        max_steps: u64,
    },
    /// The history is malformed (say, a return before its call), so it was not checked.
    InvalidHistory {
        /// The index of the offending entry in the history.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// Checks that `history`, starting from `initial`, is linearizable, however long it takes.
///
/// # Panics
///
/// If the history is malformed (see [`CheckError::InvalidHistory`]).
pub fn check(initial: State, history: &[Entry]) -> Result<(), Violation> {
    match check_with_budget(initial, history, u64::MAX) {
        Ok(()) => Ok(()),
        Err(CheckError::Violation(violation)) => Err(violation),
        Err(other) => panic!("lincheck: {other}"),
    }
}

/// Like [`check`], but gives up after `max_steps` search steps and reports bad input as errors.
pub fn check_with_budget(
    initial: State,
    history: &[Entry],
    max_steps: u64,
) -> Result<(), CheckError> {
    for (index, entry) in history.iter().enumerate() {
        validate(entry).map_err(|reason| CheckError::InvalidHistory { index, reason })?;
    }
    let interner = Interner::new(history);
    let ops: Vec<IOp> = history
        .iter()
        .enumerate()
        .filter(|(_, entry)| entry.ret.is_some() || entry.op != Op::Read)
        .map(|(index, entry)| IOp::new(index, entry, &interner))
        .collect();
    let pending = ops.iter().filter(|op| op.out.is_none()).count();
    let mut search = Search::new(interner.state(&initial), &ops, max_steps);
    // A quick pass placing no two unknown-outcome operations back to back, then the full one.
    let passes: &[usize] = if pending > 1 {
        &[1, usize::MAX]
    } else {
        &[usize::MAX]
    };
    for &run_limit in passes {
        match search.run(run_limit) {
            Ok(()) => return Ok(()),
            Err(Fail::Budget) => return Err(CheckError::BudgetExceeded { max_steps }),
            Err(Fail::Violation) => {}
        }
    }
    let dead = search
        .deepest
        .take()
        .expect("a failed search always records a dead end");
    let at = |i: usize| (ops[i].index, history[ops[i].index].clone());
    let prefix: Vec<(usize, Entry)> = dead.prefix.into_iter().map(at).collect();
    // Replayed on the real data (the search merges data no read returned).
    let state = prefix
        .iter()
        .fold(initial, |state, (_, entry)| model(&state, &entry.op).1);
    Err(CheckError::Violation(Violation {
        prefix,
        state,
        blocked: ops[dead.blocked].index,
        candidates: dead.candidates.into_iter().map(at).collect(),
        completed: ops.iter().filter(|op| op.out.is_some()).count(),
    }))
}

/// Rejects entries the checker cannot interpret.
fn validate(entry: &Entry) -> Result<(), String> {
    let outcome = match (entry.ret, &entry.outcome) {
        (None, None) => return Ok(()),
        (Some(_), None) => return Err("it has a return time but no outcome".into()),
        (None, Some(_)) => return Err("it has an outcome but no return time".into()),
        (Some(ret), Some(_)) if ret < entry.call => {
            return Err(format!(
                "it returns at {ret}, before its call at {}",
                entry.call
            ));
        }
        (Some(_), Some(outcome)) => outcome,
    };
    let fits = matches!(
        (&entry.op, outcome),
        (Op::Create { .. }, Outcome::Ok | Outcome::NodeExists)
            | (
                Op::Set { .. },
                Outcome::Ok | Outcome::SetOk { .. } | Outcome::NoNode | Outcome::BadVersion
            )
            | (
                Op::Delete { .. },
                Outcome::Ok | Outcome::NoNode | Outcome::BadVersion
            )
            | (Op::Read, Outcome::Value(_))
    );
    if fits {
        Ok(())
    } else {
        Err(format!("{} cannot return {}", entry.op, outcome))
    }
}

// ---------------------------------------------------------------------------------------------
// The sequential model, shared by the search (on interned data) and the reports.

/// An operation with its data left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Shape {
    Create,
    Set(Option<i32>),
    Delete(Option<i32>),
    Read,
}

/// What the model answers, with data left out (a read answers the current state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Ok,
    SetOk(i32),
    NodeExists,
    NoNode,
    BadVersion,
    Value,
}

/// How the model changes the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Keep,
    Remove,
    /// Store the operation's data with this version.
    Write(i32),
}

fn shape(op: &Op) -> Shape {
    match op {
        Op::Create { .. } => Shape::Create,
        Op::Set {
            expected_version, ..
        } => Shape::Set(*expected_version),
        Op::Delete { expected_version } => Shape::Delete(*expected_version),
        Op::Read => Shape::Read,
    }
}

fn version_matches(expected: Option<i32>, actual: i32) -> bool {
    match expected {
        None | Some(-1) => true,
        Some(expected) => expected == actual,
    }
}

/// The sequential specification, given the znode's version (`None`: absent).
fn decide(version: Option<i32>, shape: Shape) -> (Answer, Effect) {
    match (shape, version) {
        (Shape::Create, None) => (Answer::Ok, Effect::Write(0)),
        (Shape::Create, Some(_)) => (Answer::NodeExists, Effect::Keep),
        (Shape::Set(_) | Shape::Delete(_), None) => (Answer::NoNode, Effect::Keep),
        (Shape::Set(expected), Some(v)) if version_matches(expected, v) => {
            let next = v.wrapping_add(1);
            (Answer::SetOk(next), Effect::Write(next))
        }
        (Shape::Delete(expected), Some(v)) if version_matches(expected, v) => {
            (Answer::Ok, Effect::Remove)
        }
        (Shape::Set(_) | Shape::Delete(_), Some(_)) => (Answer::BadVersion, Effect::Keep),
        (Shape::Read, _) => (Answer::Value, Effect::Keep),
    }
}

/// The model on public types: what `op` returns in `state`, and the state after it.
fn model(state: &State, op: &Op) -> (Outcome, State) {
    let (answer, effect) = decide(state.as_ref().map(|(_, v)| *v), shape(op));
    let outcome = match answer {
        Answer::Ok => Outcome::Ok,
        Answer::SetOk(v) => Outcome::SetOk {
            new_version: Some(v),
        },
        Answer::NodeExists => Outcome::NodeExists,
        Answer::NoNode => Outcome::NoNode,
        Answer::BadVersion => Outcome::BadVersion,
        Answer::Value => Outcome::Value(state.clone()),
    };
    let after = match (effect, op) {
        (Effect::Keep, _) => state.clone(),
        (Effect::Remove, _) => None,
        (Effect::Write(v), Op::Create { data } | Op::Set { data, .. }) => Some((data.clone(), v)),
        (Effect::Write(_), _) => unreachable!("only creates and sets write"),
    };
    (outcome, after)
}

/// Whether a recorded outcome is the one the model gives (allowing unrecorded versions).
fn agrees(recorded: &Outcome, model: &Outcome) -> bool {
    match (recorded, model) {
        (Outcome::Ok | Outcome::SetOk { new_version: None }, Outcome::SetOk { .. }) => true,
        _ => recorded == model,
    }
}

// ---------------------------------------------------------------------------------------------
// Interned form used by the search: data becomes small ids, so states are `Copy`. Each value
// some read returned gets its own id; all other values share `UNREAD`, as no outcome can tell
// them apart (only reads look at data). That makes unread writes interchangeable, which the
// search exploits for unknown-outcome writes.

type IState = Option<(u32, i32)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IOut {
    Ok,
    SetOk(Option<i32>),
    NodeExists,
    NoNode,
    BadVersion,
    Value(IState),
}

/// The id shared by all data no read returned.
const UNREAD: u32 = u32::MAX;

struct Interner<'h> {
    ids: HashMap<&'h [u8], u32>,
}

impl<'h> Interner<'h> {
    fn new(history: &'h [Entry]) -> Interner<'h> {
        let mut ids = HashMap::new();
        for entry in history {
            if let Some(Outcome::Value(Some((data, _)))) = &entry.outcome {
                let next = u32::try_from(ids.len()).expect("fewer than 2^32 values read");
                ids.entry(&data[..]).or_insert(next);
            }
        }
        Interner { ids }
    }

    fn id(&self, data: &[u8]) -> u32 {
        self.ids.get(data).copied().unwrap_or(UNREAD)
    }

    fn state(&self, state: &State) -> IState {
        state.as_ref().map(|(data, v)| (self.id(data), *v))
    }
}

/// A history entry in the search's form.
struct IOp {
    /// Index in the caller's history.
    index: usize,
    shape: Shape,
    /// The interned data written by a create or set (0 otherwise).
    data: u32,
    /// The recorded outcome; `None` if unknown.
    out: Option<IOut>,
    call: u64,
    ret: Option<u64>,
}

impl IOp {
    fn new(index: usize, entry: &Entry, interner: &Interner) -> IOp {
        let data = match &entry.op {
            Op::Create { data } | Op::Set { data, .. } => interner.id(data),
            Op::Delete { .. } | Op::Read => 0,
        };
        let out = entry.outcome.as_ref().map(|outcome| match outcome {
            Outcome::Ok => IOut::Ok,
            Outcome::SetOk { new_version } => IOut::SetOk(*new_version),
            Outcome::NodeExists => IOut::NodeExists,
            Outcome::NoNode => IOut::NoNode,
            Outcome::BadVersion => IOut::BadVersion,
            Outcome::Value(state) => IOut::Value(interner.state(state)),
        });
        IOp {
            index,
            shape: shape(&entry.op),
            data,
            out,
            call: entry.call,
            ret: entry.ret,
        }
    }
}

/// Applies `op` in `state`: the next state, or `None` if its recorded outcome disagrees.
fn step(state: IState, op: &IOp) -> Option<IState> {
    let (answer, effect) = decide(state.map(|(_, v)| v), op.shape);
    let fits = match (op.out, answer) {
        (None, _) => true,
        (Some(IOut::Ok), Answer::Ok | Answer::SetOk(_)) => true,
        (Some(IOut::SetOk(reported)), Answer::SetOk(v)) => reported.unwrap_or(v) == v,
        (Some(IOut::NodeExists), Answer::NodeExists) => true,
        (Some(IOut::NoNode), Answer::NoNode) => true,
        (Some(IOut::BadVersion), Answer::BadVersion) => true,
        (Some(IOut::Value(seen)), Answer::Value) => seen == state,
        (Some(_), _) => false,
    };
    if !fits {
        return None;
    }
    Some(match effect {
        Effect::Keep => state,
        Effect::Remove => None,
        Effect::Write(v) => Some((op.data, v)),
    })
}

// ---------------------------------------------------------------------------------------------
// The search.

const NIL: usize = usize::MAX;
const HEAD: usize = 0;

/// A doubly linked list over nodes `1..`, with node 0 as its head; removed nodes keep their
/// links, so removals undone in reverse order restore the list exactly.
struct Links {
    next: Vec<usize>,
    prev: Vec<usize>,
}

impl Links {
    fn new(nodes: usize) -> Links {
        let len = nodes + 1;
        Links {
            next: (1..=len).map(|k| if k < len { k } else { NIL }).collect(),
            prev: (0..len).map(|k| k.wrapping_sub(1)).collect(),
        }
    }

    fn remove(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = next;
        if next != NIL {
            self.prev[next] = prev;
        }
    }

    fn restore(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = node;
        if next != NIL {
            self.prev[next] = node;
        }
    }
}

/// Where the candidate scan stands: in the event list or in the unknown-outcome pool.
#[derive(Debug, Clone, Copy)]
enum Cursor {
    Events(usize),
    Pool(usize),
}

/// One placed operation on the search stack.
struct Frame {
    op: usize,
    /// The node it led to, in `Search::visits`.
    visit: usize,
    before: IState,
    run_before: usize,
    /// Placed without alternatives, so backtracking passes straight through it.
    forced: bool,
}

/// The deepest point where the search got stuck, in search indices.
struct DeadEnd {
    /// Completed operations placed, and the reverse of unknown-outcome ones: higher is deeper.
    depth: (usize, Reverse<usize>),
    prefix: Vec<usize>,
    blocked: usize,
    candidates: Vec<usize>,
}

enum Fail {
    Budget,
    Violation,
}

/// A cheap hasher for the cache keys (bitsets); the input is not adversarial.
#[derive(Default)]
struct MixHasher(u64);

impl MixHasher {
    fn mix(&mut self, word: u64) {
        self.0 = (self.0 ^ word)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29);
    }
}

impl Hasher for MixHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.mix(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }

    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
        z = (z ^ (z >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        z ^ (z >> 33)
    }
}

/// A search node: the placed completed operations and the state are its cache key (see
/// `Search::cache`); the rest is kept here.
struct Visit {
    /// The placed unknown-outcome operations, as a bitset.
    pending: Box<[u64]>,
    /// The run length of unknown-outcome operations it ends with (0 if runs are unlimited).
    run: usize,
    /// Fully explored without success.
    done: bool,
}

/// Whether bitset `a` is a subset of bitset `b`.
fn subset(a: &[u64], b: &[u64]) -> bool {
    a.iter().zip(b).all(|(a, b)| a & !b == 0)
}

struct Search<'a> {
    ops: &'a [IOp],
    /// Call and return events of the completed operations, by time.
    events: Links,
    event_op: Vec<usize>,
    event_is_call: Vec<bool>,
    event_time: Vec<u64>,
    call_event: Vec<usize>,
    ret_event: Vec<usize>,
    /// The unknown-outcome operations, latest call first.
    pool: Links,
    pool_op: Vec<usize>,
    pool_node: Vec<usize>,
    /// For an unknown-outcome operation, the next later-called one identical to it (`NIL` if
    /// none). Identical ones are interchangeable, so only the latest-called available one of
    /// them is ever tried.
    later_twin: Vec<usize>,
    initial: IState,
    state: IState,
    /// Each operation's bit in `placed_completed` or `placed_pending`.
    slot: Vec<usize>,
    placed_completed: Vec<u64>,
    placed_pending: Vec<u64>,
    /// Completed operations not yet placed.
    unplaced: usize,
    /// Unknown-outcome operations placed since the last completed one.
    run: usize,
    run_limit: usize,
    stack: Vec<Frame>,
    /// Lowe's cache, extended with dominance: nodes by (placed completed operations, state),
    /// as indices into `visits`. A node is skipped if a done node with the same key placed a
    /// subset of its unknown-outcome operations (and, in a limited pass, ended with a run no
    /// longer): every continuation of the new node is open to the done one, which had none.
    cache: HashMap<Box<[u64]>, Vec<usize>, BuildHasherDefault<MixHasher>>,
    visits: Vec<Visit>,
    /// Scratch space for cache keys.
    key: Vec<u64>,
    steps: u64,
    max_steps: u64,
    deepest: Option<DeadEnd>,
}

impl<'a> Search<'a> {
    fn new(initial: IState, ops: &'a [IOp], max_steps: u64) -> Search<'a> {
        let mut order: Vec<(u64, bool, usize)> = Vec::new();
        let mut pool_order: Vec<(u64, usize)> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            match op.ret {
                // `false` sorts first: at equal times calls come before returns.
                Some(ret) => order.extend([(op.call, false, i), (ret, true, i)]),
                None => pool_order.push((op.call, i)),
            }
        }
        order.sort_unstable();
        pool_order.sort_unstable_by(|a, b| b.cmp(a));

        let mut event_op = vec![NIL; order.len() + 1];
        let mut event_is_call = vec![false; order.len() + 1];
        let mut event_time = vec![0; order.len() + 1];
        let mut call_event = vec![NIL; ops.len()];
        let mut ret_event = vec![NIL; ops.len()];
        for (k, &(time, is_ret, i)) in order.iter().enumerate() {
            let node = k + 1;
            event_op[node] = i;
            event_is_call[node] = !is_ret;
            event_time[node] = time;
            if is_ret {
                ret_event[i] = node;
            } else {
                call_event[i] = node;
            }
        }
        let mut pool_op = vec![NIL; pool_order.len() + 1];
        let mut pool_node = vec![NIL; ops.len()];
        let mut later_twin = vec![NIL; ops.len()];
        let mut latest = HashMap::new();
        let mut slot = vec![NIL; ops.len()];
        let mut completed = 0;
        for (i, op) in ops.iter().enumerate() {
            if op.ret.is_some() {
                slot[i] = completed;
                completed += 1;
            }
        }
        for (k, &(_, i)) in pool_order.iter().enumerate() {
            slot[i] = k;
            pool_op[k + 1] = i;
            pool_node[i] = k + 1;
            if let Some(twin) = latest.insert((ops[i].shape, ops[i].data), i) {
                later_twin[i] = twin;
            }
        }
        Search {
            ops,
            events: Links::new(order.len()),
            event_op,
            event_is_call,
            event_time,
            call_event,
            ret_event,
            pool: Links::new(pool_order.len()),
            pool_op,
            pool_node,
            later_twin,
            initial,
            state: initial,
            slot,
            placed_completed: vec![0; completed.div_ceil(64)],
            placed_pending: vec![0; pool_order.len().div_ceil(64)],
            unplaced: completed,
            run: 0,
            run_limit: usize::MAX,
            stack: Vec::new(),
            cache: HashMap::default(),
            visits: Vec::new(),
            key: Vec::new(),
            steps: 0,
            max_steps,
            deepest: None,
        }
    }

    /// Runs one full search allowing at most `run_limit` unknown-outcome operations in a row.
    fn run(&mut self, run_limit: usize) -> Result<(), Fail> {
        debug_assert!(self.stack.is_empty() && self.state == self.initial);
        self.run_limit = run_limit;
        self.cache.clear();
        self.visits.clear();
        self.deepest = None;
        let mut cursor = Cursor::Events(HEAD);
        let mut deadline = u64::MAX;
        let mut fresh = true;
        loop {
            if self.unplaced == 0 {
                return Ok(());
            }
            if fresh {
                fresh = false;
                if let Some(i) = self.find_forced()? {
                    if self.descend(i, self.state, true) {
                        fresh = true;
                    } else {
                        // Equivalent to a node already explored, which failed.
                        cursor = self.backtrack()?;
                        deadline = self.deadline_for(cursor);
                    }
                    continue;
                }
                cursor = Cursor::Events(self.events.next[HEAD]);
            }
            self.tick()?;
            match cursor {
                Cursor::Events(node) if node != NIL && self.event_is_call[node] => {
                    let i = self.event_op[node];
                    if let Some(after) = step(self.state, &self.ops[i]) {
                        if self.descend(i, after, false) {
                            fresh = true;
                            continue;
                        }
                    }
                    cursor = Cursor::Events(self.events.next[node]);
                }
                Cursor::Events(node) => {
                    deadline = if node == NIL {
                        u64::MAX
                    } else {
                        self.event_time[node]
                    };
                    cursor = Cursor::Pool(if self.run < self.run_limit {
                        self.pool.next[HEAD]
                    } else {
                        NIL
                    });
                }
                Cursor::Pool(NIL) => {
                    self.record_dead_end();
                    cursor = self.backtrack()?;
                    deadline = self.deadline_for(cursor);
                }
                Cursor::Pool(node) => {
                    let i = self.pool_op[node];
                    if self.available(i, deadline) {
                        match step(self.state, &self.ops[i]) {
                            Some(after) if after != self.state && self.descend(i, after, false) => {
                                fresh = true;
                                continue;
                            }
                            _ => {}
                        }
                    }
                    cursor = Cursor::Pool(self.pool.next[node]);
                }
            }
        }
    }

    /// Whether unknown-outcome operation `i` may be tried before time `deadline`: it was
    /// called by then and no identical later-called one (also called by then) is unplaced.
    fn available(&self, i: usize, deadline: u64) -> bool {
        if self.ops[i].call > deadline {
            return false;
        }
        let mut twin = self.later_twin[i];
        while twin != NIL && self.ops[twin].call <= deadline {
            if !self.is_placed(twin) {
                return false;
            }
            twin = self.later_twin[twin];
        }
        true
    }

    fn placed_pending_count(&self) -> usize {
        self.placed_pending
            .iter()
            .map(|word| word.count_ones() as usize)
            .sum()
    }

    fn is_placed(&self, i: usize) -> bool {
        let bits = match self.ops[i].ret {
            Some(_) => &self.placed_completed,
            None => &self.placed_pending,
        };
        bits[self.slot[i] / 64] & (1u64 << (self.slot[i] % 64)) != 0
    }

    /// Marks operation `i` placed if it was not, and unplaced if it was.
    fn flip(&mut self, i: usize) {
        let slot = self.slot[i];
        let bits = match self.ops[i].ret {
            Some(_) => &mut self.placed_completed,
            None => &mut self.placed_pending,
        };
        bits[slot / 64] ^= 1u64 << (slot % 64);
    }

    fn tick(&mut self) -> Result<(), Fail> {
        self.steps += 1;
        if self.steps > self.max_steps {
            Err(Fail::Budget)
        } else {
            Ok(())
        }
    }

    /// A candidate completed operation that agrees with the state and leaves it unchanged.
    fn find_forced(&mut self) -> Result<Option<usize>, Fail> {
        let mut node = self.events.next[HEAD];
        while node != NIL && self.event_is_call[node] {
            self.tick()?;
            let i = self.event_op[node];
            if step(self.state, &self.ops[i]) == Some(self.state) {
                return Ok(Some(i));
            }
            node = self.events.next[node];
        }
        Ok(None)
    }

    /// Places operation `i`, leading to state `after`, unless the cache rules that node out.
    fn descend(&mut self, i: usize, after: IState, forced: bool) -> bool {
        let completed = self.ops[i].ret.is_some();
        let run = if completed { 0 } else { self.run + 1 };
        // Without a limit the run length does not matter; with one, a shorter run dominates.
        let key_run = if self.run_limit == usize::MAX { 0 } else { run };
        self.flip(i);
        self.key.clear();
        self.key.extend_from_slice(&self.placed_completed);
        self.key.extend(match after {
            None => [0, 0],
            Some((id, version)) => [1, u64::from(id) << 32 | u64::from(version as u32)],
        });
        let visit = self.visits.len();
        let (visits, pending) = (&self.visits, &self.placed_pending);
        let dominated = match self.cache.get_mut(&self.key[..]) {
            Some(list) => {
                let dominated = list.iter().any(|&v| {
                    let old = &visits[v];
                    old.done && old.run <= key_run && subset(&old.pending, pending)
                });
                if !dominated {
                    list.push(visit);
                }
                dominated
            }
            None => {
                self.cache
                    .insert(self.key.clone().into_boxed_slice(), vec![visit]);
                false
            }
        };
        if dominated {
            self.flip(i);
            return false;
        }
        self.visits.push(Visit {
            pending: self.placed_pending.clone().into_boxed_slice(),
            run: key_run,
            done: false,
        });
        self.stack.push(Frame {
            op: i,
            visit,
            before: self.state,
            run_before: self.run,
            forced,
        });
        self.state = after;
        self.run = run;
        if completed {
            self.events.remove(self.call_event[i]);
            self.events.remove(self.ret_event[i]);
            self.unplaced -= 1;
        } else {
            self.pool.remove(self.pool_node[i]);
        }
        true
    }

    /// Undoes placements up to the latest one with alternatives left; returns where to resume.
    fn backtrack(&mut self) -> Result<Cursor, Fail> {
        while let Some(frame) = self.stack.pop() {
            let i = frame.op;
            self.visits[frame.visit].done = true;
            self.state = frame.before;
            self.run = frame.run_before;
            self.flip(i);
            let cursor = if self.ops[i].ret.is_some() {
                self.events.restore(self.ret_event[i]);
                self.events.restore(self.call_event[i]);
                self.unplaced += 1;
                Cursor::Events(self.events.next[self.call_event[i]])
            } else {
                self.pool.restore(self.pool_node[i]);
                Cursor::Pool(self.pool.next[self.pool_node[i]])
            };
            if !frame.forced {
                return Ok(cursor);
            }
        }
        Err(Fail::Violation)
    }

    /// The first remaining return event (`NIL` if none).
    fn first_return(&self) -> usize {
        let mut node = self.events.next[HEAD];
        while node != NIL && self.event_is_call[node] {
            node = self.events.next[node];
        }
        node
    }

    /// The latest call time a pool candidate may have when scanning resumes at `cursor`.
    fn deadline_for(&self, cursor: Cursor) -> u64 {
        match (cursor, self.first_return()) {
            // Scanning the event list first recomputes it on reaching the pool.
            (Cursor::Events(_), _) | (Cursor::Pool(_), NIL) => u64::MAX,
            (Cursor::Pool(_), node) => self.event_time[node],
        }
    }

    /// Remembers the current dead end if it is the deepest so far.
    fn record_dead_end(&mut self) {
        let completed = self.stack.len() - self.placed_pending_count();
        let depth = (completed, Reverse(self.stack.len() - completed));
        if self
            .deepest
            .as_ref()
            .is_some_and(|deepest| deepest.depth >= depth)
        {
            return;
        }
        let stop = self.first_return();
        if stop == NIL {
            return;
        }
        let mut candidates = Vec::new();
        let mut node = self.events.next[HEAD];
        while node != stop {
            candidates.push(self.event_op[node]);
            node = self.events.next[node];
        }
        let deadline = self.event_time[stop];
        let mut node = self.pool.next[HEAD];
        while node != NIL {
            let i = self.pool_op[node];
            if self.available(i, deadline) {
                candidates.push(i);
            }
            node = self.pool.next[node];
        }
        self.deepest = Some(DeadEnd {
            depth,
            prefix: self.stack.iter().map(|frame| frame.op).collect(),
            blocked: self.event_op[stop],
            candidates,
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Reports.

/// Data as a quoted string if it is printable UTF-8, else as hex; long data is cut short.
fn show_data(data: &[u8]) -> String {
    const MAX: usize = 40;
    let cut = &data[..data.len().min(MAX)];
    let mut shown = match std::str::from_utf8(cut) {
        Ok(text) if !text.chars().any(char::is_control) => format!("{text:?}"),
        _ => {
            let hex: String = cut.iter().map(|b| format!("{b:02x}")).collect();
            format!("0x{hex}")
        }
    };
    if data.len() > MAX {
        shown.push_str(&format!("..({} bytes)", data.len()));
    }
    shown
}

fn show_state(state: &State) -> String {
    match state {
        None => "absent".into(),
        Some((data, version)) => format!("{} v{version}", show_data(data)),
    }
}

fn show_expected(expected: Option<i32>) -> String {
    match expected {
        None | Some(-1) => "any version".into(),
        Some(v) => format!("version {v}"),
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Create { data } => write!(f, "create({})", show_data(data)),
            Op::Set {
                data,
                expected_version,
            } => write!(
                f,
                "set({}, {})",
                show_data(data),
                show_expected(*expected_version)
            ),
            Op::Delete { expected_version } => {
                write!(f, "delete({})", show_expected(*expected_version))
            }
            Op::Read => write!(f, "read"),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok | Outcome::SetOk { new_version: None } => write!(f, "Ok"),
            Outcome::SetOk {
                new_version: Some(v),
            } => write!(f, "Ok(v{v})"),
            Outcome::NodeExists => write!(f, "NodeExists"),
            Outcome::NoNode => write!(f, "NoNode"),
            Outcome::BadVersion => write!(f, "BadVersion"),
            Outcome::Value(state) => write!(f, "Value({})", show_state(state)),
        }
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client {}: {} -> ", self.client, self.op)?;
        match (&self.outcome, self.ret) {
            (Some(outcome), Some(ret)) => write!(f, "{outcome} [call {}, ret {ret}]", self.call),
            _ => write!(f, "unknown [call {}, never returned]", self.call),
        }
    }
}

/// How many operations of the prefix a report shows.
const PREFIX_SHOWN: usize = 12;

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "not linearizable: no order places all {} completed operations",
            self.completed
        )?;
        let skipped = self.prefix.len().saturating_sub(PREFIX_SHOWN);
        writeln!(
            f,
            "longest linearizable prefix found: {} operations",
            self.prefix.len()
        )?;
        if skipped > 0 {
            writeln!(f, "  ... {skipped} earlier operations")?;
        }
        for (index, entry) in &self.prefix[skipped..] {
            writeln!(f, "  #{index} {entry}")?;
        }
        writeln!(f, "state after it: {}", show_state(&self.state))?;
        let deadline = self
            .candidates
            .iter()
            .find(|(index, _)| *index == self.blocked)
            .and_then(|(_, entry)| entry.ret)
            .unwrap_or_default();
        write!(
            f,
            "stuck: #{} must take effect by its return at {deadline}, but nothing can go next:",
            self.blocked
        )?;
        for (index, entry) in &self.candidates {
            let (answer, after) = model(&self.state, &entry.op);
            let verdict = match &entry.outcome {
                Some(recorded) if !agrees(recorded, &answer) => {
                    format!("here it would return {answer}")
                }
                None if after == self.state => "would have no effect here".to_string(),
                _ => "fits here, but no linearization continues from it".to_string(),
            };
            write!(f, "\n  #{index} {entry}: {verdict}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Violation {}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::Violation(violation) => violation.fmt(f),
            CheckError::BudgetExceeded { max_steps } => write!(
                f,
                "linearizability check gave up after {max_steps} steps without a verdict"
            ),
            CheckError::InvalidHistory { index, reason } => {
                write!(f, "invalid history: entry #{index}: {reason}")
            }
        }
    }
}

impl std::error::Error for CheckError {}

impl From<Violation> for CheckError {
    fn from(violation: Violation) -> CheckError {
        CheckError::Violation(violation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Vec<u8> {
        text.as_bytes().to_vec()
    }

    fn create(text: &str) -> Op {
        Op::Create { data: d(text) }
    }

    fn set(text: &str) -> Op {
        Op::Set {
            data: d(text),
            expected_version: None,
        }
    }

    fn cas(text: &str, version: i32) -> Op {
        Op::Set {
            data: d(text),
            expected_version: Some(version),
        }
    }

    fn delete(expected_version: Option<i32>) -> Op {
        Op::Delete { expected_version }
    }

    fn set_ok(version: i32) -> Outcome {
        Outcome::SetOk {
            new_version: Some(version),
        }
    }

    fn value(text: &str, version: i32) -> Outcome {
        Outcome::Value(Some((d(text), version)))
    }

    fn absent() -> Outcome {
        Outcome::Value(None)
    }

    fn done(client: u64, op: Op, call: u64, ret: u64, outcome: Outcome) -> Entry {
        Entry::completed(client, op, call, ret, outcome)
    }

    fn read(client: u64, call: u64, ret: u64, outcome: Outcome) -> Entry {
        done(client, Op::Read, call, ret, outcome)
    }

    fn violation(initial: State, history: &[Entry]) -> Violation {
        match check(initial, history) {
            Ok(()) => panic!("history accepted, expected a violation: {history:#?}"),
            Err(violation) => violation,
        }
    }

    #[test]
    fn empty_history_passes() {
        assert_eq!(check(None, &[]), Ok(()));
        assert_eq!(check(Some((d("x"), 7)), &[]), Ok(()));
    }

    #[test]
    fn sequential_history_passes() {
        let history = vec![
            done(1, create("a"), 0, 10, Outcome::Ok),
            read(2, 20, 30, value("a", 0)),
            done(1, set("b"), 40, 50, set_ok(1)),
            done(2, cas("c", 1), 60, 70, set_ok(2)),
            done(3, cas("d", 1), 80, 90, Outcome::BadVersion),
            read(3, 100, 110, value("c", 2)),
            done(1, create("e"), 120, 130, Outcome::NodeExists),
            done(2, delete(Some(5)), 140, 150, Outcome::BadVersion),
            done(2, delete(Some(2)), 160, 170, Outcome::Ok),
            read(1, 180, 190, absent()),
            done(3, set("f"), 200, 210, Outcome::NoNode),
            done(3, delete(None), 220, 230, Outcome::NoNode),
            done(1, create("g"), 240, 250, Outcome::Ok),
            done(2, set("h"), 260, 270, Outcome::Ok),
            done(2, cas("i", -1), 280, 290, set_ok(2)),
            read(1, 300, 310, value("i", 2)),
            done(3, delete(None), 320, 330, Outcome::Ok),
        ];
        assert_eq!(check(None, &history), Ok(()));
        // The same checks hold from an existing initial state.
        let from_existing = vec![
            read(1, 0, 10, value("x", 4)),
            done(2, cas("y", 4), 20, 30, set_ok(5)),
            read(1, 40, 50, value("y", 5)),
        ];
        assert_eq!(check(Some((d("x"), 4)), &from_existing), Ok(()));
        assert!(check(Some((d("x"), 3)), &from_existing).is_err());
        assert!(check(None, &from_existing).is_err());
    }

    #[test]
    fn entry_order_and_equal_timestamps_do_not_matter() {
        // A write and a read that touch at one instant overlap, so either order is allowed.
        let mut history = vec![
            done(1, create("a"), 0, 10, Outcome::Ok),
            done(2, set("b"), 10, 20, set_ok(1)),
            read(3, 0, 10, value("a", 0)),
            read(3, 20, 30, value("b", 1)),
            read(4, 5, 10, absent()),
        ];
        assert_eq!(check(None, &history), Ok(()));
        history.reverse();
        assert_eq!(check(None, &history), Ok(()));
    }

    #[test]
    fn overlapping_writes_pass_with_either_read_order() {
        let initial = Some((d("x"), 0));
        let writes = || {
            vec![
                done(1, set("a"), 0, 100, set_ok_any()),
                done(2, set("b"), 10, 110, set_ok_any()),
            ]
        };
        fn set_ok_any() -> Outcome {
            Outcome::SetOk { new_version: None }
        }
        // Reads during the writes, in both orders.
        for (first, second) in [("a", "b"), ("b", "a")] {
            let mut history = writes();
            history.push(read(3, 20, 30, value(first, 1)));
            history.push(read(3, 40, 50, value(second, 2)));
            history.push(read(4, 120, 130, value(second, 2)));
            assert_eq!(
                check(initial.clone(), &history),
                Ok(()),
                "{first} then {second}"
            );
        }
        // A single read after both writes may see either one last.
        for last in ["a", "b"] {
            let mut history = writes();
            history.push(read(3, 120, 130, value(last, 2)));
            assert_eq!(check(initial.clone(), &history), Ok(()), "{last} last");
        }
        // But "a" cannot be both first and last, and both writes completed before version 1.
        let mut history = writes();
        history.push(read(3, 20, 30, value("a", 1)));
        history.push(read(3, 40, 50, value("a", 2)));
        assert!(check(initial.clone(), &history).is_err());
        let mut history = writes();
        history.push(read(3, 120, 130, value("a", 1)));
        assert!(check(initial, &history).is_err());
    }

    #[test]
    fn stale_read_after_completed_write_fails() {
        let history = vec![
            done(1, create("a"), 0, 10, Outcome::Ok),
            done(1, set("b"), 20, 30, set_ok(1)),
            read(2, 40, 50, value("a", 0)),
        ];
        let v = violation(None, &history);
        assert_eq!(v.blocked, 2);
        assert_eq!(v.prefix.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(v.state, Some((d("b"), 1)));
        assert_eq!(v.candidates.len(), 1);
        assert_eq!(v.completed, 3);
        let report = v.to_string();
        assert!(report.contains("#2 client 2: read -> Value(\"a\" v0) [call 40, ret 50]"));
        assert!(
            report.contains("here it would return Value(\"b\" v1)"),
            "{report}"
        );
        // The same read overlapping the write is fine.
        let mut concurrent = history.clone();
        concurrent[2] = read(2, 25, 50, value("a", 0));
        assert_eq!(check(None, &concurrent), Ok(()));
    }

    #[test]
    fn cas_against_impossible_version_fails() {
        let history = vec![
            done(1, create("a"), 0, 10, Outcome::Ok),
            done(2, cas("b", 3), 20, 30, set_ok(4)),
        ];
        assert!(check(None, &history).is_err());
        // Version 2 cannot exist while only one set can have happened yet.
        let history = vec![
            done(1, create("a"), 0, 10, Outcome::Ok),
            done(1, set("b"), 20, 60, Outcome::Ok),
            done(2, cas("c", 2), 30, 50, Outcome::Ok),
        ];
        assert!(check(None, &history).is_err());
        // Version 1 can, if the concurrent set went first.
        let history = vec![
            done(1, create("a"), 0, 10, Outcome::Ok),
            done(1, set("b"), 20, 60, Outcome::Ok),
            done(2, cas("c", 1), 30, 50, set_ok(2)),
            read(3, 70, 80, value("c", 2)),
        ];
        assert_eq!(check(None, &history), Ok(()));
    }

    #[test]
    fn set_reporting_the_wrong_new_version_fails() {
        let history = vec![
            done(1, create("a"), 0, 10, Outcome::Ok),
            done(1, set("b"), 20, 30, set_ok(2)),
        ];
        assert!(check(None, &history).is_err());
    }

    #[test]
    fn two_successful_creates_fail() {
        let history = vec![
            done(1, create("a"), 0, 100, Outcome::Ok),
            done(2, create("b"), 50, 150, Outcome::Ok),
        ];
        let v = violation(None, &history);
        assert_eq!(v.prefix.len(), 1);
        // A concurrent delete explains them.
        let mut with_delete = history.clone();
        with_delete.push(done(3, delete(None), 20, 120, Outcome::Ok));
        assert_eq!(check(None, &with_delete), Ok(()));
        // So does a delete of unknown outcome.
        let mut with_lost_delete = history;
        with_lost_delete.push(Entry::unknown(3, delete(Some(0)), 20));
        assert_eq!(check(None, &with_lost_delete), Ok(()));
    }

    #[test]
    fn unknown_outcome_write_may_or_may_not_take_effect() {
        let base = vec![
            done(1, create("a"), 0, 10, Outcome::Ok),
            Entry::unknown(2, set("b"), 20),
        ];
        // Observed much later, after an earlier read that did not see it yet.
        let mut observed = base.clone();
        observed.push(read(3, 30, 40, value("a", 0)));
        observed.push(read(3, 1000, 1010, value("b", 1)));
        observed.push(read(3, 2000, 2010, value("b", 1)));
        assert_eq!(check(None, &observed), Ok(()));
        // Never observed.
        let mut unobserved = base.clone();
        unobserved.push(read(3, 1000, 1010, value("a", 0)));
        unobserved.push(done(3, cas("c", 0), 1100, 1110, set_ok(1)));
        assert_eq!(check(None, &unobserved), Ok(()));
        // Observed, then gone without another write: it cannot take effect twice.
        let mut flicker = observed.clone();
        flicker.push(read(3, 3000, 3010, value("a", 0)));
        assert!(check(None, &flicker).is_err());
        // It cannot take effect before it was called.
        let mut early = base.clone();
        early.push(read(3, 12, 18, value("b", 1)));
        assert!(check(None, &early).is_err());
        // Reads of unknown outcome are ignored.
        let mut lost_read = base;
        lost_read.push(Entry::unknown(3, Op::Read, 5));
        assert_eq!(check(None, &lost_read), Ok(()));
    }

    #[test]
    fn several_unknown_outcome_ops_can_all_take_effect() {
        // Shrunk from random histories: each needs every lost operation, in this order.
        let history = vec![
            Entry::unknown(5, create("v0"), 9331),
            read(4, 11043, 15243, value("v0", 0)),
            Entry::unknown(1, delete(None), 13949),
            Entry::unknown(1, create("v6"), 15114),
            read(4, 17559, 19208, value("v6", 0)),
        ];
        assert_eq!(check(None, &history), Ok(()));
        let history = vec![
            Entry::unknown(3, create("v0"), 7458),
            Entry::unknown(5, cas("v3", 0), 10471),
            Entry::unknown(4, create("v2"), 11079),
            done(3, cas("v5", 1), 12591, 16488, set_ok(2)),
            Entry::unknown(3, delete(None), 14775),
            done(3, cas("v8", 1), 17545, 18195, Outcome::NoNode),
        ];
        assert_eq!(check(None, &history), Ok(()));
        let mut without_delete = history;
        without_delete.remove(4);
        assert!(check(None, &without_delete).is_err());
    }

    #[test]
    fn identical_unknown_outcome_writes_can_both_take_effect() {
        let base = || {
            vec![
                done(1, create("a"), 0, 10, Outcome::Ok),
                Entry::unknown(2, set("x"), 20),
                Entry::unknown(3, set("x"), 30),
                // Never read, so the checker treats these as identical too.
                Entry::unknown(2, set("u1"), 40),
                Entry::unknown(3, set("u2"), 50),
            ]
        };
        let mut both = base();
        both.push(read(4, 100, 110, value("x", 2)));
        assert_eq!(check(None, &both), Ok(()));
        let mut all = base();
        all.push(done(4, set("y"), 100, 110, set_ok(5)));
        assert_eq!(check(None, &all), Ok(()));
        let mut too_many = base();
        too_many.push(done(4, set("y"), 100, 110, set_ok(6)));
        assert!(check(None, &too_many).is_err());
        let mut x_too_late = base();
        x_too_late.push(read(4, 100, 110, value("x", 4)));
        x_too_late.push(read(4, 120, 130, value("u1", 3)));
        assert!(check(None, &x_too_late).is_err());
    }

    #[test]
    fn small_lossy_random_histories_pass() {
        // Short, highly concurrent histories where many calls never return.
        let mut rng = Lcg(1);
        for round in 0..3000 {
            let history = generate(&mut rng, 6 + round % 12, 3000, 40);
            if let Err(e) = check_with_budget(None, &history, 1_000_000) {
                panic!("round {round}: generated history rejected: {e}\n{history:#?}");
            }
        }
    }

    #[test]
    fn read_of_a_value_never_written_fails() {
        let history = vec![
            done(1, create("a"), 0, 10, Outcome::Ok),
            done(2, set("b"), 5, 30, Outcome::Ok),
            Entry::unknown(3, set("c"), 6),
            read(4, 0, 40, value("z", 1)),
        ];
        let v = violation(None, &history);
        assert_eq!(v.blocked, 3);
    }

    #[test]
    fn lost_acknowledged_write_fails() {
        let history = vec![
            done(1, create("a"), 0, 10, Outcome::Ok),
            done(2, set("b"), 20, 30, set_ok(1)),
            read(3, 40, 50, value("b", 1)),
            done(1, set("c"), 60, 70, set_ok(2)),
            read(2, 80, 90, value("b", 1)),
        ];
        let v = violation(None, &history);
        assert_eq!(v.blocked, 4);
        assert_eq!(v.state, Some((d("c"), 2)));
        // An acknowledged delete that comes undone fails the same way.
        let history = vec![
            done(1, create("a"), 0, 10, Outcome::Ok),
            done(2, delete(Some(0)), 20, 30, Outcome::Ok),
            read(3, 40, 50, value("a", 0)),
        ];
        assert!(check(None, &history).is_err());
    }

    #[test]
    fn malformed_histories_are_rejected() {
        let cases = [
            done(1, Op::Read, 10, 5, absent()),
            done(1, Op::Read, 0, 5, Outcome::Ok),
            done(1, create("a"), 0, 5, set_ok(0)),
            done(1, delete(None), 0, 5, Outcome::NodeExists),
            Entry {
                client: 1,
                op: Op::Read,
                call: 0,
                ret: Some(5),
                outcome: None,
            },
            Entry {
                client: 1,
                op: Op::Read,
                call: 0,
                ret: None,
                outcome: Some(absent()),
            },
        ];
        for bad in cases {
            let history = vec![read(0, 0, 1, absent()), bad];
            match check_with_budget(None, &history, 1000) {
                Err(CheckError::InvalidHistory { index: 1, .. }) => {}
                other => panic!("{history:?} gave {other:?}"),
            }
        }
    }

    #[test]
    #[should_panic(expected = "invalid history")]
    fn check_panics_on_malformed_history() {
        let _ = check(None, &[done(1, Op::Read, 10, 5, absent())]);
    }

    #[test]
    fn budget_stops_pathological_searches() {
        // Twenty concurrent writes and a final impossible read: every order must be ruled out.
        let mut history: Vec<Entry> = (0..20)
            .map(|k| done(k, set(&format!("w{k}")), k, 1000, Outcome::Ok))
            .collect();
        history.push(read(99, 2000, 2010, value("never", 20)));
        assert_eq!(
            check_with_budget(Some((d("x"), 0)), &history, 10_000),
            Err(CheckError::BudgetExceeded { max_steps: 10_000 })
        );
        // A possible read passes within the same budget when the search's first order fits.
        history[20] = read(99, 2000, 2010, value("w19", 20));
        assert_eq!(
            check_with_budget(Some((d("x"), 0)), &history, 10_000),
            Ok(())
        );
    }

    #[test]
    fn many_stale_unknown_writes_stay_cheap() {
        // Thirty writes that never returned (and never took effect), then a busy stretch of
        // overlapping writes whose order only later reads resolve, one of them lost and seen.
        let mut history = vec![done(0, create("a"), 0, 10, Outcome::Ok)];
        for k in 0..30 {
            history.push(Entry::unknown(100 + k, set(&format!("lost{k}")), 20 + k));
        }
        let mut version = 0;
        let mut t = 1000;
        for round in 0..40 {
            let (x, y) = (format!("x{round}"), format!("y{round}"));
            history.push(done(1, set(&x), t, t + 50, Outcome::Ok));
            history.push(done(2, set(&y), t + 10, t + 60, Outcome::Ok));
            history.push(read(3, t + 70, t + 80, value(&x, version + 2)));
            version += 2;
            if round % 10 == 5 {
                let z = format!("z{round}");
                history.push(Entry::unknown(4, set(&z), t + 90));
                history.push(read(3, t + 100, t + 110, value(&z, version + 1)));
                version += 1;
            }
            t += 200;
        }
        // About 5k steps today; without the first pass or the twin rule it takes 50k-125k.
        assert_eq!(check_with_budget(None, &history, 20_000), Ok(()));
    }

    /// A tiny deterministic generator (Knuth's MMIX LCG).
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 33
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// The sequential semantics, written out independently of the checker's model.
    fn reference(state: &mut State, op: &Op) -> Outcome {
        let matches = |expected: &Option<i32>, version: i32| match expected {
            None | Some(-1) => true,
            Some(e) => *e == version,
        };
        match (op, state.as_mut()) {
            (Op::Read, _) => Outcome::Value(state.clone()),
            (Op::Create { .. }, Some(_)) => Outcome::NodeExists,
            (Op::Create { data }, None) => {
                *state = Some((data.clone(), 0));
                Outcome::Ok
            }
            (Op::Set { .. } | Op::Delete { .. }, None) => Outcome::NoNode,
            (
                Op::Set {
                    data,
                    expected_version,
                },
                Some((current, version)),
            ) => {
                if !matches(expected_version, *version) {
                    return Outcome::BadVersion;
                }
                *current = data.clone();
                *version += 1;
                set_ok(*version)
            }
            (Op::Delete { expected_version }, Some((_, version))) => {
                if !matches(expected_version, *version) {
                    return Outcome::BadVersion;
                }
                *state = None;
                Outcome::Ok
            }
        }
    }

    /// A history produced by running random operations one at a time (op `k` takes effect at
    /// time `1000 * k + 10_000`) and giving each an interval around that instant, so it is
    /// linearizable by construction. Some calls never return: of those, a third never take
    /// effect, a third at that instant and a third later, just before some later operation.
    fn generate(rng: &mut Lcg, ops: usize, width: u64, lost_percent: u64) -> Vec<Entry> {
        let mut state: State = None;
        let mut history = Vec::new();
        let mut deferred: Vec<(usize, Op)> = Vec::new();
        for k in 0..ops {
            for (_, op) in deferred.iter().filter(|(due, _)| *due == k) {
                reference(&mut state, op);
            }
            let at = 1000 * (k as u64) + 10_000;
            let current = state.as_ref().map_or(0, |(_, v)| *v);
            let version = |rng: &mut Lcg| match rng.below(3) {
                0 => None,
                1 => Some(current),
                _ => Some(rng.below(4) as i32),
            };
            let fresh = d(&format!("v{k}"));
            let op = match rng.below(10) {
                0 | 1 => Op::Create { data: fresh },
                2..=4 => Op::Set {
                    data: fresh,
                    expected_version: version(rng),
                },
                5 => Op::Delete {
                    expected_version: version(rng),
                },
                _ => Op::Read,
            };
            let client = rng.below(6);
            let call = at - 1 - rng.below(width);
            if rng.below(100) < lost_percent {
                match rng.below(3) {
                    0 => {}
                    1 => {
                        reference(&mut state, &op);
                    }
                    _ => deferred.push((k + 1 + rng.below(10) as usize, op.clone())),
                }
                history.push(Entry::unknown(client, op, call));
            } else {
                let outcome = reference(&mut state, &op);
                let ret = at + 1 + rng.below(width);
                history.push(done(client, op, call, ret, outcome));
            }
        }
        // The checker must not depend on the order of the entries.
        for k in (1..history.len()).rev() {
            history.swap(k, rng.below(k as u64 + 1) as usize);
        }
        history
    }

    #[test]
    fn random_linearizable_histories_pass_and_corrupted_reads_fail() {
        let mut rng = Lcg(0x5eed);
        let mut corrupted = 0;
        for round in 0..300 {
            let width = [300, 1500, 3000][round % 3];
            let history = generate(&mut rng, 40 + round % 40, width, 8);
            if let Err(e) = check_with_budget(None, &history, 1_000_000) {
                panic!("round {round}: generated history rejected: {e}\n{history:#?}");
            }
            let reads: Vec<usize> = (0..history.len())
                .filter(|&k| history[k].op == Op::Read && history[k].ret.is_some())
                .collect();
            if reads.is_empty() {
                continue;
            }
            let target = reads[rng.below(reads.len() as u64) as usize];
            let mut bad = history.clone();
            let (version, mutation) = match rng.below(2) {
                0 => (rng.below(3) as i32, "never-written"),
                _ => (10_000, "v0"),
            };
            bad[target].outcome = Some(value(mutation, version));
            match check_with_budget(None, &bad, 1_000_000) {
                Err(CheckError::Violation(_)) => corrupted += 1,
                other => panic!("round {round}: corrupted read #{target} gave {other:?}"),
            }
        }
        assert!(
            corrupted > 250,
            "only {corrupted} corrupted histories checked"
        );
    }

    #[test]
    fn long_random_history_is_fast() {
        let mut rng = Lcg(42);
        let history = generate(&mut rng, 3000, 2500, 3);
        assert_eq!(check_with_budget(None, &history, 2_000_000), Ok(()));
    }
}
