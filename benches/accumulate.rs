//! Keyed accumulation benchmark: group 10,000,000 items over 100,000 keys
//! into batches of 100.
//!
//! Run it with:
//!
//! ```text
//! cargo bench --bench accumulate
//! ```
//!
//! Both variants read the same pre-generated input (`Item { key, value }`,
//! keys uniform over 100,000 from a xorshift generator, values the item's
//! index), gather each key's items into a batch, hand every batch of 100 to
//! the same consumer the moment it is full, and hand the rest over at the
//! end:
//!
//! * the baseline is a hand-written loop over a
//!   `HashMap<u32, Vec<Item>, foldhash::fast::RandomState>` (the hasher the
//!   runtime's accumulation uses), which gives each full batch away as a
//!   fresh `Vec` (as the runtime does) and puts a new one with room for 100
//!   in its place;
//! * the library is `iter(items) >> accumulate(key = .., max_items = 100) >>
//!   for_each(..)` on a current-thread tokio runtime. The accumulate node
//!   reads from a batched edge (it always heads a chain of its own, so that
//!   it can wake at its deadlines), and that hop is part of what is measured.
//!
//! The consumer folds each batch into an order-sensitive digest; each run's
//! digest, batch count and item count are checked against the baseline's,
//! so a variant cannot be fast by grouping differently. Every figure is a
//! ratio to the baseline measured in the same run; absolute ns/item are for
//! context only. The target is `pipeline!` within 1.2x of the baseline.
//!
//! This is a plain `fn main` (`harness = false`), like `benches/linear.rs`.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use pipeline::Batch;
use tokio::runtime::{Builder, Runtime};

/// Items grouped per run.
const N: usize = 10_000_000;

/// Distinct keys, drawn uniformly.
const KEYS: u32 = 100_000;

/// Items per full batch (`max_items`).
const BATCH: usize = 100;

/// Timed runs per variant; the best one is reported (interference on a
/// shared machine only ever adds time).
const RUNS: usize = 3;

/// The ratio to the baseline that `pipeline!` should stay within.
const TARGET: f64 = 1.2;

/// One input item: 16 bytes.
#[derive(Clone, Copy, Debug)]
struct Item {
    key: u32,
    value: u64,
}

/// The input: `N` items whose keys are uniform over `KEYS`, from a fixed
/// xorshift64 sequence, so every run and every variant sees the same items.
fn generate() -> Vec<Item> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..N as u64)
        .map(|value| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Item {
                key: (x % u64::from(KEYS)) as u32,
                value,
            }
        })
        .collect()
}

/// What both variants compute: a digest of every batch (its key and its
/// items in order), summed over batches so that the order in which batches
/// come out does not matter, with the number of batches and of items.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Outcome {
    digest: u64,
    batches: u64,
    items: u64,
}

impl Outcome {
    /// The consumer: folds one batch in. Each item weighs by its position,
    /// so a batch with the same items in another order digests differently;
    /// the multiplications are independent, so this costs about a cycle an
    /// item and the grouping stays what is measured.
    #[inline]
    fn take(&mut self, key: u32, items: &[Item]) {
        let mut h = u64::from(key).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for (i, item) in items.iter().enumerate() {
            let word = item.value ^ (u64::from(item.key) << 40);
            h = h.wrapping_add(word.wrapping_mul(i as u64 + 1));
        }
        self.digest = self.digest.wrapping_add(h);
        self.batches += 1;
        self.items += items.len() as u64;
    }
}

/// The baseline: a hand-written grouping loop with the runtime's hasher.
fn hand_written(items: Vec<Item>) -> Outcome {
    let mut open: HashMap<u32, Vec<Item>, foldhash::fast::RandomState> = HashMap::default();
    let mut outcome = Outcome::default();
    for item in items {
        let batch = open
            .entry(item.key)
            .or_insert_with(|| Vec::with_capacity(BATCH));
        batch.push(item);
        if batch.len() == BATCH {
            // The runtime emits a fresh Vec per batch: so does this loop.
            let full = std::mem::replace(batch, Vec::with_capacity(BATCH));
            outcome.take(item.key, black_box(&full));
        }
    }
    // The rest, at the end of the input.
    for (key, batch) in open {
        if !batch.is_empty() {
            outcome.take(key, black_box(&batch));
        }
    }
    outcome
}


/// EXPERIMENT: the baseline with 96-byte buckets, like the runtime's slots.
fn hand_written_fat(items: Vec<Item>) -> Outcome {
    struct Fat { v: Vec<Item>, _pad: [u64; 8] }
    let mut open: HashMap<u32, Fat, foldhash::fast::RandomState> = HashMap::default();
    let mut outcome = Outcome::default();
    for item in items {
        let batch = open
            .entry(item.key)
            .or_insert_with(|| Fat { v: Vec::with_capacity(BATCH), _pad: [0; 8] });
        batch.v.push(item);
        if batch.v.len() == BATCH {
            let full = std::mem::replace(&mut batch.v, Vec::with_capacity(BATCH));
            outcome.take(item.key, black_box(&full));
        }
    }
    for (key, batch) in open {
        if !batch.v.is_empty() {
            outcome.take(key, black_box(&batch.v));
        }
    }
    outcome
}

/// The library: the same grouping as a `pipeline!`.
fn with_pipeline(rt: &Runtime, items: Vec<Item>) -> Outcome {
    use pipeline::pipeline;
    let mut outcome = Outcome::default();
    let report = rt
        .block_on(
            pipeline! {
                iter(items)
                    >> accumulate(key = |x: &Item| x.key, max_items = 100)
                    >> for_each(|batch: Batch<Item, u32>| outcome.take(*batch.key(), black_box(&batch)));
            }
            .run(),
        )
        .expect("the benchmark pipeline runs to completion");
    debug_assert!(report.is_balanced());
    outcome
}

/// Warm up once, then return the best of `RUNS` timed runs, checking every
/// run's outcome against `expected`. Cloning the input is not timed.
fn measure(
    name: &str,
    input: &[Item],
    expected: Option<Outcome>,
    run: impl Fn(Vec<Item>) -> Outcome,
) -> (Duration, Outcome) {
    let first = run(input.to_vec());
    let expected = expected.unwrap_or(first);
    let check = |got: Outcome| {
        assert_eq!(
            got, expected,
            "`{name}` grouped the items differently from the baseline"
        );
    };
    check(first);
    let best = (0..RUNS)
        .map(|_| {
            let input = input.to_vec();
            let start = Instant::now();
            let got = run(black_box(input));
            let elapsed = start.elapsed();
            check(got);
            elapsed
        })
        .min()
        .expect("RUNS is non-zero");
    (best, expected)
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let current_thread = Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build current-thread runtime");
    let input = generate();

    println!("keyed accumulation: group items by key into batches of {BATCH}");
    println!("available cores: {cores}");
    println!("items: {N}, keys: {KEYS}, best of {RUNS} runs after 1 warm-up run");

    let (baseline, outcome) = measure(
        "hand-written HashMap<K, Vec<T>>",
        &input,
        None,
        hand_written,
    );
    let (fat, _) = measure("fat", &input, Some(outcome), hand_written_fat);
    println!("fat baseline: {:.2} ns/item", fat.as_secs_f64() * 1e9 / N as f64);
    let (ours, _) = measure("pipeline!", &input, Some(outcome), |items| {
        with_pipeline(&current_thread, items)
    });
    assert_eq!(outcome.items, N as u64, "every item is in a batch");
    println!(
        "batches: {} ({} full, {} flushed at the end)",
        outcome.batches,
        full_batches(&input),
        outcome.batches - full_batches(&input)
    );
    println!();
    println!(
        "{:<40} | {:>10} | {:>18} | {:>16}",
        "variant", "ns/item", "ratio to baseline", "target"
    );
    println!("{:-<40}-+-{:-<10}-+-{:-<18}-+-{:-<16}", "", "", "", "");
    let per_item = |d: Duration| d.as_secs_f64() * 1e9 / N as f64;
    let base_ns = per_item(baseline);
    let ours_ns = per_item(ours);
    let ratio = ours_ns / base_ns;
    println!(
        "{:<40} | {:>10.2} | {:>17.2}x | {:>16}",
        "hand-written HashMap<K, Vec<T>> loop", base_ns, 1.0, "baseline"
    );
    println!(
        "{:<40} | {:>10.2} | {:>17.2}x | {:>16}",
        "pipeline! accumulate(key, max_items)",
        ours_ns,
        ratio,
        format!(
            "within {TARGET}x: {}",
            if ratio <= TARGET { "met" } else { "NOT met" }
        )
    );
}

/// How many batches fill up to `BATCH` (the rest are flushed at the end):
/// each key contributes `count / BATCH` of them.
fn full_batches(input: &[Item]) -> u64 {
    let mut counts = vec![0u32; KEYS as usize];
    for item in input {
        counts[item.key as usize] += 1;
    }
    counts.iter().map(|&c| u64::from(c) / BATCH as u64).sum()
}
