//! Fan-out and merge benchmark (W3): a source fans out to three branches
//! (`x * 2`, `x + 7`, `x ^ 0x55`) that merge back into one sum.
//!
//! Run it with:
//!
//! ```text
//! cargo bench --bench fanout
//! ```
//!
//! Every variant runs in this one process; each is reported as ns per
//! source item and as ratios to the baselines measured in the same run: a
//! plain loop, one `futures` stream chain with `flat_map`, and the same
//! graph hand-wired with tokio tasks joined by `Vec`-batched channels (one
//! task per branch and one for the merge). The target is for `pipeline!`,
//! which fuses a fan-out whose branches merge back into one task, to be at
//! least 1.7x faster than the hand-wired graph.

use std::hint::black_box;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::ready;
use tokio::runtime::{Builder, Runtime};
use tokio::sync::mpsc;

/// Source items per run.
const N: u64 = 10_000_000;

/// Timed runs per variant; the best one is reported.
const RUNS: usize = 3;

/// Items per chunk in the hand-wired graph, as the library's own chunks.
const BATCH: usize = 512;

/// Chunks a hand-wired channel holds: 1024 items, as the library's edges.
const CHANNEL_CHUNKS: usize = 2;

#[inline]
fn double(x: u64) -> u64 {
    x.wrapping_mul(2)
}

#[inline]
fn plus_seven(x: u64) -> u64 {
    x.wrapping_add(7)
}

#[inline]
fn mix(x: u64) -> u64 {
    x ^ 0x55
}

/// The floor: a hand-written loop.
fn plain_loop(n: u64) -> u64 {
    let n = black_box(n);
    let mut sum = 0u64;
    for x in 0..n {
        sum = sum
            .wrapping_add(double(x))
            .wrapping_add(plus_seven(x))
            .wrapping_add(mix(x));
    }
    black_box(sum)
}

/// One `futures` chain: each item becomes its three results.
fn futures_chain(rt: &Runtime, n: u64) -> u64 {
    let n = black_box(n);
    let sum = rt.block_on(
        futures::stream::iter(0..n)
            .flat_map(|x| futures::stream::iter([double(x), plus_seven(x), mix(x)]))
            .fold(0u64, |acc, x| ready(acc.wrapping_add(x))),
    );
    black_box(sum)
}

/// The same graph by hand: a source task sends chunks (cloned) to three
/// branch tasks, each maps its chunk and sends it to a merge task that sums.
fn hand_wired(rt: &Runtime, n: u64) -> u64 {
    let n = black_box(n);
    let sum = rt.block_on(async move {
        let (merge_tx, mut merge_rx) = mpsc::channel::<Vec<u64>>(CHANNEL_CHUNKS * 3);
        let mut branch_txs = Vec::new();
        let mut branches = Vec::new();
        for f in [double as fn(u64) -> u64, plus_seven, mix] {
            let (tx, mut rx) = mpsc::channel::<Vec<u64>>(CHANNEL_CHUNKS);
            branch_txs.push(tx);
            let merge_tx = merge_tx.clone();
            branches.push(tokio::spawn(async move {
                while let Some(mut chunk) = rx.recv().await {
                    for x in &mut chunk {
                        *x = f(*x);
                    }
                    if merge_tx.send(chunk).await.is_err() {
                        break;
                    }
                }
            }));
        }
        drop(merge_tx);
        let source = tokio::spawn(async move {
            let mut x = 0;
            while x < n {
                let end = (x + BATCH as u64).min(n);
                let chunk: Vec<u64> = (x..end).collect();
                x = end;
                let (last, others) = branch_txs.split_last().expect("three branches");
                for tx in others {
                    if tx.send(chunk.clone()).await.is_err() {
                        return;
                    }
                }
                if last.send(chunk).await.is_err() {
                    return;
                }
            }
        });
        let merge = tokio::spawn(async move {
            let mut acc = 0u64;
            while let Some(chunk) = merge_rx.recv().await {
                for x in chunk {
                    acc = acc.wrapping_add(x);
                }
            }
            acc
        });
        source.await.expect("source task panicked");
        for branch in branches {
            branch.await.expect("branch task panicked");
        }
        merge.await.expect("merge task panicked")
    });
    black_box(sum)
}

/// The library: the graph as a `pipeline!`, fused into one task.
fn pipeline_variant(rt: &Runtime, n: u64) -> u64 {
    use pipeline::pipeline;
    let n = black_box(n);
    let mut sum = 0u64;
    rt.block_on(
        pipeline! {
            xs = iter(0..n);
            xs >> map(double) >> total;
            xs >> map(plus_seven) >> total;
            xs >> map(mix) >> total;
            total = for_each(|x| sum = sum.wrapping_add(x));
        }
        .run(),
    )
    .expect("the benchmark pipeline runs to completion");
    black_box(sum)
}

/// One way of computing the workload.
struct Variant<'a> {
    name: &'static str,
    run: Box<dyn Fn(u64) -> u64 + 'a>,
}

/// Warm up once, then the best of `RUNS` timed runs, each checked against
/// the plain loop.
fn measure(variant: &Variant<'_>) -> Duration {
    let expected = plain_loop(N);
    let check = |got: u64| {
        assert_eq!(
            got, expected,
            "variant `{}` computed a different sum",
            variant.name
        )
    };
    check((variant.run)(N));
    (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            let got = (variant.run)(N);
            let elapsed = start.elapsed();
            check(got);
            elapsed
        })
        .min()
        .expect("RUNS is non-zero")
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
    let variants = [
        Variant {
            name: "plain loop",
            run: Box::new(plain_loop),
        },
        Variant {
            name: "futures chain + flat_map (1 task)",
            run: Box::new(|n| futures_chain(&current_thread, n)),
        },
        Variant {
            name: "hand-wired tasks + Vec channels",
            run: Box::new(|n| hand_wired(&multi_thread, n)),
        },
        Variant {
            name: "pipeline! (fused diamond, 1 task)",
            run: Box::new(|n| pipeline_variant(&current_thread, n)),
        },
    ];
    println!("fan-out and merge: source -> (x*2 | x+7 | x^0x55) -> sum");
    println!("available cores: {cores}");
    println!("source items: {N}, best of {RUNS} runs after 1 warm-up run");
    println!();
    println!(
        "{:<36} | {:>10} | {:>8} | {:>9} | {:>10}",
        "variant", "ns/item", "vs loop", "vs chain", "vs hand"
    );
    println!(
        "{:-<36}-+-{:-<10}-+-{:-<8}-+-{:-<9}-+-{:-<10}",
        "", "", "", "", ""
    );
    let times: Vec<f64> = variants
        .iter()
        .map(|v| measure(v).as_secs_f64() * 1e9 / N as f64)
        .collect();
    for (variant, ns) in variants.iter().zip(&times) {
        println!(
            "{:<36} | {:>10.3} | {:>7.2}x | {:>8.2}x | {:>9.2}x",
            variant.name,
            ns,
            ns / times[0],
            ns / times[1],
            ns / times[2],
        );
    }
    println!();
    let speedup = times[2] / times[3];
    println!(
        "pipeline! is {speedup:.2}x faster than the hand-wired graph (target: at least 1.7x): {}",
        if speedup >= 1.7 { "met" } else { "missed" }
    );
}
