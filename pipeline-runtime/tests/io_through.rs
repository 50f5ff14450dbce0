//! `through(sink, stream)`: a `futures::Sink` and the `futures::Stream`
//! paired with it, in the middle of a chain: back-pressure, the stream read
//! while the sink waits, the termination rule (input ended and stream
//! ended; stop; linger), sink errors, and a TCP round trip on 127.0.0.1.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::{Sink, SinkExt, StreamExt};
use pipeline_runtime::Error;
use pipeline_runtime::chain::{Chain, Fuse, Head, drive};
use pipeline_runtime::graph::NodeKind;
use pipeline_runtime::io::{Collected, collect, iter, push, through};
use pipeline_runtime::lifecycle::{Control, Pipeline};
use pipeline_runtime::metrics::{StageReport, StageStats, StageStatus};
use pipeline_runtime::stage::Never;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Framed, LinesCodec};

fn stats(name: &'static str, kind: NodeKind) -> Arc<StageStats> {
    Arc::new(StageStats::new(name, kind))
}

/// Runs `chain >> collect`, returning what was collected and how the run
/// ended.
async fn collect_from<C: Chain>(chain: C, control: Control) -> (Vec<C::Out>, Result<(), Error>) {
    let out = Collected::new();
    let chain: Fuse<_, _, C::Out, Never, Never> =
        Fuse::new(chain, collect(&out), stats("collect", NodeKind::Sink));
    let result = drive(chain, control).await;
    (out.take(), result)
}

/// A peer in another task: reads numbers from its request channel and
/// answers each with its double; ends when its requests end.
fn doubling_peer(
    buffer: usize,
) -> (
    futures::channel::mpsc::Sender<u64>,
    futures::channel::mpsc::Receiver<u64>,
) {
    let (requests, mut incoming) = futures::channel::mpsc::channel::<u64>(buffer);
    let (mut answer, answers) = futures::channel::mpsc::channel::<u64>(buffer);
    tokio::spawn(async move {
        while let Some(n) = incoming.next().await {
            if answer.send(n * 2).await.is_err() {
                break;
            }
        }
    });
    (requests, answers)
}

#[tokio::test]
async fn items_go_into_the_sink_and_the_stream_comes_out_until_both_end() {
    let (requests, answers) = doubling_peer(4);
    let double = stats("double", NodeKind::Transform);
    let chain = through(requests, answers).attach(
        Head::new(iter(1..=1000u64), stats("iter", NodeKind::Source), 64),
        double.clone(),
        16,
    );
    let (out, result) = collect_from(chain, Control::new()).await;
    result.unwrap();
    assert_eq!(out, (1..=1000).map(|n| n * 2).collect::<Vec<_>>());
    let report = StageReport::from_stats(&double);
    assert_eq!(
        (
            report.items_in,
            report.passed,
            report.items_out,
            report.failed
        ),
        (1000, 1000, 1000, 0)
    );
    assert!(report.is_balanced());
    assert_eq!(double.status(), StageStatus::Finished);
}

/// A peer that answers nothing until it has written `first` greetings,
/// and reads its requests only then: unless the stream is read while the
/// sink waits, both sides wait for each other. Paused time: a deadlock
/// would let the clock run to the guard's deadline at once.
#[tokio::test(start_paused = true)]
async fn the_stream_is_read_while_the_sink_waits() {
    let (requests, mut incoming) = futures::channel::mpsc::channel::<u64>(0);
    let (mut answer, answers) = futures::channel::mpsc::channel::<String>(0);
    tokio::spawn(async move {
        for n in 0..50 {
            answer.send(format!("hello {n}")).await.unwrap();
        }
        while let Some(n) = incoming.next().await {
            answer.send(format!("got {n}")).await.unwrap();
        }
    });
    let chain = through(requests, answers).attach(
        Head::new(iter(0..20u64), stats("iter", NodeKind::Source), 8),
        stats("peer", NodeKind::Transform),
        4,
    );
    let (out, result) = tokio::time::timeout(
        Duration::from_secs(3600),
        collect_from(chain, Control::new()),
    )
    .await
    .expect("no deadlock");
    result.unwrap();
    assert_eq!(out.len(), 70);
    assert_eq!(out[0], "hello 0");
    assert_eq!(out[49], "hello 49");
    assert_eq!(
        out[50..],
        (0..20).map(|n| format!("got {n}")).collect::<Vec<_>>()
    );
}

/// What a [`Gate`] saw.
#[derive(Default)]
struct GateState {
    open: bool,
    /// `poll_ready` returned `Ready` since the last `start_send`.
    allowed: bool,
    waker: Option<Waker>,
    sent: Vec<u64>,
    flushes: usize,
    closed: bool,
}

/// A sink that is not ready until it is opened, and checks that each item
/// was preceded by a `poll_ready` that returned `Ready`.
#[derive(Clone, Default)]
struct Gate(Arc<Mutex<GateState>>);

impl Gate {
    fn open(&self) {
        let mut state = self.0.lock().unwrap();
        state.open = true;
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    }

    fn sent(&self) -> Vec<u64> {
        self.0.lock().unwrap().sent.clone()
    }
}

impl Sink<u64> for Gate {
    type Error = std::convert::Infallible;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let mut state = self.0.lock().unwrap();
        if state.open {
            state.allowed = true;
            Poll::Ready(Ok(()))
        } else {
            state.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    fn start_send(self: Pin<&mut Self>, item: u64) -> Result<(), Self::Error> {
        let mut state = self.0.lock().unwrap();
        assert!(state.allowed, "start_send without a ready poll_ready");
        state.allowed = false;
        state.sent.push(item);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.lock().unwrap().flushes += 1;
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.lock().unwrap().closed = true;
        Poll::Ready(Ok(()))
    }
}

async fn settle() {
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_sink_that_is_not_ready_holds_the_input_back_and_the_stream_still_flows() {
    let gate = Gate::default();
    let (input, handle) = push::<u64>(4);
    let (peer, stream) = futures::channel::mpsc::unbounded::<&'static str>();
    let out = Collected::new();
    let chain = through(gate.clone(), stream).attach(
        Head::new(input, stats("push", NodeKind::Source), 8),
        stats("gate", NodeKind::Transform),
        8,
    );
    let chain: Fuse<_, _, &'static str, Never, Never> =
        Fuse::new(chain, collect(&out), stats("collect", NodeKind::Sink));
    let running = Pipeline::new(Vec::new(), move |control| drive(chain, control)).spawn();

    for n in 0..4 {
        handle.send(n).await.unwrap();
    }
    peer.unbounded_send("early").unwrap();
    settle().await;
    assert!(gate.sent().is_empty(), "nothing is sent before poll_ready");
    assert_eq!(out.take(), ["early"], "the stream is read meanwhile");
    // The source keeps the items the stage cannot take yet: the push
    // handle is full again once the chunk in hand is stuck at the sink.
    for n in 4..8 {
        handle.send(n).await.unwrap();
    }
    assert_eq!(handle.room(), 0);

    gate.open();
    settle().await;
    assert_eq!(gate.sent(), (0..8).collect::<Vec<_>>());
    handle.close();
    settle().await;
    assert!(
        gate.0.lock().unwrap().closed,
        "the input ended: the sink is closed"
    );
    assert!(!running.is_finished(), "the stream has not ended");
    drop(peer);
    running.join().await.unwrap();
    assert!(gate.0.lock().unwrap().flushes > 0);
}

#[tokio::test(start_paused = true)]
async fn a_stream_that_never_ends_is_read_until_the_pipeline_stops() {
    let stream = futures::stream::iter(["a", "b"]).chain(futures::stream::pending());
    let out = Collected::new();
    let node = stats("peer", NodeKind::Transform);
    let chain = through(futures::sink::drain(), stream).attach(
        Head::new(iter(0..3u64), stats("iter", NodeKind::Source), 8),
        node.clone(),
        8,
    );
    let chain: Fuse<_, _, &'static str, Never, Never> =
        Fuse::new(chain, collect(&out), stats("collect", NodeKind::Sink));
    let running = Pipeline::new(Vec::new(), move |control| drive(chain, control)).spawn();
    settle().await;
    assert_eq!(out.take(), ["a", "b"]);
    assert_eq!(node.items_in(), 3, "the input is all sent");
    // An hour later, still reading the stream.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(!running.is_finished());
    running.stop();
    let report = running.join().await.unwrap();
    assert!(report.stopped);
    assert_eq!(node.status(), StageStatus::Finished);
}

#[tokio::test(start_paused = true)]
async fn with_a_linger_time_a_stream_that_never_ends_is_cut() {
    let stream = futures::stream::iter(["a"]).chain(futures::stream::pending());
    let chain = through(futures::sink::drain(), stream)
        .linger(Duration::from_secs(30))
        .attach(
            Head::new(iter(0..3u64), stats("iter", NodeKind::Source), 8),
            stats("peer", NodeKind::Transform),
            8,
        );
    let started = tokio::time::Instant::now();
    let (out, result) = collect_from(chain, Control::new()).await;
    result.unwrap();
    assert_eq!(out, ["a"]);
    // On the paused clock: exactly the linger time, after the input ended.
    assert_eq!(started.elapsed(), Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn a_linger_time_does_not_cut_a_stream_that_ends() {
    let (requests, answers) = doubling_peer(1);
    let chain = through(requests, answers)
        .linger(Duration::from_secs(30))
        .attach(
            Head::new(iter(1..=5u64), stats("iter", NodeKind::Source), 2),
            stats("peer", NodeKind::Transform),
            8,
        );
    let (out, result) = collect_from(chain, Control::new()).await;
    result.unwrap();
    assert_eq!(out, [2, 4, 6, 8, 10]);
}

#[tokio::test]
async fn a_stream_that_ends_first_ends_the_output_once_the_input_has_ended() {
    let taken = Arc::new(Mutex::new(Vec::new()));
    let into = {
        let taken = Arc::clone(&taken);
        futures::sink::drain().with(move |n: u64| {
            taken.lock().unwrap().push(n);
            futures::future::ready(Ok::<_, futures::never::Never>(()))
        })
    };
    let node = stats("peer", NodeKind::Transform);
    let chain = through(into, futures::stream::iter([42u8])).attach(
        Head::new(iter(0..100u64), stats("iter", NodeKind::Source), 10),
        node.clone(),
        8,
    );
    let (out, result) = collect_from(chain, Control::new()).await;
    result.unwrap();
    assert_eq!(out, [42]);
    assert_eq!(*taken.lock().unwrap(), (0..100).collect::<Vec<_>>());
    assert_eq!((node.items_in(), node.items_out()), (100, 1));
}

/// A sink that fails the items `fails` picks.
struct Picky {
    fails: fn(u64) -> bool,
    sent: Vec<u64>,
}

impl Sink<u64> for Picky {
    type Error = String;

    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), String>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(mut self: Pin<&mut Self>, item: u64) -> Result<(), String> {
        if (self.fails)(item) {
            return Err(format!("refused {item}"));
        }
        self.sent.push(item);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), String>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), String>> {
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn items_the_sink_fails_are_counted_and_the_rest_go_on() {
    let node = stats("picky", NodeKind::Transform);
    let sink = Picky {
        fails: |n| n.is_multiple_of(3),
        sent: Vec::new(),
    };
    // Chunks of one: a sink error fails the item and those it accepted
    // since the last flush, which is after every chunk.
    let chain = through(sink, futures::stream::empty::<()>()).attach(
        Head::new(iter(1..=9u64), stats("iter", NodeKind::Source), 1),
        node.clone(),
        8,
    );
    let (_, result) = collect_from(chain, Control::new()).await;
    result.unwrap();
    let report = StageReport::from_stats(&node);
    assert_eq!((report.items_in, report.passed, report.failed), (9, 6, 3));
    assert!(report.is_balanced());
    assert_eq!(
        node.last_error().as_deref(),
        Some("the sink failed: refused 9")
    );
}

/// A sink whose close fails.
struct FailsToClose;

impl Sink<u64> for FailsToClose {
    type Error = &'static str;

    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, _: u64) -> Result<(), Self::Error> {
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Err("connection reset"))
    }
}

#[tokio::test]
async fn a_sink_that_fails_to_close_fails_the_run() {
    let node = stats("peer", NodeKind::Transform);
    let chain = through(FailsToClose, futures::stream::empty::<()>()).attach(
        Head::new(iter(1..=3u64), stats("iter", NodeKind::Source), 8),
        node.clone(),
        8,
    );
    let (_, result) = collect_from(chain, Control::new()).await;
    match result {
        Err(Error::Close {
            stage: "peer",
            source,
        }) => {
            assert_eq!(
                source.to_string(),
                "closing the sink failed: connection reset"
            );
        }
        other => panic!("expected a close error, got {other:?}"),
    }
    assert_eq!(node.status(), StageStatus::Failed);
}

#[tokio::test]
async fn a_chain_closed_before_its_first_pull_closes_the_sink() {
    let gate = Gate::default();
    gate.open();
    let mut chain = through(gate.clone(), futures::stream::empty::<()>()).attach(
        Head::new(iter(1..=3u64), stats("iter", NodeKind::Source), 8),
        stats("gate", NodeKind::Transform),
        8,
    );
    chain.init().await.unwrap();
    chain.close().await.unwrap();
    assert!(gate.sent().is_empty());
    assert!(gate.0.lock().unwrap().closed);
}

/// A line server: answers each line with its upper-case form, and closes
/// the connection when the client has shut its side down.
async fn upper_case_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let mut lines = Framed::new(socket, LinesCodec::new());
        while let Some(line) = lines.next().await {
            lines.send(line.unwrap().to_uppercase()).await.unwrap();
        }
    });
    addr
}

#[tokio::test]
async fn a_tcp_round_trip_on_localhost() {
    let addr = upper_case_server().await;
    let socket = TcpStream::connect(addr).await.unwrap();
    let (to_server, from_server) = Framed::new(socket, LinesCodec::new()).split();
    let words: Vec<String> = (0..500).map(|n| format!("word {n}")).collect();
    let node = stats("server", NodeKind::Transform);
    let chain = through(to_server, from_server).attach(
        Head::new(iter(words.clone()), stats("iter", NodeKind::Source), 32),
        node.clone(),
        64,
    );
    let (out, result) = collect_from(chain, Control::new()).await;
    result.unwrap();
    let answers: Vec<String> = out.into_iter().map(Result::unwrap).collect();
    let expected: Vec<String> = words.iter().map(|w| w.to_uppercase()).collect();
    assert_eq!(answers, expected);
    assert_eq!((node.items_in(), node.items_out()), (500, 500));
}

#[tokio::test]
async fn the_pipeline_stop_ends_a_flowing_input_and_sends_what_was_read() {
    let (input, handle) = push::<u64>(16);
    let (requests, answers) = doubling_peer(1);
    let out = Collected::new();
    let node = stats("peer", NodeKind::Transform);
    let chain = through(requests, answers).attach(
        Head::new(input, stats("push", NodeKind::Source), 8),
        node.clone(),
        8,
    );
    let chain: Fuse<_, _, u64, Never, Never> =
        Fuse::new(chain, collect(&out), stats("collect", NodeKind::Sink));
    let running = Pipeline::new(Vec::new(), move |control| drive(chain, control)).spawn();
    for n in 1..=3 {
        handle.send(n).await.unwrap();
    }
    while out.len() < 3 {
        tokio::task::yield_now().await;
    }
    running.stop();
    let report = running.join().await.unwrap();
    assert!(report.stopped);
    assert_eq!(out.take(), [2, 4, 6]);
    assert!(handle.send(4).await.is_err(), "the source closed");
    assert_eq!(node.status(), StageStatus::Finished);
}

/// A stream that always has an item ready still stops at a stop once the
/// input has ended. (Threads: the pipeline's task never waits, so the stop
/// comes from another thread.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_is_always_ready_still_ends_at_a_stop() {
    let node = stats("firehose", NodeKind::Transform);
    let chain = through(futures::sink::drain(), futures::stream::repeat(1u8)).attach(
        Head::new(iter(0..3u64), stats("iter", NodeKind::Source), 8),
        node.clone(),
        64,
    );
    let chain: Fuse<_, _, u8, Never, Never> = Fuse::new(
        chain,
        pipeline_runtime::io::discard(),
        stats("discard", NodeKind::Sink),
    );
    let running = Pipeline::new(Vec::new(), move |control| drive(chain, control)).spawn();
    while node.items_out() < 10_000 {
        tokio::task::yield_now().await;
    }
    running.stop();
    // A guard against a hang, not a timing assertion.
    let report = tokio::time::timeout(Duration::from_secs(60), running.join())
        .await
        .expect("the stop ends the output")
        .unwrap();
    assert!(report.stopped);
    assert_eq!(node.items_in(), 3);
}
