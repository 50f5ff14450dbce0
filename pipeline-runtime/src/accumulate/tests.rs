use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use tokio::time::Instant;

use super::*;
use crate::batch::Batch;
use crate::chain::{Chain, Fuse, Head, drive, drive_into, join};
use crate::channel::{EdgeReceiver, EdgeSender, edge};
use crate::control::Control;
use crate::error::Error;
use crate::fan::{Broadcast, Output};
use crate::graph::NodeKind;
use crate::io::{Collected, collect, stream};
use crate::lifecycle::Pipeline;
use crate::metrics::{EdgeStats, FlushCounts, StageReport, StageStats};
use crate::stage::{Never, Pull};

/// `(key, index, size)`: the index is unique, so every item can be traced.
type Item = (u8, u32, u64);
type Out = Batch<Item, u8>;

fn key(item: &Item) -> u8 {
    item.0
}

fn size(item: &Item) -> u64 {
    item.2
}

fn stats() -> Arc<StageStats> {
    Arc::new(StageStats::new("acc", NodeKind::Accumulator))
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A connected `errors` port and the receiving end of its edge.
type ErrorsPort<K, O> = (Broadcast<Unfinished<K, O>>, EdgeReceiver<Unfinished<K, O>>);

fn errors_port<K, O>() -> ErrorsPort<K, O> {
    let (tx, rx) = edge(1 << 20, 64);
    let stats = Arc::new(EdgeStats::new("acc", "dead", Some("errors")));
    (Broadcast::single(Output::new(tx, stats)), rx)
}

/// Pulls `head` until it is done, each output with when it came out
/// (relative to `start`).
async fn drain<C: Chain>(head: &mut C, start: Instant) -> Vec<(Duration, C::Out)> {
    head.init().await.unwrap();
    let control = Control::new();
    let mut out = Vec::new();
    let mut all = Vec::new();
    loop {
        let pull = head.pull(&mut out, &control).await.unwrap();
        let at = start.elapsed();
        all.extend(out.drain(..).map(|o| (at, o)));
        if pull == Pull::Done {
            break;
        }
    }
    head.close().await.unwrap();
    all
}

/// Sends each item after its delay, on its own.
async fn feed<T>(mut tx: EdgeSender<T>, schedule: Vec<(Duration, T)>) {
    for (delay, item) in schedule {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        tx.send(item).await.unwrap();
        tx.flush().await.unwrap();
    }
}

async fn recv_all<T>(rx: &mut EdgeReceiver<T>) -> Vec<T> {
    let mut all = Vec::new();
    while let Some(chunk) = rx.recv_chunk().await {
        all.extend(chunk);
    }
    all
}

struct Outcome {
    start: Instant,
    outputs: Vec<(Duration, Out)>,
    errors: Vec<Unfinished<u8, Out>>,
    report: StageReport,
}

/// Runs `schedule` through a `batch_by(key)` accumulation under `policy`.
async fn run(schedule: Vec<(Duration, Item)>, policy: Policy, connect_errors: bool) -> Outcome {
    run_with(schedule, policy, connect_errors, Variant::default()).await
}

/// How a run differs from the plain one, without changing what comes out.
#[derive(Debug, Clone, Copy)]
struct Variant {
    /// Whether the batches are counted by the engine ([`Counting`]) rather
    /// than by themselves.
    engine_counts: bool,
    /// The `seq` numbers are given out again before they reach this.
    seq_limit: u32,
}

impl Default for Variant {
    fn default() -> Self {
        Variant {
            engine_counts: false,
            seq_limit: u32::MAX,
        }
    }
}

/// [`run`], as `variant` says.
async fn run_with(
    schedule: Vec<(Duration, Item)>,
    policy: Policy,
    connect_errors: bool,
    variant: Variant,
) -> Outcome {
    let (tx, rx) = edge(1024, 16);
    let stats = stats();
    let limit = variant.seq_limit;
    match (policy.spill.is_some(), variant.engine_counts) {
        (true, false) => {
            let head = AccumulateHead::spilling(rx, batch_by(key), size, policy, stats.clone(), 64);
            run_head(
                head.with_seq_limit(limit),
                tx,
                schedule,
                connect_errors,
                stats,
            )
            .await
        }
        (false, false) => {
            let head = AccumulateHead::new(rx, batch_by(key), size, policy, stats.clone(), 64);
            run_head(
                head.with_seq_limit(limit),
                tx,
                schedule,
                connect_errors,
                stats,
            )
            .await
        }
        (true, true) => {
            let acc = Counting(batch_by(key));
            let head = AccumulateHead::spilling(rx, acc, size, policy, stats.clone(), 64);
            run_head(
                head.with_seq_limit(limit),
                tx,
                schedule,
                connect_errors,
                stats,
            )
            .await
        }
        (false, true) => {
            let acc = Counting(batch_by(key));
            let head = AccumulateHead::new(rx, acc, size, policy, stats.clone(), 64);
            run_head(
                head.with_seq_limit(limit),
                tx,
                schedule,
                connect_errors,
                stats,
            )
            .await
        }
    }
}

/// A [`BatchBy`] whose batches the engine counts, as it does those of any
/// accumulator that does not say it counts itself.
struct Counting<A>(A);

impl<T, A: Accumulator<T>> Accumulator<T> for Counting<A> {
    type Key = A::Key;
    type State = A::State;
    type Out = A::Out;

    fn key(&mut self, item: &T) -> A::Key {
        self.0.key(item)
    }

    fn open(&mut self, key: &A::Key) -> A::State {
        self.0.open(key)
    }

    fn open_at(&mut self, key: &A::Key, now: Instant) -> A::State {
        self.0.open_at(key, now)
    }

    fn update(&mut self, key: &A::Key, state: &mut A::State, item: T) {
        self.0.update(key, state, item);
    }

    fn update_sized(&mut self, key: &A::Key, state: &mut A::State, item: T, size: u64) {
        self.0.update_sized(key, state, item, size);
    }

    fn flush(&mut self, key: A::Key, state: A::State) -> Option<A::Out> {
        self.0.flush(key, state)
    }

    fn flush_at(&mut self, key: A::Key, state: A::State, now: Instant) -> Option<A::Out> {
        self.0.flush_at(key, state, now)
    }

    fn flush_window(
        &mut self,
        key: A::Key,
        state: A::State,
        opened: Instant,
        now: Instant,
    ) -> Option<A::Out> {
        self.0.flush_window(key, state, opened, now)
    }

    fn state_bytes(&self, state: &A::State) -> usize {
        self.0.state_bytes(state)
    }

    fn configure(&mut self, policy: &Policy) {
        self.0.configure(policy);
    }
}

async fn run_head<A, S, P>(
    mut head: AccumulateHead<Item, A, S, P>,
    tx: EdgeSender<Item>,
    schedule: Vec<(Duration, Item)>,
    connect_errors: bool,
    stats: Arc<StageStats>,
) -> Outcome
where
    A: Accumulator<Item, Key = u8, Out = Out>,
    S: FnMut(&Item) -> u64,
    P: Spiller<u8, A::State>,
{
    let start = Instant::now();
    let mut errors_rx = None;
    if connect_errors {
        let (port, rx) = errors_port();
        head = head.with_errors(port);
        errors_rx = Some(rx);
    }
    let producer = tokio::spawn(feed(tx, schedule));
    let outputs = drain(&mut head, start).await;
    producer.await.unwrap();
    drop(head);
    let errors = match &mut errors_rx {
        Some(rx) => recv_all(rx).await,
        None => Vec::new(),
    };
    Outcome {
        start,
        outputs,
        errors,
        report: StageReport::from_stats(&stats),
    }
}

/// A batch with its window relative to the start of its run.
type Relative = (u8, Vec<u32>, u64, Duration, Duration);

/// The outputs, with when, and the unfinished states of a run.
type Normalized = (
    Vec<(Duration, Relative)>,
    Vec<(u8, Option<Relative>, String)>,
);

impl Outcome {
    /// The outputs (with when) and the unfinished states, with times
    /// relative to the start of the run, so two runs compare.
    fn normalized(&self) -> Normalized {
        let relative = |b: &Out| {
            (
                *b.key(),
                indices(b),
                b.total_bytes(),
                b.window_start() - self.start,
                b.window_duration(),
            )
        };
        let outputs = self
            .outputs
            .iter()
            .map(|(at, b)| (*at, relative(b)))
            .collect();
        let errors = self
            .errors
            .iter()
            .map(|u| {
                (
                    u.key,
                    u.partial.as_ref().map(relative),
                    u.reason.to_string(),
                )
            })
            .collect();
        (outputs, errors)
    }
}

fn indices(batch: &Out) -> Vec<u32> {
    batch.iter().map(|item| item.1).collect()
}

fn flushes(report: &StageReport) -> FlushCounts {
    report.accumulator.expect("an accumulator report").flushes
}

#[tokio::test(start_paused = true)]
async fn batches_per_key_up_to_max_items_and_flushes_the_rest_at_the_end() {
    let schedule = (0..10u32)
        .map(|i| (Duration::ZERO, ((i % 2) as u8, i, 1)))
        .collect();
    let policy = Policy {
        max_items: Some(2),
        ..Policy::default()
    };
    let outcome = run(schedule, policy, false).await;
    let batches: Vec<(u8, Vec<u32>)> = outcome
        .outputs
        .iter()
        .map(|(_, b)| (*b.key(), indices(b)))
        .collect();
    assert_eq!(
        batches,
        [
            (0, vec![0, 2]),
            (1, vec![1, 3]),
            (0, vec![4, 6]),
            (1, vec![5, 7]),
            (0, vec![8]),
            (1, vec![9]),
        ]
    );
    let report = &outcome.report;
    assert_eq!(
        (report.items_in, report.items_out, report.passed),
        (10, 6, 10)
    );
    assert!(report.is_balanced(), "{report:?}");
    let acc = report.accumulator.unwrap();
    assert_eq!((acc.open_keys, acc.items_held, acc.bytes_held), (0, 0, 0));
    assert_eq!((acc.flushes.items, acc.flushes.stop), (4, 2));
    assert_eq!(acc.flushes.total(), 6);
}

#[tokio::test(start_paused = true)]
async fn max_latency_flushes_on_time_without_new_input() {
    let schedule = vec![
        (ms(0), (0, 0, 1)),
        (ms(0), (0, 1, 1)),
        (ms(0), (1, 2, 1)),
        (ms(20), (0, 3, 1)),
        // Long after the deadline: the first batches must not wait for it.
        (ms(980), (1, 4, 1)),
    ];
    let policy = Policy {
        max_latency: Some(ms(50)),
        ..Policy::default()
    };
    let outcome = run(schedule, policy, false).await;
    let got: Vec<(Duration, u8, Vec<u32>, Duration)> = outcome
        .outputs
        .iter()
        .map(|(at, b)| (*at, *b.key(), indices(b), b.window_duration()))
        .collect();
    assert_eq!(
        got,
        [
            (ms(50), 0, vec![0, 1, 3], ms(50)),
            (ms(50), 1, vec![2], ms(50)),
            // The input ends right after the last item: flushed at once.
            (ms(1000), 1, vec![4], ms(0)),
        ]
    );
    let f = flushes(&outcome.report);
    assert_eq!((f.latency, f.stop, f.total()), (2, 1, 3));
    assert!(outcome.report.is_balanced());
}

#[tokio::test(start_paused = true)]
async fn items_held_count_as_in_flight_while_running() {
    let start = Instant::now();
    let (mut tx, rx) = edge(1024, 16);
    let stats = stats();
    let policy = Policy {
        max_latency: Some(ms(10)),
        ..Policy::default()
    };
    let mut head = AccumulateHead::new(rx, batch_by(key), size, policy, stats.clone(), 64);
    tx.send_chunk(vec![(0, 0, 3), (1, 1, 4), (0, 2, 5)])
        .await
        .unwrap();
    let mut out = Vec::new();
    let control = Control::new();
    assert_eq!(head.pull(&mut out, &control).await.unwrap(), Pull::More);
    assert!(out.is_empty());
    let running = StageReport::from_stats(&stats);
    let acc = running.accumulator.unwrap();
    assert_eq!((running.items_in, running.passed), (3, 0));
    assert_eq!((acc.open_keys, acc.items_held, acc.bytes_held), (2, 3, 12));
    assert!(
        running.is_balanced(),
        "held items are in flight: {running:?}"
    );
    // The deadline wakes the pull although no input comes.
    assert_eq!(head.pull(&mut out, &control).await.unwrap(), Pull::More);
    assert_eq!(start.elapsed(), ms(10));
    assert_eq!(out.len(), 2);
    assert_eq!(stats.items_held(), 0);
    assert_eq!(stats.items_out(), 2);
    drop(tx);
    assert_eq!(head.pull(&mut out, &control).await.unwrap(), Pull::Done);
    assert_eq!(head.pull(&mut out, &control).await.unwrap(), Pull::Done);
    let report = StageReport::from_stats(&stats);
    assert!(report.is_balanced());
    let text = report.accumulator.unwrap().to_string();
    assert_eq!(
        text,
        "0 open keys, 0 items held (0 B), 0 B spilled; flushes: 2 latency"
    );
}

#[tokio::test(start_paused = true)]
async fn one_deadline_run_flushes_many_keys_at_once() {
    let start = Instant::now();
    let (mut tx, rx) = edge(1 << 16, 1024);
    let policy = Policy {
        max_latency: Some(ms(10)),
        ..Policy::default()
    };
    let by_index = |item: &(u32, u32)| item.0;
    let mut head = AccumulateHead::new(
        rx,
        batch_by(by_index),
        default_size,
        policy,
        stats(),
        1 << 16,
    );
    tx.send_chunk((0..10_000).map(|i| (i, i)).collect())
        .await
        .unwrap();
    let control = Control::new();
    let mut out = Vec::new();
    head.pull(&mut out, &control).await.unwrap();
    assert!(out.is_empty());
    head.pull(&mut out, &control).await.unwrap();
    assert_eq!(start.elapsed(), ms(10));
    assert_eq!(
        out.len(),
        10_000,
        "every key's deadline ran out in one wake-up"
    );
    assert_eq!(
        out[0].total_bytes(),
        8,
        "default_size is the size of the item type"
    );
}

fn ttl_schedule() -> Vec<(Duration, Item)> {
    vec![
        (ms(0), (0, 0, 1)),
        (ms(10), (0, 1, 1)),
        (ms(0), (1, 2, 1)),
        // Key 0 expired at 30ms; this opens a new state.
        (ms(40), (0, 3, 1)),
    ]
}

#[tokio::test(start_paused = true)]
async fn ttl_with_partial_flush_emits_what_it_has() {
    let policy = Policy {
        ttl: Some(ms(30)),
        ..Policy::default()
    };
    let outcome = run(ttl_schedule(), policy, true).await;
    let got: Vec<(Duration, Vec<u32>)> = outcome
        .outputs
        .iter()
        .map(|(at, b)| (*at, indices(b)))
        .collect();
    assert_eq!(
        got,
        [(ms(30), vec![0, 1]), (ms(40), vec![2]), (ms(50), vec![3])]
    );
    assert!(outcome.errors.is_empty());
    let f = flushes(&outcome.report);
    assert_eq!((f.expired, f.stop), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn ttl_without_partial_flush_goes_to_errors() {
    let policy = Policy {
        ttl: Some(ms(30)),
        partial_flush: false,
        ..Policy::default()
    };
    let outcome = run(ttl_schedule(), policy, true).await;
    assert!(outcome.outputs.is_empty());
    let errors: Vec<(u8, Vec<u32>, String)> = outcome
        .errors
        .iter()
        .map(|u| {
            let partial = u.partial.as_ref().unwrap();
            (u.key, indices(partial), u.reason.to_string())
        })
        .collect();
    let expired = UnfinishedReason::Expired.to_string();
    let stopped = UnfinishedReason::Stopped.to_string();
    assert_eq!(
        errors,
        [
            (0, vec![0, 1], expired.clone()),
            (1, vec![2], expired),
            (0, vec![3], stopped),
        ]
    );
    let report = &outcome.report;
    assert_eq!(
        (report.dead_lettered, report.passed, report.failed),
        (4, 0, 0)
    );
    assert!(report.is_balanced());
    assert_eq!(
        outcome.errors[0].to_string(),
        "the state of key 0 expired: it was not complete within its ttl (partial output kept)"
    );
}

#[tokio::test(start_paused = true)]
async fn unfinished_states_without_an_errors_port_are_counted_as_failed() {
    let policy = Policy {
        ttl: Some(ms(30)),
        partial_flush: false,
        ..Policy::default()
    };
    let outcome = run(ttl_schedule(), policy, false).await;
    assert!(outcome.outputs.is_empty());
    let report = &outcome.report;
    assert_eq!((report.failed, report.dead_lettered), (4, 0));
    assert!(report.is_balanced());
}

#[tokio::test(start_paused = true)]
async fn latency_and_ttl_together_use_the_earlier() {
    for (latency, ttl, latency_flushes, expired) in [(20, 30, 1, 0), (30, 20, 0, 1)] {
        let policy = Policy {
            max_latency: Some(ms(latency)),
            ttl: Some(ms(ttl)),
            ..Policy::default()
        };
        let schedule = vec![(ms(0), (0, 0, 1)), (ms(100), (0, 1, 1))];
        let outcome = run(schedule, policy, false).await;
        assert_eq!(outcome.outputs[0].0, ms(latency.min(ttl)));
        let f = flushes(&outcome.report);
        assert_eq!(
            (f.latency, f.expired, f.stop),
            (latency_flushes, expired, 1)
        );
    }
}

#[tokio::test(start_paused = true)]
async fn max_bytes_is_never_exceeded_and_a_large_item_goes_alone() {
    let sizes = [3, 4, 2, 10, 1, 5, 5];
    let schedule = sizes
        .iter()
        .enumerate()
        .map(|(i, &s)| (Duration::ZERO, (0, i as u32, s)))
        .collect();
    let policy = Policy {
        max_bytes: Some(5),
        ..Policy::default()
    };
    let outcome = run(schedule, policy, false).await;
    let got: Vec<(Vec<u32>, u64)> = outcome
        .outputs
        .iter()
        .map(|(_, b)| (indices(b), b.total_bytes()))
        .collect();
    assert_eq!(
        got,
        [
            (vec![0], 3),
            (vec![1], 4),
            (vec![2], 2),
            (vec![3], 10),
            (vec![4], 1),
            (vec![5], 5),
            (vec![6], 5),
        ]
    );
    let f = flushes(&outcome.report);
    assert_eq!((f.bytes, f.stop), (7, 0));
}

#[tokio::test(start_paused = true)]
async fn batch_is_one_key_for_everything() {
    let (mut tx, rx) = edge(64, 8);
    let policy = Policy {
        max_items: Some(3),
        ..Policy::default()
    };
    let mut head = AccumulateHead::new(rx, batch(), default_size, policy, stats(), 8);
    tx.send_chunk((0..7u16).collect()).await.unwrap();
    drop(tx);
    let out = drain(&mut head, Instant::now()).await;
    let batches: Vec<Vec<u16>> = out.into_iter().map(|(_, b)| b.into_items()).collect();
    assert_eq!(batches, [vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
}

#[tokio::test(start_paused = true)]
async fn without_spill_keys_and_items_need_no_spill_impl() {
    /// Implements neither `Spill` nor `Clone` nor `Debug`.
    struct Plain(u8);
    #[derive(PartialEq, Eq, Hash, Clone)]
    struct Key(u8);
    let (mut tx, rx) = edge(64, 8);
    let policy = Policy {
        max_items: Some(2),
        ..Policy::default()
    };
    let by_parity = |p: &Plain| Key(p.0 % 2);
    let mut head = AccumulateHead::new(rx, batch_by(by_parity), |_: &Plain| 1, policy, stats(), 8);
    tx.send_chunk((0..5).map(Plain).collect()).await.unwrap();
    drop(tx);
    let out = drain(&mut head, Instant::now()).await;
    let got: Vec<(u8, Vec<u8>)> = out
        .into_iter()
        .map(|(_, b)| {
            let (key, items, ..) = b.into_parts();
            (key.0, items.into_iter().map(|p| p.0).collect())
        })
        .collect();
    assert_eq!(got, [(0, vec![0, 2]), (1, vec![1, 3]), (0, vec![4])]);
}

/// Reassembles `(id, part)` messages of three parts; part 99 abandons the
/// message.
struct Reassemble;

impl Accumulator<(u32, u8)> for Reassemble {
    type Key = u32;
    type State = Vec<u8>;
    type Out = (u32, Vec<u8>);

    fn key(&mut self, item: &(u32, u8)) -> u32 {
        item.0
    }

    fn open(&mut self, _: &u32) -> Vec<u8> {
        Vec::new()
    }

    fn update(&mut self, _: &u32, parts: &mut Vec<u8>, item: (u32, u8)) {
        parts.push(item.1);
    }

    fn check(&mut self, id: &u32, parts: &mut Vec<u8>) -> Completeness<(u32, Vec<u8>)> {
        if parts.last() == Some(&99) {
            Completeness::Expired(None)
        } else if parts.len() == 3 {
            Completeness::Complete((*id, std::mem::take(parts)))
        } else {
            Completeness::Incomplete
        }
    }

    fn flush(&mut self, id: u32, parts: Vec<u8>) -> Option<(u32, Vec<u8>)> {
        (!parts.is_empty()).then_some((id, parts))
    }
}

#[tokio::test(start_paused = true)]
async fn a_custom_accumulator_completes_and_expires_keys() {
    let (mut tx, rx) = edge(64, 8);
    let stats = stats();
    let policy = Policy {
        ttl: Some(ms(100)),
        partial_flush: false,
        ..Policy::default()
    };
    let (port, mut errors) = errors_port();
    let mut head = AccumulateHead::new(rx, Reassemble, default_size, policy, stats.clone(), 8)
        .with_errors(port);
    let items = vec![(1, 0), (2, 0), (1, 1), (3, 0), (1, 2), (2, 99), (1, 0)];
    tx.send_chunk(items).await.unwrap();
    drop(tx);
    let out = drain(&mut head, Instant::now()).await;
    drop(head);
    let out: Vec<_> = out.into_iter().map(|(_, o)| o).collect();
    assert_eq!(out, [(1, vec![0, 1, 2])]);
    let errors: Vec<_> = recv_all(&mut errors)
        .await
        .into_iter()
        .map(|u| (u.key, u.partial, u.reason))
        .collect();
    assert_eq!(
        errors,
        [
            (2, None, UnfinishedReason::Expired),
            (3, Some((3, vec![0])), UnfinishedReason::Stopped),
            (1, Some((1, vec![0])), UnfinishedReason::Stopped),
        ]
    );
    let report = StageReport::from_stats(&stats);
    let f = flushes(&report);
    assert_eq!((f.complete, f.expired, f.stop), (1, 1, 2));
    assert_eq!((report.passed, report.dead_lettered), (3, 4));
    assert!(report.is_balanced());
}

/// Runs a pipeline `stream >> accumulate >> collect` whose source never ends,
/// stops it once the accumulation holds every item, and returns the
/// batches, what went to `errors`, and the accumulation's report.
async fn stop_a_pipeline(partial_flush: bool) -> (Vec<Out>, Vec<Unfinished<u8, Out>>, StageReport) {
    let items: Vec<Item> = (0..6).map(|i| ((i % 3) as u8, i, 1)).collect();
    let source_stats = Arc::new(StageStats::new("stream", NodeKind::Source));
    let acc_stats = stats();
    let sink_stats = Arc::new(StageStats::new("collect", NodeKind::Sink));
    let collected = Collected::new();
    let (tx, rx) = edge(64, 8);
    let (port, mut errors) = errors_port();
    let policy = Policy {
        max_items: Some(10),
        partial_flush,
        ..Policy::default()
    };
    let source = Head::new(
        stream(futures::StreamExt::chain(
            futures::stream::iter(items),
            futures::stream::pending(),
        )),
        source_stats.clone(),
        64,
    );
    let outlet = Broadcast::single(Output::new(
        tx,
        Arc::new(EdgeStats::new("stream", "acc", None)),
    ));
    let head = AccumulateHead::new(rx, batch_by(key), size, policy, acc_stats.clone(), 64)
        .with_errors(port);
    let sink: Fuse<_, _, Out, Never, Never> =
        Fuse::new(head, collect(&collected), sink_stats.clone());
    let handle = Pipeline::new(
        vec![source_stats, acc_stats.clone(), sink_stats],
        move |control: Control| async move {
            join(
                drive_into(source, outlet, control.clone()),
                drive(sink, control),
            )
            .await
        },
    )
    .spawn();
    while acc_stats.items_in() < 6 {
        tokio::time::sleep(ms(1)).await;
    }
    assert!(collected.is_empty(), "nothing is flushed before the stop");
    handle.stop();
    let report = handle.join().await.unwrap();
    assert!(report.stopped);
    assert!(report.is_balanced(), "{report}");
    assert!(report.to_string().contains("acc: 0 open keys"), "{report}");
    let errors = recv_all(&mut errors).await;
    (
        collected.take(),
        errors,
        report.stage("acc").unwrap().clone(),
    )
}

#[tokio::test(start_paused = true)]
async fn stop_flushes_every_open_state() {
    let (batches, errors, report) = stop_a_pipeline(true).await;
    let got: Vec<(u8, Vec<u32>)> = batches.iter().map(|b| (*b.key(), indices(b))).collect();
    assert_eq!(got, [(0, vec![0, 3]), (1, vec![1, 4]), (2, vec![2, 5])]);
    assert!(errors.is_empty());
    assert_eq!((report.passed, flushes(&report).stop), (6, 3));
}

#[tokio::test(start_paused = true)]
async fn stop_without_partial_flush_routes_open_states_to_errors() {
    let (batches, errors, report) = stop_a_pipeline(false).await;
    assert!(batches.is_empty());
    let got: Vec<(u8, Vec<u32>)> = errors
        .iter()
        .map(|u| {
            assert_eq!(u.reason, UnfinishedReason::Stopped);
            (u.key, indices(u.partial.as_ref().unwrap()))
        })
        .collect();
    assert_eq!(got, [(0, vec![0, 3]), (1, vec![1, 4]), (2, vec![2, 5])]);
    assert_eq!((report.dead_lettered, flushes(&report).stop), (6, 3));
}

/// Runs `iter(0..100) >> accumulate(key = i % 4, max_items = 10) >> collect`
/// through an edge (chunks of 16) as a pipeline named `timed`, without an
/// `errors` port and with `partial_flush` off, so that the states still open
/// at the end are logged. Returns the batches and the report.
fn run_observed_pipeline() -> (Vec<Batch<u64, u64>>, crate::metrics::Report) {
    let source = Arc::new(StageStats::new("iter", NodeKind::Source));
    let acc = stats();
    let sink = Arc::new(StageStats::new("collect", NodeKind::Sink));
    let collected = Collected::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = runtime
        .block_on(async {
            let (tx, rx) = edge(64, 16);
            let head = Head::new(crate::io::iter(0..100u64), source.clone(), 16);
            let outlet = Broadcast::single(Output::new(
                tx,
                Arc::new(EdgeStats::new("iter", "acc", None)),
            ));
            let policy = Policy {
                max_items: Some(10),
                partial_flush: false,
                ..Policy::default()
            };
            let by_four = batch_by(|n: &u64| n % 4);
            let accumulate =
                AccumulateHead::new(rx, by_four, default_size, policy, acc.clone(), 16);
            let chain: Fuse<_, _, Batch<u64, u64>, Never, Never> =
                Fuse::new(accumulate, collect(&collected), sink.clone());
            Pipeline::new(
                vec![source.clone(), acc.clone(), sink.clone()],
                move |control: Control| async move {
                    join(
                        drive_into(head, outlet, control.clone()),
                        drive(chain, control),
                    )
                    .await
                },
            )
            .named("timed")
            .run()
            .await
        })
        .unwrap();
    (collected.take(), report)
}

/// Every histogram sample recorded, by metric name and `stage` label.
#[derive(Default)]
struct Histograms(std::sync::Mutex<BTreeMap<(String, String), Arc<Samples>>>);

#[derive(Default)]
struct Samples(std::sync::Mutex<Vec<f64>>);

impl metrics::HistogramFn for Samples {
    fn record(&self, value: f64) {
        self.0.lock().unwrap().push(value);
    }
}

impl metrics::Recorder for Histograms {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }

    fn register_counter(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        // Any handle that is not the no-op one, so that chunks are timed.
        metrics::Counter::from_arc(Arc::new(std::sync::atomic::AtomicU64::new(0)))
    }

    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::from_arc(Arc::new(std::sync::atomic::AtomicU64::new(0)))
    }

    fn register_histogram(
        &self,
        key: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        let stage = key
            .labels()
            .find(|label| label.key() == "stage")
            .map_or_else(String::new, |label| label.value().to_owned());
        let mut all = self.0.lock().unwrap();
        let samples = all.entry((key.name().to_owned(), stage)).or_default();
        metrics::Histogram::from_arc(Arc::clone(samples))
    }
}

impl Histograms {
    fn samples(&self, name: &str, stage: &str) -> Vec<f64> {
        let all = self.0.lock().unwrap();
        all.get(&(name.to_owned(), stage.to_owned()))
            .map(|samples| samples.0.lock().unwrap().clone())
            .unwrap_or_default()
    }
}

#[test]
fn the_accumulation_times_each_chunk_it_takes() {
    let recorder = Histograms::default();
    let (batches, report) = metrics::with_local_recorder(&recorder, run_observed_pipeline);
    assert_eq!(batches.len(), 8, "25 items per key: two full batches each");
    let acc = report.stage("acc").unwrap();
    assert_eq!((acc.items_in, acc.passed, acc.failed), (100, 80, 20));
    assert!(report.is_balanced(), "{report}");
    // At least one pull per chunk of 16 (7 of them) and one at the end,
    // each timed once, and the time is not all zero.
    let chunks = recorder.samples(crate::metrics::STAGE_CHUNK_SECONDS, "acc");
    assert!(chunks.len() >= 8, "{chunks:?}");
    assert!(
        chunks.iter().all(|s| s.is_finite() && *s >= 0.0),
        "{chunks:?}"
    );
    assert!(chunks.iter().sum::<f64>() > 0.0, "{chunks:?}");
    // Like the stages around it.
    for stage in ["iter", "collect"] {
        let samples = recorder.samples(crate::metrics::STAGE_CHUNK_SECONDS, stage);
        assert!(!samples.is_empty(), "{stage}");
    }
}

/// A `tracing` subscriber, set as the default of one thread, that notes for
/// each event the `stage` field of the span entered when it was emitted.
#[derive(Default)]
struct StageEvents {
    /// By span id (from 1): the span's `stage` field.
    spans: std::sync::Mutex<Vec<String>>,
    entered: std::sync::Mutex<Vec<u64>>,
    /// Each event's level and the stage it was emitted in.
    events: std::sync::Mutex<Vec<(tracing::Level, Option<String>)>>,
}

struct StageField(Option<String>);

impl tracing::field::Visit for StageField {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "stage" {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
}

impl tracing::Subscriber for &'static StageEvents {
    fn register_callsite(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        // Asked every time: other threads see other subscribers.
        tracing::subscriber::Interest::sometimes()
    }

    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut stage = StageField(None);
        span.record(&mut stage);
        let mut spans = self.spans.lock().unwrap();
        spans.push(stage.0.unwrap_or_default());
        tracing::span::Id::from_u64(spans.len() as u64)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let current = self.entered.lock().unwrap().last().copied();
        let stage = current.map(|id| self.spans.lock().unwrap()[id as usize - 1].clone());
        self.events
            .lock()
            .unwrap()
            .push((*event.metadata().level(), stage));
    }

    fn enter(&self, span: &tracing::span::Id) {
        self.entered.lock().unwrap().push(span.into_u64());
    }

    fn exit(&self, _: &tracing::span::Id) {
        self.entered.lock().unwrap().pop();
    }
}

#[test]
fn the_accumulation_logs_in_its_span() {
    let events: &'static StageEvents = Box::leak(Box::default());
    let dispatch = tracing::Dispatch::new(events);
    // With a single dispatcher registered, `tracing` decides whether a
    // callsite is wanted by asking the default of the thread that hits it
    // first, which may be another test's. With two (this second one is
    // never used), every callsite asks all of them, so this thread's
    // subscriber is asked too.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    tracing::callsite::rebuild_interest_cache();
    let (_, report) = tracing::dispatcher::with_default(&dispatch, run_observed_pipeline);
    assert_eq!(report.stage("acc").unwrap().failed, 20);
    assert!(
        events
            .spans
            .lock()
            .unwrap()
            .iter()
            .any(|stage| stage == "acc"),
        "the accumulation has a span"
    );
    // The four states open at the end, dropped without an `errors` port,
    // were each logged inside the accumulation's span.
    let events = events.events.lock().unwrap();
    let warnings: Vec<_> = events
        .iter()
        .filter(|(level, _)| *level == tracing::Level::WARN)
        .collect();
    assert_eq!(warnings.len(), 4, "{events:?}");
    assert!(
        warnings
            .iter()
            .all(|(_, stage)| stage.as_deref() == Some("acc")),
        "{events:?}"
    );
}

#[test]
fn unfinished_displays_key_and_reason() {
    let stopped: Unfinished<&str, u8> = Unfinished {
        key: "a",
        partial: None,
        reason: UnfinishedReason::Stopped,
    };
    assert_eq!(
        stopped.to_string(),
        "the state of key \"a\" was still open when the input ended (the pipeline finished or was stopped) (no partial output)"
    );
    let lost: Unfinished<u8, u8> = Unfinished {
        key: 3,
        partial: None,
        reason: UnfinishedReason::Spill(Arc::new(SpillError::Missing { id: 9 })),
    };
    assert_eq!(
        lost.to_string(),
        "the state of key 3 was lost: its spilled state could not be read back: spill record 9 is not in the spill store"
    );
}

/// A fresh directory for spill files, removed when dropped.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(name: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "pipeline-acc-test-{name}-{}-{n}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).unwrap();
        ScratchDir(path)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

type Pair = (u32, u32);

fn pair_key(item: &Pair) -> u32 {
    item.0
}

fn spill_policy(dir: &ScratchDir, max_memory: u64) -> Policy {
    Policy {
        max_items: Some(7),
        spill: Some(SpillPolicy {
            max_memory,
            dir: Some(dir.0.clone()),
        }),
        ..Policy::default()
    }
}

#[tokio::test(start_paused = true)]
async fn spilling_most_state_gives_the_same_output_as_memory() {
    let items: Vec<Pair> = (0..3000u32).map(|i| ((i * 7919) % 211, i)).collect();
    let chunks: Vec<Vec<Pair>> = items.chunks(50).map(<[Pair]>::to_vec).collect();

    // In memory.
    let (mut tx, rx) = edge(1 << 16, 64);
    let mut head = AccumulateHead::new(
        rx,
        batch_by(pair_key),
        default_size,
        Policy {
            max_items: Some(7),
            ..Policy::default()
        },
        stats(),
        50,
    );
    for chunk in &chunks {
        tx.send_chunk(chunk.clone()).await.unwrap();
    }
    drop(tx);
    let in_memory = drain(&mut head, Instant::now()).await;

    // With a budget of one byte: after every chunk, everything goes to disk.
    let dir = ScratchDir::new("same");
    let stats = stats();
    let (mut tx, rx) = edge(1 << 16, 64);
    let mut head = AccumulateHead::spilling(
        rx,
        batch_by(pair_key),
        default_size,
        spill_policy(&dir, 1),
        stats.clone(),
        50,
    );
    head.init().await.unwrap();
    let control = Control::new();
    let mut spilled = Vec::new();
    let mut most_on_disk = 0.0f64;
    for chunk in &chunks {
        tx.send_chunk(chunk.clone()).await.unwrap();
        let mut out = Vec::new();
        assert_eq!(head.pull(&mut out, &control).await.unwrap(), Pull::More);
        spilled.extend(out.into_iter().map(|o| (Duration::ZERO, o)));
        let open = stats.open_keys();
        if open > 0 {
            most_on_disk = most_on_disk.max(stats.spilled_keys() as f64 / open as f64);
        }
    }
    drop(tx);
    spilled.extend(drain(&mut head, Instant::now()).await);

    let strip = |outputs: Vec<(Duration, Batch<Pair, u32>)>| -> Vec<Batch<Pair, u32>> {
        outputs.into_iter().map(|(_, b)| b).collect()
    };
    assert_eq!(strip(spilled), strip(in_memory));
    assert_eq!(
        most_on_disk, 1.0,
        "a one-byte budget sends every state to disk"
    );
    let report = StageReport::from_stats(&stats);
    let acc = report.accumulator.unwrap();
    assert!(acc.bytes_spilled > 0);
    assert_eq!((acc.spilled_keys, acc.open_keys), (0, 0));
    assert_eq!((report.passed, report.failed), (3000, 0));
    assert!(report.is_balanced());
    assert!(head.spiller().store().is_empty());
}

#[tokio::test(start_paused = true)]
async fn closed_slots_of_keys_that_come_and_go_are_swept() {
    let (mut tx, rx) = edge(1 << 16, 4096);
    let stats = stats();
    let policy = Policy {
        max_items: Some(2),
        ..Policy::default()
    };
    let mut head = AccumulateHead::new(
        rx,
        batch_by(pair_key),
        default_size,
        policy,
        stats.clone(),
        1 << 16,
    );
    let control = Control::new();
    let mut out = Vec::new();
    // 3000 keys of two items each: every state fills, closes and leaves its
    // key's slot behind.
    let pairs = |keys: std::ops::Range<u32>, first: u32| -> Vec<Pair> {
        keys.flat_map(|k| [(k, first), (k, first + 1)]).collect()
    };
    tx.send_chunk(pairs(0..3000, 0)).await.unwrap();
    head.pull(&mut out, &control).await.unwrap();
    assert_eq!(out.len(), 3000);
    assert_eq!(stats.open_keys(), 0);
    assert_eq!(
        head.slots(),
        0,
        "closed slots that outnumber the open ones are swept"
    );
    // A few closed slots stay, for their keys' next items.
    out.clear();
    tx.send_chunk(pairs(0..100, 2)).await.unwrap();
    head.pull(&mut out, &control).await.unwrap();
    assert_eq!((out.len(), head.slots()), (100, 100));
    out.clear();
    tx.send_chunk(vec![(7, 4), (5000, 0)]).await.unwrap();
    head.pull(&mut out, &control).await.unwrap();
    assert!(out.is_empty());
    assert_eq!((stats.open_keys(), head.slots()), (2, 101));
    drop(tx);
    let rest = drain(&mut head, Instant::now()).await;
    let rest: Vec<(u32, Vec<u32>)> = rest
        .iter()
        .map(|(_, b)| (*b.key(), b.iter().map(|p| p.1).collect()))
        .collect();
    assert_eq!(rest, [(7, vec![4]), (5000, vec![0])], "oldest first");
    let report = StageReport::from_stats(&stats);
    assert_eq!((report.items_in, report.passed), (6202, 6202));
    assert!(report.is_balanced(), "{report:?}");
}

#[tokio::test(start_paused = true)]
async fn a_window_starts_when_its_state_opened_however_many_close_meanwhile() {
    let (mut tx, rx) = edge(1 << 16, 4096);
    let stats = stats();
    let policy = Policy {
        max_items: Some(2),
        ..Policy::default()
    };
    let mut head = AccumulateHead::new(
        rx,
        batch_by(pair_key),
        default_size,
        policy,
        stats.clone(),
        1 << 16,
    );
    let control = Control::new();
    let start = Instant::now();
    let mut out = Vec::new();
    // Key 0 opens first and stays open.
    tx.send_chunk(vec![(0, 0)]).await.unwrap();
    head.pull(&mut out, &control).await.unwrap();
    // Then 30 chunks, 1 ms apart, of 100 keys that each open and close.
    for chunk in 1..=30u32 {
        tokio::time::advance(ms(1)).await;
        let pairs: Vec<Pair> = (chunk * 100..chunk * 100 + 100)
            .flat_map(|k| [(k, 0), (k, 1)])
            .collect();
        tx.send_chunk(pairs).await.unwrap();
        head.pull(&mut out, &control).await.unwrap();
        // The opening times of closed states do not pile up.
        assert!(
            head.opening_times() <= 2 + 1024 + 100,
            "{}",
            head.opening_times()
        );
    }
    assert_eq!(out.len(), 3000);
    for batch in &out {
        let chunk = u64::from(*batch.key() / 100);
        assert_eq!(batch.window_start() - start, ms(chunk), "{batch:?}");
        assert_eq!(batch.window_duration(), Duration::ZERO);
    }
    tokio::time::advance(ms(5)).await;
    drop(tx);
    let rest = drain(&mut head, start).await;
    assert_eq!(rest.len(), 1);
    let (_, last) = &rest[0];
    assert_eq!(*last.key(), 0);
    assert_eq!(last.window_start(), start, "opened before everything else");
    assert_eq!(last.window_end() - start, ms(35));
}

#[tokio::test(start_paused = true)]
async fn a_budget_keeps_the_hot_keys_in_memory() {
    let dir = ScratchDir::new("budget");
    let stats = stats();
    let (mut tx, rx) = edge(1 << 16, 64);
    let policy = Policy {
        max_items: Some(1000),
        spill: Some(SpillPolicy {
            max_memory: 64 * 1024,
            dir: Some(dir.0.clone()),
        }),
        ..Policy::default()
    };
    let mut head = AccumulateHead::spilling(
        rx,
        batch_by(pair_key),
        default_size,
        policy,
        stats.clone(),
        1 << 16,
    );
    let control = Control::new();
    let mut out = Vec::new();
    // 1000 cold keys, then one hot key that keeps growing.
    tx.send_chunk((0..1000).map(|k| (k, k)).collect())
        .await
        .unwrap();
    head.pull(&mut out, &control).await.unwrap();
    for round in 0..5 {
        tx.send_chunk((0..100).map(|i| (5000, round * 100 + i)).collect())
            .await
            .unwrap();
        head.pull(&mut out, &control).await.unwrap();
    }
    let on_disk = stats.spilled_keys();
    assert!(on_disk > 0 && on_disk < 1001, "{on_disk}");
    assert!(!head.spiller().store().is_empty());
    drop(tx);
    let rest = drain(&mut head, Instant::now()).await;
    let hot = rest.iter().find(|(_, b)| *b.key() == 5000).unwrap();
    assert_eq!(hot.1.len(), 500);
    assert_eq!(rest.len(), 1001);
    assert!(StageReport::from_stats(&stats).is_balanced());
}

#[tokio::test(start_paused = true)]
async fn a_corrupt_spill_file_is_reported_and_counted_and_nothing_hangs() {
    let dir = ScratchDir::new("corrupt");
    let stats = stats();
    let (mut tx, rx) = edge(1 << 16, 64);
    let (port, mut errors) = errors_port();
    let mut head = AccumulateHead::spilling(
        rx,
        batch_by(pair_key),
        default_size,
        spill_policy(&dir, 1),
        stats.clone(),
        1 << 16,
    )
    .with_errors(port);
    let control = Control::new();
    let mut out = Vec::new();
    // 100 keys of two items each, all spilled after the pull.
    tx.send_chunk((0..200).map(|i| (i % 100, i)).collect())
        .await
        .unwrap();
    head.pull(&mut out, &control).await.unwrap();
    assert_eq!(stats.spilled_keys(), 100);
    let files = files_under(&dir.0);
    assert!(!files.is_empty());
    for file in files {
        let len = std::fs::metadata(&file).unwrap().len() as usize;
        std::fs::write(&file, vec![0xa5; len]).unwrap();
    }
    // Keys 0..10 come back with a new item each: their old state is lost,
    // the new item starts a fresh one.
    tx.send_chunk((0..10).map(|k| (k, 1000 + k)).collect())
        .await
        .unwrap();
    drop(tx);
    let rest = tokio::time::timeout(Duration::from_secs(60), drain(&mut head, Instant::now()))
        .await
        .expect("a corrupt spill must not hang the accumulation");
    let batches: Vec<(u32, Vec<u32>)> = rest
        .iter()
        .map(|(_, b)| (*b.key(), b.iter().map(|p| p.1).collect()))
        .collect();
    assert_eq!(
        batches,
        (0..10).map(|k| (k, vec![1000 + k])).collect::<Vec<_>>()
    );
    assert_eq!(head.spiller().store().corrupt_records(), 100);
    drop(head);
    let lost = recv_all(&mut errors).await;
    assert_eq!(lost.len(), 100);
    let keys: BTreeSet<u32> = lost.iter().map(|u| u.key).collect();
    assert_eq!(keys, (0..100).collect());
    for unfinished in &lost {
        assert!(unfinished.partial.is_none());
        let UnfinishedReason::Spill(error) = &unfinished.reason else {
            panic!("{unfinished:?}");
        };
        assert!(error.is_corruption(), "{error}");
    }
    let report = StageReport::from_stats(&stats);
    assert_eq!(
        (
            report.items_in,
            report.passed,
            report.failed,
            report.dead_lettered
        ),
        (210, 10, 200, 0)
    );
    assert!(report.is_balanced(), "{report:?}");
}

/// A random run: items with a key, a size and a delay before each; with a
/// `spill_budget`, it also runs spilling to disk.
#[derive(Debug, Clone)]
struct Case {
    items: Vec<(u8, u64, u64)>,
    policy: Policy,
    connect_errors: bool,
    spill_budget: Option<u64>,
    /// Also run with the engine counting, and with `seq` numbers given out
    /// again before this.
    seq_limit: u32,
}

fn case() -> impl Strategy<Value = Case> {
    let items = prop::collection::vec(
        (
            0u8..6,
            0u64..20,
            prop_oneof![3 => Just(0u64), 1 => 0u64..40],
        ),
        0..150,
    );
    let limit = |range: std::ops::Range<u64>| prop::option::of(range);
    (
        items,
        prop::option::of(1usize..8),
        limit(1..40),
        limit(1..80),
        limit(1..80),
        any::<bool>(),
        any::<bool>(),
        prop_oneof![2 => Just(None), 1 => (0u64..600).prop_map(Some)],
        // Six keys are open at most: from 7 on, numbers can be given out.
        prop_oneof![1 => Just(u32::MAX), 2 => 7u32..30],
    )
        .prop_map(
            |(
                items,
                max_items,
                max_bytes,
                latency,
                ttl,
                partial_flush,
                connect_errors,
                spill_budget,
                seq_limit,
            )| Case {
                items,
                policy: Policy {
                    max_items,
                    max_bytes,
                    max_latency: latency.map(ms),
                    ttl: ttl.map(ms),
                    partial_flush,
                    spill: None,
                },
                connect_errors,
                spill_budget,
                seq_limit,
            },
        )
}

/// Whether two runs of the same schedule gave the same outputs, at the same
/// times, and counted them alike.
fn same(got: &Outcome, expected: &Outcome) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.normalized(), expected.normalized());
    let (with, without) = (&got.report, &expected.report);
    prop_assert_eq!(
        (
            with.items_in,
            with.items_out,
            with.passed,
            with.failed,
            with.dead_lettered
        ),
        (
            without.items_in,
            without.items_out,
            without.passed,
            without.failed,
            without.dead_lettered
        )
    );
    prop_assert_eq!(
        with.accumulator.unwrap().flushes,
        without.accumulator.unwrap().flushes
    );
    Ok(())
}

fn check(case: Case) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let schedule: Vec<(Duration, Item)> = case
        .items
        .iter()
        .enumerate()
        .map(|(i, &(key, size, delay))| (ms(delay), (key, i as u32, size)))
        .collect();
    let n = schedule.len() as u64;
    let policy = case.policy.clone();
    let outcome = runtime.block_on(run(schedule.clone(), case.policy, case.connect_errors));

    // Counting in the engine rather than in the batches, and giving `seq`
    // numbers out again, change nothing that comes out.
    let variant = Variant {
        engine_counts: true,
        seq_limit: case.seq_limit,
    };
    let counted = runtime.block_on(run_with(
        schedule.clone(),
        policy.clone(),
        case.connect_errors,
        variant,
    ));
    same(&counted, &outcome)?;

    // Spilling changes where states wait, not what comes out, or when.
    if let Some(max_memory) = case.spill_budget {
        let dir = ScratchDir::new("prop");
        let spilling = Policy {
            spill: Some(SpillPolicy {
                max_memory,
                dir: Some(dir.0.clone()),
            }),
            ..policy.clone()
        };
        let variant = Variant {
            engine_counts: case.seq_limit % 2 == 1,
            seq_limit: case.seq_limit,
        };
        let spilled = runtime.block_on(run_with(schedule, spilling, case.connect_errors, variant));
        same(&spilled, &outcome)?;
    }

    // Every batch keeps to its key and its limits.
    let window = match (policy.max_latency, policy.ttl) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let mut batches: Vec<&Out> = outcome.outputs.iter().map(|(_, b)| b).collect();
    batches.extend(outcome.errors.iter().filter_map(|u| u.partial.as_ref()));
    for batch in &batches {
        prop_assert!(!batch.is_empty());
        prop_assert!(batch.iter().all(|item| item.0 == *batch.key()));
        if let Some(max) = policy.max_items {
            prop_assert!(batch.len() <= max, "{} items > {max}", batch.len());
        }
        let bytes: u64 = batch.iter().map(|item| item.2).sum();
        prop_assert_eq!(batch.total_bytes(), bytes);
        if let Some(max) = policy.max_bytes {
            prop_assert!(bytes <= max || batch.len() == 1, "{bytes} bytes > {max}");
        }
        if let Some(window) = window {
            prop_assert!(batch.window_duration() <= window);
        }
    }

    // Every item comes out once, and a key's items keep their order.
    let mut per_key: BTreeMap<u8, Vec<&Out>> = BTreeMap::new();
    for batch in &batches {
        per_key.entry(*batch.key()).or_default().push(batch);
    }
    let mut seen = Vec::new();
    for (_, mut batches) in per_key {
        batches.sort_by_key(|b| b[0].1);
        let indices: Vec<u32> = batches.iter().flat_map(|b| indices(b)).collect();
        prop_assert!(indices.is_sorted(), "{indices:?}");
        seen.extend(indices);
    }
    seen.sort_unstable();
    let total = seen.len() as u64;
    seen.dedup();
    prop_assert_eq!(seen.len() as u64, total, "an item came out twice");

    let report = &outcome.report;
    let acc = report.accumulator.unwrap();
    let lost = if case.connect_errors || policy.partial_flush {
        0
    } else {
        n - total
    };
    prop_assert_eq!(total + lost, n, "an item was lost");
    prop_assert_eq!(report.items_in, n);
    prop_assert_eq!(report.failed, lost);
    prop_assert_eq!(report.passed + report.dead_lettered + report.failed, n);
    prop_assert_eq!(report.items_out, outcome.outputs.len() as u64);
    prop_assert_eq!((acc.open_keys, acc.items_held, acc.bytes_held), (0, 0, 0));
    prop_assert!(report.is_balanced());
    if policy.partial_flush {
        prop_assert!(outcome.errors.is_empty());
        prop_assert_eq!(acc.flushes.total(), outcome.outputs.len() as u64);
    } else if case.connect_errors {
        prop_assert_eq!(
            acc.flushes.expired + acc.flushes.stop,
            outcome.errors.len() as u64
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_item_comes_out_once_in_order_and_within_limits(case in case()) {
        check(case)?;
    }
}

/// Grouping 10M items over 100k keys into batches of 100, against a
/// hand-written `HashMap<K, Vec<T>>` loop with the same hasher. Run with
/// `cargo test --release -p pipeline-runtime --lib accumulate::tests::grouping_speed -- --ignored --nocapture`.
#[test]
#[ignore = "a benchmark; run in release"]
fn grouping_speed() {
    use std::collections::HashMap;
    const ITEMS: u64 = 10_000_000;
    const KEYS: u64 = 100_000;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let items: Vec<(u64, u64)> = (0..ITEMS)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % KEYS, i)
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    for round in 0..3 {
        let input = items.clone();
        let started = std::time::Instant::now();
        let mut map: HashMap<u64, Vec<(u64, u64)>, foldhash::fast::RandomState> =
            HashMap::default();
        let mut batches = 0u64;
        let mut out = Vec::new();
        for item in input {
            let batch = map.entry(item.0).or_default();
            batch.push(item);
            if batch.len() == 100 {
                out.push(std::mem::take(batch));
                if out.len() == 512 {
                    batches += out.len() as u64;
                    out.clear();
                }
            }
        }
        batches += (out.len() + map.into_values().filter(|b| !b.is_empty()).count()) as u64;
        let baseline = started.elapsed();

        let input = items.clone();
        let chunks: Vec<Vec<(u64, u64)>> = input.chunks(512).map(<[_]>::to_vec).collect();
        let (ours, our_batches) = runtime.block_on(async {
            let (mut tx, rx) = edge(1 << 25, 512);
            for chunk in chunks {
                tx.send_chunk(chunk).await.unwrap();
            }
            drop(tx);
            let policy = Policy {
                max_items: Some(100),
                ..Policy::default()
            };
            let key = |item: &(u64, u64)| item.0;
            let mut head =
                AccumulateHead::new(rx, batch_by(key), default_size, policy, stats(), 512);
            let control = Control::new();
            let started = std::time::Instant::now();
            let mut out = Vec::new();
            let mut batches = 0u64;
            while head.pull(&mut out, &control).await.unwrap() == Pull::More {
                batches += out.len() as u64;
                out.clear();
            }
            batches += out.len() as u64;
            (started.elapsed(), batches)
        });
        println!(
            "round {round}: hand-written {baseline:?} ({batches} batches), accumulate {ours:?} ({our_batches} batches): {:.2}x",
            ours.as_secs_f64() / baseline.as_secs_f64()
        );
    }
}

/// A chain that emits `chunks`, then fails its pull with `error`.
struct FailsAfter {
    chunks: std::collections::VecDeque<Vec<u64>>,
    error: Option<Error>,
}

impl crate::chain::Outputs for FailsAfter {
    type Out = u64;
}

impl Chain for FailsAfter {
    type Out = u64;

    async fn init(&mut self) -> Result<(), Error> {
        Ok(())
    }

    async fn pull(&mut self, out: &mut Vec<u64>, _: &Control) -> Result<Pull, Error> {
        match self.chunks.pop_front() {
            Some(chunk) => {
                out.extend(chunk);
                Ok(Pull::More)
            }
            None => Err(self.error.take().expect("pulled once more after failing")),
        }
    }

    async fn close(&mut self) -> Result<(), Error> {
        Ok(())
    }
}

fn fails_after(error: Error) -> FailsAfter {
    FailsAfter {
        chunks: [vec![0, 1, 2], vec![], vec![3, 4]].into(),
        error: Some(error),
    }
}

fn by_parity() -> BatchBy<impl FnMut(&u64) -> u64 + Clone> {
    batch_by(|n: &u64| n % 2)
}

#[tokio::test]
async fn a_fused_accumulation_drains_when_the_chain_before_it_fails_the_run() {
    let failure = Error::ItemFailed {
        stage: "check",
        position: 5,
        error: "bad".into(),
    };
    let policy = Policy {
        max_items: Some(100),
        ..Policy::default()
    };
    let stats = stats();
    let mut head = AccumulateHead::new(
        Pulled::new(fails_after(failure)),
        by_parity(),
        default_size,
        policy,
        stats.clone(),
        64,
    );
    head.init().await.unwrap();
    let (mut out, control) = (Vec::new(), Control::new());
    let mut pulls = 0;
    while head.pull(&mut out, &control).await.unwrap() == Pull::More {
        pulls += 1;
        assert!(pulls < 10, "the accumulation never ended");
    }
    let mut batches: Vec<(u64, Vec<u64>)> = out
        .into_iter()
        .map(|b| (*b.key(), b.into_items()))
        .collect();
    batches.sort();
    assert_eq!(
        batches,
        vec![(0, vec![0, 2, 4]), (1, vec![1, 3])],
        "what it held is let go of"
    );
    // The failure is the run's, returned when the accumulation closes.
    let closed = head.close().await;
    assert!(
        matches!(closed, Err(Error::ItemFailed { position: 5, .. })),
        "{closed:?}"
    );
    assert_eq!(stats.items_in(), 5);
}

#[tokio::test]
async fn a_fused_accumulation_returns_any_other_error_of_the_chain_before_it_at_once() {
    let policy = Policy {
        max_items: Some(100),
        ..Policy::default()
    };
    let mut head = AccumulateHead::new(
        Pulled::new(fails_after(Error::Panicked {
            message: "worker".into(),
        })),
        by_parity(),
        default_size,
        policy,
        stats(),
        64,
    );
    head.init().await.unwrap();
    let (mut out, control) = (Vec::new(), Control::new());
    let failed = loop {
        match head.pull(&mut out, &control).await {
            Ok(Pull::More) => continue,
            Ok(Pull::Done) => panic!("ended without the chain's error"),
            Err(error) => break error,
        }
    };
    assert!(matches!(failed, Error::Panicked { .. }), "{failed}");
}
