//! Latency benchmark: how long an item waits in a `max_latency = 10ms`
//! accumulator under a steady trickle of input, in real time.
//!
//! Run it with:
//!
//! ```text
//! cargo bench -j2 --bench latency
//! ```
//!
//! (`cargo bench -j2 --bench latency -- 10` runs each variant for 10 s
//! instead of 5.)
//!
//! A source stamps each item with the time it made it (`Instant::now()`
//! after a `tokio::time::interval` tick), one item every millisecond, so
//! that items arrive at a steady trickle far below what fills a batch. The
//! accumulator can only let them go by their deadline: a batch (or a key's
//! batch) opens at its first item and must be flushed 10 ms later. The sink
//! reads the clock when it receives a batch and records, for every item in
//! it, the time from the item's stamp to then. That covers the source's
//! hop to the accumulator, the wait, the timer's wake-up and the hop to
//! the sink. Items arrive spread over the 10 ms a batch is open, so their
//! waits spread from about 0 to 10 ms; the target is on the tail: the 99th
//! percentile within 10 ms + 2 ms.
//!
//! The bench also reports each batch's *overshoot*: how much later than
//! its first item's stamp + 10 ms the sink saw it (the timer's lateness
//! plus the hops), which is what the tail of the item latencies is made of.
//!
//! Variants (each on its own current-thread tokio runtime, one after the
//! other, with the whole run in real time):
//!
//! * the baseline: the same batching by hand, one task with a
//!   `tokio::select!` between the trickle and a `sleep_until` the first
//!   item's stamp + 10 ms, which shows what the machine's timers and
//!   scheduler give any tokio program at the time of the run;
//! * `batch(max_items = 10000, max_latency = 10ms)`: one batch at a time;
//! * `accumulate(key = .., max_items = 10000, max_latency = 10ms)` over 8
//!   keys taken in turn, so eight batches are open at once, each with its
//!   own deadline, each getting an item every 8 ms.
//!
//! Nothing here is asserted: the machine is shared and a timer's lateness
//! depends on load. The bench prints the load average next to the figures.
//!
//! This is a plain `fn main` (`harness = false`), like the other benches.

use std::time::Duration;

use futures::StreamExt;
use pipeline::prelude::*;
use tokio::runtime::Builder;
use tokio::time::{Instant, MissedTickBehavior};

/// Time between two items.
const PERIOD: Duration = Duration::from_millis(1);

/// The accumulators' `max_latency` (a literal in the `pipeline!`s, which the
/// macro reads at compile time).
const MAX_LATENCY: Duration = Duration::from_millis(10);

/// The target: the 99th percentile of the item latencies.
const TARGET_P99: Duration = Duration::from_millis(12);

/// How long each variant runs, unless the first argument says otherwise.
const SECONDS: u64 = 5;

/// Keys of the keyed variant, taken in turn.
const KEYS: u64 = 8;

/// One item: its sequence number and when the source made it.
#[derive(Clone, Copy, Debug)]
struct Item {
    seq: u64,
    made: Instant,
}

/// What the sink saw: every item's wait, and every batch's overshoot past
/// its first item + `MAX_LATENCY`.
#[derive(Default)]
struct Seen {
    waits: Vec<Duration>,
    overshoots: Vec<Duration>,
    batches: u64,
    next_seq: u64,
}

impl Seen {
    fn batch(&mut self, items: &[Item]) {
        let now = Instant::now();
        self.batches += 1;
        let first = items
            .iter()
            .map(|i| i.made)
            .min()
            .expect("a batch has items");
        self.overshoots
            .push(now.saturating_duration_since(first + MAX_LATENCY));
        for item in items {
            self.waits.push(now.saturating_duration_since(item.made));
            self.next_seq = self.next_seq.max(item.seq + 1);
        }
    }
}

/// `count` items, one per `PERIOD`, each stamped when it is made. The
/// interval is made at the first poll, inside the runtime.
fn trickle(count: u64) -> impl futures::Stream<Item = Item> {
    futures::stream::unfold((None, 0u64), move |(ticks, seq)| async move {
        if seq == count {
            return None;
        }
        let mut ticks = ticks.unwrap_or_else(|| {
            let mut ticks = tokio::time::interval(PERIOD);
            // A late tick is not made up for with a burst: the trickle
            // stays even.
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            ticks
        });
        ticks.tick().await;
        let item = Item {
            seq,
            made: Instant::now(),
        };
        Some((item, (Some(ticks), seq + 1)))
    })
    .fuse()
}

/// The baseline: the same batching written by hand in one task, a
/// `tokio::select!` between the trickle and a `sleep_until` the first
/// item's stamp + 10 ms.
fn run_hand_written(count: u64) -> Seen {
    let rt = Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut seen = Seen::default();
    rt.block_on(async {
        let mut items = std::pin::pin!(trickle(count));
        let mut open: Vec<Item> = Vec::new();
        let mut deadline: Option<Instant> = None;
        loop {
            tokio::select! {
                biased;
                item = items.next() => match item {
                    Some(item) => {
                        deadline.get_or_insert(item.made + MAX_LATENCY);
                        open.push(item);
                    }
                    None => break,
                },
                () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    seen.batch(&open);
                    open.clear();
                    deadline = None;
                }
            }
        }
        if !open.is_empty() {
            seen.batch(&open);
        }
    });
    seen
}

fn run_batch(count: u64) -> Seen {
    let rt = Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut seen = Seen::default();
    rt.block_on(
        pipeline! {
            stream(trickle(count))
                >> batch(max_items = 10000, max_latency = 10ms)
                >> for_each(|b: Batch<Item>| seen.batch(b.items()));
        }
        .run(),
    )
    .expect("the batch pipeline runs to completion");
    seen
}

fn run_keyed(count: u64) -> Seen {
    let rt = Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut seen = Seen::default();
    rt.block_on(
        pipeline! {
            stream(trickle(count))
                >> accumulate(key = |i: &Item| i.seq % KEYS, max_items = 10000, max_latency = 10ms)
                >> for_each(|b: Batch<Item, u64>| seen.batch(b.items()));
        }
        .run(),
    )
    .expect("the keyed pipeline runs to completion");
    seen
}

/// The `q`-quantile (0..=1) of sorted durations, by nearest rank.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

fn main() {
    let seconds: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(SECONDS);
    let count = seconds * 1000 / PERIOD.as_millis() as u64;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "latency: one item every {} ms for {seconds} s per variant, max_latency = {} ms",
        PERIOD.as_millis(),
        MAX_LATENCY.as_millis()
    );
    println!(
        "available cores: {cores}, load average at start: {}",
        load_average()
    );
    println!();
    println!(
        "{:<46} | {:>6} | {:>7} | {:>7} | {:>7} | {:>7} | {:>8} | {:>9} | {:>9} | {:>17}",
        "variant",
        "items",
        "batches",
        "p50 ms",
        "p99 ms",
        "max ms",
        "over p50",
        "over p99",
        "over max",
        "p99 <= 12 ms"
    );
    println!(
        "{:-<46}-+-{:-<6}-+-{:-<7}-+-{:-<7}-+-{:-<7}-+-{:-<7}-+-{:-<8}-+-{:-<9}-+-{:-<9}-+-{:-<17}",
        "", "", "", "", "", "", "", "", "", ""
    );
    type Variant = (&'static str, fn(u64) -> Seen);
    let variants: [Variant; 3] = [
        (
            "hand-written select! + sleep_until (baseline)",
            run_hand_written,
        ),
        ("batch(max_items = 10000, max_latency = 10ms)", run_batch),
        ("accumulate(key, 8 keys, max_latency = 10ms)", run_keyed),
    ];
    for (name, run) in variants {
        let mut seen = run(count);
        assert_eq!(
            seen.waits.len() as u64,
            count,
            "{name}: every item is seen once"
        );
        assert_eq!(seen.next_seq, count, "{name}: every item is seen");
        seen.waits.sort_unstable();
        seen.overshoots.sort_unstable();
        let p99 = quantile(&seen.waits, 0.99);
        println!(
            "{:<46} | {:>6} | {:>7} | {:>7.2} | {:>7.2} | {:>7.2} | {:>8.2} | {:>9.2} | {:>9.2} | {:>17}",
            name,
            seen.waits.len(),
            seen.batches,
            ms(quantile(&seen.waits, 0.5)),
            ms(p99),
            ms(*seen.waits.last().expect("items")),
            ms(quantile(&seen.overshoots, 0.5)),
            ms(quantile(&seen.overshoots, 0.99)),
            ms(*seen.overshoots.last().expect("batches")),
            if p99 <= TARGET_P99 { "met" } else { "NOT met" }
        );
    }
    println!();
    println!("load average at end: {}", load_average());
    println!(
        "waits: from an item's stamp at the source to the sink seeing its batch; \
         over: a batch's arrival at the sink past its first item + 10 ms"
    );
}
