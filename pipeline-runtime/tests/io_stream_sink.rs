//! `stream_sink`: a pipeline's outputs read as a `futures::Stream`, in
//! order, paced by the reader, ending when the sink closes.

use std::sync::Arc;

use futures::StreamExt;
use pipeline_runtime::chain::{Fuse, Head, drive};
use pipeline_runtime::graph::NodeKind;
use pipeline_runtime::io::{StreamClosed, iter, push, stream_sink};
use pipeline_runtime::lifecycle::{Control, Pipeline};
use pipeline_runtime::metrics::{StageReport, StageStats};
use pipeline_runtime::stage::Never;

fn stats(name: &'static str, kind: NodeKind) -> Arc<StageStats> {
    Arc::new(StageStats::new(name, kind))
}

async fn settle() {
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn the_stream_yields_every_item_in_order_and_ends_with_the_pipeline() {
    let (into_stream, outputs) = stream_sink::<u64>(8);
    let sink = stats("out", NodeKind::Sink);
    let chain: Fuse<_, _, u64, Never, StreamClosed> = Fuse::new(
        Head::new(iter(0..1000u64), stats("iter", NodeKind::Source), 64),
        into_stream,
        sink.clone(),
    );
    let (ran, read) = tokio::join!(drive(chain, Control::new()), outputs.collect::<Vec<_>>());
    ran.unwrap();
    assert_eq!(read, (0..1000).collect::<Vec<_>>());
    let report = StageReport::from_stats(&sink);
    assert_eq!(
        (report.items_in, report.passed, report.failed),
        (1000, 1000, 0)
    );
}

#[tokio::test]
async fn the_reader_paces_the_pipeline() {
    let (into_stream, mut outputs) = stream_sink::<u64>(4);
    let sink = stats("out", NodeKind::Sink);
    let chain: Fuse<_, _, u64, Never, StreamClosed> = Fuse::new(
        Head::new(iter(0..20u64), stats("iter", NodeKind::Source), 8),
        into_stream,
        sink.clone(),
    );
    let running = Pipeline::new(Vec::new(), move |control| drive(chain, control)).spawn();
    settle().await;
    assert_eq!(outputs.queued(), 4, "the queue is full");
    assert!(!running.is_finished(), "the sink waits for the reader");
    assert_eq!(outputs.next().await, Some(0));
    settle().await;
    assert_eq!(outputs.queued(), 4, "one read, one more taken");
    let rest: Vec<u64> = outputs.collect().await;
    assert_eq!(rest, (1..20).collect::<Vec<_>>());
    running.join().await.unwrap();
}

#[tokio::test]
async fn a_stopped_pipeline_ends_the_stream_after_what_it_sent() {
    let (input, handle) = push::<u64>(8);
    let (into_stream, mut outputs) = stream_sink::<u64>(8);
    let chain: Fuse<_, _, u64, Never, StreamClosed> = Fuse::new(
        Head::new(input, stats("push", NodeKind::Source), 8),
        into_stream,
        stats("out", NodeKind::Sink),
    );
    let running = Pipeline::new(Vec::new(), move |control| drive(chain, control)).spawn();
    handle.send(1).await.unwrap();
    handle.send(2).await.unwrap();
    assert_eq!(outputs.next().await, Some(1));
    assert_eq!(outputs.next().await, Some(2));
    running.stop();
    assert_eq!(outputs.next().await, None, "the sink closed");
    assert!(running.join().await.unwrap().stopped);
}

#[tokio::test]
async fn an_aborted_pipeline_ends_the_stream() {
    let (_input, handle) = push::<u64>(8);
    let (into_stream, mut outputs) = stream_sink::<u64>(8);
    let chain: Fuse<_, _, u64, Never, StreamClosed> = Fuse::new(
        Head::new(_input, stats("push", NodeKind::Source), 8),
        into_stream,
        stats("out", NodeKind::Sink),
    );
    let running = Pipeline::new(Vec::new(), move |control| drive(chain, control)).spawn();
    handle.send(7).await.unwrap();
    assert_eq!(outputs.next().await, Some(7));
    running.abort();
    assert_eq!(outputs.next().await, None, "the sink was dropped");
    assert!(running.join().await.is_err());
}

#[tokio::test]
async fn items_fail_once_the_stream_is_dropped() {
    let (into_stream, outputs) = stream_sink::<u64>(2);
    drop(outputs);
    let sink = stats("out", NodeKind::Sink);
    let chain: Fuse<_, _, u64, Never, StreamClosed> = Fuse::new(
        Head::new(iter(0..10u64), stats("iter", NodeKind::Source), 4),
        into_stream,
        sink.clone(),
    );
    drive(chain, Control::new()).await.unwrap();
    let report = StageReport::from_stats(&sink);
    assert_eq!((report.items_in, report.failed), (10, 10));
    assert!(report.is_balanced());
    assert_eq!(
        sink.last_error().as_deref(),
        Some("the output stream was dropped")
    );
}

#[test]
#[should_panic(expected = "capacity of at least 1")]
fn a_stream_sink_needs_room_for_an_item() {
    let _ = stream_sink::<u64>(0);
}
