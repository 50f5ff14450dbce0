//! Keyed accumulation benchmark: group 10,000,000 items over 100,000 keys
//! into batches of 100.
//!
//! Run it with:
//!
//! ```text
//! cargo bench --bench accumulate
//! cargo bench --bench accumulate -- pipeline chunks   # only these (and the baseline)
//! ```
//!
//! Arguments, if any, pick the variants to run: those whose name contains
//! one of them, and always the baseline (to profile one variant, or to
//! save time).
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
//!   for_each(..)` on a current-thread tokio runtime. With no deadline to
//!   wake for (no `max_latency`, no `ttl`), the accumulate node is fused
//!   into the source's chain and pulls it directly, in long chunks of
//!   4,096 items (`Head::with_long_chunks`), with no edge between them;
//! * diagnostic rows, not targets: the baseline with map entries of 40
//!   bytes, a byte total added to per item, as the runtime's are when it
//!   keeps one (with `max_bytes` or a `size` function; 32 bytes here,
//!   as the baseline's) (`hand_written_runtime_entries`); the baseline
//!   reading its input copied into chunks, of 512 items (`DEFAULT_CHUNK`)
//!   and of 4,096 (a long chunk), as the `pipeline!`'s source does
//!   (`hand_written_in_chunks`); and the `pipeline!` with an edge into the
//!   accumulation (`#[buffer = 16384]`), as it was before it was fused.
//!
//! The consumer folds each batch into an order-sensitive digest; each run's
//! digest, batch count and item count are checked against the baseline's,
//! so a variant cannot be fast by grouping differently. Every figure is a
//! ratio to the baseline measured in the same run; absolute ns/item are for
//! context only. The target is `pipeline!` within 1.2x of the baseline.
//! The variants take turns, one run each per round, so that load from other
//! processes on a shared machine spreads over all of them.
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

/// Items per full batch: the `max_items = 100` of the `pipeline!` (a
/// literal there, as the macro reads it at compile time).
const BATCH: usize = 100;

/// Timed rounds, each running every variant once; each variant's best run
/// is reported (interference on a shared machine only ever adds time).
const RUNS: usize = 5;

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

/// A diagnostic, not a target: the baseline with map entries the size of
/// the runtime's when it keeps a byte total per batch (with `max_bytes` or
/// a `size` function; 40 bytes: a `u32` key, the state's 4-byte
/// open-order number in the room the key leaves, the `Vec` and a `u64`
/// byte total), adding each item's size to the total as the runtime does.
/// Without them, as here, the runtime's entries are 32 bytes, as the
/// baseline's: this row shows what the byte total would cost.
fn hand_written_runtime_entries(items: Vec<Item>) -> Outcome {
    struct Entry {
        /// The open-order number (unused here).
        _seq: u32,
        batch: Vec<Item>,
        bytes: u64,
    }
    let mut open: HashMap<u32, Entry, foldhash::fast::RandomState> = HashMap::default();
    let mut outcome = Outcome::default();
    for item in items {
        let entry = open.entry(item.key).or_insert_with(|| Entry {
            _seq: 0,
            batch: Vec::with_capacity(BATCH),
            bytes: 0,
        });
        entry.batch.push(item);
        entry.bytes += size_of::<Item>() as u64;
        if entry.batch.len() == BATCH {
            let full = std::mem::replace(&mut entry.batch, Vec::with_capacity(BATCH));
            entry.bytes = 0;
            outcome.take(item.key, black_box(&full));
        }
    }
    for (key, entry) in open {
        if !entry.batch.is_empty() {
            outcome.take(key, black_box(&entry.batch));
        }
    }
    outcome
}

/// A diagnostic, not a target: the baseline, reading its input through
/// chunks of `CHUNK` items, each copied out of the input into a fresh
/// `Vec` before it is grouped, as the `pipeline!`'s source does (with
/// 4,096, a long chunk; 512, `DEFAULT_CHUNK`, is what it read before
/// the accumulation was fused).
fn hand_written_in_chunks<const CHUNK: usize>(items: Vec<Item>) -> Outcome {
    let mut open: HashMap<u32, Vec<Item>, foldhash::fast::RandomState> = HashMap::default();
    let mut outcome = Outcome::default();
    let mut input = items.into_iter();
    loop {
        let mut chunk = Vec::with_capacity(CHUNK);
        chunk.extend(input.by_ref().take(CHUNK));
        if chunk.is_empty() {
            break;
        }
        for item in black_box(chunk) {
            let batch = open
                .entry(item.key)
                .or_insert_with(|| Vec::with_capacity(BATCH));
            batch.push(item);
            if batch.len() == BATCH {
                let full = std::mem::replace(batch, Vec::with_capacity(BATCH));
                outcome.take(item.key, black_box(&full));
            }
        }
    }
    for (key, batch) in open {
        if !batch.is_empty() {
            outcome.take(key, black_box(&batch));
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
    assert!(report.is_balanced(), "every item is accounted for");
    outcome
}

/// A diagnostic, not a target: [`with_pipeline`] with an edge into the
/// accumulation (of 16,384 items), which it reads from rather than pulling
/// the source itself.
fn with_pipeline_wide_edge(rt: &Runtime, items: Vec<Item>) -> Outcome {
    use pipeline::pipeline;
    let mut outcome = Outcome::default();
    let report = rt
        .block_on(
            pipeline! {
                iter(items)
                    >> #[buffer = 16384] accumulate(key = |x: &Item| x.key, max_items = 100)
                    >> for_each(|batch: Batch<Item, u32>| outcome.take(*batch.key(), black_box(&batch)));
            }
            .run(),
        )
        .expect("the benchmark pipeline runs to completion");
    assert!(report.is_balanced(), "every item is accounted for");
    outcome
}

/// One way of grouping the input, as listed in the results table.
struct Variant<'a> {
    name: &'static str,
    target: &'static str,
    run: Box<dyn Fn(Vec<Item>) -> Outcome + 'a>,
}

impl<'a> Variant<'a> {
    fn new(
        name: &'static str,
        target: &'static str,
        run: impl Fn(Vec<Item>) -> Outcome + 'a,
    ) -> Self {
        Variant {
            name,
            target,
            run: Box::new(run),
        }
    }
}

/// Warms every variant up once, then times `RUNS` rounds in which each
/// variant runs once, in turn, and returns each one's best time. Taking
/// turns rather than running one variant's runs back to back means that a
/// burst of load from another process on this shared machine slows every
/// variant in that round rather than only one. Every run's outcome is
/// checked against the baseline's; cloning the input is not timed.
fn measure(variants: &[Variant<'_>], input: &[Item]) -> (Outcome, Vec<Duration>) {
    let expected = (variants[0].run)(input.to_vec());
    let check = |variant: &Variant<'_>, got: Outcome| {
        assert_eq!(
            got, expected,
            "`{}` grouped the items differently from the baseline",
            variant.name
        );
    };
    // The warm-up run pays for page faults, the runtime's thread-locals and
    // cold caches, which are not per-item costs.
    for variant in &variants[1..] {
        check(variant, (variant.run)(input.to_vec()));
    }
    let mut best = vec![Duration::MAX; variants.len()];
    for _ in 0..RUNS {
        for (variant, best) in variants.iter().zip(&mut best) {
            let input = input.to_vec();
            let start = Instant::now();
            let got = (variant.run)(black_box(input));
            let elapsed = start.elapsed();
            check(variant, got);
            *best = (*best).min(elapsed);
        }
    }
    (expected, best)
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

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Built once, outside the timed region.
    let current_thread = Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build current-thread runtime");
    let input = generate();

    // The baseline must stay first: it is the denominator of every ratio.
    let variants = vec![
        Variant::new(
            "hand-written HashMap<K, Vec<T>> loop",
            "baseline",
            hand_written,
        ),
        Variant::new(
            "hand-written, 40-byte entries",
            "diagnostic",
            hand_written_runtime_entries,
        ),
        Variant::new(
            "hand-written, input in chunks of 512",
            "diagnostic",
            hand_written_in_chunks::<512>,
        ),
        Variant::new(
            "hand-written, input in chunks of 4096",
            "diagnostic",
            hand_written_in_chunks::<4096>,
        ),
        Variant::new(
            "pipeline! accumulate(key, max_items)",
            "within 1.2x",
            |items| with_pipeline(&current_thread, items),
        ),
        Variant::new("pipeline!, #[buffer = 16384] edge", "diagnostic", |items| {
            with_pipeline_wide_edge(&current_thread, items)
        }),
    ];
    // `cargo bench` passes `--bench`; any other argument names variants.
    let picked: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    let variants: Vec<Variant<'_>> = variants
        .into_iter()
        .enumerate()
        .filter(|(i, variant)| {
            *i == 0 || picked.is_empty() || picked.iter().any(|p| variant.name.contains(p.as_str()))
        })
        .map(|(_, variant)| variant)
        .collect();

    println!("keyed accumulation: group items by key into batches of {BATCH}");
    println!("available cores: {cores}");
    println!("items: {N}, keys: {KEYS}, best of {RUNS} rounds after 1 warm-up run");
    let (outcome, best) = measure(&variants, &input);
    assert_eq!(outcome.items, N as u64, "every item is in a batch");
    let full = full_batches(&input);
    println!(
        "batches: {} ({full} full, {} flushed at the end)",
        outcome.batches,
        outcome.batches - full
    );
    println!();
    println!(
        "{:<40} | {:>8} | {:>17} | {:>24}",
        "variant", "ns/item", "ratio to baseline", "target"
    );
    println!("{:-<40}-+-{:-<8}-+-{:-<17}-+-{:-<24}", "", "", "", "");
    let per_item = |d: Duration| d.as_secs_f64() * 1e9 / N as f64;
    let baseline = per_item(best[0]);
    for (variant, best) in variants.iter().zip(&best) {
        let ns = per_item(*best);
        let ratio = ns / baseline;
        let target = match variant.target {
            "within 1.2x" => format!(
                "within {TARGET}x: {}",
                if ratio <= TARGET { "met" } else { "NOT met" }
            ),
            other => other.to_owned(),
        };
        println!(
            "{:<40} | {:>8.2} | {:>16.2}x | {:>24}",
            variant.name, ns, ratio, target
        );
    }
}
