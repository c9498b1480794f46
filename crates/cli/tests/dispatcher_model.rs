//! The dispatcher against a reference model (issue 11): random programs of timer
//! sets and cancels, DPC inserts, removals and importance, event signals, waits
//! (single, WaitAny, WaitAll, with timeouts and polls) and delays run by a C driver
//! (`drivers/dispatcher_model.c`) on one simulated processor; a simple model of the
//! same rules predicts every return value, every DPC run (which, when, with which
//! system arguments) and every time. The same seed gives the same trace.
//!
//! The rules the model states (learn.microsoft.com "KeSetTimerEx", "KeCancelTimer",
//! "KeInsertQueueDpc", "KeSetImportanceDpc", "KeWaitForMultipleObjects",
//! "KeDelayExecutionThread", "Timer Objects and DPCs"; ntmem's README for where they
//! are ntmem's):
//! * time moves only while the thread waits: to the next timer due or the wait's
//!   timeout, whichever is first; timers due at one instant expire together in address
//!   order, each signalled and its DPC queued (with the expiry's interrupt time as
//!   SystemArgument1/2) unless that DPC is queued already; then the DPC queue runs;
//! * a periodic timer is set again a period after it expired (a due time of 0 is an
//!   absolute time long past: the timer expires at the next wait);
//! * DPCs run oldest first (a HighImportance one was queued at the head) when the
//!   thread blocks, at `KeFlushQueuedDpcs`, and when the dispatch routine returns;
//! * a wait is satisfied at once when its objects are signalled, and is otherwise
//!   looked at again after each batch of expiries and DPCs (ntmem's waiter takes its
//!   objects when it next runs, so WaitAny names the lowest signalled index); a
//!   zero timeout only polls; a timeout reached with the objects still not signalled
//!   is STATUS_TIMEOUT; a synchronization event or timer is reset by the wait it
//!   satisfies.

mod common;

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// `STATUS_TIMEOUT`.
const TIMEOUT: u32 = 0x102;
/// The system argument a DPC inserted by the program records (the driver's marker).
const INSERTED: u32 = u32::MAX;
/// `IOCTL_PROGRAM` and the output length the driver asks for (a count and its trace).
const IOCTL_PROGRAM: u32 = 0x0022_2400;
const OUTPUT_LEN: u32 = 4 + 6000 * 4;

#[derive(Clone, Debug)]
enum Op {
    Set { timer: u8, due_ms: u8, period_ms: u8, dpc: Option<u8> },
    Cancel(u8),
    Read(u8),
    Insert(u8),
    Remove(u8),
    SetEvent(u8),
    ResetEvent(u8),
    Wait { object: u8, timeout_ms: u8 },
    WaitTwo { objects: [u8; 2], all: bool, timeout_ms: u8 },
    Delay(u8),
    Flush,
    Importance { dpc: u8, importance: u8 },
}

impl Op {
    fn code(&self) -> u32 {
        match self {
            Op::Set { .. } => 1,
            Op::Cancel(_) => 2,
            Op::Read(_) => 3,
            Op::Insert(_) => 4,
            Op::Remove(_) => 5,
            Op::SetEvent(_) => 6,
            Op::ResetEvent(_) => 7,
            Op::Wait { .. } => 8,
            Op::WaitTwo { .. } => 9,
            Op::Delay(_) => 10,
            Op::Flush => 11,
            Op::Importance { .. } => 12,
        }
    }

    /// The bytes `dispatcher_model.c` reads.
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.code() as u8);
        match *self {
            Op::Set { timer, due_ms, period_ms, dpc } => out.extend([timer, due_ms, period_ms, dpc.unwrap_or(0xFF)]),
            Op::Cancel(x) | Op::Read(x) | Op::Insert(x) | Op::Remove(x) | Op::SetEvent(x) | Op::ResetEvent(x) => {
                out.push(x)
            }
            Op::Wait { object, timeout_ms } => out.extend([object, timeout_ms]),
            Op::WaitTwo { objects, all, timeout_ms } => out.extend([objects[0], objects[1], u8::from(all), timeout_ms]),
            Op::Delay(ms) => out.push(ms),
            Op::Flush => {}
            Op::Importance { dpc, importance } => out.extend([dpc, importance]),
        }
    }
}

fn op() -> impl Strategy<Value = Op> {
    let period = prop_oneof![Just(0u8), 5..=20u8];
    prop_oneof![
        4 => (0..4u8, 0..=40u8, period, proptest::option::of(0..4u8))
            .prop_map(|(timer, due_ms, period_ms, dpc)| Op::Set { timer, due_ms, period_ms, dpc }),
        1 => (0..4u8).prop_map(Op::Cancel),
        1 => (0..4u8).prop_map(Op::Read),
        2 => (0..4u8).prop_map(Op::Insert),
        1 => (0..4u8).prop_map(Op::Remove),
        1 => (0..2u8).prop_map(Op::SetEvent),
        1 => (0..2u8).prop_map(Op::ResetEvent),
        3 => (0..6u8, prop_oneof![Just(0u8), 1..=30u8]).prop_map(|(object, timeout_ms)| Op::Wait { object, timeout_ms }),
        2 => (0..6u8, 1..6u8, any::<bool>(), prop_oneof![Just(0u8), 1..=30u8]).prop_map(|(a, d, all, timeout_ms)| {
            Op::WaitTwo { objects: [a, (a + d) % 6], all, timeout_ms }
        }),
        2 => (0..=30u8).prop_map(Op::Delay),
        1 => Just(Op::Flush),
        1 => (0..4u8, 0..4u8).prop_map(|(dpc, importance)| Op::Importance { dpc, importance }),
    ]
}

/// A program: at most 40 operations (the driver takes 256 bytes).
fn program() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 1..40)
}

#[derive(Clone, Copy, Debug, Default)]
struct Timer {
    due: Option<u64>,
    period: u64,
    dpc: Option<u8>,
    signalled: bool,
}

/// The model of one program: its objects, the DPC queue, time since the program
/// began (ms), and the trace the driver should return.
struct Model {
    now: u64,
    events: [bool; 2],
    timers: [Timer; 4],
    importance: [u8; 4],
    queue: VecDeque<(u8, u32)>,
    trace: Vec<u32>,
}

impl Model {
    fn new() -> Model {
        Model {
            now: 0,
            events: [false; 2],
            timers: [Timer::default(); 4],
            importance: [1; 4],
            queue: VecDeque::new(),
            trace: Vec::new(),
        }
    }

    fn queue_dpc(&mut self, dpc: u8, argument: u32) -> bool {
        if self.queue.iter().any(|&(d, _)| d == dpc) {
            return false;
        }
        if self.importance[dpc as usize] == 2 {
            self.queue.push_front((dpc, argument));
        } else {
            self.queue.push_back((dpc, argument));
        }
        true
    }

    /// DPCs run oldest first, at DISPATCH_LEVEL; DPC j < 3 sets event j & 1.
    fn run_dpcs(&mut self) {
        while let Some((dpc, argument)) = self.queue.pop_front() {
            self.trace.extend([0x220 | u32::from(dpc), self.now as u32, argument]);
            if dpc < 3 {
                self.events[usize::from(dpc & 1)] = true;
            }
        }
    }

    /// Moves time to `to` (not back), expiring each instant's timers and running the
    /// DPCs after each.
    fn advance(&mut self, to: u64) {
        while let Some(due) = self.timers.iter().filter_map(|t| t.due).min().filter(|&d| d <= to) {
            self.now = self.now.max(due);
            let now = self.now;
            let mut expired: Vec<(u64, usize)> =
                (0..4).filter_map(|k| self.timers[k].due.filter(|&d| d <= now).map(|d| (d, k))).collect();
            expired.sort_unstable();
            for (_, k) in expired {
                let t = &mut self.timers[k];
                t.signalled = true;
                t.due = (t.period != 0).then_some(now + t.period);
                if let Some(dpc) = t.dpc {
                    self.queue_dpc(dpc, now as u32);
                }
            }
            self.run_dpcs();
        }
        self.now = self.now.max(to);
    }

    fn signalled(&self, object: u8) -> bool {
        match object {
            0 | 1 => self.events[usize::from(object)],
            _ => self.timers[usize::from(object - 2)].signalled,
        }
    }

    /// A satisfied wait takes its object: a synchronization event (1) or timer (4, 5)
    /// is reset.
    fn take(&mut self, object: u8) {
        match object {
            1 => self.events[1] = false,
            4 | 5 => self.timers[usize::from(object - 2)].signalled = false,
            _ => {}
        }
    }

    /// The status of the wait if it can be satisfied now (and takes its objects).
    fn try_satisfy(&mut self, objects: &[u8], all: bool) -> Option<u32> {
        if all {
            if !objects.iter().all(|&o| self.signalled(o)) {
                return None;
            }
            objects.iter().for_each(|&o| self.take(o));
            Some(0)
        } else {
            let i = objects.iter().position(|&o| self.signalled(o))?;
            self.take(objects[i]);
            Some(i as u32)
        }
    }

    fn wait(&mut self, objects: &[u8], all: bool, timeout_ms: u8) -> u32 {
        if let Some(status) = self.try_satisfy(objects, all) {
            return status;
        }
        let deadline = self.now + u64::from(timeout_ms);
        if deadline <= self.now {
            return TIMEOUT;
        }
        self.run_dpcs();
        loop {
            if let Some(status) = self.try_satisfy(objects, all) {
                return status;
            }
            if deadline <= self.now {
                return TIMEOUT;
            }
            let next = self.timers.iter().filter_map(|t| t.due).min().map_or(deadline, |d| d.min(deadline));
            self.advance(next);
        }
    }

    fn step(&mut self, op: &Op) {
        let result = match *op {
            Op::Set { timer, due_ms, period_ms, dpc } => {
                let t = &mut self.timers[usize::from(timer)];
                let was_set = t.due.is_some();
                *t = Timer {
                    due: Some(self.now + u64::from(due_ms)),
                    period: u64::from(period_ms),
                    dpc,
                    signalled: false,
                };
                u32::from(was_set)
            }
            Op::Cancel(timer) => u32::from(self.timers[usize::from(timer)].due.take().is_some()),
            Op::Read(timer) => u32::from(self.timers[usize::from(timer)].signalled),
            Op::Insert(dpc) => u32::from(self.queue_dpc(dpc, INSERTED)),
            Op::Remove(dpc) => {
                let before = self.queue.len();
                self.queue.retain(|&(d, _)| d != dpc);
                u32::from(self.queue.len() != before)
            }
            Op::SetEvent(e) => u32::from(std::mem::replace(&mut self.events[usize::from(e)], true)),
            Op::ResetEvent(e) => u32::from(std::mem::replace(&mut self.events[usize::from(e)], false)),
            Op::Wait { object, timeout_ms } => self.wait(&[object], false, timeout_ms),
            Op::WaitTwo { objects, all, timeout_ms } => self.wait(&objects, all, timeout_ms),
            Op::Delay(ms) => {
                self.wait(&[], false, ms);
                0
            }
            Op::Flush => {
                self.run_dpcs();
                0
            }
            Op::Importance { dpc, importance } => {
                self.importance[usize::from(dpc)] = importance;
                0
            }
        };
        self.trace.extend([0x100 | op.code(), result, self.now as u32]);
    }
}

/// What the model says each IOCTL returns for `programs` (then an empty one that
/// collects the last program's DPCs): the DPCs a program left queued run when its
/// IOCTL returns, at that time, and open the next IOCTL's trace.
fn predicted(programs: &[Vec<Op>]) -> Vec<Vec<u32>> {
    let mut traces = Vec::new();
    let mut tail = Vec::new();
    for ops in programs.iter().chain(std::iter::once(&Vec::new())) {
        let mut m = Model::new();
        m.trace = std::mem::take(&mut tail);
        ops.iter().for_each(|op| m.step(op));
        traces.push(std::mem::take(&mut m.trace));
        // The driver cancels its timers before it returns; the queue runs after.
        m.timers.iter_mut().for_each(|t| t.due = None);
        m.run_dpcs();
        tail = m.trace;
    }
    traces
}

/// Runs `programs` (then an empty one) through the driver on one processor: each
/// IOCTL's trace, or the report when the run did not go as planned.
fn observed(programs: &[Vec<Op>]) -> Result<Vec<Vec<u32>>, String> {
    let mut scenario = String::from("processors = 1\n");
    for ops in programs.iter().chain(std::iter::once(&Vec::new())) {
        let mut bytes = Vec::new();
        ops.iter().for_each(|op| op.encode(&mut bytes));
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(
            scenario,
            "[[step]]\nioctl = {{ code = {IOCTL_PROGRAM:#x}, input = \"{hex}\", output_len = {OUTPUT_LEN} }}"
        );
    }
    static RUNS: AtomicU32 = AtomicU32::new(0);
    let name = format!("ntmem-dispatcher-model-{}-{}.toml", std::process::id(), RUNS.fetch_add(1, Ordering::Relaxed));
    let file = std::env::temp_dir().join(name);
    std::fs::write(&file, scenario).map_err(|e| e.to_string())?;
    let v = common::run_json("dispatcher_model.c", 0, &["--scenario", path_str(&file)]);
    let _ = std::fs::remove_file(&file);
    let steps = v["steps"].as_array().ok_or_else(|| format!("no steps: {v}"))?;
    if v.get("bugcheck").is_some_and(|b| !b.is_null()) || steps.len() != programs.len() + 1 {
        return Err(format!("the run stopped: {v}"));
    }
    steps
        .iter()
        .map(|s| {
            let hex = s["output"].as_str().ok_or_else(|| format!("no output: {s}"))?;
            let bytes: Vec<u8> = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| e.to_string()))
                .collect::<Result<_, _>>()?;
            let words: Vec<u32> =
                bytes.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().expect("four bytes"))).collect();
            match words.split_first() {
                Some((&count, rest)) if count as usize == rest.len() => Ok(rest.to_vec()),
                _ => Err(format!("a malformed trace (count, then the words): {words:x?}")),
            }
        })
        .collect()
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temporary path")
}

/// Trace words as lines a failure can be read from.
fn show(trace: &[u32]) -> String {
    trace.chunks(3).map(|r| format!("{r:x?}\n")).collect()
}

proptest! {
    #![proptest_config(Config { cases: 24, ..Config::default() })]

    #[test]
    fn the_dispatcher_follows_the_model(programs in proptest::collection::vec(program(), 1..4)) {
        let observed = observed(&programs).map_err(TestCaseError::fail)?;
        let predicted = predicted(&programs);
        for (i, (o, p)) in observed.iter().zip(&predicted).enumerate() {
            prop_assert!(o == p, "IOCTL {}: the driver saw\n{}the model says\n{}", i, show(o), show(p));
        }
    }
}

/// One seed's programs, as the property test would draw them.
fn programs_of(seed: u8) -> Vec<Vec<Op>> {
    let mut runner = TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]));
    proptest::collection::vec(program(), 3).new_tree(&mut runner).expect("generated").current()
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let (a, b) = (programs_of(11), programs_of(11));
    let first = observed(&a).expect("runs");
    assert_eq!(first, observed(&b).expect("runs"), "two runs of one seed");
    assert_eq!(first, predicted(&a));
    assert_ne!(first, observed(&programs_of(12)).expect("runs"), "another seed, another trace");
}

/// A DPC made HighImportance runs before the DPCs queued ahead of it; a timer's DPC
/// carries the expiry time, and a periodic timer keeps its phase across a wait.
#[test]
fn high_importance_dpcs_go_first_and_timer_dpcs_carry_the_expiry() {
    let program = vec![
        Op::Insert(0),
        Op::Insert(1),
        Op::Importance { dpc: 3, importance: 2 },
        Op::Insert(3),
        Op::Flush,
        Op::Set { timer: 0, due_ms: 7, period_ms: 5, dpc: Some(3) },
        Op::Delay(20),
    ];
    let trace = observed(std::slice::from_ref(&program)).expect("runs");
    let expected: Vec<u32> = [
        [0x104, 1, 0],
        [0x104, 1, 0],
        [0x10C, 0, 0],
        [0x104, 1, 0],
        [0x223, 0, INSERTED],
        [0x220, 0, INSERTED],
        [0x221, 0, INSERTED],
        [0x10B, 0, 0],
        [0x101, 0, 0],
        [0x223, 7, 7],
        [0x223, 12, 12],
        [0x223, 17, 17],
        [0x10A, 0, 20],
    ]
    .concat();
    assert_eq!(show(&trace[0]), show(&expected));
    assert_eq!(trace, predicted(&[program]));
}
