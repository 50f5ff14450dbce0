//! Linear pipeline with a channel at every stage (W2): source → map →
//! filter → sum, each stage behind an edge of its own.
//!
//! Run it with:
//!
//! ```text
//! cargo bench --bench boundaries
//! ```
//!
//! `pipeline!` puts a bounded, batched edge before every stage here
//! (`#[buffer = 1024]` on each node), so nothing is fused. Baselines, in
//! the same run: the same chain hand-wired with one tokio task per stage
//! joined by `Vec`-batched channels (chunks of 512 items, 1024 items per
//! channel), and with one message per item. Targets: no slower than the
//! batched hand-wired chain, and at least 50x faster than the per-item
//! one.

use std::hint::black_box;
use std::time::{Duration, Instant};

use tokio::runtime::{Builder, Runtime};
use tokio::sync::mpsc;

/// Items per run (the per-item variant runs on N/10).
const N: u64 = 10_000_000;

/// Timed runs per variant; the best one is reported.
const RUNS: usize = 3;

/// Items per chunk in the batched hand-wired chain, as the library's.
const BATCH: usize = 512;

#[inline]
fn map_step(x: u64) -> u64 {
    x.wrapping_mul(3).wrapping_add(1)
}

#[inline]
fn keep(x: &u64) -> bool {
    !x.is_multiple_of(7)
}

/// The expected sum, and the floor.
fn plain_loop(n: u64) -> u64 {
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

/// One task per stage, `Vec` chunks over bounded channels.
fn hand_batched(rt: &Runtime, n: u64) -> u64 {
    let n = black_box(n);
    let sum = rt.block_on(async move {
        let (source_tx, mut map_rx) = mpsc::channel::<Vec<u64>>(2);
        let (map_tx, mut filter_rx) = mpsc::channel::<Vec<u64>>(2);
        let (filter_tx, mut sum_rx) = mpsc::channel::<Vec<u64>>(2);
        let source = tokio::spawn(async move {
            let mut x = 0;
            while x < n {
                let end = (x + BATCH as u64).min(n);
                if source_tx.send((x..end).collect()).await.is_err() {
                    break;
                }
                x = end;
            }
        });
        let map = tokio::spawn(async move {
            while let Some(mut chunk) = map_rx.recv().await {
                for x in &mut chunk {
                    *x = map_step(*x);
                }
                if map_tx.send(chunk).await.is_err() {
                    break;
                }
            }
        });
        let filter = tokio::spawn(async move {
            while let Some(mut chunk) = filter_rx.recv().await {
                chunk.retain(keep);
                if filter_tx.send(chunk).await.is_err() {
                    break;
                }
            }
        });
        let sum = tokio::spawn(async move {
            let mut acc = 0u64;
            while let Some(chunk) = sum_rx.recv().await {
                for x in chunk {
                    acc = acc.wrapping_add(x);
                }
            }
            acc
        });
        source.await.expect("source task panicked");
        map.await.expect("map task panicked");
        filter.await.expect("filter task panicked");
        sum.await.expect("sum task panicked")
    });
    black_box(sum)
}

/// One task per stage, one message per item.
fn hand_per_item(rt: &Runtime, n: u64) -> u64 {
    let n = black_box(n);
    let sum = rt.block_on(async move {
        let (source_tx, mut map_rx) = mpsc::channel::<u64>(1024);
        let (map_tx, mut filter_rx) = mpsc::channel::<u64>(1024);
        let (filter_tx, mut sum_rx) = mpsc::channel::<u64>(1024);
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
        source.await.expect("source task panicked");
        map.await.expect("map task panicked");
        filter.await.expect("filter task panicked");
        sum.await.expect("sum task panicked")
    });
    black_box(sum)
}

/// The library, with an edge before every stage.
fn pipeline_variant(rt: &Runtime, n: u64) -> u64 {
    use pipeline::pipeline;
    let n = black_box(n);
    let mut sum = 0u64;
    rt.block_on(
        pipeline! {
            iter(0..n)
                >> #[buffer = 1024] map(map_step)
                >> #[buffer = 1024] filter(keep)
                >> #[buffer = 1024] for_each(|x| sum = sum.wrapping_add(x));
        }
        .run(),
    )
    .expect("the benchmark pipeline runs to completion");
    black_box(sum)
}

/// Warm up once, then the best of `RUNS` timed runs over `items`, each
/// checked against the plain loop; returns ns per item.
fn measure(name: &str, items: u64, run: &dyn Fn(u64) -> u64) -> f64 {
    let expected = plain_loop(items);
    let check = |got: u64| assert_eq!(got, expected, "variant `{name}` computed a different sum");
    check(run(items));
    let best: Duration = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            let got = run(items);
            let elapsed = start.elapsed();
            check(got);
            elapsed
        })
        .min()
        .expect("RUNS is non-zero");
    best.as_secs_f64() * 1e9 / items as f64
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let current_thread = Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build current-thread runtime");
    let multi_thread = Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build multi-thread runtime");
    println!("linear pipeline with an edge at every stage: source -> map -> filter -> sum");
    println!("available cores: {cores}");
    println!("items: {N} (per-item variant: N/10), best of {RUNS} runs after 1 warm-up run");
    println!();
    let rows = [
        ("plain loop", N, measure("plain loop", N, &plain_loop)),
        (
            "hand-wired tasks + Vec channels",
            N,
            measure("hand-wired batched", N, &|n| hand_batched(&multi_thread, n)),
        ),
        (
            "hand-wired tasks + per-item mpsc",
            N / 10,
            measure("hand-wired per item", N / 10, &|n| {
                hand_per_item(&multi_thread, n)
            }),
        ),
        (
            "pipeline! (an edge per stage)",
            N,
            measure("pipeline!", N, &|n| pipeline_variant(&current_thread, n)),
        ),
    ];
    println!(
        "{:<34} | {:>10} | {:>10} | {:>8}",
        "variant", "items", "ns/item", "vs loop"
    );
    println!("{:-<34}-+-{:-<10}-+-{:-<10}-+-{:-<8}", "", "", "", "");
    for (name, items, ns) in &rows {
        println!(
            "{name:<34} | {items:>10} | {ns:>10.3} | {:>7.1}x",
            ns / rows[0].2
        );
    }
    println!();
    let vs_batched = rows[3].2 / rows[1].2;
    let vs_per_item = rows[2].2 / rows[3].2;
    println!(
        "pipeline! / hand-wired batched: {vs_batched:.2}x (target: at most 1.0x): {}",
        if vs_batched <= 1.0 { "met" } else { "missed" }
    );
    println!(
        "hand-wired per-item / pipeline!: {vs_per_item:.1}x (target: at least 50x): {}",
        if vs_per_item >= 50.0 { "met" } else { "missed" }
    );
}
