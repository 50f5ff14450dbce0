use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::chain::Chain;
use crate::channel::{EdgeReceiver, edge};
use crate::control::Control;
use crate::error::Error;
use crate::fan::{Broadcast, ErrorsPort, Output};
use crate::graph::NodeKind;
use crate::metrics::{EdgeStats, StageStats};
use crate::options::{OnError, Ordering, Parallelism, StageOptions};
use crate::stage::{BoxError, Emit, Failed, Failures, Never, Pull, Stage, StageContext};

fn stats(name: &'static str) -> Arc<StageStats> {
    Arc::new(StageStats::new(name, NodeKind::Transform))
}

/// `in = passed + filtered + failed + dropped + dead_lettered`.
fn assert_accounted(stats: &StageStats) {
    assert_eq!(
        stats.items_in(),
        stats.passed()
            + stats.filtered()
            + stats.failed()
            + stats.dropped()
            + stats.dead_lettered(),
        "accounting of `{}`: in {}, passed {}, filtered {}, failed {}, dropped {}, dead-lettered {}",
        stats.name(),
        stats.items_in(),
        stats.passed(),
        stats.filtered(),
        stats.failed(),
        stats.dropped(),
        stats.dead_lettered(),
    );
}

/// An edge fed, one item at a time, by a task that yields now and then so
/// the input arrives in pieces.
fn feed<T: Send + 'static>(items: Vec<T>) -> EdgeReceiver<T> {
    let (mut tx, rx) = edge(64, 8);
    tokio::spawn(async move {
        for (i, item) in items.into_iter().enumerate() {
            tx.send(item).await.expect("the head reads until the end");
            if i % 5 == 0 {
                tx.flush().await.expect("the head reads until the end");
                tokio::task::yield_now().await;
            }
        }
        tx.close().await.expect("the head reads until the end");
    });
    rx
}

/// Drives a head as `drive_into` would, calling `each` after every pull.
async fn drain<H: Chain>(head: &mut H, mut each: impl FnMut(&H)) -> Result<Vec<H::Out>, Error> {
    let control = Control::new();
    head.init().await?;
    let mut out = Vec::new();
    loop {
        let pull = head.pull(&mut out, &control).await?;
        each(head);
        if pull == Pull::Done {
            break;
        }
    }
    head.close().await?;
    Ok(out)
}

/// A delay in milliseconds that looks random but is the same every run.
fn jitter(item: u64) -> u64 {
    item.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17) % 23
}

/// Sleeps a jittered time per item, records the order items finished in,
/// and emits each item.
#[derive(Clone, Default)]
struct Sleepy {
    finished: Arc<Mutex<Vec<u64>>>,
}

impl Stage<u64> for Sleepy {
    type Out = u64;
    type Error = Infallible;

    async fn process(
        &mut self,
        item: u64,
        out: &mut Emit<'_, u64>,
        _: &StageContext,
    ) -> Result<(), Infallible> {
        tokio::time::sleep(Duration::from_millis(jitter(item))).await;
        self.finished.lock().unwrap().push(item);
        out.emit(item);
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn ordered_output_keeps_input_order_while_workers_finish_out_of_order() {
    let stage = Sleepy::default();
    let finished = Arc::clone(&stage.finished);
    let stats = stats("sleepy");
    let mut head = ParallelHead::new(
        feed((0..500).collect()),
        clones(stage),
        |w| spawn(w.run()),
        Parallelism::Fixed(4),
        Ordering::Ordered,
        Arc::clone(&stats),
        3,
    );
    let out = drain(&mut head, |_| {}).await.unwrap();
    assert_eq!(out, (0..500).collect::<Vec<u64>>());
    let finished = finished.lock().unwrap().clone();
    assert_eq!(finished.len(), 500);
    assert!(
        finished.windows(2).any(|w| w[0] > w[1]),
        "the workers should have finished out of order"
    );
    assert_eq!((stats.items_in(), stats.items_out()), (500, 500));
    assert_accounted(&stats);
}

/// Busy for a jittered number of microseconds per item, on a thread.
#[derive(Clone)]
struct Busy;

impl crate::stage::SyncStage<u64> for Busy {
    type Out = u64;
    type Error = Infallible;

    fn process(
        &mut self,
        item: u64,
        out: &mut Emit<'_, u64>,
        _: &StageContext,
    ) -> Result<(), Infallible> {
        std::thread::sleep(Duration::from_micros(jitter(item) * 20));
        out.emit(item * 2);
        Ok(())
    }
}
crate::sync_stage!(Busy: u64);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_output_keeps_input_order_on_a_multi_thread_runtime() {
    let stats = stats("busy");
    let mut head = ParallelHead::new(
        feed((0..2000).collect()),
        clones(Busy),
        |w| spawn(w.run()),
        Parallelism::Cpu,
        Ordering::Ordered,
        Arc::clone(&stats),
        7,
    );
    // Driven from a spawned task, as `Pipeline::spawn` does: the head and
    // its `pull` future are `Send`.
    let out = tokio::spawn(async move { drain(&mut head, |_| {}).await })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out, (0..2000).map(|x| x * 2).collect::<Vec<u64>>());
    assert_accounted(&stats);
}

#[tokio::test(start_paused = true)]
async fn unordered_delivers_every_item() {
    let stats = stats("sleepy");
    let mut head = ParallelHead::new(
        feed((0..300).collect()),
        clones(Sleepy::default()),
        |w| spawn(w.run()),
        Parallelism::Fixed(3),
        Ordering::Unordered,
        Arc::clone(&stats),
        4,
    );
    let mut out = drain(&mut head, |_| {}).await.unwrap();
    assert_ne!(out, (0..300).collect::<Vec<u64>>(), "finished out of order");
    out.sort_unstable();
    assert_eq!(out, (0..300).collect::<Vec<u64>>());
    assert_eq!((stats.items_in(), stats.items_out()), (300, 300));
    assert_accounted(&stats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unordered_delivers_every_item_on_a_multi_thread_runtime() {
    let mut head = ParallelHead::new(
        feed((0..2000).collect()),
        clones(Busy),
        |w| spawn(w.run()),
        Parallelism::Fixed(2),
        Ordering::Unordered,
        stats("busy"),
        16,
    );
    let mut out = drain(&mut head, |_| {}).await.unwrap();
    out.sort_unstable();
    assert_eq!(out, (0..2000).map(|x| x * 2).collect::<Vec<u64>>());
}

/// Sleeps the item's delay, then emits it.
#[derive(Clone)]
struct Delayed;

/// A keyed item: key, delay in ms, sequence number.
type Keyed = (u8, u64, usize);

impl Stage<Keyed> for Delayed {
    type Out = Keyed;
    type Error = Infallible;

    async fn process(
        &mut self,
        item: Keyed,
        out: &mut Emit<'_, Keyed>,
        _: &StageContext,
    ) -> Result<(), Infallible> {
        tokio::time::sleep(Duration::from_millis(item.1)).await;
        out.emit(item);
        Ok(())
    }
}

fn check_per_key_order(input: &[Keyed], output: &[Keyed]) -> Result<(), TestCaseError> {
    let by_key = |items: &[Keyed]| {
        let mut keys: HashMap<u8, Vec<usize>> = HashMap::new();
        for &(key, _, seq) in items {
            keys.entry(key).or_default().push(seq);
        }
        keys
    };
    prop_assert_eq!(output.len(), input.len());
    prop_assert_eq!(by_key(output), by_key(input));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn by_key_keeps_the_order_of_each_key(
        keys_and_delays in proptest::collection::vec((0u8..6, 0u64..15), 1..150),
        workers in 1usize..5,
        chunk in 1usize..6,
        io in any::<bool>(),
    ) {
        let input: Vec<Keyed> = keys_and_delays
            .into_iter()
            .enumerate()
            .map(|(seq, (key, delay))| (key, delay, seq))
            .collect();
        let parallelism = if io {
            Parallelism::Io { max: workers }
        } else {
            Parallelism::Fixed(workers)
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let stats = stats("delayed");
        let output = runtime.block_on(async {
            let mut head = ParallelHead::by_key(
                feed(input.clone()),
                clones(Delayed),
                |w| spawn(w.run()),
                parallelism,
                |item: &Keyed| item.0,
                Arc::clone(&stats),
                chunk,
            );
            drain(&mut head, |_| {}).await.unwrap()
        });
        check_per_key_order(&input, &output)?;
        prop_assert_eq!(stats.items_in(), input.len() as u64);
        assert_accounted(&stats);
    }
}

#[tokio::test(start_paused = true)]
async fn by_key_runs_different_keys_in_parallel() {
    // Two keys, 10 items each, 10 ms per item: one worker per key takes
    // 100 ms, one worker for both would take 200 ms.
    let input: Vec<Keyed> = (0..20).map(|i| ((i % 2) as u8, 10, i)).collect();
    let started = tokio::time::Instant::now();
    let mut head = ParallelHead::by_key(
        feed(input.clone()),
        clones(Delayed),
        |w| spawn(w.run()),
        Parallelism::Fixed(8),
        // Keys 0 and 1 go to different workers of 8 with this hash.
        |item: &Keyed| item.0,
        stats("delayed"),
        4,
    );
    let output = drain(&mut head, |_| {}).await.unwrap();
    check_per_key_order(&input, &output).unwrap();
    let workers_of = |key: u8| head_bucket(key, 8);
    assert_ne!(
        workers_of(0),
        workers_of(1),
        "the test needs keys on two workers"
    );
    assert!(
        started.elapsed() < Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
}

fn head_bucket(key: u8, slots: usize) -> usize {
    use std::hash::BuildHasher;
    let hash = foldhash::fast::FixedState::with_seed(0).hash_one(key);
    ((u128::from(hash) * slots as u128) >> 64) as usize
}

/// A service whose latency per item grows once more than `capacity` calls
/// overlap; records the most calls that overlapped.
#[derive(Clone)]
struct Service {
    capacity: usize,
    active: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl Service {
    fn new(capacity: usize) -> Self {
        Service {
            capacity,
            active: Arc::default(),
            peak: Arc::default(),
        }
    }
}

impl Stage<u64> for Service {
    type Out = u64;
    type Error = Infallible;

    async fn process(
        &mut self,
        item: u64,
        out: &mut Emit<'_, u64>,
        _: &StageContext,
    ) -> Result<(), Infallible> {
        let active = self.active.fetch_add(1, SeqCst) + 1;
        self.peak.fetch_max(active, SeqCst);
        // 10 ms up to `capacity` overlapping calls, then proportionally
        // more: the service queues what it cannot take.
        let load = active.max(self.capacity) as u64;
        tokio::time::sleep(Duration::from_millis(10 * load / self.capacity as u64)).await;
        self.active.fetch_sub(1, SeqCst);
        out.emit(item);
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn io_concurrency_grows_while_latency_is_flat() {
    // A service that is never overloaded at 8 calls.
    let service = Service::new(1000);
    let peak = Arc::clone(&service.peak);
    let mut head = ParallelHead::new(
        feed((0..600).collect()),
        clones(service),
        |w| spawn(w.run()),
        Parallelism::Io { max: 8 },
        Ordering::Unordered,
        stats("service"),
        1,
    );
    assert_eq!(head.concurrency(), 1);
    let mut history = Vec::new();
    let mut workers = 0;
    let out = drain(&mut head, |h| {
        history.push(h.concurrency());
        workers = workers.max(h.workers());
    })
    .await
    .unwrap();
    assert_eq!(out.len(), 600);
    assert!(
        history.windows(2).all(|w| w[0] <= w[1]),
        "flat latency never lowers the limit: {history:?}"
    );
    assert_eq!(history.last(), Some(&8));
    assert_eq!(peak.load(SeqCst), 8);
    assert_eq!(workers, 8, "workers start as the limit grows");
}

#[tokio::test(start_paused = true)]
async fn io_concurrency_shrinks_when_latency_rises() {
    // Overloaded past 4 overlapping calls: 6 calls take 1.5x as long, 8
    // take twice as long.
    let service = Service::new(4);
    let peak = Arc::clone(&service.peak);
    let mut head = ParallelHead::new(
        feed((0..2000).collect()),
        clones(service),
        |w| spawn(w.run()),
        Parallelism::Io { max: 32 },
        Ordering::Ordered,
        stats("service"),
        1,
    );
    let mut history = Vec::new();
    let out = drain(&mut head, |h| history.push(h.concurrency()))
        .await
        .unwrap();
    assert_eq!(out, (0..2000).collect::<Vec<u64>>());
    let highest = *history.iter().max().unwrap();
    assert!(
        (4..=8).contains(&highest),
        "the limit stays near the capacity: {highest}"
    );
    let decreases = history.windows(2).filter(|w| w[1] < w[0]).count();
    assert!(
        decreases >= 3,
        "the limit is cut whenever it overshoots: {decreases}"
    );
    assert!(peak.load(SeqCst) <= 8, "{}", peak.load(SeqCst));
    // Mostly at or near capacity: the work took little more than it would
    // with exactly 4 calls at a time.
    let mean = history.iter().sum::<usize>() as f64 / history.len() as f64;
    assert!((2.5..=7.0).contains(&mean), "mean limit {mean}");
}

#[test]
fn aimd_grows_by_one_per_round_of_flat_samples() {
    let ms = Duration::from_millis;
    let mut limit = AimdLimit::new(5);
    let mut seen = Vec::new();
    for _ in 0..14 {
        seen.push(limit.observe(ms(10), true));
    }
    // +1 after 1 sample at 1, after 2 at 2, after 3 at 3, after 4 at 4.
    assert_eq!(seen, [2, 2, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 5]);
    assert_eq!(limit.max(), 5);
}

#[test]
fn aimd_does_not_grow_a_limit_that_is_not_used() {
    let mut limit = AimdLimit::new(5);
    for _ in 0..100 {
        limit.observe(Duration::from_millis(10), false);
    }
    assert_eq!(limit.limit(), 1);
}

#[test]
fn aimd_halves_when_latency_rises_once_per_round() {
    let ms = Duration::from_millis;
    let mut limit = AimdLimit::new(64);
    while limit.limit() < 16 {
        limit.observe(ms(10), true);
    }
    // Slightly slower, within the tolerance: flat.
    assert_eq!(limit.observe(ms(14), true), 16);
    // Twice the baseline: halved, and the 15 other chunks that were in
    // flight with it do not halve it again.
    assert_eq!(limit.observe(ms(20), true), 8);
    for _ in 0..15 {
        assert_eq!(limit.observe(ms(20), true), 8);
    }
    // Still slow a round later: halved again, and so on down to 1.
    assert_eq!(limit.observe(ms(20), true), 4);
    for _ in 0..7 {
        limit.observe(ms(20), true);
    }
    assert_eq!(limit.observe(ms(20), true), 2);
    for _ in 0..3 {
        limit.observe(ms(20), true);
    }
    assert_eq!(limit.observe(ms(20), true), 1);
    // At 1 the slower latency becomes the baseline, and it grows again.
    limit.observe(ms(20), true);
    assert_eq!(limit.observe(ms(20), true), 2);
}

/// Filters multiples of 5, fails multiples of 7, panics on multiples of 11
/// (in that order of precedence), emits the rest.
#[derive(Clone)]
struct Picky;

impl Stage<u64> for Picky {
    type Out = u64;
    type Error = String;

    async fn process(
        &mut self,
        item: u64,
        out: &mut Emit<'_, u64>,
        _: &StageContext,
    ) -> Result<(), String> {
        tokio::task::yield_now().await;
        if item.is_multiple_of(5) {
            return Ok(());
        }
        if item.is_multiple_of(7) {
            return Err(format!("{item} is a multiple of 7"));
        }
        assert!(!item.is_multiple_of(11), "{item} is a multiple of 11");
        out.emit(item);
        Ok(())
    }
}

fn picky_counts(n: u64) -> (u64, u64, u64) {
    let filtered = (0..n).filter(|x| x % 5 == 0).count() as u64;
    let failed = (0..n)
        .filter(|x| x % 5 != 0 && (x % 7 == 0 || x % 11 == 0))
        .count() as u64;
    (filtered, failed, n - filtered - failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounting_holds_with_filtered_failed_and_panicking_items() {
    for ordering in [Ordering::Ordered, Ordering::Unordered] {
        let stats = stats("picky");
        let mut head = ParallelHead::new(
            feed((0..1000).collect()),
            clones(Picky),
            |w| spawn(w.run()),
            Parallelism::Fixed(3),
            ordering,
            Arc::clone(&stats),
            10,
        );
        let mut out = drain(&mut head, |_| {}).await.unwrap();
        let (filtered, failed, passed) = picky_counts(1000);
        if ordering == Ordering::Unordered {
            out.sort_unstable();
        }
        let expected: Vec<u64> = (0..1000)
            .filter(|x| x % 5 != 0 && x % 7 != 0 && x % 11 != 0)
            .collect();
        assert_eq!(out, expected);
        assert_eq!(stats.items_in(), 1000);
        assert_eq!(stats.items_out(), passed);
        assert_eq!(
            (stats.passed(), stats.filtered(), stats.failed()),
            (passed, filtered, failed)
        );
        assert_accounted(&stats);
    }
}

/// Overrides `process_chunk` and panics out of it on a chunk holding 13;
/// counts its `init`s and `close`s.
#[derive(Clone)]
struct Brittle {
    inits: Arc<AtomicUsize>,
    closes: Arc<AtomicUsize>,
}

impl Stage<u64> for Brittle {
    type Out = u64;
    type Error = Infallible;

    async fn init(&mut self, _: &StageContext) -> Result<(), BoxError> {
        self.inits.fetch_add(1, SeqCst);
        Ok(())
    }

    async fn process(
        &mut self,
        item: u64,
        out: &mut Emit<'_, u64>,
        _: &StageContext,
    ) -> Result<(), Infallible> {
        out.emit(item);
        Ok(())
    }

    async fn process_chunk(
        &mut self,
        input: &mut Vec<u64>,
        out: &mut Vec<u64>,
        failures: &mut Failures<Infallible>,
        _: &StageContext,
    ) {
        tokio::task::yield_now().await;
        for item in input.drain(..) {
            assert_ne!(item, 13, "unlucky");
            out.push(item);
            failures.note_passed(1);
        }
    }

    async fn close(&mut self, _: &StageContext) -> Result<(), BoxError> {
        self.closes.fetch_add(1, SeqCst);
        Ok(())
    }
}

#[tokio::test]
async fn a_panic_out_of_process_chunk_fails_its_chunk_and_the_worker_goes_on_with_a_fresh_stage() {
    let inits = Arc::new(AtomicUsize::new(0));
    let closes = Arc::new(AtomicUsize::new(0));
    let stage = Brittle {
        inits: Arc::clone(&inits),
        closes: Arc::clone(&closes),
    };
    let stats = stats("brittle");
    // Chunks of 4 from a backlog that arrives in pieces: the chunk holding
    // 13 has between 1 and 4 items.
    let mut head = ParallelHead::new(
        feed((0..100).collect()),
        clones(stage),
        |w| spawn(w.run()),
        Parallelism::Fixed(2),
        Ordering::Ordered,
        Arc::clone(&stats),
        4,
    );
    let out = drain(&mut head, |_| {}).await.unwrap();
    let lost = 100 - out.len() as u64;
    assert!(
        (1..=4).contains(&lost),
        "only the chunk holding 13 fails: {lost}"
    );
    assert!(!out.contains(&13));
    assert!(out.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(*out.last().unwrap(), 99, "the worker went on");
    assert_eq!(stats.failed(), lost);
    assert_accounted(&stats);
    assert_eq!(inits.load(SeqCst), 3, "two workers, one replaced stage");
    assert_eq!(
        closes.load(SeqCst),
        2,
        "each worker closes its (last) stage"
    );
}

/// A stage whose `init` fails, or panics.
#[derive(Clone)]
struct Unready {
    panic: bool,
}

impl Stage<u64> for Unready {
    type Out = u64;
    type Error = Infallible;

    async fn init(&mut self, _: &StageContext) -> Result<(), BoxError> {
        assert!(!self.panic, "no init today");
        Err("no connection".into())
    }

    async fn process(
        &mut self,
        item: u64,
        out: &mut Emit<'_, u64>,
        _: &StageContext,
    ) -> Result<(), Infallible> {
        out.emit(item);
        Ok(())
    }
}

#[tokio::test]
async fn an_init_error_fails_the_run() {
    let mut head = ParallelHead::new(
        feed((0..10).collect()),
        clones(Unready { panic: false }),
        |w| spawn(w.run()),
        Parallelism::Fixed(2),
        Ordering::Ordered,
        stats("unready"),
        4,
    );
    let error = drain(&mut head, |_| {}).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::Init {
                stage: "unready",
                ..
            }
        ),
        "{error}"
    );
}

#[tokio::test]
async fn a_worker_that_dies_fails_the_run_instead_of_hanging() {
    let mut head = ParallelHead::new(
        feed((0..10).collect()),
        clones(Unready { panic: true }),
        |w| spawn(w.run()),
        Parallelism::Fixed(2),
        Ordering::Ordered,
        stats("unready"),
        4,
    );
    let error = tokio::time::timeout(Duration::from_secs(10), drain(&mut head, |_| {}))
        .await
        .expect("no hang")
        .unwrap_err();
    match error {
        Error::Panicked { message } => assert!(message.contains("no init today"), "{message}"),
        other => panic!("{other}"),
    }
}

/// A stage that is not `Clone`: made by a factory, which counts them.
struct Numbered(usize);

impl Stage<u64> for Numbered {
    type Out = (usize, u64);
    type Error = Infallible;

    async fn process(
        &mut self,
        item: u64,
        out: &mut Emit<'_, (usize, u64)>,
        _: &StageContext,
    ) -> Result<(), Infallible> {
        tokio::time::sleep(Duration::from_millis(1)).await;
        out.emit((self.0, item));
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_factory_makes_one_stage_per_worker() {
    let made = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&made);
    let mut head = ParallelHead::new(
        feed((0..200).collect()),
        factory(move || Numbered(counter.fetch_add(1, SeqCst))),
        |w| spawn(w.run()),
        Parallelism::Fixed(3),
        Ordering::Ordered,
        stats("numbered"),
        5,
    );
    let out = drain(&mut head, |_| {}).await.unwrap();
    assert_eq!(made.load(SeqCst), 3);
    assert_eq!(
        out.iter().map(|(_, x)| *x).collect::<Vec<_>>(),
        (0..200).collect::<Vec<_>>()
    );
    let mut used: Vec<usize> = out.iter().map(|(w, _)| *w).collect();
    used.sort_unstable();
    used.dedup();
    assert_eq!(used, [0, 1, 2], "every worker got work");
}

#[tokio::test]
async fn dead_lettered_items_go_to_the_errors_port_with_their_input() {
    let (errors_tx, mut errors_rx) = edge::<Failed<u64, String>>(4096, 64);
    let port = ErrorsPort::new(Broadcast::single(Output::new(
        errors_tx,
        Arc::new(EdgeStats::new("picky", "dead letters", Some("errors"))),
    )));
    let stats = stats("picky");
    let mut head = ParallelHead::new(
        feed((0..200).collect()),
        clones(Picky),
        |w| spawn(w.run()),
        Parallelism::Fixed(2),
        Ordering::Unordered,
        Arc::clone(&stats),
        8,
    )
    .with_route(StageOptions::NONE, port);
    let collector = tokio::spawn(async move {
        let mut failed = Vec::new();
        while let Some(chunk) = errors_rx.recv_chunk().await {
            failed.extend(chunk);
        }
        failed
    });
    let out = drain(&mut head, |_| {}).await.unwrap();
    drop(head);
    let failed = collector.await.unwrap();
    let (filtered, failed_count, passed) = picky_counts(200);
    assert_eq!(out.len() as u64, passed);
    assert_eq!(failed.len() as u64, failed_count);
    for item in &failed {
        assert_eq!(item.stage, "picky");
        assert!(item.input % 7 == 0 || item.input % 11 == 0, "{item}");
        assert_eq!(item.error.is_panic(), item.input % 7 != 0, "{item}");
    }
    assert_eq!(
        (stats.filtered(), stats.failed(), stats.dead_lettered()),
        (filtered, 0, failed_count)
    );
    assert_accounted(&stats);
}

#[tokio::test]
async fn on_error_fail_stops_the_sources_drains_and_closes_with_the_first_failure() {
    let stats = stats("picky");
    let mut head = ParallelHead::new(
        feed((1..100).collect()),
        clones(Picky),
        |w| spawn(w.run()),
        Parallelism::Fixed(2),
        Ordering::Ordered,
        Arc::clone(&stats),
        4,
    )
    .with_options(StageOptions {
        on_error: Some(OnError::Fail),
        ..StageOptions::NONE
    });
    let control = Control::new();
    head.init().await.unwrap();
    let mut out = Vec::new();
    while head.pull(&mut out, &control).await.unwrap() == Pull::More {}
    assert!(control.is_stopping(), "a failure stops the sources");
    // The head drains its input, whatever the stop.
    assert_eq!(stats.items_in(), 99);
    match head.close().await.unwrap_err() {
        Error::ItemFailed {
            stage, position, ..
        } => {
            assert_eq!(stage, "picky");
            // The first failed item handed back is one of the multiples of
            // 7 or 11; positions count from 0 in the order handed out.
            let item = position + 1;
            assert!(item % 7 == 0 || item % 11 == 0, "{item}");
        }
        other => panic!("{other}"),
    }
    assert_accounted(&stats);
}

fn retry_twice() -> StageOptions {
    StageOptions {
        on_error: Some(OnError::Retry {
            retry: crate::options::Retry {
                attempts: 2,
                backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(10),
            },
            then: crate::options::Exhausted::Ignore,
        }),
        ..StageOptions::NONE
    }
}

#[test]
#[should_panic(expected = "needs a clone of each input")]
fn retry_without_a_way_to_copy_inputs_is_refused_rather_than_ignored() {
    let (_tx, rx) = edge::<u64>(8, 8);
    let _ = ParallelHead::new(
        rx,
        clones(Picky),
        |w| spawn(w.run()),
        Parallelism::Fixed(2),
        Ordering::Ordered,
        stats("picky"),
        4,
    )
    .with_options(retry_twice());
}

#[tokio::test(start_paused = true)]
async fn retry_calls_the_stage_again_on_each_failed_item_then_settles_it() {
    let stats = stats("picky");
    let mut head = ParallelHead::new(
        feed((0..100).collect()),
        clones(Picky),
        |w| spawn(w.run()),
        Parallelism::Fixed(2),
        Ordering::Ordered,
        Arc::clone(&stats),
        4,
    )
    .with_options_cloning(retry_twice());
    let out = drain(&mut head, |_| {}).await.unwrap();
    let (filtered, failed, passed) = picky_counts(100);
    assert_eq!(out.len() as u64, passed);
    assert_eq!((stats.filtered(), stats.failed()), (filtered, failed));
    // Picky fails the same items every time: each is retried twice. A
    // chunk whose call panicked fails whole, so its other items are
    // retried (once, and succeed) too.
    assert!(stats.retries() >= 2 * failed, "{}", stats.retries());
    assert_accounted(&stats);
}

/// A sink that sums what it takes, failing odd items.
#[derive(Clone)]
struct EvenSum(Arc<AtomicUsize>);

impl Stage<u64> for EvenSum {
    type Out = Never;
    type Error = &'static str;

    async fn process(
        &mut self,
        item: u64,
        _: &mut Emit<'_, Never>,
        _: &StageContext,
    ) -> Result<(), &'static str> {
        if item % 2 == 1 {
            return Err("odd");
        }
        self.0.fetch_add(item as usize, SeqCst);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parallel_sink_counts_what_it_consumed_as_passed() {
    let sum = Arc::new(AtomicUsize::new(0));
    let stats = Arc::new(StageStats::new("sum", NodeKind::Sink));
    let mut head = ParallelHead::new(
        feed((0..100).collect()),
        clones(EvenSum(Arc::clone(&sum))),
        |w| spawn(w.run()),
        Parallelism::Fixed(2),
        Ordering::Unordered,
        Arc::clone(&stats),
        8,
    );
    let out = drain(&mut head, |_| {}).await.unwrap();
    assert!(out.is_empty());
    assert_eq!(
        sum.load(SeqCst),
        (0..100).filter(|x| x % 2 == 0).sum::<usize>()
    );
    assert_eq!(
        (stats.passed(), stats.filtered(), stats.failed()),
        (50, 0, 50)
    );
    assert_accounted(&stats);
}

#[tokio::test]
async fn an_empty_input_ends_at_once_and_closes_every_worker() {
    let inits = Arc::new(AtomicUsize::new(0));
    let closes = Arc::new(AtomicUsize::new(0));
    let stage = Brittle {
        inits: Arc::clone(&inits),
        closes: Arc::clone(&closes),
    };
    let mut head = ParallelHead::new(
        feed(Vec::new()),
        clones(stage),
        |w| spawn(w.run()),
        Parallelism::Fixed(3),
        Ordering::Ordered,
        stats("brittle"),
        4,
    );
    assert!(drain(&mut head, |_| {}).await.unwrap().is_empty());
    assert_eq!((inits.load(SeqCst), closes.load(SeqCst)), (3, 3));
}

/// Spins 20 µs per item, counting the chunks being processed at once.
#[derive(Clone)]
struct Spinning {
    active: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl crate::stage::SyncStage<u64> for Spinning {
    type Out = u64;
    type Error = Infallible;

    fn process(
        &mut self,
        item: u64,
        out: &mut Emit<'_, u64>,
        _: &StageContext,
    ) -> Result<(), Infallible> {
        out.emit(item);
        Ok(())
    }

    fn process_chunk(
        &mut self,
        input: &mut Vec<u64>,
        out: &mut Vec<u64>,
        failures: &mut Failures<Infallible>,
        _: &StageContext,
    ) {
        let active = self.active.fetch_add(1, SeqCst) + 1;
        self.peak.fetch_max(active, SeqCst);
        let until = std::time::Instant::now() + Duration::from_micros(20) * input.len() as u32;
        while std::time::Instant::now() < until {
            std::hint::spin_loop();
        }
        self.active.fetch_sub(1, SeqCst);
        failures.note_passed(input.len());
        out.append(input);
    }
}
crate::sync_stage!(Spinning: u64);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_process_chunks_at_the_same_time_on_a_multi_thread_runtime() {
    let stage = Spinning {
        active: Arc::default(),
        peak: Arc::default(),
    };
    let peak = Arc::clone(&stage.peak);
    let mut head = ParallelHead::new(
        feed((0..4000).collect()),
        clones(stage),
        |w| spawn(w.run()),
        Parallelism::Fixed(2),
        Ordering::Ordered,
        stats("spinning"),
        16,
    );
    let out = drain(&mut head, |_| {}).await.unwrap();
    assert_eq!(out, (0..4000).collect::<Vec<u64>>());
    assert_eq!(peak.load(SeqCst), 2, "both workers were busy at once");
}
