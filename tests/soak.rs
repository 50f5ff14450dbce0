//! Soak: a mixed pipeline (fan-out, a parallel stage, keyed accumulation
//! over keys that never come back, a slow branch behind a `drop_oldest`
//! edge) under full load for a
//! set time, printing its throughput per interval and its memory at the
//! start and the end. Ignored by default; run it with
//!
//! ```sh
//! SOAK_SECS=60 cargo test --release --test soak -- --ignored --nocapture
//! ```
//!
//! `SOAK_SECS` (default 60) is how long it runs, `SOAK_INTERVAL_SECS`
//! (default 5) how often it prints. It fails if the resident memory at the
//! end exceeds the one after the first interval (once the buffers, chunks
//! and workers exist) by more than a generous bound, if an interval passes
//! with no progress, if anything fails or goes unaccounted for, or if the
//! pipeline does not stop within ten seconds of `stop()`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pipeline::prelude::*;

/// Memory may grow by this much over the run, beyond what the first
/// interval settled at, before the soak fails: a leak of a few hundred
/// bytes per item shows as gigabytes within a minute.
const MAX_GROWTH_KIB: u64 = 128 * 1024;

#[derive(Debug, Clone)]
struct Event {
    id: u64,
    /// A new key every 16 events: keys that never come back, so the
    /// accumulator must let go of their entries.
    session: u64,
    payload: String,
}

/// A bit of CPU work per event, so the parallel stage has something to do.
fn digest(mut event: Event) -> Event {
    let mut h = event.id;
    for b in event.payload.bytes() {
        h = h.rotate_left(5) ^ u64::from(b);
        h = h.wrapping_mul(0x100_0000_01B3);
    }
    if h == 0 {
        event.payload.clear();
    }
    event
}

/// Resident memory of this process, in KiB, from `/proc/self/status`.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn secs(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[test]
#[ignore = "a soak test: SOAK_SECS=60 cargo test --release --test soak -- --ignored --nocapture"]
fn soak() {
    let total = Duration::from_secs(secs("SOAK_SECS", 60).max(1));
    let interval = Duration::from_secs(secs("SOAK_INTERVAL_SECS", 5).max(1));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(total, interval));
}

async fn run(total: Duration, interval: Duration) {
    let batches = Arc::new(AtomicU64::new(0));
    let batched = Arc::new(AtomicU64::new(0));
    let sampled = Arc::new(AtomicU64::new(0));
    let (b, bi, s) = (batches.clone(), batched.clone(), sampled.clone());
    let events = (0u64..).map(|id| Event {
        id,
        session: id / 16,
        payload: "x".repeat((id % 64) as usize),
    });
    let handle = pipeline! {
        events = iter(events);
        events
            >> #[parallel = 2] #[ordered] map(digest)
            >> accumulate(key = |e: &Event| e.session, max_items = 16, max_latency = 50ms)
            >> for_each(move |batch| {
                b.fetch_add(1, Ordering::Relaxed);
                bi.fetch_add(batch.len() as u64, Ordering::Relaxed);
            });
        events
            >> #[buffer = 4096] #[on_full = drop_oldest] filter(|e: &Event| e.id.is_multiple_of(7))
            >> for_each(move |e| {
                s.fetch_add(1, Ordering::Relaxed);
                // Now and then a pause, so that its edge fills and drops.
                async move {
                    if e.id.is_multiple_of(70_000) {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            });
    }
    .spawn();

    let started = Instant::now();
    let mut rss_start = 0;
    let mut last_read = 0;
    let mut rows = Vec::new();
    println!(
        "soak: {total:?}, printing every {interval:?}; RSS at launch {} KiB",
        rss_kib()
    );
    println!(
        "{:>6} {:>14} {:>12} {:>12} {:>10} {:>10}",
        "t (s)", "read/s", "batched/s", "sampled/s", "dropped", "RSS KiB"
    );
    let (mut last_batched, mut last_sampled) = (0, 0);
    while started.elapsed() < total {
        tokio::time::sleep(interval.min(total.saturating_sub(started.elapsed()))).await;
        let read = handle.inspect("events").unwrap().items_out;
        let dropped: u64 = handle.edge_snapshot().iter().map(|e| e.dropped).sum();
        let (batched_now, sampled_now) = (
            batched.load(Ordering::Relaxed),
            sampled.load(Ordering::Relaxed),
        );
        let rss = rss_kib();
        let per_sec = |now: u64, before: u64| (now - before) as f64 / interval.as_secs_f64();
        println!(
            "{:>6.0} {:>14.0} {:>12.0} {:>12.0} {:>10} {:>10}",
            started.elapsed().as_secs_f64(),
            per_sec(read, last_read),
            per_sec(batched_now, last_batched),
            per_sec(sampled_now, last_sampled),
            dropped,
            rss
        );
        assert!(read > last_read, "no progress in an interval");
        if rss_start == 0 {
            rss_start = rss;
        }
        rows.push(rss);
        (last_read, last_batched, last_sampled) = (read, batched_now, sampled_now);
    }
    let rss_end = rss_kib();
    handle.stop();
    let report = tokio::time::timeout(Duration::from_secs(10), handle.join())
        .await
        .expect("the soak pipeline stops within 10 s")
        .expect("the soak pipeline ends cleanly");
    let read = report.stage("events").unwrap().items_out;
    println!("{report}");
    println!(
        "soak: {read} events in {:.1?} ({:.0}/s); {} batches of {} events; RSS {rss_start} KiB after the first interval, {rss_end} KiB at the end ({:+} KiB)",
        report.duration,
        read as f64 / report.duration.as_secs_f64(),
        batches.load(Ordering::Relaxed),
        batched.load(Ordering::Relaxed),
        rss_end as i64 - rss_start as i64
    );
    assert!(report.is_balanced(), "{report}");
    assert_eq!(report.failed(), 0, "{report}");
    // Every event read went through the parallel stage and into a batch.
    assert_eq!(batched.load(Ordering::Relaxed), read, "{report}");
    let sample_edge = report.edge("events", "filter").unwrap();
    assert_eq!(
        report.stage("filter").unwrap().items_in + sample_edge.dropped,
        read,
        "{report}"
    );
    assert!(
        rss_end <= rss_start + MAX_GROWTH_KIB,
        "memory grew from {rss_start} KiB to {rss_end} KiB (samples {rows:?})"
    );
}
