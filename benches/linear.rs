//! Linear pipeline benchmark: source → map → filter → sum.
//!
//! Run it with:
//!
//! ```text
//! cargo bench --bench linear
//! ```
//!
//! The workload is deliberately trivial (`x * 3 + 1`, keep `x % 7 != 0`, wrapping
//! sum over `0..N`), so what is measured is the per-item overhead of the
//! plumbing, not the work. Every variant runs in this one process and is reported
//! as ns/item and as a ratio to the plain loop measured in the same run, because
//! absolute numbers are meaningless across machines while ratios are comparable.
//!
//! This is a plain `fn main` (`harness = false`): no external benchmark crate,
//! so it builds with the dependencies the facade package already has.

use std::hint::black_box;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::ready;
use tokio::runtime::{Builder, Runtime};
use tokio::sync::mpsc;

/// Items processed by the fast variants.
const N: u64 = 10_000_000;

/// Timed runs per variant; the best one is reported. The minimum is the least
/// noisy estimator on a shared machine: interference only ever adds time.
const RUNS: usize = 3;

/// Channel capacity of the hand-wired mpsc variant, a typical bounded buffer.
const CHANNEL_CAPACITY: usize = 1024;

/// The map step. Wrapping arithmetic so no variant can panic on overflow and
/// all of them agree bit for bit.
#[inline]
fn map_step(x: u64) -> u64 {
    x.wrapping_mul(3).wrapping_add(1)
}

/// The filter predicate: `x % 7 != 0`.
#[inline]
fn keep(x: &u64) -> bool {
    !x.is_multiple_of(7)
}

/// (a) The floor: what the compiler does with a hand-written loop.
fn plain_loop(n: u64) -> u64 {
    // black_box on the bound and the result stops LLVM from evaluating the
    // whole loop at compile time or deleting it as dead code.
    let n = black_box(n);
    let mut sum = 0u64;
    for x in 0..n {
        let y = map_step(x);
        if keep(&y) {
            sum = sum.wrapping_add(y);
        }
    }
    black_box(sum)
}

/// (b) One `futures` stream chain polled by a single task: the cost of the
/// `Stream` abstraction without any channel or task hop.
fn futures_chain(rt: &Runtime, n: u64) -> u64 {
    let n = black_box(n);
    let sum = rt.block_on(
        futures::stream::iter(0..n)
            .map(map_step)
            .filter(|x| ready(keep(x)))
            .fold(0u64, |acc, x| ready(acc.wrapping_add(x))),
    );
    black_box(sum)
}

/// (d) The library: the same chain as a `pipeline!`. Sync closures fuse into
/// one task, and each stage runs over a chunk as a plain loop, so there is
/// no per-item future or channel.
fn pipeline_variant(rt: &Runtime, n: u64) -> u64 {
    use pipeline::pipeline;
    let n = black_box(n);
    let mut sum = 0u64;
    rt.block_on(
        pipeline! {
            iter(0..n) >> map(map_step) >> filter(keep) >> for_each(|x| sum = sum.wrapping_add(x));
        }
        .run(),
    )
    .expect("the benchmark pipeline runs to completion");
    black_box(sum)
}

/// (c) What a user would write by hand without the library: one spawned task
/// per stage, joined by bounded `tokio::sync::mpsc` channels, one message per
/// item. Every item pays for three channel hand-offs and the wake-ups between
/// tasks, which is the overhead the library has to beat (or at least match).
fn mpsc_tasks(rt: &Runtime, n: u64) -> u64 {
    let n = black_box(n);
    let sum = rt.block_on(async move {
        let (source_tx, mut map_rx) = mpsc::channel::<u64>(CHANNEL_CAPACITY);
        let (map_tx, mut filter_rx) = mpsc::channel::<u64>(CHANNEL_CAPACITY);
        let (filter_tx, mut sum_rx) = mpsc::channel::<u64>(CHANNEL_CAPACITY);

        // A failed send means the downstream task is gone (it panicked); stop
        // quietly, the panic surfaces when its handle is awaited below.
        let source = tokio::spawn(async move {
            for x in 0..n {
                if source_tx.send(x).await.is_err() {
                    break;
                }
            }
        });
        let map = tokio::spawn(async move {
            while let Some(x) = map_rx.recv().await {
                if map_tx.send(map_step(x)).await.is_err() {
                    break;
                }
            }
        });
        let filter = tokio::spawn(async move {
            while let Some(x) = filter_rx.recv().await {
                if keep(&x) && filter_tx.send(x).await.is_err() {
                    break;
                }
            }
        });
        let sum = tokio::spawn(async move {
            let mut acc = 0u64;
            while let Some(x) = sum_rx.recv().await {
                acc = acc.wrapping_add(x);
            }
            acc
        });

        // Await every stage, not just the last, so a panic anywhere fails the
        // benchmark instead of silently producing a short sum.
        source.await.expect("source task panicked");
        map.await.expect("map task panicked");
        filter.await.expect("filter task panicked");
        sum.await.expect("sum task panicked")
    });
    black_box(sum)
}

/// One way of computing the workload, as listed in the results table.
struct Variant<'a> {
    name: &'static str,
    /// Items this variant processes per run. Slow variants use fewer items to
    /// keep the whole benchmark short; ns/item stays comparable.
    items: u64,
    run: Box<dyn Fn(u64) -> u64 + 'a>,
}

impl<'a> Variant<'a> {
    /// A variant over the full `N` items.
    fn new(name: &'static str, run: impl Fn(u64) -> u64 + 'a) -> Self {
        Self::with_items(name, N, run)
    }

    /// A variant over a custom number of items.
    fn with_items(name: &'static str, items: u64, run: impl Fn(u64) -> u64 + 'a) -> Self {
        Variant {
            name,
            items,
            run: Box::new(run),
        }
    }
}

/// Warm up once, then return the best of `RUNS` timed runs. Each run's result
/// is checked against the plain loop over the same number of items: a variant
/// that is fast because it computes something else must not be reported.
fn measure(variant: &Variant<'_>) -> Duration {
    let expected = plain_loop(variant.items);
    let check = |got: u64| {
        assert_eq!(
            got, expected,
            "variant `{}` computed a different sum over {} items",
            variant.name, variant.items
        );
    };

    // The warm-up run pays for page faults, lazy runtime start-up (worker
    // threads, thread-locals) and cold caches, which are not per-item costs.
    check((variant.run)(variant.items));

    (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            let got = (variant.run)(variant.items);
            let elapsed = start.elapsed();
            check(got);
            elapsed
        })
        .min()
        .expect("RUNS is non-zero")
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    // Runtimes are built once, outside the timed region: start-up cost is not
    // what this benchmark is about.
    let current_thread = Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build current-thread runtime");
    let multi_thread = Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build multi-thread runtime");

    // The plain loop must stay first: it is the denominator of every ratio.
    // Adding a variant is one more entry here; nothing else changes.
    let variants = vec![
        Variant::new("plain loop", plain_loop),
        Variant::new("futures stream chain (1 task)", |n| {
            futures_chain(&current_thread, n)
        }),
        Variant::with_items("tokio tasks + mpsc per item", N / 10, |n| {
            mpsc_tasks(&multi_thread, n)
        }),
        Variant::new("pipeline! (fused, 1 task)", |n| {
            pipeline_variant(&current_thread, n)
        }),
    ];

    println!("linear pipeline: source -> map -> filter -> sum");
    println!("available cores: {cores}");
    println!("items: {N} (unless noted), best of {RUNS} runs after 1 warm-up run");
    println!();
    println!(
        "{:<34} | {:>12} | {:>10} | {:>14}",
        "variant", "items", "ns/item", "ratio to loop"
    );
    println!("{:-<34}-+-{:-<12}-+-{:-<10}-+-{:-<14}", "", "", "", "");

    let mut baseline_ns = None;
    for variant in &variants {
        let best = measure(variant);
        let ns_per_item = best.as_secs_f64() * 1e9 / variant.items as f64;
        let baseline = *baseline_ns.get_or_insert(ns_per_item);
        let note = if variant.items == N {
            String::new()
        } else {
            format!(
                "  (run on {} items, N/{})",
                variant.items,
                N / variant.items
            )
        };
        println!(
            "{:<34} | {:>12} | {:>10.3} | {:>13.1}x{note}",
            variant.name,
            variant.items,
            ns_per_item,
            ns_per_item / baseline
        );
    }
}
