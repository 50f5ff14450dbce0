//! Parallel stage benchmark: a CPU-bound stage at `parallel = 1` and
//! `parallel = 2`.
//!
//! Run it with:
//!
//! ```text
//! cargo bench --bench parallel
//! ```
//!
//! The stage does about 10 µs of integer hashing per item (calibrated at
//! start on this machine), so the work dwarfs the plumbing and what is
//! measured is how well the work spreads over workers. The pipeline is
//! built directly from the runtime's types, as `pipeline!` expands a
//! `#[parallel = N]` node: a source task feeding a batched edge, and a
//! [`ParallelHead`] reading it, whose workers are tokio tasks on a
//! 2-worker multi-thread runtime. The head and the source run in the
//! `block_on` task, as a pipeline's `run().await` does under
//! `#[tokio::main]`.
//!
//! Every variant runs in this one process and is reported as ns/item, as a
//! ratio to a plain single-threaded loop over the same work, and as a
//! speed-up over `parallel = 1`. The target is a speed-up of at least 1.7x
//! at `parallel = 2` (on 2 free cores; a machine shared with other work
//! gets less).
//!
//! This is a plain `fn main` (`harness = false`), like the other benches.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pipeline_runtime::chain::Chain;
use pipeline_runtime::channel::edge;
use pipeline_runtime::graph::NodeKind;
use pipeline_runtime::lifecycle::Control;
use pipeline_runtime::metrics::StageStats;
use pipeline_runtime::options::{Ordering, Parallelism};
use pipeline_runtime::parallel::{ParallelHead, clones, spawn};
use pipeline_runtime::stage::{Emit, Failures, Never, Pull, StageContext, SyncStage};
use tokio::runtime::{Builder, Runtime};

/// Work per item the calibration aims for.
const TARGET_PER_ITEM: Duration = Duration::from_micros(10);

/// How long the `parallel = 1` run should take.
const TARGET_RUN: Duration = Duration::from_millis(1500);

/// Timed runs per variant; the best one is reported (interference only
/// ever adds time).
const RUNS: usize = 2;

/// Chunk size of the head and of the edge, the runtime's default.
const CHUNK: usize = pipeline_runtime::chain::DEFAULT_CHUNK;

/// Items the edge into the parallel node holds.
const EDGE_CAPACITY: usize = 8 * CHUNK;

/// About `rounds` rounds of integer hashing (a SplitMix64 step each).
#[inline]
fn work(x: u64, rounds: u32) -> u64 {
    let mut h = x;
    for _ in 0..rounds {
        h = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = h;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^= z ^ (z >> 31);
    }
    h
}

/// Finds the number of rounds that takes about [`TARGET_PER_ITEM`].
fn calibrate() -> u32 {
    let mut rounds = 256u32;
    loop {
        let items = 2_000u64;
        let start = Instant::now();
        let mut sum = 0u64;
        for x in 0..items {
            sum = sum.wrapping_add(work(black_box(x), black_box(rounds)));
        }
        black_box(sum);
        let per_item = start.elapsed().as_secs_f64() / items as f64;
        if per_item > TARGET_PER_ITEM.as_secs_f64() / 20.0 {
            let scaled = f64::from(rounds) * TARGET_PER_ITEM.as_secs_f64() / per_item;
            return scaled.round().max(1.0) as u32;
        }
        // Too quick to time well: more rounds first.
        rounds *= 8;
    }
}

/// The CPU-bound stage: `work` on each item.
#[derive(Clone)]
struct Hash {
    rounds: u32,
}

impl SyncStage<u64> for Hash {
    type Out = u64;
    type Error = Never;

    fn process(&mut self, x: u64, out: &mut Emit<'_, u64>, _: &StageContext) -> Result<(), Never> {
        out.emit(work(x, self.rounds));
        Ok(())
    }

    fn process_chunk(
        &mut self,
        input: &mut Vec<u64>,
        out: &mut Vec<u64>,
        failures: &mut Failures<Never>,
        _: &StageContext,
    ) {
        failures.note_passed(input.len());
        out.extend(input.drain(..).map(|x| work(x, self.rounds)));
    }
}
pipeline_runtime::sync_stage!(Hash: u64);

/// The floor: the same work in a plain loop on one thread.
fn plain_loop(n: u64, rounds: u32) -> u64 {
    let mut sum = 0u64;
    for x in 0..black_box(n) {
        sum = sum.wrapping_add(work(x, rounds));
    }
    black_box(sum)
}

/// How the parallel node is built.
#[derive(Clone, Copy)]
enum Shape {
    Ordered(usize),
    Unordered(usize),
    ByKey(usize),
}

/// `iter(0..n) >> #[parallel = N] hash >> sum`, wired by hand.
fn parallel(rt: &Runtime, n: u64, rounds: u32, shape: Shape) -> u64 {
    let n = black_box(n);
    rt.block_on(async move {
        let (mut tx, rx) = edge::<u64>(EDGE_CAPACITY, CHUNK);
        let stats = Arc::new(StageStats::new("hash", NodeKind::Transform));
        let stage = clones(Hash { rounds });
        let source = async move {
            let mut next = 0;
            while next < n {
                let end = (next + CHUNK as u64).min(n);
                tx.send_chunk((next..end).collect())
                    .await
                    .expect("the head reads until the end");
                next = end;
            }
            tx.close().await.expect("the head reads until the end");
        };
        let consume = async move {
            let mut head = match shape {
                Shape::Ordered(workers) | Shape::Unordered(workers) => ParallelHead::new(
                    rx,
                    stage,
                    |w| spawn(w.run()),
                    Parallelism::Fixed(workers),
                    if matches!(shape, Shape::Ordered(_)) {
                        Ordering::Ordered
                    } else {
                        Ordering::Unordered
                    },
                    stats,
                    CHUNK,
                ),
                Shape::ByKey(workers) => ParallelHead::by_key(
                    rx,
                    stage,
                    |w| spawn(w.run()),
                    Parallelism::Fixed(workers),
                    |x: &u64| x % 64,
                    stats,
                    CHUNK,
                ),
            };
            let control = Control::new();
            head.init().await.expect("the stage starts");
            let mut out = Vec::new();
            let mut sum = 0u64;
            loop {
                let pull = head.pull(&mut out, &control).await.expect("no run error");
                for y in out.drain(..) {
                    sum = sum.wrapping_add(y);
                }
                if pull == Pull::Done {
                    break;
                }
            }
            head.close().await.expect("the stage closes");
            sum
        };
        let ((), sum) = tokio::join!(source, consume);
        black_box(sum)
    })
}

/// CPU time used by this process so far (all threads, user and system),
/// from `/proc/self/stat` (Linux; `None` elsewhere). Clock ticks are
/// taken as 1/100 s, the Linux `USER_HZ`.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses: the 12th
    // and 13th of them are utime and stime.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((user + system) * 10))
}

/// The 1-minute load average, from `/proc/loadavg` (Linux).
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// One variant's best run: its wall time, and the CPU time it used
/// (`None` where it cannot be read).
struct Timing {
    wall: Duration,
    cpu: Option<Duration>,
}

/// One variant: items in, checked sum out.
type Run<'a> = Box<dyn Fn(u64) -> u64 + 'a>;

/// Warm up once on a tenth of the items, then the best of [`RUNS`] runs,
/// each checked against the plain loop's sum.
fn measure(name: &str, n: u64, expected: u64, run: impl Fn(u64) -> u64) -> Timing {
    let warm_up = n / 10;
    black_box(run(warm_up));
    (0..RUNS)
        .map(|_| {
            let cpu_before = cpu_time();
            let start = Instant::now();
            let sum = run(n);
            let wall = start.elapsed();
            let cpu = cpu_time()
                .zip(cpu_before)
                .map(|(after, before)| after.saturating_sub(before));
            assert_eq!(sum, expected, "variant `{name}` computed a different sum");
            Timing { wall, cpu }
        })
        .min_by_key(|timing| timing.wall)
        .expect("RUNS is non-zero")
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rounds = calibrate();
    let start = Instant::now();
    black_box(plain_loop(20_000, rounds));
    let per_item = start.elapsed() / 20_000;
    let n = (TARGET_RUN.as_secs_f64() / per_item.as_secs_f64()) as u64;

    let rt = Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build multi-thread runtime");

    println!("parallel stage: source -> #[parallel = N] hash (~10 us/item) -> sum");
    println!("available cores: {cores}; runtime: multi-thread, 2 workers");
    if let Some(load) = load_average() {
        println!(
            "load average (1 min) before the runs: {load:.2} (other work on the machine takes cores from this bench)"
        );
    }
    println!(
        "work: {rounds} hashing rounds = {:.2} us/item; items: {n}; chunk: {CHUNK}; best of {RUNS} runs after a warm-up",
        per_item.as_secs_f64() * 1e6
    );
    println!();

    let expected = plain_loop(n, rounds);
    let variants: Vec<(&str, Run<'_>)> = vec![
        ("plain loop (1 thread)", Box::new(|n| plain_loop(n, rounds))),
        (
            "parallel = 1, ordered",
            Box::new(|n| parallel(&rt, n, rounds, Shape::Ordered(1))),
        ),
        (
            "parallel = 2, ordered",
            Box::new(|n| parallel(&rt, n, rounds, Shape::Ordered(2))),
        ),
        (
            "parallel = 2, unordered",
            Box::new(|n| parallel(&rt, n, rounds, Shape::Unordered(2))),
        ),
        (
            "parallel = 2, by_key (64 keys)",
            Box::new(|n| parallel(&rt, n, rounds, Shape::ByKey(2))),
        ),
    ];

    println!(
        "{:<32} | {:>10} | {:>10} | {:>13} | {:>20} | {:>15}",
        "variant", "time (ms)", "ns/item", "ratio to loop", "speed-up vs par = 1", "cores used"
    );
    println!(
        "{:-<32}-+-{:-<10}-+-{:-<10}-+-{:-<13}-+-{:-<20}-+-{:-<15}",
        "", "", "", "", "", ""
    );
    let mut loop_ns = None;
    let mut one_ns = None;
    let mut speed_ups = Vec::new();
    for (name, run) in &variants {
        let Timing { wall: best, cpu } = measure(name, n, expected, run);
        let ns = best.as_secs_f64() * 1e9 / n as f64;
        // CPU time over wall time: how many cores the run kept busy.
        let cores_used = cpu.map_or_else(
            || "n/a".to_owned(),
            |cpu| format!("{:.2}", cpu.as_secs_f64() / best.as_secs_f64()),
        );
        let base = *loop_ns.get_or_insert(ns);
        let speed_up = match one_ns {
            None if name.starts_with("parallel = 1") => {
                one_ns = Some(ns);
                "1.00x".to_owned()
            }
            None => String::new(),
            Some(one) => {
                speed_ups.push((*name, one / ns));
                format!("{:.2}x", one / ns)
            }
        };
        println!(
            "{name:<32} | {:>10.0} | {ns:>10.0} | {:>12.3}x | {speed_up:>20} | {cores_used:>15}",
            best.as_secs_f64() * 1e3,
            ns / base
        );
    }
    println!();
    for (name, speed_up) in speed_ups {
        let verdict = if speed_up >= 1.7 { "met" } else { "NOT met" };
        println!(
            "{name}: speed-up {speed_up:.2}x over parallel = 1 (target: at least 1.7x at parallel = 2): {verdict}"
        );
    }
}
