//! run, spawn, stop, abort and join, and what each leaves behind.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pipeline::prelude::*;

#[tokio::test(start_paused = true)]
async fn stop_ends_an_endless_source_and_drains_what_was_read() {
    let processed = Arc::new(AtomicU64::new(0));
    let counter = processed.clone();
    let ticks = futures::stream::unfold(0u64, |n| async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        Some((n, n + 1))
    });
    let handle = pipeline! {
        stream(ticks) >> map(|x| x + 1) >> for_each(move |_| { counter.fetch_add(1, Ordering::Relaxed); });
    }
    .spawn();
    tokio::time::sleep(Duration::from_millis(105)).await;
    handle.stop();
    let report = tokio::time::timeout(Duration::from_secs(5), handle.join())
        .await
        .expect("a stopped pipeline ends")
        .unwrap();
    assert!(report.stopped);
    let read = report.stage("stream").unwrap().items_out;
    assert!(read >= 9, "read {read}");
    // Everything read before the stop went all the way through.
    assert_eq!(report.stage("for_each").unwrap().items_in, read);
    assert_eq!(processed.load(Ordering::Relaxed), read);
}

#[tokio::test(start_paused = true)]
async fn abort_ends_the_run_with_an_error() {
    let endless = futures::stream::unfold((), |()| async {
        tokio::time::sleep(Duration::from_millis(1)).await;
        Some((1u8, ()))
    });
    let handle = pipeline! {
        stream(endless) >> discard();
    }
    .spawn();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!handle.is_finished());
    let live = handle.snapshot();
    assert!(live.iter().any(|s| s.items_in > 0), "{live:?}");
    handle.abort();
    assert!(matches!(handle.join().await, Err(pipeline::Error::Aborted)));
}

#[tokio::test(start_paused = true)]
async fn abort_ends_the_task_of_every_segment() {
    // Spawned, each segment (the source's, and the one after the edge) is
    // a task of its own; an abort must leave none of them running.
    let endless = futures::stream::unfold((), |()| async {
        tokio::time::sleep(Duration::from_millis(1)).await;
        Some((1u8, ()))
    });
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let handle = pipeline! {
        stream(endless) >> #[buffer = 8] map(|x| x) >> discard();
    }
    .spawn();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        metrics.num_alive_tasks(),
        before + 3,
        "one task joining two, one per segment"
    );
    handle.abort();
    assert!(matches!(handle.join().await, Err(pipeline::Error::Aborted)));
    // `join` returns once every segment's task has stopped.
    assert_eq!(metrics.num_alive_tasks(), before, "no segment left running");
}

#[tokio::test]
async fn join_returns_the_report_of_a_completed_run() {
    let handle = pipeline! {
        iter(0..10_000u64) >> filter(|x| x % 3 == 0) >> discard();
    }
    .spawn();
    let report = handle.join().await.unwrap();
    assert!(!report.stopped);
    assert_eq!(report.stage("filter").unwrap().items_out, 3334);
}

#[tokio::test]
async fn a_panicking_stage_fails_its_items_and_the_pipeline_goes_on() {
    let handle = pipeline! {
        iter(0..10u32) >> map(|x| if x == 5 { panic!("boom at {x}") } else { x }) >> discard();
    }
    .spawn();
    let report = handle.join().await.unwrap();
    // The panic fails the item it hit; the rest of its chunk goes on.
    let map = report.stage("map").unwrap();
    assert_eq!((map.items_in, map.items_out, map.failed), (10, 9, 1));
    assert!(report.is_balanced(), "{report}");
}

struct Opens {
    fail_init: bool,
    closed: Arc<AtomicU64>,
}

impl Stage<u32> for Opens {
    type Out = u32;
    type Error = std::convert::Infallible;

    async fn init(&mut self, _: &StageContext) -> Result<(), pipeline::stages::BoxError> {
        if self.fail_init {
            Err("no connection".into())
        } else {
            Ok(())
        }
    }

    async fn process(
        &mut self,
        item: u32,
        out: &mut Emit<'_, u32>,
        _: &StageContext,
    ) -> Result<(), Self::Error> {
        out.emit(item);
        Ok(())
    }

    async fn close(&mut self, _: &StageContext) -> Result<(), pipeline::stages::BoxError> {
        self.closed.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[tokio::test]
async fn init_failure_stops_the_run_and_names_the_stage() {
    let closed = Arc::new(AtomicU64::new(0));
    let result = pipeline! {
        iter(0..3u32) >> Opens { fail_init: true, closed: closed.clone() } >> discard();
    }
    .run()
    .await;
    let error = result.unwrap_err();
    assert_eq!(
        error.to_string(),
        "stage `Opens` failed to start: no connection"
    );
    assert_eq!(closed.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn close_runs_once_after_the_last_item() {
    let closed = Arc::new(AtomicU64::new(0));
    let report = pipeline! {
        iter(0..3u32) >> Opens { fail_init: false, closed: closed.clone() } >> discard();
    }
    .run()
    .await
    .unwrap();
    assert_eq!(closed.load(Ordering::Relaxed), 1);
    assert_eq!(report.stage("Opens").unwrap().items_out, 3);
}

#[tokio::test]
async fn the_report_prints_as_a_table() {
    let report = pipeline! {
        iter(["1", "x"]) >> map(|s| s.parse::<u8>()) >> filter(|r| r.is_ok()) >> discard();
    }
    .run()
    .await
    .unwrap();
    let table = report.to_string();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("stage"), "{table}");
    assert!(
        lines[0].contains("filtered") && lines[0].contains("failed"),
        "{table}"
    );
    assert!(
        lines[3].starts_with("filter ") && lines[3].contains("transform"),
        "{table}"
    );
    assert!(lines.last().unwrap().starts_with("completed in"), "{table}");
}
