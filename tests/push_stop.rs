//! A `push` source under `stop()` and `abort()`: a graceful stop loses
//! nothing a producer handed over (every `send` that returned `Ok` is
//! processed, or counted as dropped under `PushStop::Drop`), and a producer
//! waiting for room is released at once with its item, whatever the sink
//! is doing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pipeline::io::{Push, PushClosed, PushHandle, PushStop, TryPushError, push};
use pipeline::prelude::*;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// A sink that holds item 0 until it is let go, and records what it took.
#[derive(Clone, Default)]
struct Held {
    /// Told when the sink has taken item 0.
    holding: Arc<Notify>,
    /// Tells the sink to let item 0 go.
    release: Arc<Notify>,
    got: Arc<Mutex<Vec<u64>>>,
}

impl Held {
    async fn take(&self, x: u64) {
        if x == 0 {
            self.holding.notify_one();
            self.release.notified().await;
        }
        self.got.lock().unwrap().push(x);
    }

    fn got(&self) -> Vec<u64> {
        self.got.lock().unwrap().clone()
    }
}

/// Spawns `numbers >> for_each(sink)`, sends item 0 and waits until the
/// sink holds it, so that what is sent next waits in the source.
async fn start_holding(numbers: Push<u64>, handle: &PushHandle<u64>) -> (PipelineHandle, Held) {
    let sink = Held::default();
    let running = {
        let sink = sink.clone();
        pipeline! {
            numbers >> for_each(move |x| { let sink = sink.clone(); async move { sink.take(x).await } });
        }
        .spawn()
    };
    handle.send(0).await.unwrap();
    sink.holding.notified().await;
    (running, sink)
}

/// Sends `x` from a task of its own, which waits for room.
fn send_in_background(handle: &PushHandle<u64>, x: u64) -> JoinHandle<Result<(), PushClosed<u64>>> {
    let handle = handle.clone();
    tokio::spawn(async move { handle.send(x).await })
}

/// How long a prompt answer may take on a loaded machine: far longer than
/// it should, far shorter than a hang.
const PROMPTLY: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_graceful_stop_processes_every_item_a_push_handle_accepted() {
    let (numbers, handle) = push::<u64>(8);
    let (running, sink) = start_holding(numbers, &handle).await;
    // The sink holds item 0; these wait in the source, accepted.
    for x in 1..=5 {
        handle.send(x).await.unwrap();
    }
    running.stop();
    // Closed to new items at once, though the sink is still busy.
    assert!(matches!(handle.try_send(6), Err(TryPushError::Closed(6))));
    assert!(matches!(handle.send(7).await, Err(PushClosed(7))));
    sink.release.notify_one();
    let report = running.join().await.unwrap();
    assert!(report.stopped);
    assert_eq!(sink.got(), vec![0, 1, 2, 3, 4, 5]);
    let source = report.stage("numbers").unwrap();
    assert_eq!((source.items_out, source.dropped), (6, 0), "{report}");
    let sink_report = report.stage("for_each").unwrap();
    assert_eq!((sink_report.items_in, sink_report.passed), (6, 6));
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test]
async fn under_push_stop_drop_a_graceful_stop_counts_the_unread_items_as_dropped() {
    let (numbers, handle) = push::<u64>(8);
    let numbers = numbers.on_stop(PushStop::Drop);
    let (running, sink) = start_holding(numbers, &handle).await;
    for x in 1..=5 {
        handle.send(x).await.unwrap();
    }
    running.stop();
    sink.release.notify_one();
    let report = running.join().await.unwrap();
    let source = report.stage("numbers").unwrap();
    // Every accepted item is read or counted, none both.
    assert_eq!(source.items_out + source.dropped, 6, "{report}");
    assert_eq!(source.dropped, 5, "{report}");
    assert_eq!(sink.got(), vec![0]);
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_waiting_for_room_is_released_by_stop_while_the_sink_is_stuck() {
    let (numbers, handle) = push::<u64>(1);
    let (running, sink) = start_holding(numbers, &handle).await;
    handle.send(1).await.unwrap(); // fills the source
    let waiting = send_in_background(&handle, 2);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!waiting.is_finished(), "the send should wait for room");
    running.stop();
    let sent = tokio::time::timeout(PROMPTLY, waiting)
        .await
        .expect("stop() releases a waiting send while the sink is stuck")
        .unwrap();
    assert!(matches!(sent, Err(PushClosed(2))), "{sent:?}");
    sink.release.notify_one();
    let report = running.join().await.unwrap();
    // Item 1 was accepted before the stop, so it is processed.
    assert_eq!(sink.got(), vec![0, 1]);
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_waiting_for_room_is_released_by_abort() {
    let (numbers, handle) = push::<u64>(1);
    // The sink never lets item 0 go: only `abort()` ends the run.
    let (running, _sink) = start_holding(numbers, &handle).await;
    handle.send(1).await.unwrap();
    let waiting = send_in_background(&handle, 2);
    tokio::time::sleep(Duration::from_millis(20)).await;
    running.abort();
    let sent = tokio::time::timeout(PROMPTLY, waiting)
        .await
        .expect("abort() releases a waiting send")
        .unwrap();
    assert!(matches!(sent, Err(PushClosed(2))), "{sent:?}");
    assert!(handle.is_closed());
    assert!(matches!(
        running.join().await,
        Err(pipeline::Error::Aborted)
    ));
}

#[tokio::test]
async fn a_stop_before_the_pipeline_reads_still_processes_what_was_sent() {
    let (numbers, handle) = push::<u64>(4);
    for x in 0..4 {
        handle.send(x).await.unwrap();
    }
    let got = Collected::new();
    let running = pipeline! {
        numbers >> collect(&got);
    }
    .spawn();
    running.stop();
    let report = running.join().await.unwrap();
    assert_eq!(got.take(), vec![0, 1, 2, 3]);
    assert!(handle.is_closed());
    assert!(report.is_balanced(), "{report}");
}
