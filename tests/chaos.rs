//! Chaos: fixed topologies built with `pipeline!` (linear, fan-out, merge,
//! branch, accumulate, parallel; each with several `#[stage]`, struct and
//! closure stages, in variants for each `on_full` policy), whose behaviour
//! is decided at run time by a seeded random [`Case`]: the input, the gaps
//! between items at the source, the faults each stage injects on each item
//! (an error, a panic, a stall), slow and failing sinks, and how the run
//! ends (complete, `stop()` or `abort()` at a random moment).
//!
//! After every case:
//!
//! - the run ends (no hang): on paused time, a deadlock makes the
//!   run's virtual deadline fire at once; a real-time watchdog catches a
//!   livelock;
//! - the result is what the ending allows (a report, `Aborted`, or
//!   `ItemFailed` under `on_error = fail`);
//! - every stage balances, from the handle's last snapshot and from the
//!   report: `in = passed + filtered + failed + dropped + dead_lettered
//!   (+ held by an accumulator while it runs)`. (An accumulator's expired
//!   states are no separate count: they leave as an output, a dead letter
//!   or a failure, by `partial_flush` and the `errors` port.);
//! - unless aborted, every item the source read is accounted for along
//!   every path to a sink: lost in a stage (failed, filtered, dead
//!   lettered), dropped on an edge, failed by the sink, or collected;
//! - nothing arrives that should not (an item failed upstream, a
//!   duplicate), and order is kept where the topology promises it;
//! - with `block` edges, no injected error or panic and a graceful end
//!   (complete or `stop()`), nothing is lost: the sinks got exactly what
//!   the stages let through of the items the source read before it stopped
//!   (the rest of the input was never read; the stop semantics table in
//!   `lifecycle.rs` says what was read drains);
//! - no task is left alive (`RuntimeMetrics::num_alive_tasks` of the
//!   case's own runtime) and every stage, closure and worker clone has
//!   been dropped (a [`Guard`] moved into each).
//!
//! Each topology runs `CHAOS_CASES` cases (a bounded number by default, for
//! CI). Most run on a current-thread runtime with paused time, so stalls
//! and gaps cost no real time; one case in five runs on a two-thread
//! runtime in real time, with short stalls, for true concurrency.
//!
//! A failure prints the topology, the seed and the case. Run it again alone
//! with `CHAOS_SEED=<seed> cargo test --test chaos <topology>`.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use pipeline::Error;
use pipeline::metrics::{EdgeReport, StageState};
use pipeline::prelude::*;
use pipeline::stages::{IsSink, Never};

// ---------------------------------------------------------------------------
// Cases.

/// Cases per topology unless `CHAOS_CASES` says otherwise.
const DEFAULT_CASES: u64 = 100;

/// The fault slots: which stage of a topology reads which fault of an item.
const S_MAP: usize = 0;
const S_CHECK: usize = 1;
const S_WORK: usize = 2;
const S_SINK: usize = 3;
const S_SINK2: usize = 4;
/// Closures the runtime calls to route an item: an accumulator's key, a
/// branch's port, a parallel stage's `by_key`.
const S_KEY: usize = 5;
const SLOTS: usize = 6;

/// Whether the `branch` and `by_key` closures panic as `S_KEY` says (each
/// such panic fails its item; see the `regression_*` tests at the end).
const ROUTING_CLOSURE_PANICS: bool = true;

/// Ids of the second source of a merge start here.
const SECOND: u32 = 1_000_000;

/// What a stage does to one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    /// The stage returns an error (a sync `map` cannot: it passes).
    Error,
    /// The stage panics.
    Panic,
    /// The stage (if async) waits this many milliseconds first.
    Stall(u16),
}

impl Fault {
    fn kills(self) -> bool {
        matches!(self, Fault::Error | Fault::Panic)
    }
}

/// An item: a unique id, a key, whether the `filter` keeps it, and the
/// fault each slot injects on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Item {
    id: u32,
    key: u8,
    keep: bool,
    faults: [Fault; SLOTS],
}

impl Item {
    fn fault(&self, slot: usize) -> Fault {
        self.faults[slot]
    }

    /// Whether the stages in `slots` would let the item through.
    fn survives(&self, slots: &[usize]) -> bool {
        slots.iter().all(|&s| !self.fault(s).kills())
    }
}

/// The error a stage injects.
#[derive(Debug, Clone)]
struct Injected {
    id: u32,
    slot: usize,
}

impl fmt::Display for Injected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "chaos: injected error on item {} in slot {}",
            self.id, self.slot
        )
    }
}

impl std::error::Error for Injected {}

/// A panic injected on purpose; the panic hook keeps these quiet.
fn injected_panic(id: u32, slot: usize) -> ! {
    std::panic::panic_any(format!("chaos: injected panic on item {id} in slot {slot}"))
}

/// Runs a sync stage's fault: panics or fails as the item says.
fn sync_fault(item: Item, slot: usize) -> Result<Item, Injected> {
    match item.fault(slot) {
        Fault::Error => Err(Injected { id: item.id, slot }),
        Fault::Panic => injected_panic(item.id, slot),
        Fault::None | Fault::Stall(_) => Ok(item),
    }
}

/// Runs an async stage's fault: stalls, panics or fails as the item says.
async fn async_fault(item: Item, slot: usize) -> Result<Item, Injected> {
    if let Fault::Stall(ms) = item.fault(slot) {
        tokio::time::sleep(Duration::from_millis(ms.into())).await;
    }
    sync_fault(item, slot)
}

/// How a case ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The source runs out.
    Complete,
    /// `stop()` after this long (zero: right after `spawn`).
    Stop(Duration),
    /// `abort()` after this long.
    Abort(Duration),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clock {
    /// Current-thread runtime, paused time.
    Paused,
    /// Two worker threads, real time.
    Real,
}

/// One random case: what the source yields and when, what each stage does
/// to each item, and how the run ends.
#[derive(Clone)]
struct Case {
    seed: u64,
    clock: Clock,
    /// The items of the first source, and the gap before each.
    items: Vec<Item>,
    gaps: Vec<u16>,
    /// The second source, for a merge.
    items2: Vec<Item>,
    gaps2: Vec<u16>,
    end: End,
    /// What `Worker`'s `init` and `close` do.
    init: Fault,
    close: Fault,
    /// Whether any item carries an error or a panic.
    kills: bool,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let describe = |items: &[Item], gaps: &[u16]| {
            items
                .iter()
                .zip(gaps)
                .map(|(item, gap)| {
                    let faults: Vec<String> = item
                        .faults
                        .iter()
                        .enumerate()
                        .filter(|(_, fault)| **fault != Fault::None)
                        .map(|(slot, fault)| format!("{slot}:{fault:?}"))
                        .collect();
                    format!(
                        "{}{}{}{}{}",
                        item.id,
                        if *gap > 0 {
                            format!("+{gap}ms")
                        } else {
                            String::new()
                        },
                        format_args!("/k{}", item.key),
                        if item.keep { "" } else { "/drop" },
                        if faults.is_empty() {
                            String::new()
                        } else {
                            format!("[{}]", faults.join(","))
                        }
                    )
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        f.debug_struct("Case")
            .field("seed", &self.seed)
            .field("clock", &self.clock)
            .field("end", &self.end)
            .field("init", &self.init)
            .field("close", &self.close)
            .field("items", &describe(&self.items, &self.gaps))
            .field("items2", &describe(&self.items2, &self.gaps2))
            .finish()
    }
}

/// SplitMix64: small, seedable, good enough to pick cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p && p > 0.0
    }
}

/// How faulty a case is.
#[derive(Clone, Copy)]
struct Profile {
    error: f64,
    panic: f64,
    stall: f64,
}

impl Case {
    fn generate(seed: u64) -> Case {
        Case::generate_on(seed, None)
    }

    /// The case of `seed`, on the clock `clock` if given (with the sizes
    /// of stalls, gaps and inputs that clock's cases get), else on the one
    /// the seed picks.
    fn generate_on(seed: u64, clock: Option<Clock>) -> Case {
        let mut rng = Rng(seed);
        let drawn = if rng.chance(0.2) {
            Clock::Real
        } else {
            Clock::Paused
        };
        let clock = clock.unwrap_or(drawn);
        // A third of the cases inject no error or panic, so the no-loss
        // check applies; the rest pick their own rates.
        let profile = match rng.below(6) {
            0 | 1 => Profile {
                error: 0.0,
                panic: 0.0,
                stall: [0.0, 0.05, 0.3][rng.below(3) as usize],
            },
            2 => Profile {
                error: 0.05 + rng.below(20) as f64 / 100.0,
                panic: 0.0,
                stall: 0.05,
            },
            _ => Profile {
                error: rng.below(15) as f64 / 100.0,
                panic: rng.below(8) as f64 / 100.0,
                stall: rng.below(20) as f64 / 100.0,
            },
        };
        let max_stall: u64 = match clock {
            Clock::Paused => [1, 5, 50][rng.below(3) as usize],
            Clock::Real => 3,
        };
        let gap_rate = [0.0, 0.1, 0.5, 1.0][rng.below(4) as usize];
        let max_gap: u64 = match clock {
            Clock::Paused => [1, 10, 100][rng.below(3) as usize],
            Clock::Real => 2,
        };
        let max_items = match clock {
            Clock::Paused => [0, 1, 5, 40, 300, 1500][rng.below(6) as usize],
            Clock::Real => [1, 40, 300][rng.below(3) as usize],
        };
        let keys = 1 + rng.below(6) as u8;
        let make = |rng: &mut Rng, base: u32| {
            let n = rng.below(max_items + 1) as u32;
            let mut items = Vec::with_capacity(n as usize);
            let mut gaps = Vec::with_capacity(n as usize);
            for i in 0..n {
                let mut faults = [Fault::None; SLOTS];
                for (slot, fault) in faults.iter_mut().enumerate() {
                    // A `map` or key closure cannot fail an item, only panic.
                    *fault = if rng.chance(profile.error) && slot != S_MAP && slot != S_KEY {
                        Fault::Error
                    } else if rng.chance(profile.panic) {
                        Fault::Panic
                    } else if rng.chance(profile.stall) {
                        Fault::Stall(1 + rng.below(max_stall) as u16)
                    } else {
                        Fault::None
                    };
                }
                items.push(Item {
                    id: base + i,
                    key: rng.below(keys.into()) as u8,
                    keep: !rng.chance(0.1),
                    faults,
                });
                gaps.push(if rng.chance(gap_rate) {
                    rng.below(max_gap + 1) as u16
                } else {
                    0
                });
            }
            (items, gaps)
        };
        let (items, gaps) = make(&mut rng, 0);
        let (items2, gaps2) = make(&mut rng, SECOND);
        // Stop or abort somewhere in the time the source takes to yield
        // everything (or a little past it), sometimes at once.
        let span: u64 = gaps.iter().map(|&g| u64::from(g)).sum::<u64>() + 20;
        let at = |rng: &mut Rng| {
            if rng.chance(0.15) {
                Duration::ZERO
            } else {
                Duration::from_millis(rng.below(span + 1))
            }
        };
        let end = match rng.below(10) {
            0..=3 => End::Complete,
            4..=7 => End::Stop(at(&mut rng)),
            _ => End::Abort(at(&mut rng)),
        };
        // Now and then a stage fails or panics as it starts or closes.
        let hook = |rng: &mut Rng| match rng.below(100) {
            0..=3 => Fault::Error,
            4..=5 => Fault::Panic,
            6..=15 => Fault::Stall(1 + rng.below(max_stall) as u16),
            _ => Fault::None,
        };
        let init = hook(&mut rng);
        let close = hook(&mut rng);
        let kills = items
            .iter()
            .chain(&items2)
            .any(|i| i.faults.iter().any(|f| f.kills()));
        Case {
            seed,
            clock,
            items,
            gaps,
            items2,
            gaps2,
            end,
            init,
            close,
            kills,
        }
    }
}

// ---------------------------------------------------------------------------
// Probes: what a case observes from outside the pipeline.

/// Counts live stage values: one is moved into every stage and closure, and
/// cloned into every worker's copy of a stage.
#[derive(Debug)]
struct Guard(Arc<AtomicI64>);

impl Guard {
    fn new(live: &Arc<AtomicI64>) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        Guard(Arc::clone(live))
    }
}

impl Clone for Guard {
    fn clone(&self) -> Self {
        Guard::new(&self.0)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What one case shares with its pipeline.
struct Probe {
    live: Arc<AtomicI64>,
    tally: Mutex<Tally>,
}

/// How one case went, for the summary of a topology's cases.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    completed: bool,
    stopped: bool,
    aborted: bool,
    failed: bool,
    /// Ended before the first source had read all its input.
    early: bool,
    /// The no-loss check applied.
    exact: bool,
    /// It applied to a case whose items carry injected errors or panics:
    /// the sinks got every item no fault was injected on, so no good item
    /// was counted as failed with its bad neighbours.
    exact_with_faults: bool,
    /// The topology's edges lose nothing (`block`), so the no-loss check
    /// applies to every case that ends gracefully.
    lossless: bool,
    items: u64,
}

impl Probe {
    fn new() -> Self {
        Probe {
            live: Arc::new(AtomicI64::new(0)),
            tally: Mutex::new(Tally::default()),
        }
    }

    fn guard(&self) -> Guard {
        Guard::new(&self.live)
    }
}

/// A source of `items`, waiting `gaps[i]` ms before item `i`, counting in
/// `read` the items it has handed over.
fn source(
    items: Vec<Item>,
    gaps: Vec<u16>,
    read: Arc<AtomicU64>,
    guard: Guard,
) -> impl futures::Stream<Item = Item> + Send + 'static {
    let items = items.into_iter().zip(gaps);
    futures::stream::unfold(
        (items, read, guard),
        |(mut items, read, guard)| async move {
            let (item, gap) = items.next()?;
            if gap > 0 {
                tokio::time::sleep(Duration::from_millis(gap.into())).await;
            }
            read.fetch_add(1, Ordering::SeqCst);
            Some((item, (items, read, guard)))
        },
    )
}

/// What a sink received, in arrival order.
type Received<T> = Arc<Mutex<Vec<T>>>;

fn received<T>() -> Received<T> {
    Arc::new(Mutex::new(Vec::new()))
}

fn taken<T: Clone>(received: &Received<T>) -> Vec<T> {
    received.lock().unwrap().clone()
}

// ---------------------------------------------------------------------------
// Stages.

/// A sync `#[stage]` that fails or panics as the item's `S_CHECK` says.
#[stage]
fn check(item: Item) -> Result<Item, Injected> {
    sync_fault(item, S_CHECK)
}

/// An async `#[stage]` that stalls, fails or panics as `S_WORK` says.
#[stage]
async fn work(item: Item) -> Result<Item, Injected> {
    async_fault(item, S_WORK).await
}

/// The same, on two workers wherever it is used.
#[stage(parallel = 2)]
async fn work_on_two(item: Item) -> Result<Item, Injected> {
    async_fault(item, S_WORK).await
}

/// An async stage written by hand, holding a guard: stalls, fails or
/// panics as its slot says. `Clone`, for parallel workers.
#[derive(Clone)]
struct Worker {
    slot: usize,
    /// What `init` and `close` do.
    init: Fault,
    close: Fault,
    _guard: Guard,
}

impl Worker {
    fn new(slot: usize, case: &Case, probe: &Probe) -> Self {
        Worker {
            slot,
            init: case.init,
            close: case.close,
            _guard: probe.guard(),
        }
    }
}

/// `init` or `close` as the fault says.
async fn hook_fault(fault: Fault, what: &str) -> Result<(), pipeline::stages::BoxError> {
    match fault {
        Fault::None => Ok(()),
        Fault::Error => Err(format!("chaos: injected {what} error").into()),
        Fault::Panic => std::panic::panic_any(format!("chaos: injected {what} panic")),
        Fault::Stall(ms) => {
            tokio::time::sleep(Duration::from_millis(ms.into())).await;
            Ok(())
        }
    }
}

impl Stage<Item> for Worker {
    type Out = Item;
    type Error = Injected;

    async fn init(&mut self, _: &StageContext) -> Result<(), pipeline::stages::BoxError> {
        hook_fault(self.init, "init").await
    }

    async fn close(&mut self, _: &StageContext) -> Result<(), pipeline::stages::BoxError> {
        hook_fault(self.close, "close").await
    }

    async fn process(
        &mut self,
        item: Item,
        out: &mut Emit<'_, Item>,
        _: &StageContext,
    ) -> Result<(), Injected> {
        out.emit(async_fault(item, self.slot).await?);
        Ok(())
    }
}

/// A sink written by hand: slow, failing or panicking as its slot says;
/// records what it took.
struct Sink {
    slot: usize,
    got: Received<Item>,
    _guard: Guard,
}

impl Sink {
    fn new(slot: usize, got: &Received<Item>, probe: &Probe) -> Self {
        Sink {
            slot,
            got: Arc::clone(got),
            _guard: probe.guard(),
        }
    }
}

impl Stage<Item> for Sink {
    type Out = Never;
    type Error = Injected;

    async fn process(
        &mut self,
        item: Item,
        _: &mut Emit<'_, Never>,
        _: &StageContext,
    ) -> Result<(), Injected> {
        let item = async_fault(item, self.slot).await?;
        self.got.lock().unwrap().push(item);
        Ok(())
    }
}

impl IsSink for Sink {}

/// A sink of batches, slow or failing as the batch's first item's slot
/// says; records the batches it took and counts the items of those it
/// failed.
struct BatchSink {
    slot: usize,
    got: Received<(u8, Vec<Item>)>,
    failed_items: Arc<AtomicU64>,
    _guard: Guard,
}

impl Stage<Batch<Item, u8>> for BatchSink {
    type Out = Never;
    type Error = Injected;

    async fn process(
        &mut self,
        batch: Batch<Item, u8>,
        _: &mut Emit<'_, Never>,
        _: &StageContext,
    ) -> Result<(), Injected> {
        let first = batch.items()[0];
        let len = batch.len() as u64;
        if let Fault::Stall(ms) = first.fault(self.slot) {
            tokio::time::sleep(Duration::from_millis(ms.into())).await;
        }
        if first.fault(self.slot).kills() {
            self.failed_items.fetch_add(len, Ordering::SeqCst);
            return Err(Injected {
                id: first.id,
                slot: self.slot,
            });
        }
        let (key, items, ..) = batch.into_parts();
        self.got.lock().unwrap().push((key, items));
        Ok(())
    }
}

impl IsSink for BatchSink {}

// ---------------------------------------------------------------------------
// Running a case.

/// What a topology's run left behind, for the checks.
struct Outcome {
    result: Result<Report, Error>,
    /// Each stage's state once the run ended, from the handle.
    states: Vec<StageState>,
    /// Each edge's counts once the run ended, from the handle.
    edges: Vec<EdgeReport>,
}

impl Outcome {
    fn state(&self, name: &str) -> &StageState {
        self.states
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| {
                let names: Vec<_> = self.states.iter().map(|s| s.name).collect();
                panic!("no stage `{name}` among {names:?}")
            })
    }

    /// Items lost in the stage `name`: failed, filtered or dead-lettered.
    fn lost(&self, name: &str) -> u64 {
        let s = self.state(name);
        s.failed + s.filtered + s.dead_lettered
    }

    /// Items dropped on the edge from `from` to `to`.
    fn dropped(&self, from: &str, to: &str) -> u64 {
        self.edges
            .iter()
            .find(|e| e.from == from && e.to == to)
            .unwrap_or_else(|| {
                let edges: Vec<_> = self.edges.iter().map(|e| (e.from, e.to)).collect();
                panic!("no edge `{from}` -> `{to}` among {edges:?}")
            })
            .dropped
    }

    /// Whether the run was cut short, dropping what was in flight: it was
    /// aborted, or a stage failed to start or to close, or panicked doing
    /// so (the semantics table in `lifecycle.rs`). Only `on_error = fail`
    /// ends a run with an error and drains it.
    fn aborted(&self) -> bool {
        matches!(
            self.result,
            Err(Error::Aborted | Error::Init { .. } | Error::Close { .. } | Error::Panicked { .. })
        )
    }

    fn table(&self) -> String {
        let mut out = String::new();
        for s in &self.states {
            out.push_str(&format!(
                "  {:<12} {:?} in {} out {} passed {} filtered {} failed {} dropped {} dead {} held {}\n",
                s.name,
                s.status,
                s.items_in,
                s.items_out,
                s.passed,
                s.filtered,
                s.failed,
                s.dropped,
                s.dead_lettered,
                s.items_held()
            ));
        }
        for e in &self.edges {
            out.push_str(&format!(
                "  edge {} -{}-> {}: sent {} dropped {} queued {}\n",
                e.from,
                e.port.unwrap_or(""),
                e.to,
                e.sent,
                e.dropped,
                e.queued
            ));
        }
        out
    }
}

/// Runs a spawned pipeline to its end as the case says: lets it complete,
/// or stops or aborts it after a while; then waits (within a bound) for it
/// to end, and reads its last states.
async fn drive(case: &Case, probe: &Probe, handle: PipelineHandle) -> Result<Outcome, String> {
    let started = tokio::time::Instant::now();
    match case.end {
        End::Complete => {}
        End::Stop(after) | End::Abort(after) => {
            if !after.is_zero() {
                tokio::time::sleep(after).await;
            }
            if matches!(case.end, End::Stop(_)) {
                handle.stop();
            } else {
                handle.abort();
            }
        }
    }
    // Generous: every gap and every stall of every item, one after the
    // other, plus a minute. On paused time only a deadlock reaches it, and
    // at once.
    let budget: u64 = case
        .items
        .iter()
        .chain(&case.items2)
        .flat_map(|i| i.faults)
        .map(|f| match f {
            Fault::Stall(ms) => u64::from(ms),
            _ => 0,
        })
        .sum::<u64>()
        + case
            .gaps
            .iter()
            .chain(&case.gaps2)
            .map(|&g| u64::from(g))
            .sum::<u64>()
        + 60_000;
    let limit = match case.end {
        End::Abort(_) => Duration::from_secs(5),
        _ => Duration::from_millis(budget),
    };
    let waited = tokio::time::timeout(limit, async {
        let mut pause = Duration::from_millis(1);
        while !handle.is_finished() {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    })
    .await;
    if waited.is_err() {
        return Err(format!(
            "the pipeline did not end within {limit:?} after {:?} ({:?}); states:\n{}",
            started.elapsed(),
            case.end,
            Outcome {
                result: Err(Error::Invalid),
                states: handle.snapshot(),
                edges: handle.edge_snapshot(),
            }
            .table()
        ));
    }
    let states = handle.snapshot();
    let edges = handle.edge_snapshot();
    let result = handle.join().await;
    {
        let mut tally = probe.tally.lock().unwrap();
        match &result {
            Ok(report) if report.stopped => tally.stopped = true,
            Ok(_) => tally.completed = true,
            Err(Error::Aborted) => tally.aborted = true,
            Err(_) => tally.failed = true,
        }
        let read = states
            .iter()
            .find(|s| s.kind == pipeline::graph::NodeKind::Source)
            .map_or(0, |s| s.items_out);
        tally.early = read < case.items.len() as u64;
        tally.items = states
            .iter()
            .filter(|s| s.kind == pipeline::graph::NodeKind::Source)
            .map(|s| s.items_out)
            .sum();
    }
    Ok(Outcome {
        result,
        states,
        edges,
    })
}

/// The checks that hold for every topology: the result the ending allows,
/// every stage balanced, a finished accumulator holding nothing.
fn check_common(case: &Case, outcome: &Outcome, may_fail: bool) -> Result<(), String> {
    match (&outcome.result, case.end) {
        (Ok(report), _) => {
            if !report.is_balanced() {
                return Err(format!("the report does not balance:\n{report}"));
            }
            for stage in &report.stages {
                if stage.items_held() != 0 {
                    return Err(format!("`{}` still holds items:\n{report}", stage.name));
                }
            }
            for edge in &report.edges {
                if edge.queued != 0 {
                    return Err(format!(
                        "edge {} -> {} still has {} queued:\n{report}",
                        edge.from, edge.to, edge.queued
                    ));
                }
            }
            if case.end == End::Complete && report.stopped {
                return Err("a run nobody stopped reports `stopped`".into());
            }
        }
        (Err(Error::Aborted), End::Abort(_)) => {}
        (Err(Error::ItemFailed { .. }), _) if may_fail => {}
        (
            Err(Error::Init {
                stage: "Worker", ..
            }),
            _,
        ) if case.init == Fault::Error => {}
        (
            Err(Error::Close {
                stage: "Worker", ..
            }),
            _,
        ) if case.close == Fault::Error => {}
        (Err(Error::Panicked { message }), _)
            if message.contains("chaos: injected")
                && (case.init == Fault::Panic || case.close == Fault::Panic) => {}
        (Err(error), _) => return Err(format!("the run ended with {error:?}")),
    }
    for s in &outcome.states {
        // A live state's `dropped` also counts the drops on the edges out
        // of the stage, which are not among its inputs: take them out.
        let edge_drops: u64 = outcome
            .edges
            .iter()
            .filter(|e| e.from == s.name)
            .map(|e| e.dropped)
            .sum();
        let dropped = s.dropped - edge_drops;
        let accounted =
            s.passed + s.filtered + s.failed + dropped + s.dead_lettered + s.items_held();
        if s.kind != pipeline::graph::NodeKind::Source && s.items_in != accounted {
            return Err(format!(
                "stage `{}` does not balance: in {} != passed {} + filtered {} + failed {} + dropped {} + dead-lettered {} + held {}",
                s.name,
                s.items_in,
                s.passed,
                s.filtered,
                s.failed,
                dropped,
                s.dead_lettered,
                s.items_held()
            ));
        }
    }
    Ok(())
}

/// `got` appears in `model` in the same order (a subsequence), so nothing
/// arrived that the model did not allow, twice, or out of order.
fn subsequence(what: &str, got: &[Item], model: &[Item]) -> Result<(), String> {
    let mut rest = model.iter();
    for item in got {
        if !rest.any(|m| m.id == item.id) {
            return Err(format!(
                "{what}: item {} arrived out of order, twice, or should not have (got {:?}, model {:?})",
                item.id,
                ids(got),
                ids(model)
            ));
        }
    }
    Ok(())
}

/// `got` holds the same items as `model`, in any order, each once.
fn same_set(what: &str, got: &[Item], model: &[Item]) -> Result<(), String> {
    let mut a = ids(got);
    let mut b = ids(model);
    a.sort_unstable();
    b.sort_unstable();
    if a == b {
        return Ok(());
    }
    let got_set: HashSet<u32> = a.iter().copied().collect();
    let model_set: HashSet<u32> = b.iter().copied().collect();
    let mut missing: Vec<_> = model_set.difference(&got_set).copied().collect();
    let mut extra: Vec<_> = got_set.difference(&model_set).copied().collect();
    missing.sort_unstable();
    extra.sort_unstable();
    Err(format!(
        "{what}: missing {missing:?}, unexpected {extra:?} (got {} items, model {})",
        a.len(),
        b.len()
    ))
}

/// `got` holds each item at most once and only items of `model`.
fn subset(what: &str, got: &[Item], model: &[Item]) -> Result<(), String> {
    let allowed: HashSet<u32> = model.iter().map(|i| i.id).collect();
    let mut seen = HashSet::new();
    for item in got {
        if !allowed.contains(&item.id) {
            return Err(format!("{what}: item {} should not have arrived", item.id));
        }
        if !seen.insert(item.id) {
            return Err(format!("{what}: item {} arrived twice", item.id));
        }
    }
    Ok(())
}

/// `got` holds items of `model`, each once, and every item of `model` it
/// lacks is one of the `failed` items of the batches a `BatchSink` failed
/// (a whole batch fails when its first item says so, good items with it).
fn all_but_failed_batches(
    what: &str,
    got: &[Item],
    model: &[Item],
    failed: u64,
) -> Result<(), String> {
    subset(what, got, model)?;
    if model.len() as u64 == got.len() as u64 + failed {
        Ok(())
    } else {
        Err(format!(
            "{what}: got {} items and the sink failed {failed} in whole batches, but {} should have reached it (got {:?}, model {:?})",
            got.len(),
            model.len(),
            ids(got),
            ids(model)
        ))
    }
}

fn ids(items: &[Item]) -> Vec<u32> {
    items.iter().map(|i| i.id).collect()
}

/// `read = sum of losses + collected` along one path.
fn conserve(what: &str, read: u64, losses: &[(&str, u64)], collected: u64) -> Result<(), String> {
    let lost: u64 = losses.iter().map(|(_, n)| n).sum();
    if read == lost + collected {
        Ok(())
    } else {
        Err(format!(
            "{what}: the source read {read} items, but {lost} were lost ({losses:?}) and {collected} collected"
        ))
    }
}

/// The first `read` items of `items`: what the source handed over.
fn read_prefix(items: &[Item], read: &AtomicU64) -> Vec<Item> {
    let n = read.load(Ordering::SeqCst) as usize;
    items[..n.min(items.len())].to_vec()
}

/// Whether the no-loss check applies: a graceful end and `block` edges
/// (`lossless`). Injected errors and panics do not exempt a case: the
/// model leaves out the items they fail, and every other item must arrive,
/// so a stage that failed the good neighbours of a bad item (its whole
/// chunk) fails the check.
fn exact(case: &Case, probe: &Probe, outcome: &Outcome, lossless: bool) -> bool {
    let exact = lossless && outcome.result.is_ok();
    let mut tally = probe.tally.lock().unwrap();
    tally.lossless |= lossless;
    if exact {
        tally.exact = true;
        tally.exact_with_faults |= case.kills;
    }
    exact
}

/// The no-loss check of a topology in which a fault may fail good items
/// by design (a breaker that opens): it applies only to graceful cases with
/// no injected error or panic.
fn exact_without_faults(case: &Case, probe: &Probe, outcome: &Outcome) -> bool {
    let exact = !case.kills && outcome.result.is_ok();
    if exact {
        probe.tally.lock().unwrap().exact = true;
    }
    exact
}

type Topology = fn(Case, Arc<Probe>) -> Pin<Box<dyn Future<Output = Result<(), String>>>>;

/// Keeps the injected panics off stderr (every other panic still prints).
fn quiet_injected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("");
            if !message.starts_with("chaos: injected") {
                default(info);
            }
        }));
    });
}

/// Runs one case of `topology` on its own runtime, on its own thread, and
/// checks that it ends, leaves no task and drops every stage.
fn run_case(topology: Topology, case: Case) -> Result<Tally, String> {
    let (done, wait) = std::sync::mpsc::channel();
    let clock = case.clock;
    std::thread::Builder::new()
        .name(format!("chaos-{}", case.seed))
        .spawn(move || {
            let runtime = match clock {
                Clock::Paused => tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .start_paused(true)
                    .build(),
                Clock::Real => tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build(),
            }
            .expect("a runtime");
            let probe = Arc::new(Probe::new());
            let result = runtime.block_on(async {
                topology(case, Arc::clone(&probe)).await?;
                // Aborted tasks end the next time the runtime gets to them;
                // give them a moment, then nothing may be left.
                let metrics = tokio::runtime::Handle::current().metrics();
                for _ in 0..1000 {
                    if metrics.num_alive_tasks() == 0 && probe.live.load(Ordering::SeqCst) == 0 {
                        return Ok(*probe.tally.lock().unwrap());
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(format!(
                    "leaked: {} tasks alive, {} stage values not dropped",
                    metrics.num_alive_tasks(),
                    probe.live.load(Ordering::SeqCst)
                ))
            });
            let _ = done.send(result);
        })
        .expect("spawn a case thread");
    wait.recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| {
            Err("the case did not end within 120 s of real time (a livelock?)".into())
        })
}

/// Runs the cases of one topology: `CHAOS_CASES` of them (or the default),
/// or the one `CHAOS_SEED` names; on the clock `clock` if given.
fn run_topology(name: &str, topology: Topology, clock: Option<Clock>) {
    quiet_injected_panics();
    let seeds: Vec<u64> = match std::env::var("CHAOS_SEED") {
        Ok(seed) => vec![seed.parse().expect("CHAOS_SEED is a number")],
        Err(_) => {
            let cases = std::env::var("CHAOS_CASES")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(DEFAULT_CASES);
            // A different series per topology, the same on every run.
            let base = name.bytes().fold(0xCBF2_9CE4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
            });
            (0..cases).map(|i| base.wrapping_add(i)).collect()
        }
    };
    let started = std::time::Instant::now();
    let (mut real, mut sum) = (0, Sums::default());
    for &seed in &seeds {
        let case = Case::generate_on(seed, clock);
        let shown = format!("{case:?}");
        real += usize::from(case.clock == Clock::Real);
        match run_case(topology, case) {
            Ok(tally) => sum.add(tally),
            Err(failure) => panic!(
                "chaos case failed: {name}, seed {seed}\n{failure}\n{shown}\nrun it alone with CHAOS_SEED={seed} cargo test --test chaos {name}"
            ),
        }
    }
    eprintln!(
        "{name}: {} cases ({real} in real time) in {:.1?}: {} completed, {} stopped ({} before the end of input), {} aborted, {} failed; no-loss checked in {} ({} with injected faults); {} items read",
        seeds.len(),
        started.elapsed(),
        sum.completed,
        sum.stopped,
        sum.stopped_early,
        sum.aborted,
        sum.failed,
        sum.exact,
        sum.exact_with_faults,
        sum.items,
    );
    // A check that never ran proves nothing: with the default number of
    // cases, a lossless topology must have checked some graceful runs,
    // with and without injected faults.
    if sum.lossless && seeds.len() as u64 >= DEFAULT_CASES {
        assert!(
            sum.exact > 0 && sum.exact_with_faults > 0,
            "{name}: the no-loss check ran in {} cases, {} of them with injected faults; the cases should reach it",
            sum.exact,
            sum.exact_with_faults
        );
    }
}

/// The tallies of a topology's cases, added up.
#[derive(Default)]
struct Sums {
    completed: u64,
    stopped: u64,
    stopped_early: u64,
    aborted: u64,
    failed: u64,
    exact: u64,
    exact_with_faults: u64,
    lossless: bool,
    items: u64,
}

impl Sums {
    fn add(&mut self, t: Tally) {
        self.completed += u64::from(t.completed);
        self.stopped += u64::from(t.stopped);
        self.stopped_early += u64::from(t.stopped && t.early);
        self.aborted += u64::from(t.aborted);
        self.failed += u64::from(t.failed);
        self.exact += u64::from(t.exact);
        self.exact_with_faults += u64::from(t.exact_with_faults);
        self.lossless |= t.lossless;
        self.items += t.items;
    }
}

/// What the sync `map` closures do: panic as `S_MAP` says (a `map`
/// cannot fail an item otherwise).
fn map_fault(item: Item) -> Item {
    if item.fault(S_MAP) == Fault::Panic {
        injected_panic(item.id, S_MAP);
    }
    item
}

/// What an accumulator's key closure does: panic as `S_KEY` says.
fn key_fault(item: &Item) -> u8 {
    if item.fault(S_KEY) == Fault::Panic {
        injected_panic(item.id, S_KEY);
    }
    item.key
}

/// What a `branch` or `by_key` closure does: the same, if
/// [`ROUTING_CLOSURE_PANICS`].
fn routing_fault(item: &Item) -> u8 {
    if ROUTING_CLOSURE_PANICS {
        key_fault(item)
    } else {
        item.key
    }
}

/// The slot a routing closure reads, if it injects faults.
const ROUTING: &[usize] = if ROUTING_CLOSURE_PANICS {
    &[S_KEY]
} else {
    &[]
};

type CaseFuture = Pin<Box<dyn Future<Output = Result<(), String>>>>;

/// Declares a `#[test]` running the cases of a topology: `$body` builds,
/// runs and checks one case, given `case: Case` and `probe: Arc<Probe>`.
macro_rules! chaos_test {
    ($test:ident, |$case:ident, $probe:ident| $body:block) => {
        chaos_test!($test, None, |$case, $probe| $body);
    };
    ($test:ident, $clock:expr, |$case:ident, $probe:ident| $body:block) => {
        #[test]
        fn $test() {
            fn one_case($case: Case, $probe: Arc<Probe>) -> CaseFuture {
                Box::pin(async move { $body })
            }
            run_topology(stringify!($test), one_case, $clock);
        }
    };
}

// ---------------------------------------------------------------------------
// Linear: source >> map >> check >> [edge] Worker >> filter >> Sink.

macro_rules! linear {
    ($test:ident, $on_full:ident, $lossless:expr) => {
        linear!($test, [#[buffer = 2] #[on_full = $on_full]], $lossless);
    };
    ($test:ident, [$(#[$option:meta])*], $lossless:expr) => {
        chaos_test!($test, |case, probe| {
            let read = Arc::new(AtomicU64::new(0));
            let got = received();
            let (g1, g2) = (probe.guard(), probe.guard());
            let handle = pipeline! {
                stream(source(case.items.clone(), case.gaps.clone(), Arc::clone(&read), probe.guard()))
                    >> map(move |item: Item| { let _ = &g1; map_fault(item) })
                    >> check
                    >> $(#[$option])* Worker::new(S_WORK, &case, &probe)
                    >> filter(move |item| { let _ = &g2; item.keep })
                    >> Sink::new(S_SINK, &got, &probe);
            }
            .spawn();
            let o = drive(&case, &probe, handle).await?;
            let fail = |e: String| format!("{e}\n{}", o.table());
            check_common(&case, &o, false).map_err(fail)?;
            let got = taken(&got);
            let read_items = read_prefix(&case.items, &read);
            let model: Vec<Item> = read_items
                .iter()
                .filter(|i| i.survives(&[S_MAP, S_CHECK, S_WORK, S_SINK]) && i.keep)
                .copied()
                .collect();
            subsequence("sink", &got, &model).map_err(fail)?;
            if o.aborted() {
                return Ok(());
            }
            let read = read.load(Ordering::SeqCst);
            if read != o.state("stream").items_out {
                return Err(fail(format!("the source read {read} items but reports {}", o.state("stream").items_out)));
            }
            conserve(
                "sink",
                read,
                &[
                    ("map", o.lost("map")),
                    ("check", o.lost("check")),
                    ("edge", o.dropped("check", "Worker")),
                    ("Worker", o.lost("Worker")),
                    ("filter", o.lost("filter")),
                    ("Sink", o.lost("Sink")),
                ],
                got.len() as u64,
            )
            .map_err(fail)?;
            if exact(&case, &probe, &o, $lossless) && ids(&got) != ids(&model) {
                return Err(fail(format!("lost items: got {:?}, expected {:?}", ids(&got), ids(&model))));
            }
            Ok(())
        });
    };
}

linear!(linear_block, block, true);
linear!(linear_drop_oldest, drop_oldest, false);
linear!(linear_drop_newest, drop_newest, false);
linear!(
    linear_credit_block,
    [#[buffer = 4] #[on_full = block] #[backpressure = credit(3, 2)]],
    true
);
linear!(
    linear_credit_drop_oldest,
    [#[buffer = 2] #[on_full = drop_oldest] #[backpressure = credit(3, 3)]],
    false
);
linear!(
    linear_pull_drop_newest,
    [#[buffer = 2] #[on_full = drop_newest] #[backpressure = pull(2)]],
    false
);
linear!(linear_pull_block, [#[buffer = 3] #[backpressure = pull(1)]], true);
linear!(
    linear_adaptive_block,
    [#[buffer = 8] #[backpressure = adaptive(1, 8)]],
    true
);
linear!(
    linear_rate_drop_oldest,
    [#[buffer = 2] #[on_full = drop_oldest] #[backpressure = rate(2000, 5)]],
    false
);

// `on_error = fail`: the first injected failure in `check` ends the run
// with `ItemFailed`; what was read still drains and balances.
chaos_test!(linear_on_error_fail, |case, probe| {
    let read = Arc::new(AtomicU64::new(0));
    let got = received();
    let g1 = probe.guard();
    let handle = pipeline! {
        stream(source(case.items.clone(), case.gaps.clone(), Arc::clone(&read), probe.guard()))
            >> map(move |item: Item| { let _ = &g1; map_fault(item) })
            >> #[on_error = fail] check
            >> Worker::new(S_WORK, &case, &probe)
            >> work
            >> Sink::new(S_SINK, &got, &probe);
    }
    .spawn();
    let o = drive(&case, &probe, handle).await?;
    let fail = |e: String| format!("{e}\n{}", o.table());
    check_common(&case, &o, true).map_err(fail)?;
    let got = taken(&got);
    let read_items = read_prefix(&case.items, &read);
    let model: Vec<Item> = read_items
        .iter()
        .filter(|i| i.survives(&[S_MAP, S_CHECK, S_WORK, S_SINK]))
        .copied()
        .collect();
    subsequence("sink", &got, &model).map_err(fail)?;
    match &o.result {
        Err(Error::ItemFailed { stage, .. }) => {
            if *stage != "check" {
                return Err(fail(format!("failed in `{stage}`, not `check`")));
            }
            if !read_items.iter().any(|i| i.fault(S_CHECK).kills()) {
                return Err(fail("failed with no fault injected in `check`".into()));
            }
        }
        Ok(_) => {
            let reached = o.state("check").items_in;
            if o.state("check").failed != 0 {
                return Err(fail(format!(
                    "`check` failed items but the run completed ({reached} reached it)"
                )));
            }
        }
        Err(_) => {}
    }
    if o.aborted() {
        return Ok(());
    }
    conserve(
        "sink",
        read.load(Ordering::SeqCst),
        &[
            ("map", o.lost("map")),
            ("check", o.lost("check")),
            ("Worker", o.lost("Worker")),
            ("work", o.lost("work")),
            ("Sink", o.lost("Sink")),
        ],
        got.len() as u64,
    )
    .map_err(fail)
});

// ---------------------------------------------------------------------------
// Fan-out: n = source >> check; n >> [edge] Worker >> Sink;
// n >> map >> filter >> Sink#2.

macro_rules! fan_out {
    ($test:ident, $on_full:ident, $lossless:expr) => {
        chaos_test!($test, |case, probe| {
            let read = Arc::new(AtomicU64::new(0));
            let (a, b) = (received(), received());
            let (g1, g2) = (probe.guard(), probe.guard());
            let handle = pipeline! {
                n = stream(source(case.items.clone(), case.gaps.clone(), Arc::clone(&read), probe.guard())) >> check;
                n >> #[buffer = 3] #[on_full = $on_full] Worker::new(S_WORK, &case, &probe)
                    >> Sink::new(S_SINK, &a, &probe);
                n >> map(move |item: Item| { let _ = &g1; map_fault(item) })
                    >> filter(move |item| { let _ = &g2; item.keep })
                    >> Sink::new(S_SINK2, &b, &probe);
            }
            .spawn();
            let o = drive(&case, &probe, handle).await?;
            let fail = |e: String| format!("{e}\n{}", o.table());
            check_common(&case, &o, false).map_err(fail)?;
            let (a, b) = (taken(&a), taken(&b));
            let read_items = read_prefix(&case.items, &read);
            let model_a: Vec<Item> = read_items
                .iter()
                .filter(|i| i.survives(&[S_CHECK, S_WORK, S_SINK]))
                .copied()
                .collect();
            let model_b: Vec<Item> = read_items
                .iter()
                .filter(|i| i.survives(&[S_CHECK, S_MAP, S_SINK2]) && i.keep)
                .copied()
                .collect();
            subsequence("Sink", &a, &model_a).map_err(fail)?;
            subsequence("Sink#2", &b, &model_b).map_err(fail)?;
            if o.aborted() {
                return Ok(());
            }
            let read = read.load(Ordering::SeqCst);
            conserve(
                "Sink",
                read,
                &[
                    ("n", o.lost("n")),
                    ("edge", o.dropped("n", "Worker")),
                    ("Worker", o.lost("Worker")),
                    ("Sink", o.lost("Sink")),
                ],
                a.len() as u64,
            )
            .map_err(fail)?;
            conserve(
                "Sink#2",
                read,
                &[
                    ("n", o.lost("n")),
                    ("edge", o.dropped("n", "map")),
                    ("map", o.lost("map")),
                    ("filter", o.lost("filter")),
                    ("Sink#2", o.lost("Sink#2")),
                ],
                b.len() as u64,
            )
            .map_err(fail)?;
            if exact(&case, &probe, &o, $lossless) {
                if ids(&a) != ids(&model_a) || ids(&b) != ids(&model_b) {
                    return Err(fail(format!(
                        "lost items: got {:?} and {:?}, expected {:?} and {:?}",
                        ids(&a), ids(&b), ids(&model_a), ids(&model_b)
                    )));
                }
            }
            Ok(())
        });
    };
}

fan_out!(fan_out_block, block, true);
fan_out!(fan_out_drop_oldest, drop_oldest, false);
fan_out!(fan_out_drop_newest, drop_newest, false);

// ---------------------------------------------------------------------------
// Merge: two sources, one through check, one through Worker, into m.

macro_rules! merge {
    ($test:ident, $on_full:ident, $lossless:expr) => {
        merge!($test, [#[buffer = 2] #[on_full = $on_full]], $lossless);
    };
    ($test:ident, [$(#[$option:meta])*], $lossless:expr) => {
        chaos_test!($test, |case, probe| {
            let (read_a, read_b) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
            let got = received();
            let (g1, g2) = (probe.guard(), probe.guard());
            let handle = pipeline! {
                m = $(#[$option])* map(move |item: Item| { let _ = &g1; map_fault(item) });
                stream(source(case.items.clone(), case.gaps.clone(), Arc::clone(&read_a), probe.guard()))
                    >> check >> m;
                stream(source(case.items2.clone(), case.gaps2.clone(), Arc::clone(&read_b), probe.guard()))
                    >> Worker::new(S_WORK, &case, &probe) >> m;
                m >> filter(move |item| { let _ = &g2; item.keep }) >> Sink::new(S_SINK, &got, &probe);
            }
            .spawn();
            let o = drive(&case, &probe, handle).await?;
            let fail = |e: String| format!("{e}\n{}", o.table());
            check_common(&case, &o, false).map_err(fail)?;
            let got = taken(&got);
            let (got_a, got_b): (Vec<Item>, Vec<Item>) = got.iter().partition(|i| i.id < SECOND);
            let model_a: Vec<Item> = read_prefix(&case.items, &read_a)
                .iter()
                .filter(|i| i.survives(&[S_CHECK, S_MAP, S_SINK]) && i.keep)
                .copied()
                .collect();
            let model_b: Vec<Item> = read_prefix(&case.items2, &read_b)
                .iter()
                .filter(|i| i.survives(&[S_WORK, S_MAP, S_SINK]) && i.keep)
                .copied()
                .collect();
            subsequence("first source at the sink", &got_a, &model_a).map_err(fail)?;
            subsequence("second source at the sink", &got_b, &model_b).map_err(fail)?;
            if o.aborted() {
                return Ok(());
            }
            conserve(
                "Sink",
                read_a.load(Ordering::SeqCst) + read_b.load(Ordering::SeqCst),
                &[
                    ("check", o.lost("check")),
                    ("Worker", o.lost("Worker")),
                    ("edge check", o.dropped("check", "m")),
                    ("edge Worker", o.dropped("Worker", "m")),
                    ("m", o.lost("m")),
                    ("filter", o.lost("filter")),
                    ("Sink", o.lost("Sink")),
                ],
                got.len() as u64,
            )
            .map_err(fail)?;
            if exact(&case, &probe, &o, $lossless) {
                if ids(&got_a) != ids(&model_a) || ids(&got_b) != ids(&model_b) {
                    return Err(fail(format!(
                        "lost items: got {:?} and {:?}, expected {:?} and {:?}",
                        ids(&got_a), ids(&got_b), ids(&model_a), ids(&model_b)
                    )));
                }
            }
            Ok(())
        });
    };
}

merge!(merge_block, block, true);
merge!(merge_drop_oldest, drop_oldest, false);
merge!(merge_drop_newest, drop_newest, false);
merge!(
    merge_credit_block,
    [#[buffer = 4] #[backpressure = credit(2, 1)]],
    true
);
merge!(
    merge_pull_drop_oldest,
    [#[buffer = 2] #[on_full = drop_oldest] #[backpressure = pull(3)]],
    false
);

// ---------------------------------------------------------------------------
// Branch, with check's errors port connected: checked[errors] >> dead;
// split[even] >> Worker >> Sink; split[odd] >> [edge] map >> filter >> Sink#2.

macro_rules! branch {
    ($test:ident, $on_full:ident, $lossless:expr) => {
        chaos_test!($test, |case, probe| {
            let read = Arc::new(AtomicU64::new(0));
            let (a, b) = (received(), received());
            let dead: Collected<Item> = Collected::new();
            let (g1, g2, g3) = (probe.guard(), probe.guard(), probe.guard());
            let handle = pipeline! {
                checked = stream(source(case.items.clone(), case.gaps.clone(), Arc::clone(&read), probe.guard())) >> check;
                checked[errors] >> map(|failed| failed.input) >> collect(&dead);
                split = checked >> branch(move |item: &Item, [even, odd]| {
                    let _ = &g3;
                    if routing_fault(item) % 2 == 0 { even } else { odd }
                });
                split[even] >> Worker::new(S_WORK, &case, &probe) >> Sink::new(S_SINK, &a, &probe);
                split[odd] >> #[buffer = 2] #[on_full = $on_full] map(move |item: Item| { let _ = &g1; map_fault(item) })
                    >> filter(move |item| { let _ = &g2; item.keep })
                    >> Sink::new(S_SINK2, &b, &probe);
            }
            .spawn();
            let o = drive(&case, &probe, handle).await?;
            let fail = |e: String| format!("{e}\n{}", o.table());
            check_common(&case, &o, false).map_err(fail)?;
            let (a, b, dead) = (taken(&a), taken(&b), dead.take());
            let read_items = read_prefix(&case.items, &read);
            let model_a: Vec<Item> = read_items
                .iter()
                .filter(|i| i.key % 2 == 0 && i.survives(&[S_CHECK, S_WORK, S_SINK]) && i.survives(ROUTING))
                .copied()
                .collect();
            let model_b: Vec<Item> = read_items
                .iter()
                .filter(|i| i.key % 2 == 1 && i.survives(&[S_CHECK, S_MAP, S_SINK2]) && i.survives(ROUTING) && i.keep)
                .copied()
                .collect();
            subsequence("even", &a, &model_a).map_err(fail)?;
            subsequence("odd", &b, &model_b).map_err(fail)?;
            subset("dead letters", &dead, &read_items).map_err(fail)?;
            if o.aborted() {
                return Ok(());
            }
            let checked = o.state("checked");
            if dead.len() as u64 != checked.dead_lettered || checked.failed != 0 {
                return Err(fail(format!(
                    "`checked` dead-lettered {} and failed {}, but {} dead letters arrived",
                    checked.dead_lettered, checked.failed, dead.len()
                )));
            }
            if !read_items.iter().any(|i| i.fault(S_CHECK) == Fault::Panic) {
                // Without a panic (which fails the rest of its chunk too),
                // exactly the items `check` fails are dead letters.
                let model: Vec<Item> = read_items.iter().filter(|i| i.fault(S_CHECK) == Fault::Error).copied().collect();
                same_set("dead letters", &dead, &model).map_err(fail)?;
            }
            let split = o.state("split");
            let read = read.load(Ordering::SeqCst);
            let to_even: u64 = o.edges.iter().filter(|e| e.from == "split" && e.port == Some("even")).map(|e| e.sent).sum();
            let to_odd: u64 = o.edges.iter().filter(|e| e.from == "split" && e.port == Some("odd")).map(|e| e.sent).sum();
            conserve("split", read, &[("checked", o.lost("checked")), ("split", o.lost("split")), ("odd", to_odd)], to_even).map_err(fail)?;
            // An item whose branch closure panicked fails there.
            if split.items_in != to_even + to_odd + split.failed {
                return Err(fail(format!(
                    "`split` took {} items but sent {to_even} + {to_odd} and failed {}",
                    split.items_in, split.failed
                )));
            }
            conserve(
                "even",
                to_even,
                &[("Worker", o.lost("Worker")), ("Sink", o.lost("Sink"))],
                a.len() as u64,
            )
            .map_err(fail)?;
            conserve(
                "odd",
                to_odd,
                &[
                    ("edge", o.dropped("split", "map#2")),
                    ("map#2", o.lost("map#2")),
                    ("filter", o.lost("filter")),
                    ("Sink#2", o.lost("Sink#2")),
                ],
                b.len() as u64,
            )
            .map_err(fail)?;
            if exact(&case, &probe, &o, $lossless) {
                if ids(&a) != ids(&model_a) || ids(&b) != ids(&model_b) {
                    return Err(fail(format!(
                        "lost items: got {:?} and {:?}, expected {:?} and {:?}",
                        ids(&a), ids(&b), ids(&model_a), ids(&model_b)
                    )));
                }
            }
            Ok(())
        });
    };
}

branch!(branch_block, block, true);
branch!(branch_drop_oldest, drop_oldest, false);
branch!(branch_drop_newest, drop_newest, false);

// ---------------------------------------------------------------------------
// Accumulate.

/// What a batch sink received: the items of the batches it took, the
/// number of items in batches it failed, and the batches' shapes checked.
fn batches_ok(
    what: &str,
    batches: &[(u8, Vec<Item>)],
    max_items: usize,
) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    for (key, batch) in batches {
        if batch.is_empty() || batch.len() > max_items {
            return Err(format!(
                "{what}: a batch of {} items (max {max_items})",
                batch.len()
            ));
        }
        if let Some(other) = batch.iter().find(|i| i.key != *key) {
            return Err(format!(
                "{what}: item {} of key {} in a batch of key {key}",
                other.id, other.key
            ));
        }
        items.extend(batch.iter().copied());
    }
    Ok(items)
}

/// Each key's items arrive in the model's order.
fn per_key_order(what: &str, got: &[Item], model: &[Item]) -> Result<(), String> {
    for key in 0..=u8::MAX {
        let got: Vec<Item> = got.iter().filter(|i| i.key == key).copied().collect();
        if got.is_empty() {
            continue;
        }
        let model: Vec<Item> = model.iter().filter(|i| i.key == key).copied().collect();
        subsequence(&format!("{what}, key {key}"), &got, &model)?;
    }
    Ok(())
}

// Accumulate after `check`: with `max_latency`, the accumulation reads
// from an edge and wakes at its deadlines; without it, it is fused into
// the chain before it and pulls `check` itself.
macro_rules! accumulate_chained {
    ($test:ident, $($latency:tt)*) => {
        chaos_test!($test, |case, probe| {
            let read = Arc::new(AtomicU64::new(0));
            let got = received();
            let failed_items = Arc::new(AtomicU64::new(0));
            let g1 = probe.guard();
            let handle = pipeline! {
                stream(source(case.items.clone(), case.gaps.clone(), Arc::clone(&read), probe.guard()))
                    >> check
                    >> accumulate(key = move |item: &Item| { let _ = &g1; key_fault(item) }, max_items = 4 $($latency)*)
                    >> BatchSink { slot: S_SINK, got: Arc::clone(&got), failed_items: Arc::clone(&failed_items), _guard: probe.guard() };
            }
            .spawn();
            let o = drive(&case, &probe, handle).await?;
            let fail = |e: String| format!("{e}\n{}", o.table());
            check_common(&case, &o, false).map_err(fail)?;
            let items = batches_ok("batches", &taken(&got), 4).map_err(fail)?;
            let read_items = read_prefix(&case.items, &read);
            let model: Vec<Item> = read_items
                .iter()
                .filter(|i| i.survives(&[S_CHECK, S_KEY]))
                .copied()
                .collect();
            subset("batched items", &items, &model).map_err(fail)?;
            per_key_order("batched items", &items, &model).map_err(fail)?;
            if o.aborted() {
                return Ok(());
            }
            let acc = o.state("accumulate");
            let failed_items = failed_items.load(Ordering::SeqCst);
            if acc.passed != items.len() as u64 + failed_items {
                return Err(fail(format!(
                    "`accumulate` passed {} items, the sink took {} and failed {failed_items}",
                    acc.passed,
                    items.len()
                )));
            }
            conserve(
                "batches",
                read.load(Ordering::SeqCst),
                &[
                    ("check", o.lost("check")),
                    ("accumulate", o.lost("accumulate")),
                    ("failed batches", failed_items),
                ],
                items.len() as u64,
            )
            .map_err(fail)?;
            if exact(&case, &probe, &o, true) {
                all_but_failed_batches("batched items", &items, &model, failed_items).map_err(fail)?;
            }
            Ok(())
        });
    };
}

accumulate_chained!(accumulate_latency, , max_latency = 20ms);
accumulate_chained!(accumulate_fused,);

macro_rules! accumulate_ttl {
    ($test:ident, $on_full:ident, $lossless:expr) => {
        chaos_test!($test, |case, probe| {
            let read = Arc::new(AtomicU64::new(0));
            let got = received();
            let failed_items = Arc::new(AtomicU64::new(0));
            let dead: Received<(u8, Vec<Item>)> = received();
            let (g1, g2) = (probe.guard(), probe.guard());
            let dead_in = Arc::clone(&dead);
            let handle = pipeline! {
                groups = stream(source(case.items.clone(), case.gaps.clone(), Arc::clone(&read), probe.guard()))
                    >> map(move |item: Item| { let _ = &g1; map_fault(item) })
                    >> #[buffer = 4] #[on_full = $on_full] accumulate(key = key_fault, max_items = 6, ttl = 15ms, partial_flush = false);
                groups >> BatchSink { slot: S_SINK, got: Arc::clone(&got), failed_items: Arc::clone(&failed_items), _guard: probe.guard() };
                groups[errors] >> for_each(move |unfinished| {
                    let _ = &g2;
                    let items = unfinished.partial.map(|b| b.into_items()).unwrap_or_default();
                    dead_in.lock().unwrap().push((unfinished.key, items));
                });
            }
            .spawn();
            let o = drive(&case, &probe, handle).await?;
            let fail = |e: String| format!("{e}\n{}", o.table());
            check_common(&case, &o, false).map_err(fail)?;
            let items = batches_ok("batches", &taken(&got), 6).map_err(fail)?;
            let dead = batches_ok("unfinished", &taken(&dead), 6).map_err(fail)?;
            let read_items = read_prefix(&case.items, &read);
            let model: Vec<Item> = read_items.iter().filter(|i| i.survives(&[S_MAP, S_KEY])).copied().collect();
            let mut all = items.clone();
            all.extend(&dead);
            subset("batched and unfinished items", &all, &model).map_err(fail)?;
            per_key_order("batched items", &items, &model).map_err(fail)?;
            if o.aborted() {
                return Ok(());
            }
            let groups = o.state("groups");
            let failed_items = failed_items.load(Ordering::SeqCst);
            if groups.passed != items.len() as u64 + failed_items {
                return Err(fail(format!(
                    "`groups` passed {} items, the sink took {} and failed {failed_items}",
                    groups.passed,
                    items.len()
                )));
            }
            if groups.dead_lettered != dead.len() as u64 {
                return Err(fail(format!(
                    "`groups` dead-lettered {} items, {} arrived on its errors port",
                    groups.dead_lettered,
                    dead.len()
                )));
            }
            conserve(
                "batches",
                read.load(Ordering::SeqCst),
                &[
                    ("map", o.lost("map")),
                    ("edge", o.dropped("map", "groups")),
                    ("groups", groups.failed + groups.filtered),
                    ("unfinished", groups.dead_lettered),
                    ("failed batches", failed_items),
                ],
                items.len() as u64,
            )
            .map_err(fail)?;
            if exact(&case, &probe, &o, $lossless) {
                all_but_failed_batches("batched and unfinished items", &all, &model, failed_items)
                    .map_err(fail)?;
            }
            Ok(())
        });
    };
}

accumulate_ttl!(accumulate_ttl_block, block, true);
accumulate_ttl!(accumulate_ttl_drop_oldest, drop_oldest, false);
accumulate_ttl!(accumulate_ttl_drop_newest, drop_newest, false);

// ---------------------------------------------------------------------------
// Parallel stages.

/// `source >> check >> [parallel Worker] >> filter >> Sink`, with the
/// options given; `$order` says what order the sink must see.
macro_rules! parallel {
    ($test:ident, [$(#[$option:meta])*], $order:ident, $lossless:expr) => {
        parallel!($test, [$(#[$option])*], $order, $lossless, &[]);
    };
    ($test:ident, [$(#[$option:meta])*], $order:ident, $lossless:expr, $routing:expr) => {
        chaos_test!($test, |case, probe| {
            let read = Arc::new(AtomicU64::new(0));
            let got = received();
            let g1 = probe.guard();
            let handle = pipeline! {
                stream(source(case.items.clone(), case.gaps.clone(), Arc::clone(&read), probe.guard()))
                    >> check
                    >> $(#[$option])* Worker::new(S_WORK, &case, &probe)
                    >> filter(move |item| { let _ = &g1; item.keep })
                    >> Sink::new(S_SINK, &got, &probe);
            }
            .spawn();
            let o = drive(&case, &probe, handle).await?;
            let fail = |e: String| format!("{e}\n{}", o.table());
            check_common(&case, &o, false).map_err(fail)?;
            let got = taken(&got);
            let read_items = read_prefix(&case.items, &read);
            let model: Vec<Item> = read_items
                .iter()
                .filter(|i| i.survives(&[S_CHECK, S_WORK, S_SINK]) && i.survives($routing) && i.keep)
                .copied()
                .collect();
            parallel!(@order $order, got, model).map_err(fail)?;
            if o.aborted() {
                return Ok(());
            }
            conserve(
                "sink",
                read.load(Ordering::SeqCst),
                &[
                    ("check", o.lost("check")),
                    ("edge", o.dropped("check", "Worker")),
                    ("Worker", o.lost("Worker")),
                    ("filter", o.lost("filter")),
                    ("Sink", o.lost("Sink")),
                ],
                got.len() as u64,
            )
            .map_err(fail)?;
            if exact(&case, &probe, &o, $lossless) {
                same_set("sink", &got, &model).map_err(fail)?;
            }
            Ok(())
        });
    };
    (@order ordered, $got:ident, $model:ident) => {
        subsequence("sink", &$got, &$model)
    };
    (@order unordered, $got:ident, $model:ident) => {
        subset("sink", &$got, &$model)
    };
    (@order by_key, $got:ident, $model:ident) => {
        subset("sink", &$got, &$model).and_then(|()| per_key_order("sink", &$got, &$model))
    };
}

parallel!(parallel_ordered, [#[parallel = 3] #[ordered]], ordered, true);
parallel!(parallel_unordered, [#[parallel = 3] #[unordered]], unordered, true);
parallel!(
    parallel_by_key_drop_oldest,
    [#[parallel = 4] #[by_key(|item: &Item| routing_fault(item))] #[buffer = 3] #[on_full = drop_oldest]],
    by_key,
    false,
    ROUTING
);
parallel!(
    parallel_io_drop_newest,
    [#[parallel = io] #[unordered] #[buffer = 2] #[on_full = drop_newest]],
    unordered,
    false
);

// A `#[stage(parallel = 2)]` default, an errors port on it, and a retried,
// breaker-guarded stage after it.
chaos_test!(parallel_stage_default_with_policies, |case, probe| {
    let read = Arc::new(AtomicU64::new(0));
    let got = received();
    let dead: Collected<Item> = Collected::new();
    let g1 = probe.guard();
    let handle = pipeline! {
        worked = stream(source(case.items.clone(), case.gaps.clone(), Arc::clone(&read), probe.guard()))
            >> map(move |item: Item| { let _ = &g1; map_fault(item) })
            >> work_on_two;
        worked[errors] >> map(|failed| failed.input) >> collect(&dead);
        worked
            >> #[on_error = retry(2, backoff = 1ms)] check
            >> #[breaker(error_rate = 0.5, window = 1s, min_calls = 5, cooldown = 20ms)] Worker::new(S_SINK2, &case, &probe)
            >> Sink::new(S_SINK, &got, &probe);
    }
    .spawn();
    let o = drive(&case, &probe, handle).await?;
    let fail = |e: String| format!("{e}\n{}", o.table());
    check_common(&case, &o, false).map_err(fail)?;
    let (got, dead) = (taken(&got), dead.take());
    let read_items = read_prefix(&case.items, &read);
    let model: Vec<Item> = read_items
        .iter()
        .filter(|i| i.survives(&[S_MAP, S_WORK, S_CHECK, S_SINK2, S_SINK]))
        .copied()
        .collect();
    subsequence("sink", &got, &model).map_err(fail)?;
    let dead_model: Vec<Item> = read_items
        .iter()
        .filter(|i| i.survives(&[S_MAP]) && i.fault(S_WORK).kills())
        .copied()
        .collect();
    subset("dead letters", &dead, &dead_model).map_err(fail)?;
    if o.aborted() {
        return Ok(());
    }
    let worked = o.state("worked");
    if worked.dead_lettered != dead.len() as u64 || worked.failed != 0 {
        return Err(fail(format!(
            "`worked` dead-lettered {} and failed {}, {} dead letters arrived",
            worked.dead_lettered,
            worked.failed,
            dead.len()
        )));
    }
    // Failures in `work_on_two` are per item (it is async), so exactly
    // the items it was given that it fails are dead letters.
    let reached: Vec<Item> = read_items
        .iter()
        .filter(|i| i.survives(&[S_MAP]))
        .copied()
        .collect();
    if worked.items_in == reached.len() as u64 {
        same_set("dead letters", &dead, &dead_model).map_err(fail)?;
    }
    let check = o.state("check");
    if check.retries != 2 * check.failed {
        return Err(fail(format!(
            "`check` failed {} items after retrying, but made {} retries (2 each)",
            check.failed, check.retries
        )));
    }
    conserve(
        "sink",
        read.load(Ordering::SeqCst),
        &[
            ("map", o.lost("map")),
            ("edge", o.dropped("map", "worked")),
            ("worked", o.lost("worked")),
            ("check", o.lost("check")),
            ("Worker", o.lost("Worker")),
            ("Sink", o.lost("Sink")),
        ],
        got.len() as u64,
    )
    .map_err(fail)?;
    // An open breaker fails good items fast, by design: the no-loss
    // check applies only to cases without injected faults.
    if exact_without_faults(&case, &probe, &o) && ids(&got) != ids(&model) {
        return Err(fail(format!(
            "lost items: got {:?}, expected {:?}",
            ids(&got),
            ids(&model)
        )));
    }
    Ok(())
});

// ---------------------------------------------------------------------------
// Mixed: a fan-out into a parallel stage and an accumulator.

chaos_test!(mixed_fan_out_parallel_accumulate, |case, probe| {
    let read = Arc::new(AtomicU64::new(0));
    let got = received();
    let batches = received();
    let failed_items = Arc::new(AtomicU64::new(0));
    let handle = pipeline! {
        n = stream(source(case.items.clone(), case.gaps.clone(), Arc::clone(&read), probe.guard())) >> check;
        n >> #[parallel = 2] #[unordered] Worker::new(S_WORK, &case, &probe) >> Sink::new(S_SINK, &got, &probe);
        n >> #[buffer = 2] accumulate(key = |item: &Item| item.key % 2, max_items = 3, max_latency = 5ms)
            >> BatchSink { slot: S_SINK2, got: Arc::clone(&batches), failed_items: Arc::clone(&failed_items), _guard: probe.guard() };
    }
    .spawn();
    let o = drive(&case, &probe, handle).await?;
    let fail = |e: String| format!("{e}\n{}", o.table());
    check_common(&case, &o, false).map_err(fail)?;
    let got = taken(&got);
    let read_items = read_prefix(&case.items, &read);
    let model_a: Vec<Item> = read_items
        .iter()
        .filter(|i| i.survives(&[S_CHECK, S_WORK, S_SINK]))
        .copied()
        .collect();
    subset("Sink", &got, &model_a).map_err(fail)?;
    let mut batched = Vec::new();
    for (key, batch) in taken(&batches) {
        if batch.is_empty() || batch.len() > 3 || batch.iter().any(|i| i.key % 2 != key) {
            return Err(fail(format!(
                "a wrong batch of key {key}: {:?}",
                ids(&batch)
            )));
        }
        batched.extend(batch);
    }
    let model_b: Vec<Item> = read_items
        .iter()
        .filter(|i| i.survives(&[S_CHECK]))
        .copied()
        .collect();
    subset("batches", &batched, &model_b).map_err(fail)?;
    if o.aborted() {
        return Ok(());
    }
    let read = read.load(Ordering::SeqCst);
    conserve(
        "Sink",
        read,
        &[
            ("n", o.lost("n")),
            ("Worker", o.lost("Worker")),
            ("Sink", o.lost("Sink")),
        ],
        got.len() as u64,
    )
    .map_err(fail)?;
    conserve(
        "batches",
        read,
        &[
            ("n", o.lost("n")),
            ("accumulate", o.lost("accumulate")),
            ("failed batches", failed_items.load(Ordering::SeqCst)),
        ],
        batched.len() as u64,
    )
    .map_err(fail)?;
    if exact(&case, &probe, &o, true) {
        same_set("Sink", &got, &model_a).map_err(fail)?;
        let failed_items = failed_items.load(Ordering::SeqCst);
        all_but_failed_batches("batches", &batched, &model_b, failed_items).map_err(fail)?;
    }
    Ok(())
});

// `on_error = fail` on a parallel stage: the first injected failure in
// `Worker` ends the run with `ItemFailed`; what was read still drains.
chaos_test!(parallel_on_error_fail, |case, probe| {
    let read = Arc::new(AtomicU64::new(0));
    let got = received();
    let handle = pipeline! {
        stream(source(case.items.clone(), case.gaps.clone(), Arc::clone(&read), probe.guard()))
            >> #[parallel = 2] #[on_error = fail] Worker::new(S_WORK, &case, &probe)
            >> Sink::new(S_SINK, &got, &probe);
    }
    .spawn();
    let o = drive(&case, &probe, handle).await?;
    let fail = |e: String| format!("{e}\n{}", o.table());
    check_common(&case, &o, true).map_err(fail)?;
    let got = taken(&got);
    let read_items = read_prefix(&case.items, &read);
    let model: Vec<Item> = read_items
        .iter()
        .filter(|i| i.survives(&[S_WORK, S_SINK]))
        .copied()
        .collect();
    subsequence("sink", &got, &model).map_err(fail)?;
    match &o.result {
        Err(Error::ItemFailed { stage, .. }) => {
            if *stage != "Worker" {
                return Err(fail(format!("failed in `{stage}`, not `Worker`")));
            }
            if !read_items.iter().any(|i| i.fault(S_WORK).kills()) {
                return Err(fail("failed with no fault injected in `Worker`".into()));
            }
        }
        Ok(_) if o.state("Worker").failed != 0 => {
            return Err(fail("`Worker` failed items but the run completed".into()));
        }
        _ => {}
    }
    if o.aborted() {
        return Ok(());
    }
    conserve(
        "sink",
        read.load(Ordering::SeqCst),
        &[("Worker", o.lost("Worker")), ("Sink", o.lost("Sink"))],
        got.len() as u64,
    )
    .map_err(fail)
});

// ---------------------------------------------------------------------------
// Push: two producer tasks send the items (even and odd positions) into a
// `push` source while the pipeline runs, with the case's gaps; a stop
// closes the source to them, and must still process every item a `send`
// accepted.

macro_rules! push_producers {
    ($test:ident, $capacity:expr) => {
        chaos_test!($test, |case, probe| {
            let (numbers, handle) = pipeline::io::push::<Item>($capacity);
            let accepted: Received<Item> = received();
            let producers: Vec<_> = (0..2)
                .map(|producer| {
                    let handle = handle.clone();
                    let accepted = Arc::clone(&accepted);
                    let items: Vec<(Item, u16)> = case
                        .items
                        .iter()
                        .copied()
                        .zip(case.gaps.iter().copied())
                        .skip(producer)
                        .step_by(2)
                        .collect();
                    tokio::spawn(async move {
                        for (item, gap) in items {
                            if gap > 0 {
                                tokio::time::sleep(Duration::from_millis(gap.into())).await;
                            }
                            // Recorded once accepted: a stop refuses the
                            // rest, handing each item back.
                            match handle.send(item).await {
                                Ok(()) => accepted.lock().unwrap().push(item),
                                Err(refused) => {
                                    assert_eq!(refused.into_inner().id, item.id);
                                    break;
                                }
                            }
                        }
                    })
                })
                .collect();
            drop(handle);
            let got = received();
            let g1 = probe.guard();
            let running = pipeline! {
                numbers
                    >> map(move |item: Item| { let _ = &g1; map_fault(item) })
                    >> check
                    >> Worker::new(S_WORK, &case, &probe)
                    >> Sink::new(S_SINK, &got, &probe);
            }
            .spawn();
            let o = drive(&case, &probe, running).await?;
            for producer in producers {
                producer
                    .await
                    .map_err(|e| format!("a producer failed: {e}"))?;
            }
            let fail = |e: String| format!("{e}\n{}", o.table());
            check_common(&case, &o, false).map_err(fail)?;
            let got = taken(&got);
            let accepted = taken(&accepted);
            let model: Vec<Item> = accepted
                .iter()
                .filter(|i| i.survives(&[S_MAP, S_CHECK, S_WORK, S_SINK]))
                .copied()
                .collect();
            subset("sink", &got, &model).map_err(fail)?;
            // Each producer's items keep their order through the chain.
            for parity in 0..2 {
                let of = |items: &[Item]| -> Vec<Item> {
                    items
                        .iter()
                        .filter(|i| i.id % 2 == parity)
                        .copied()
                        .collect()
                };
                subsequence("sink, per producer", &of(&got), &of(&model)).map_err(fail)?;
            }
            if o.aborted() {
                return Ok(());
            }
            // Every accepted item was read, a stop notwithstanding.
            let source = o.state("numbers");
            if source.items_out != accepted.len() as u64 || source.dropped != 0 {
                return Err(fail(format!(
                    "the producers handed over {} items, but the source read {} and dropped {}",
                    accepted.len(),
                    source.items_out,
                    source.dropped
                )));
            }
            conserve(
                "sink",
                accepted.len() as u64,
                &[
                    ("map", o.lost("map")),
                    ("check", o.lost("check")),
                    ("Worker", o.lost("Worker")),
                    ("Sink", o.lost("Sink")),
                ],
                got.len() as u64,
            )
            .map_err(fail)?;
            if exact(&case, &probe, &o, true) {
                same_set("sink", &got, &model).map_err(fail)?;
            }
            Ok(())
        });
    };
}

push_producers!(push_two_producers, 4);
push_producers!(push_two_producers_capacity_one, 1);

// ---------------------------------------------------------------------------
// The harness catches what it is there to catch.

/// A stage that leaves a task behind.
#[derive(Clone)]
struct Leaky;

impl Stage<Item> for Leaky {
    type Out = Item;
    type Error = Injected;

    async fn init(&mut self, _: &StageContext) -> Result<(), pipeline::stages::BoxError> {
        tokio::spawn(std::future::pending::<()>());
        Ok(())
    }

    async fn process(
        &mut self,
        item: Item,
        out: &mut Emit<'_, Item>,
        _: &StageContext,
    ) -> Result<(), Injected> {
        out.emit(item);
        Ok(())
    }
}

/// A stage that never finishes an item.
struct Stuck;

impl Stage<Item> for Stuck {
    type Out = Item;
    type Error = Injected;

    async fn process(
        &mut self,
        _: Item,
        _: &mut Emit<'_, Item>,
        _: &StageContext,
    ) -> Result<(), Injected> {
        std::future::pending().await
    }
}

/// A case that completes with a few clean items, on paused time.
fn plain_case() -> Case {
    let mut case = Case::generate(7);
    case.clock = Clock::Paused;
    case.end = End::Complete;
    case.init = Fault::None;
    case.close = Fault::None;
    case.items = (0..10)
        .map(|id| Item {
            id,
            key: 0,
            keep: true,
            faults: [Fault::None; SLOTS],
        })
        .collect();
    case.gaps = vec![0; 10];
    case.kills = false;
    case
}

#[test]
fn the_harness_catches_a_leaked_task() {
    let error = run_case(
        |case, probe| {
            Box::pin(async move {
                let read = Arc::new(AtomicU64::new(0));
                let got = received();
                let handle = pipeline! {
                    stream(source(case.items.clone(), case.gaps.clone(), read, probe.guard())) >> Leaky >> Sink::new(S_SINK, &got, &probe);
                }
                .spawn();
                drive(&case, &probe, handle).await.map(drop)
            })
        },
        plain_case(),
    )
    .unwrap_err();
    assert!(error.contains("leaked: 1 tasks alive"), "{error}");
}

#[test]
fn the_harness_catches_a_hang() {
    let error = run_case(
        |case, probe| {
            Box::pin(async move {
                let read = Arc::new(AtomicU64::new(0));
                let got = received();
                let handle = pipeline! {
                    stream(source(case.items.clone(), case.gaps.clone(), read, probe.guard())) >> Stuck >> Sink::new(S_SINK, &got, &probe);
                }
                .spawn();
                drive(&case, &probe, handle).await.map(drop)
            })
        },
        plain_case(),
    )
    .unwrap_err();
    assert!(error.contains("the pipeline did not end within"), "{error}");
}

#[test]
fn the_harness_catches_a_lost_item() {
    let error = run_case(
        |case, probe| {
            Box::pin(async move {
                let read = Arc::new(AtomicU64::new(0));
                let got = received();
                let handle = pipeline! {
                    stream(source(case.items.clone(), case.gaps.clone(), Arc::clone(&read), probe.guard()))
                        >> Sink::new(S_SINK, &got, &probe);
                }
                .spawn();
                let o = drive(&case, &probe, handle).await?;
                // The sink "loses" one item it took: the count no longer adds up.
                let got = taken(&got)[1..].to_vec();
                let model = read_prefix(&case.items, &read);
                subsequence("sink", &got, &model)?;
                conserve("sink", read.load(Ordering::SeqCst), &[("Sink", o.lost("Sink"))], got.len() as u64)
            })
        },
        plain_case(),
    )
    .unwrap_err();
    assert!(
        error.contains("the source read 10 items, but 0 were lost"),
        "{error}"
    );
}

// ---------------------------------------------------------------------------
// Regressions: bugs the chaos suite found, each as small as it gets.

/// A panic in a `branch` closure fails its item, not the run: it used to
/// end the whole run with `Error::Panicked` (and `run()` unwound into its
/// caller), losing every item in flight and the report. Found with
/// `ROUTING_CLOSURE_PANICS` on.
#[tokio::test]
async fn regression_a_panicking_branch_closure_fails_items_not_the_run() {
    let (even, odd) = (Collected::new(), Collected::new());
    let result = pipeline! {
        split = iter(0..10u32) >> branch(|x: &u32, [even, odd]| {
            assert!(*x != 5, "boom");
            if x.is_multiple_of(2) { even } else { odd }
        });
        split[even] >> collect(&even);
        split[odd] >> collect(&odd);
    }
    .spawn()
    .join()
    .await;
    let report = result.expect("the run goes on");
    let split = report.stage("split").unwrap();
    assert!(split.failed >= 1, "{report}");
    assert!(report.is_balanced(), "{report}");
    let delivered = (even.take().len() + odd.take().len()) as u64;
    assert_eq!(delivered + split.failed, 10, "{report}");
}

/// The same for the `by_key` closure of a parallel stage.
#[tokio::test]
async fn regression_a_panicking_by_key_closure_fails_items_not_the_run() {
    let out = Collected::new();
    let result = pipeline! {
        iter(0..10u32)
            >> #[parallel = 2] #[by_key(|x: &u32| { assert!(*x != 5, "boom"); x % 2 })] map(|x| x)
            >> collect(&out);
    }
    .spawn()
    .join()
    .await;
    let report = result.expect("the run goes on");
    let map = report.stage("map").unwrap();
    assert!(map.failed >= 1, "{report}");
    assert!(report.is_balanced(), "{report}");
    assert_eq!(out.take().len() as u64 + map.failed, 10, "{report}");
}

// ---------------------------------------------------------------------------
// Parallel stages in a row, run in the case's own task.
//
// `run().await` polls every part of a pipeline in the task that awaits it
// (here the one `block_on` polls, on the case's thread), while the workers
// of each parallel stage run on the runtime's threads and report back: the
// setting in which two parallel stages in a row once hung on a two-thread
// runtime (a lost wake-up, issue 14; `tests/parallel_liveness.rs`). A run
// that does not end in time fails its case, with the seed, instead of
// hanging the suite. `run()` has no handle: a case that says `stop()` runs
// to completion, and one that says `abort()` drops the run's future at that
// moment, which must stop every worker (`run_case` checks that no task and
// no stage is left).

/// How a chain of parallel stages may reorder the items reaching its sink.
#[derive(Debug, Clone, Copy)]
enum Reorder {
    /// Not at all: every stage is ordered.
    None,
    /// Freely.
    Any,
    /// Only between keys: the items of a key keep their order.
    BetweenKeys,
}

/// A chain from a source through parallel stages to a `Sink`, as its checks
/// see it.
struct ParallelChain<'a> {
    /// The chain's stages after the source, by name, in order, its sink
    /// included.
    stages: &'a [&'a str],
    /// The fault slots its stages and routing closures read: an item
    /// reaches the sink if none of them kills it.
    slots: Vec<usize>,
    reorder: Reorder,
}

/// Runs a pipeline's `run()` future in the case's task, within a time limit,
/// ending it as the case says; then checks what came out: the result the
/// ending allows, a balanced report, the order the chain keeps, that every
/// item read was lost in a stage, dropped on an edge or delivered, and, on
/// a graceful end, that every item no fault kills was delivered.
async fn run_parallel_chain(
    case: &Case,
    probe: &Probe,
    run: impl Future<Output = Result<Report, Error>>,
    read: &AtomicU64,
    got: &Received<Item>,
    chain: ParallelChain<'_>,
) -> Result<(), String> {
    let waits: u64 = case
        .items
        .iter()
        .flat_map(|i| i.faults)
        .map(|f| match f {
            Fault::Stall(ms) => u64::from(ms),
            _ => 0,
        })
        .chain(case.gaps.iter().map(|&g| u64::from(g)))
        .sum();
    // Every stall and gap one after the other, and then some: only a hang
    // reaches it (at once, on paused time).
    let limit = Duration::from_millis(waits) + Duration::from_secs(20);
    let result = match case.end {
        End::Abort(after) => tokio::time::timeout(after, run)
            .await
            .unwrap_or(Err(Error::Aborted)),
        End::Complete | End::Stop(_) => tokio::time::timeout(limit, run).await.map_err(|_| {
            format!(
                "the pipeline did not end within {limit:?}: a hang (read {} items)",
                read.load(Ordering::SeqCst)
            )
        })?,
    };
    {
        let mut tally = probe.tally.lock().unwrap();
        match &result {
            Ok(_) => tally.completed = true,
            Err(Error::Aborted) => tally.aborted = true,
            Err(_) => tally.failed = true,
        }
        tally.items = read.load(Ordering::SeqCst);
        tally.early = tally.items < case.items.len() as u64;
    }
    let shown = match &result {
        Ok(report) => report.to_string(),
        Err(error) => format!("{error:?}"),
    };
    let fail = |e: String| format!("{e}\n{shown}");
    let o = Outcome {
        result,
        states: Vec::new(),
        edges: Vec::new(),
    };
    check_common(case, &o, false).map_err(fail)?;
    let got = taken(got);
    let model: Vec<Item> = read_prefix(&case.items, read)
        .into_iter()
        .filter(|i| i.survives(&chain.slots))
        .collect();
    match chain.reorder {
        Reorder::None => subsequence("sink", &got, &model),
        Reorder::Any => subset("sink", &got, &model),
        Reorder::BetweenKeys => {
            subset("sink", &got, &model).and_then(|()| per_key_order("sink", &got, &model))
        }
    }
    .map_err(fail)?;
    // Cut short (aborted, or a stage failed to start or close): what
    // arrived was checked above.
    let Ok(report) = &o.result else {
        return Ok(());
    };
    let mut losses = Vec::new();
    for &name in chain.stages {
        let stage = report
            .stage(name)
            .ok_or_else(|| fail(format!("no stage `{name}` in the report")))?;
        losses.push((name, stage.failed + stage.filtered + stage.dead_lettered));
    }
    // Every edge of a chain is on its one path.
    losses.push(("edges", report.edges.iter().map(|e| e.dropped).sum()));
    conserve(
        "sink",
        read.load(Ordering::SeqCst),
        &losses,
        got.len() as u64,
    )
    .map_err(fail)?;
    if exact(case, probe, &o, true) {
        match chain.reorder {
            Reorder::None if ids(&got) != ids(&model) => {
                return Err(fail(format!(
                    "lost items: got {:?}, expected {:?}",
                    ids(&got),
                    ids(&model)
                )));
            }
            Reorder::None => {}
            Reorder::Any | Reorder::BetweenKeys => same_set("sink", &got, &model).map_err(fail)?,
        }
    }
    Ok(())
}

/// The fault slots `slots` and those of the routing closures.
fn with_routing(slots: &[usize]) -> Vec<usize> {
    [slots, ROUTING].concat()
}

/// Declares a topology `source >> $stages >> Sink` run by
/// [`run_parallel_chain`]: `$names` are the names of the stages, `$slots`
/// the fault slots they read (the sink's are added), `$reorder` what order
/// the sink may see. `$case` and `$probe` name the case and the probe for
/// `$stages`.
macro_rules! parallel_chain {
    (
        $test:ident,
        |$case:ident, $probe:ident| [$($stages:tt)*],
        [$($names:literal),*],
        $slots:expr,
        $reorder:expr
    ) => {
        // Every case on a two-thread runtime in real time, where the
        // workers report from other threads while `run()` is polled on
        // the case's: the setting of the lost wake-up.
        chaos_test!($test, Some(Clock::Real), |$case, $probe| {
            let read = Arc::new(AtomicU64::new(0));
            let got = received();
            let run = pipeline! {
                stream(source($case.items.clone(), $case.gaps.clone(), Arc::clone(&read), $probe.guard()))
                    >> $($stages)*
                    >> Sink::new(S_SINK, &got, &$probe);
            }
            .run();
            let chain = ParallelChain {
                stages: &[$($names,)* "Sink"],
                slots: [&$slots[..], &[S_SINK]].concat(),
                reorder: $reorder,
            };
            run_parallel_chain(&$case, &$probe, run, &read, &got, chain).await
        });
    };
}

parallel_chain! {
    parallel_chain_two_ordered,
    |case, probe| [
        #[parallel = 2] #[ordered] check
            >> #[parallel = 3] #[ordered] #[buffer = 4] Worker::new(S_WORK, &case, &probe)
    ],
    ["check", "Worker"],
    [S_CHECK, S_WORK],
    Reorder::None
}

parallel_chain! {
    parallel_chain_two_unordered,
    |case, probe| [
        #[parallel = 2] #[unordered] map(|item: Item| map_fault(item))
            >> #[parallel = 2] #[unordered] Worker::new(S_WORK, &case, &probe)
    ],
    ["map", "Worker"],
    [S_MAP, S_WORK],
    Reorder::Any
}

parallel_chain! {
    parallel_chain_two_by_key,
    |case, probe| [
        #[parallel = 2] #[by_key(|item: &Item| routing_fault(item))] check
            >> #[parallel = 3] #[by_key(|item: &Item| item.key)] #[buffer = 3] Worker::new(S_WORK, &case, &probe)
    ],
    ["check", "Worker"],
    with_routing(&[S_CHECK, S_WORK]),
    Reorder::BetweenKeys
}

parallel_chain! {
    parallel_chain_three_ordered,
    |case, probe| [
        #[parallel = 2] #[ordered] #[buffer = 2] map(|item: Item| map_fault(item))
            >> #[parallel = 2] #[ordered] #[buffer = 2] check
            >> #[parallel = 2] #[ordered] #[buffer = 2] Worker::new(S_WORK, &case, &probe)
    ],
    ["map", "check", "Worker"],
    [S_MAP, S_CHECK, S_WORK],
    Reorder::None
}

parallel_chain! {
    parallel_chain_three_mixed,
    |case, probe| [
        #[parallel = 2] #[ordered] map(|item: Item| map_fault(item))
            >> #[parallel = 2] #[by_key(|item: &Item| routing_fault(item))] #[buffer = 3] check
            >> #[parallel = io] #[unordered] Worker::new(S_WORK, &case, &probe)
    ],
    ["map", "check", "Worker"],
    with_routing(&[S_MAP, S_CHECK, S_WORK]),
    Reorder::Any
}
