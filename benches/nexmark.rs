//! Nexmark benchmark (W5): queries 1, 2 and 5 over events from the `nexmark`
//! crate's generator, each as a `pipeline!` and as a hand-written loop.
//!
//! Run it with:
//!
//! ```text
//! cargo bench -j2 --bench nexmark
//! ```
//!
//! (`cargo bench -j2 --bench nexmark -- 500000` runs on fewer events.)
//!
//! The events are generated once, before anything is timed, by
//! `EventGenerator::new(NexmarkConfig { base_time, ..NexmarkConfig::default() })`
//! with a fixed `base_time`, so every run sees the same events (the default
//! configuration: 10,000 events a second of event time, 1 person, 3
//! auctions and 46 bids in every 50 events, in timestamp order).
//! `EventGenerator::default()` is not used: its step is zero, so it yields
//! the same Person event forever.
//!
//! The queries:
//!
//! * **Q1, currency conversion**: every bid, with its price converted from
//!   dollars to euros (`price * 908 / 1000`, integer so that every variant
//!   agrees to the bit), keeping auction, bidder, time and the `extra`
//!   string.
//! * **Q2, selection**: `auction` and `price` of the bids whose auction id
//!   is a multiple of 123.
//! * **Q5, hot items**: bids per auction in sliding windows of 10 s of
//!   event time every 2 s (`HOP(bid, date_time, 2s, 10s)`), and for each
//!   window the auctions with the most bids. Counts are kept per 2 s slice
//!   and an auction's count in a window is the sum over its five slices; a
//!   window is emitted when the first bid of a later slice shows that its
//!   end has passed (the events arrive in time order, so the watermark is
//!   the latest bid's time). Windows still open when the input ends are
//!   not emitted, by either variant: a stage has no hook to emit after its
//!   last input (`close` cannot emit), so the loop does the same.
//!
//! The baseline of each query is the loop a careful engineer would write:
//! one pass over the events, a `match` to find the bids, the query's work
//! inline, with `foldhash` (the runtime's hasher) for Q5's maps. Q5's
//! window state is one type, [`HotItems`], used by both variants: the loop
//! calls it directly, the `pipeline!` wraps it in a keyed stage. So the
//! variants differ only in the plumbing around the query.
//!
//! Each query runs twice over: reading the events **by reference**
//! (`iter(&events)`, items `&Event`: nothing is allocated or freed while
//! timed, so the figure is the query and the plumbing) and **by value**
//! (each run gets its own clone of the input, made before the clock starts,
//! and every variant drops what the query does not keep: the strings of a
//! bid, the persons and auctions). By value, most of the time is the
//! allocator freeing strings, and glibc's `free` is sensitive to the order
//! in which neighbouring blocks come back (see `BENCHMARKS.md`).
//! A diagnostic row, `Q2, loop over chunks`, puts in the `pipeline!`'s
//! column the hand-written Q2 loop reading its references from chunks of
//! 512 copied out of the input first, as the `pipeline!`'s source does: it
//! shows what reading the input through chunks costs the loop itself.
//!
//! Every variant folds its output into an order-sensitive digest, checked
//! against the loop's. The variants take turns, one run each per round
//! (best of `RUNS` rounds after a warm-up), so a burst of load from another
//! process on this shared machine hits every variant. Figures are events
//! per second (all events, not only bids) and ratios of time to the
//! baseline measured in the same run; the target is within 1.3x.
//!
//! This is a plain `fn main` (`harness = false`), like the other benches.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant};

use nexmark::EventGenerator;
use nexmark::config::NexmarkConfig;
use nexmark::event::{Bid, Event};
use pipeline::prelude::*;
use tokio::runtime::{Builder, Runtime};

/// Events per run, unless the first argument says otherwise.
const EVENTS: usize = 2_000_000;

/// The generator's base time (ms since the epoch): fixed, so that every run
/// generates the same events and the same windows.
const BASE_TIME: u64 = 1_700_000_000_000;

/// Timed rounds; each variant's best run is reported.
const RUNS: usize = 5;

/// The ratio to the baseline that `pipeline!` should stay within.
const TARGET: f64 = 1.3;

/// Q5's slide, and the length of a slice of counts.
const SLIDE_MS: u64 = 2_000;

/// Q5's window: 10 s, five slides.
const WINDOW_SLICES: u64 = 5;

/// The hasher the runtime's accumulation uses.
type Hasher = foldhash::fast::RandomState;

fn generate(events: usize) -> Vec<Event> {
    let config = NexmarkConfig {
        base_time: BASE_TIME,
        ..NexmarkConfig::default()
    };
    EventGenerator::new(config).take(events).collect()
}

/// An order-sensitive digest of a query's output, with the row count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Digest {
    hash: u64,
    rows: u64,
}

impl Digest {
    #[inline]
    fn add(&mut self, words: &[u64]) {
        let mut h = self.hash;
        for &w in words {
            h = (h.rotate_left(5) ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
        self.hash = h;
        self.rows += 1;
    }
}

/// The bid inside an event, if it is one.
#[inline]
fn bid_of(event: Event) -> Option<Bid> {
    match event {
        Event::Bid(bid) => Some(bid),
        _ => None,
    }
}

// ---------------------------------------------------------------- Q1

/// A row of Q1: the bid with its price in euros.
struct Q1Row {
    auction: u64,
    bidder: u64,
    price: u64,
    date_time: u64,
    extra: String,
}

#[inline]
fn q1_convert(bid: Bid) -> Q1Row {
    Q1Row {
        auction: bid.auction as u64,
        bidder: bid.bidder as u64,
        price: bid.price as u64 * 908 / 1000,
        date_time: bid.date_time,
        extra: bid.extra,
    }
}

#[inline]
fn q1_sink(digest: &mut Digest, row: Q1Row) {
    digest.add(&[
        row.auction,
        row.bidder,
        row.price,
        row.date_time,
        row.extra.len() as u64,
    ]);
}

fn q1_loop(events: Vec<Event>) -> Digest {
    let mut digest = Digest::default();
    for event in events {
        if let Event::Bid(bid) = event {
            q1_sink(&mut digest, q1_convert(bid));
        }
    }
    digest
}

fn q1_pipeline(rt: &Runtime, events: Vec<Event>) -> Digest {
    let mut digest = Digest::default();
    rt.block_on(
        pipeline! {
            iter(events)
                >> filter_map(bid_of)
                >> map(q1_convert)
                >> for_each(|row| q1_sink(&mut digest, row));
        }
        .run(),
    )
    .expect("Q1 runs to completion");
    digest
}

// ---------------------------------------------------------------- Q2

#[inline]
fn q2_keep(bid: &Bid) -> bool {
    bid.auction.is_multiple_of(123)
}

#[inline]
fn q2_sink(digest: &mut Digest, (auction, price): (u64, u64)) {
    digest.add(&[auction, price]);
}

fn q2_loop(events: Vec<Event>) -> Digest {
    let mut digest = Digest::default();
    for event in events {
        if let Event::Bid(bid) = event
            && q2_keep(&bid)
        {
            q2_sink(&mut digest, (bid.auction as u64, bid.price as u64));
        }
    }
    digest
}

fn q2_pipeline(rt: &Runtime, events: Vec<Event>) -> Digest {
    let mut digest = Digest::default();
    rt.block_on(
        pipeline! {
            iter(events)
                >> filter_map(bid_of)
                >> filter(q2_keep)
                >> map(|bid| (bid.auction as u64, bid.price as u64))
                >> for_each(|row| q2_sink(&mut digest, row));
        }
        .run(),
    )
    .expect("Q2 runs to completion");
    digest
}

// ---------------------------------------------------------------- Q5

/// A row of Q5: in the window ending at `window_end` (ms), `auction` had
/// `bids` bids, the most of any auction in that window.
#[derive(Debug)]
struct HotItem {
    window_end: u64,
    auction: u64,
    bids: u64,
}

/// Q5's state: bid counts per auction for each 2 s slice of event time
/// still inside a window, and the windows' maxima as they close.
struct HotItems {
    /// Start of the slice being counted (ms); `u64::MAX` before the first bid.
    current: u64,
    /// The counts of the slices before it, oldest first, with their starts:
    /// at most `WINDOW_SLICES - 1` of them.
    previous: VecDeque<(u64, HashMap<u64, u64, Hasher>)>,
    /// The counts of the current slice.
    counts: HashMap<u64, u64, Hasher>,
    /// A window's counts, summed over its slices when it closes.
    window: HashMap<u64, u64, Hasher>,
    /// Cleared maps, kept for the next slices.
    spare: Vec<HashMap<u64, u64, Hasher>>,
    /// The auctions tied for the most bids in the window being closed.
    tied: Vec<u64>,
}

impl HotItems {
    fn new() -> Self {
        HotItems {
            current: u64::MAX,
            previous: VecDeque::with_capacity(WINDOW_SLICES as usize),
            counts: HashMap::default(),
            window: HashMap::default(),
            spare: Vec::new(),
            tied: Vec::new(),
        }
    }

    /// Counts one bid. If it starts a new slice, first emits every window
    /// that ended since the last bid.
    #[inline]
    fn bid(&mut self, auction: u64, date_time: u64, emit: &mut impl FnMut(HotItem)) {
        let slice = date_time - date_time % SLIDE_MS;
        if slice != self.current {
            self.advance(slice, emit);
        }
        *self.counts.entry(auction).or_insert(0) += 1;
    }

    /// Moves the current slice to `slice`, emitting the windows whose end
    /// lies in `(current, slice]`.
    #[cold]
    #[inline(never)]
    fn advance(&mut self, slice: u64, emit: &mut impl FnMut(HotItem)) {
        if self.current == u64::MAX {
            self.current = slice;
            return;
        }
        // The generator's default keeps events in time order; a late bid
        // would need its slice kept longer, which this query does not do.
        assert!(slice > self.current, "bids arrive in event-time order");
        let fresh = self.spare.pop().unwrap_or_default();
        let done = std::mem::replace(&mut self.counts, fresh);
        self.previous.push_back((self.current, done));
        let mut end = self.current + SLIDE_MS;
        while end <= slice {
            self.close_window(end, emit);
            // Slices that no later window contains are recycled.
            while let Some(&(start, _)) = self.previous.front() {
                if start + WINDOW_SLICES * SLIDE_MS > end {
                    break;
                }
                let (_, mut old) = self.previous.pop_front().expect("checked above");
                old.clear();
                self.spare.push(old);
            }
            end += SLIDE_MS;
        }
        self.current = slice;
    }

    /// Emits the auctions with the most bids in the window `[end - 10s, end)`,
    /// in auction order; nothing if no slice of it had a bid.
    fn close_window(&mut self, end: u64, emit: &mut impl FnMut(HotItem)) {
        let start = end.saturating_sub(WINDOW_SLICES * SLIDE_MS);
        self.window.clear();
        for (slice, counts) in &self.previous {
            if *slice >= start && *slice < end {
                for (&auction, &n) in counts {
                    *self.window.entry(auction).or_insert(0) += n;
                }
            }
        }
        let Some(&max) = self.window.values().max() else {
            return;
        };
        self.tied.clear();
        self.tied.extend(
            self.window
                .iter()
                .filter(|&(_, &n)| n == max)
                .map(|(&auction, _)| auction),
        );
        self.tied.sort_unstable();
        for &auction in &self.tied {
            emit(HotItem {
                window_end: end,
                auction,
                bids: max,
            });
        }
    }
}

/// [`HotItems`] as a stage: takes `(auction, date_time)` of each bid and
/// emits the hot items of each window as it closes.
struct HotItemsStage(HotItems);

impl SyncStage<(u64, u64)> for HotItemsStage {
    type Out = HotItem;
    type Error = Infallible;

    #[inline]
    fn process(
        &mut self,
        (auction, date_time): (u64, u64),
        out: &mut Emit<'_, HotItem>,
        _ctx: &StageContext,
    ) -> Result<(), Infallible> {
        self.0.bid(auction, date_time, &mut |item| out.emit(item));
        Ok(())
    }
}

pipeline_runtime::sync_stage!(HotItemsStage: (u64, u64));

#[inline]
fn q5_sink(digest: &mut Digest, item: HotItem) {
    digest.add(&[item.window_end, item.auction, item.bids]);
}

fn q5_loop(events: Vec<Event>) -> Digest {
    let mut digest = Digest::default();
    let mut hot = HotItems::new();
    let mut emit = |item| q5_sink(&mut digest, item);
    for event in events {
        if let Event::Bid(bid) = event {
            hot.bid(bid.auction as u64, bid.date_time, &mut emit);
        }
    }
    digest
}

fn q5_pipeline(rt: &Runtime, events: Vec<Event>) -> Digest {
    let mut digest = Digest::default();
    rt.block_on(
        pipeline! {
            iter(events)
                >> filter_map(bid_of)
                >> map(|bid| (bid.auction as u64, bid.date_time))
                >> HotItemsStage(HotItems::new())
                >> for_each(|item| q5_sink(&mut digest, item));
        }
        .run(),
    )
    .expect("Q5 runs to completion");
    digest
}

// ------------------------------------------- the same queries by reference

/// The bid inside an event, by reference.
#[inline]
fn bid_ref(event: &Event) -> Option<&Bid> {
    match event {
        Event::Bid(bid) => Some(bid),
        _ => None,
    }
}

/// A row of Q1 that borrows the bid's `extra`.
struct Q1Ref<'a> {
    auction: u64,
    bidder: u64,
    price: u64,
    date_time: u64,
    extra: &'a str,
}

#[inline]
fn q1_convert_ref(bid: &Bid) -> Q1Ref<'_> {
    Q1Ref {
        auction: bid.auction as u64,
        bidder: bid.bidder as u64,
        price: bid.price as u64 * 908 / 1000,
        date_time: bid.date_time,
        extra: &bid.extra,
    }
}

#[inline]
fn q1_sink_ref(digest: &mut Digest, row: Q1Ref<'_>) {
    digest.add(&[
        row.auction,
        row.bidder,
        row.price,
        row.date_time,
        row.extra.len() as u64,
    ]);
}

fn q1_loop_ref(events: &[Event]) -> Digest {
    let mut digest = Digest::default();
    for event in events {
        if let Event::Bid(bid) = event {
            q1_sink_ref(&mut digest, q1_convert_ref(bid));
        }
    }
    digest
}

fn q1_pipeline_ref(rt: &Runtime, events: &[Event]) -> Digest {
    let mut digest = Digest::default();
    rt.block_on(
        pipeline! {
            iter(events)
                >> filter_map(bid_ref)
                >> map(q1_convert_ref)
                >> for_each(|row| q1_sink_ref(&mut digest, row));
        }
        .run(),
    )
    .expect("Q1 runs to completion");
    digest
}

fn q2_loop_ref(events: &[Event]) -> Digest {
    let mut digest = Digest::default();
    for event in events {
        if let Event::Bid(bid) = event
            && q2_keep(bid)
        {
            q2_sink(&mut digest, (bid.auction as u64, bid.price as u64));
        }
    }
    digest
}

fn q2_pipeline_ref(rt: &Runtime, events: &[Event]) -> Digest {
    let mut digest = Digest::default();
    rt.block_on(
        pipeline! {
            iter(events)
                >> filter_map(bid_ref)
                >> filter(|bid| q2_keep(bid))
                >> map(|bid| (bid.auction as u64, bid.price as u64))
                >> for_each(|row| q2_sink(&mut digest, row));
        }
        .run(),
    )
    .expect("Q2 runs to completion");
    digest
}

/// The hand-written Q2 loop, reading the events through chunks of 512
/// references copied out of the input first, as a `pipeline!`'s source
/// does (a diagnostic).
fn q2_loop_ref_chunked(events: &[Event]) -> Digest {
    let mut digest = Digest::default();
    let mut chunk: Vec<&Event> = Vec::with_capacity(512);
    for events in events.chunks(512) {
        chunk.clear();
        chunk.extend(events);
        for event in black_box(&chunk) {
            if let Event::Bid(bid) = event
                && q2_keep(bid)
            {
                q2_sink(&mut digest, (bid.auction as u64, bid.price as u64));
            }
        }
    }
    digest
}

fn q5_loop_ref(events: &[Event]) -> Digest {
    let mut digest = Digest::default();
    let mut hot = HotItems::new();
    let mut emit = |item| q5_sink(&mut digest, item);
    for event in events {
        if let Event::Bid(bid) = event {
            hot.bid(bid.auction as u64, bid.date_time, &mut emit);
        }
    }
    digest
}

fn q5_pipeline_ref(rt: &Runtime, events: &[Event]) -> Digest {
    let mut digest = Digest::default();
    rt.block_on(
        pipeline! {
            iter(events)
                >> filter_map(bid_ref)
                >> map(|bid| (bid.auction as u64, bid.date_time))
                >> HotItemsStage(HotItems::new())
                >> for_each(|item| q5_sink(&mut digest, item));
        }
        .run(),
    )
    .expect("Q5 runs to completion");
    digest
}

// ---------------------------------------------------------------- harness

/// A query over owned events.
type OwnedQuery<'a> = Box<dyn Fn(Vec<Event>) -> Digest + 'a>;

/// A query over borrowed events.
type BorrowedQuery<'a> = Box<dyn Fn(&[Event]) -> Digest + 'a>;

/// How a variant takes the events.
enum Run<'a> {
    /// Owns them: each run gets a clone, made before the clock starts.
    Owned(OwnedQuery<'a>),
    /// Borrows them.
    Borrowed(BorrowedQuery<'a>),
}

impl Run<'_> {
    /// Runs once, timing only the query.
    fn time(&self, input: &[Event]) -> (Digest, Duration) {
        match self {
            Run::Owned(run) => {
                let events = input.to_vec();
                let start = Instant::now();
                let got = run(black_box(events));
                (got, start.elapsed())
            }
            Run::Borrowed(run) => {
                let start = Instant::now();
                let got = run(black_box(input));
                (got, start.elapsed())
            }
        }
    }
}

/// One query read one way: its baseline and its `pipeline!`.
struct Query<'a> {
    name: &'static str,
    input: &'static str,
    baseline: Run<'a>,
    pipeline: Run<'a>,
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    // A number is the event count; any other word keeps only the queries
    // whose name or input contains it (`q5`, `value`, `reference`).
    let events: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(EVENTS);
    let filters: Vec<&String> = args
        .iter()
        .filter(|a| a.parse::<usize>().is_err())
        .collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rt = Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build current-thread runtime");

    let start = Instant::now();
    let input = generate(events);
    let generated = start.elapsed();
    let bids = input.iter().filter(|e| matches!(e, Event::Bid(_))).count();
    let span_ms =
        input.last().map_or(0, Event::timestamp) - input.first().map_or(0, Event::timestamp);

    let queries = vec![
        Query {
            name: "Q1 currency conversion",
            input: "by reference",
            baseline: Run::Borrowed(Box::new(q1_loop_ref)),
            pipeline: Run::Borrowed(Box::new(|e| q1_pipeline_ref(&rt, e))),
        },
        Query {
            name: "Q2 selection",
            input: "by reference",
            baseline: Run::Borrowed(Box::new(q2_loop_ref)),
            pipeline: Run::Borrowed(Box::new(|e| q2_pipeline_ref(&rt, e))),
        },
        Query {
            name: "Q2, loop over chunks",
            input: "by reference",
            baseline: Run::Borrowed(Box::new(q2_loop_ref)),
            pipeline: Run::Borrowed(Box::new(q2_loop_ref_chunked)),
        },
        Query {
            name: "Q5 hot items",
            input: "by reference",
            baseline: Run::Borrowed(Box::new(q5_loop_ref)),
            pipeline: Run::Borrowed(Box::new(|e| q5_pipeline_ref(&rt, e))),
        },
        Query {
            name: "Q1 currency conversion",
            input: "by value",
            baseline: Run::Owned(Box::new(q1_loop)),
            pipeline: Run::Owned(Box::new(|e| q1_pipeline(&rt, e))),
        },
        Query {
            name: "Q2 selection",
            input: "by value",
            baseline: Run::Owned(Box::new(q2_loop)),
            pipeline: Run::Owned(Box::new(|e| q2_pipeline(&rt, e))),
        },
        Query {
            name: "Q5 hot items",
            input: "by value",
            baseline: Run::Owned(Box::new(q5_loop)),
            pipeline: Run::Owned(Box::new(|e| q5_pipeline(&rt, e))),
        },
    ];
    let queries: Vec<Query<'_>> = queries
        .into_iter()
        .filter(|q| {
            filters.iter().all(|f| {
                let f = f.to_lowercase();
                q.name.to_lowercase().contains(&f) || q.input.contains(&f)
            })
        })
        .collect();

    println!("Nexmark W5: queries 1, 2 and 5, pipeline! against a hand-written loop");
    println!("available cores: {cores}");
    println!(
        "events: {events} ({bids} bids, {:.1} s of event time), generated in {:.2} s before timing",
        span_ms as f64 / 1000.0,
        generated.as_secs_f64()
    );
    println!("best of {RUNS} rounds after 1 warm-up run, variants taking turns");
    println!();

    // Warm-up, and the expected outputs.
    let expected: Vec<Digest> = queries
        .iter()
        .map(|q| {
            let (want, _) = q.baseline.time(&input);
            let (got, _) = q.pipeline.time(&input);
            // An empty result would make the comparison check nothing
            // (Q5 needs enough event time to close a window).
            assert!(
                want.rows > 0,
                "{} {}: no output rows; run it on more events",
                q.name,
                q.input
            );
            assert_eq!(
                got, want,
                "{} {}: pipeline! differs from the loop",
                q.name, q.input
            );
            want
        })
        .collect();

    let mut best = vec![[Duration::MAX; 2]; queries.len()];
    for _ in 0..RUNS {
        for ((query, want), best) in queries.iter().zip(&expected).zip(&mut best) {
            for (slot, run) in [&query.baseline, &query.pipeline].into_iter().enumerate() {
                let (got, elapsed) = run.time(&input);
                assert_eq!(
                    &got, want,
                    "{} {}: a run differs from the loop",
                    query.name, query.input
                );
                best[slot] = best[slot].min(elapsed);
            }
        }
    }

    println!(
        "{:<23} | {:<12} | {:>7} | {:>13} | {:>13} | {:>7} | {:>7} | {:>14}",
        "query",
        "events",
        "rows",
        "loop ev/s",
        "pipeline ev/s",
        "loop ns",
        "pipe ns",
        "ratio (target)"
    );
    println!(
        "{:-<23}-+-{:-<12}-+-{:-<7}-+-{:-<13}-+-{:-<13}-+-{:-<7}-+-{:-<7}-+-{:-<14}",
        "", "", "", "", "", "", "", ""
    );
    for ((query, want), best) in queries.iter().zip(&expected).zip(&best) {
        let rate = |d: Duration| events as f64 / d.as_secs_f64();
        let per = |d: Duration| d.as_secs_f64() * 1e9 / events as f64;
        let ratio = best[1].as_secs_f64() / best[0].as_secs_f64();
        println!(
            "{:<23} | {:<12} | {:>7} | {:>13.0} | {:>13.0} | {:>7.2} | {:>7.2} | {:>5.2}x {}",
            query.name,
            query.input,
            want.rows,
            rate(best[0]),
            rate(best[1]),
            per(best[0]),
            per(best[1]),
            ratio,
            if ratio <= TARGET { "met" } else { "NOT met" }
        );
    }
    println!();
    println!(
        "ns = ns per event (all events); ratio = pipeline! time / loop time, target {TARGET}x"
    );
}
