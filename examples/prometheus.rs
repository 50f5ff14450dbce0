//! A pipeline's metrics, scraped as Prometheus text.
//!
//! Installs the `metrics-exporter-prometheus` recorder (without its HTTP
//! listener: the scrape text is rendered in-process), runs a small
//! pipeline with a fan-out, a stage that fails some items and a batching
//! accumulator, then prints each stage's state as the handle shows it and
//! the `pipeline_*` lines of the scrape output: items in / out / failed /
//! dropped / dead-lettered per stage, batch flushes by reason, queue depth
//! and send-wait time per edge, and the time each stage took per chunk.
//!
//! Run it from the repository root with:
//!
//! ```text
//! cargo run --example prometheus
//! ```
//!
//! In a service, serve `handle.render()` on `/metrics` (or turn on the
//! exporter's `http-listener` feature and call `install()` instead).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use pipeline::prelude::*;

/// Fails one item in a thousand.
#[stage]
fn check(x: u64) -> Result<u64, String> {
    if x % 1000 == 999 {
        Err(format!("unlucky number {x}"))
    } else {
        Ok(x)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Histograms in seconds get buckets, so they render as Prometheus
    // histograms rather than summaries.
    let prometheus = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_seconds".to_owned()),
            &[1e-6, 1e-5, 1e-4, 1e-3, 1e-2],
        )?
        .install_recorder()?;

    let evens = Arc::new(AtomicU64::new(0));
    let batches = Arc::new(AtomicU64::new(0));
    let (even_count, batch_count) = (Arc::clone(&evens), Arc::clone(&batches));
    // The recorder must be installed before the pipeline starts: its
    // metrics are registered then.
    let handle = pipeline! {
        numbers = iter(0..100_000u64) >> map(|x| x * 3) >> check;
        numbers >> filter(|x| x % 2 == 0) >> for_each(move |_| {
            even_count.fetch_add(1, Ordering::Relaxed);
        });
        numbers >> batch(max_items = 1000) >> for_each(move |_| {
            batch_count.fetch_add(1, Ordering::Relaxed);
        });
    }
    .named("example")
    .spawn();
    while !handle.is_finished() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    println!("stages:");
    for state in handle.snapshot() {
        println!("  {state}");
    }
    let report = handle.join().await?;
    println!(
        "\n{} even numbers, {} batches\n\n{report}\n",
        evens.load(Ordering::Relaxed),
        batches.load(Ordering::Relaxed)
    );

    // The scrape output, without the bucket lines, which are many.
    println!("scrape output (pipeline_* lines, buckets left out):");
    for line in prometheus.render().lines() {
        let ours = line.starts_with("pipeline_") || line.starts_with("# TYPE pipeline_");
        if ours && !line.contains("_bucket{") {
            println!("{line}");
        }
    }
    Ok(())
}
