//! The IO sinks: `write`, `write_lines`, `channel` and `sink`, run through
//! fused chains as `pipeline!` runs them.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use pipeline_runtime::Error;
use pipeline_runtime::chain::{Fuse, Head, drive, join};
use pipeline_runtime::channel::edge;
use pipeline_runtime::fan::{Broadcast, Inlet, Output};
use pipeline_runtime::graph::NodeKind;
use pipeline_runtime::io::{
    Bytes, ChannelClosed, Collected, WriteError, channel, collect, iter, sink, write, write_lines,
};
use pipeline_runtime::lifecycle::Control;
use pipeline_runtime::metrics::{EdgeStats, StageStats};
use pipeline_runtime::options::StageOptions;
use pipeline_runtime::stage::{Failed, Never, Stage};
use tokio::io::AsyncWrite;

fn stats(name: &'static str, kind: NodeKind) -> Arc<StageStats> {
    Arc::new(StageStats::new(name, kind))
}

/// Runs `items` in chunks of `chunk` into `stage`; returns the sink's
/// counters and how the run ended.
async fn run_into<T, B>(
    items: Vec<T>,
    chunk: usize,
    stage: B,
) -> (Arc<StageStats>, Result<(), Error>)
where
    B: Stage<T, Out = Never>,
{
    let sink = stats("sink", NodeKind::Sink);
    let chain: Fuse<_, _, T, Never, B::Error> = Fuse::new(
        Head::new(iter(items), stats("iter", NodeKind::Source), chunk),
        stage,
        sink.clone(),
    );
    let result = drive(chain, Control::new()).await;
    (sink, result)
}

/// What a [`Recorder`] saw, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Write(Vec<u8>),
    Flush,
    Shutdown,
}

/// An `AsyncWrite` that records its writes, flushes and shutdown, takes at
/// most `take` bytes per write, fails writes once `fail_after` bytes were
/// written, and fails every flush if `fail_flush`.
#[derive(Clone)]
struct Recorder {
    events: Arc<Mutex<Vec<Event>>>,
    take: usize,
    fail_after: Option<usize>,
    written: usize,
    fail_flush: bool,
}

impl Recorder {
    fn new() -> Self {
        Recorder {
            events: Arc::default(),
            take: usize::MAX,
            fail_after: None,
            written: 0,
            fail_flush: false,
        }
    }

    fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    fn bytes(&self) -> Vec<u8> {
        self.events()
            .into_iter()
            .flat_map(|e| match e {
                Event::Write(bytes) => bytes,
                _ => Vec::new(),
            })
            .collect()
    }
}

impl AsyncWrite for Recorder {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut n = buf.len().min(self.take);
        if let Some(limit) = self.fail_after {
            n = n.min(limit - self.written);
            if n == 0 {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, "peer gone")));
            }
        }
        self.written += n;
        self.events
            .lock()
            .unwrap()
            .push(Event::Write(buf[..n].to_vec()));
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.fail_flush {
            return Poll::Ready(Err(io::Error::other("flush refused")));
        }
        self.events.lock().unwrap().push(Event::Flush);
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.events.lock().unwrap().push(Event::Shutdown);
        Poll::Ready(Ok(()))
    }
}

fn write_event(bytes: &str) -> Event {
    Event::Write(bytes.as_bytes().to_vec())
}

#[tokio::test]
async fn write_flushes_each_time_the_threshold_is_reached_and_at_the_end() {
    let out = Recorder::new();
    let items: Vec<String> = (0..7).map(|i| format!("{i}{i}{i}{i}")).collect();
    let (sink, result) = run_into(items, 3, write(out.clone(), 10)).await;
    result.unwrap();
    // Chunks of 3 items (12 bytes, over the threshold: written and
    // flushed), then the last item (4 bytes: written, flushed at the end).
    assert_eq!(
        out.events(),
        [
            write_event("000011112222"),
            Event::Flush,
            write_event("333344445555"),
            Event::Flush,
            write_event("6666"),
            Event::Flush,
        ]
    );
    assert_eq!((sink.items_in(), sink.passed(), sink.failed()), (7, 7, 0));
}

#[tokio::test]
async fn unflushed_bytes_add_up_across_chunks_until_the_threshold() {
    let out = Recorder::new();
    let items: Vec<&str> = vec!["abc"; 10];
    let (_, result) = run_into(items, 1, write(out.clone(), 10)).await;
    result.unwrap();
    let events = out.events();
    // Every chunk is written at once (nothing waits for more input), and
    // a flush comes only after 10 bytes or more were written since the
    // previous one, except the final flush.
    let mut unflushed = 0;
    let mut flushes = 0;
    for (i, event) in events.iter().enumerate() {
        match event {
            Event::Write(bytes) => unflushed += bytes.len(),
            Event::Flush => {
                assert!(
                    unflushed >= 10 || i == events.len() - 1,
                    "flush #{flushes} after {unflushed} bytes"
                );
                unflushed = 0;
                flushes += 1;
            }
            Event::Shutdown => panic!("not asked to shut down"),
        }
    }
    assert_eq!(flushes, 2 + 1, "after 12 and 24 bytes, and at the end");
    assert_eq!(out.bytes(), "abc".repeat(10).as_bytes());
    assert_eq!(events.last(), Some(&Event::Flush));
}

#[tokio::test]
async fn a_big_chunk_is_written_in_pieces_of_about_the_threshold() {
    let out = Recorder::new();
    let items: Vec<Vec<u8>> = (0..10u8).map(|i| vec![b'0' + i; 3]).collect();
    let (_, result) = run_into(items, 512, write(out.clone(), 7)).await;
    result.unwrap();
    let writes: Vec<usize> = out
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::Write(bytes) => Some(bytes.len()),
            _ => None,
        })
        .collect();
    assert_eq!(
        writes,
        [9, 9, 9, 3],
        "gathered up to the threshold, not the whole chunk"
    );
}

#[tokio::test]
async fn flush_every_zero_flushes_after_every_chunk() {
    let out = Recorder::new();
    let (_, result) = run_into(vec![Bytes::from_static(b"ab"); 4], 2, write(out.clone(), 0)).await;
    result.unwrap();
    assert_eq!(
        out.events(),
        [
            write_event("abab"),
            Event::Flush,
            write_event("abab"),
            Event::Flush,
            Event::Flush,
        ]
    );
}

#[tokio::test]
async fn write_lines_ends_each_item_with_a_newline_and_can_shut_down() {
    let out = Recorder::new();
    let items = vec!["one".to_owned(), String::new(), "three".to_owned()];
    let sink = write_lines(out.clone(), 1024).shutdown_on_close();
    let (_, result) = run_into(items, 512, sink).await;
    result.unwrap();
    assert_eq!(
        out.events(),
        [write_event("one\n\nthree\n"), Event::Flush, Event::Shutdown]
    );
}

#[tokio::test]
async fn short_writes_are_continued() {
    let out = Recorder {
        take: 2,
        ..Recorder::new()
    };
    let (_, result) = run_into(vec!["hello", "world"], 512, write_lines(out.clone(), 0)).await;
    result.unwrap();
    assert_eq!(out.bytes(), b"hello\nworld\n");
}

#[tokio::test]
async fn a_failed_write_fails_the_items_the_writer_did_not_take() {
    // The writer takes 7 bytes, then fails: "aaa\n" is written, "bbb\n" is
    // cut, so it fails along with every later item.
    let out = Recorder {
        fail_after: Some(7),
        ..Recorder::new()
    };
    let items = vec!["aaa", "bbb", "ccc", "ddd"];
    let (sink, result) = run_into(items, 3, write_lines(out.clone(), 1024)).await;
    result.unwrap();
    assert_eq!((sink.items_in(), sink.passed(), sink.failed()), (4, 1, 3));
}

#[tokio::test]
async fn a_sink_error_goes_to_the_errors_port_with_its_item() {
    let out = Recorder {
        fail_after: Some(7),
        ..Recorder::new()
    };
    let items: Vec<String> = ["aaa", "bbb", "ccc"].map(String::from).to_vec();
    let dead: Collected<Failed<String, WriteError>> = Collected::new();
    let sink = stats("write_lines", NodeKind::Sink);
    let link = Arc::new(EdgeStats::new("write_lines", "dead", Some("errors")));
    let (tx, rx) = edge(64, 8);
    let chain: Fuse<_, _, String, Never, WriteError, _> = Fuse::with_errors(
        Head::new(iter(items), stats("iter", NodeKind::Source), 8),
        write_lines(out.clone(), 1024),
        sink.clone(),
        StageOptions::default(),
        Broadcast::single(Output::new(tx, link)),
    );
    let errors: Fuse<_, _, _, Never, Never> = Fuse::new(
        Inlet::new(rx, 8),
        collect(&dead),
        stats("dead", NodeKind::Sink),
    );
    let control = Control::new();
    join(drive(chain, control.clone()), drive(errors, control))
        .await
        .unwrap();
    let dead = dead.take();
    let inputs: Vec<&str> = dead.iter().map(|f| f.input.as_str()).collect();
    assert_eq!(inputs, ["bbb", "ccc"]);
    let error = dead[0].error.error().unwrap();
    assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
    assert_eq!(error.to_string(), "write failed: peer gone");
    assert_eq!((sink.passed(), sink.dead_lettered()), (1, 2));
}

#[tokio::test]
async fn a_failed_flush_fails_the_items_it_was_flushing() {
    let out = Recorder {
        fail_flush: true,
        ..Recorder::new()
    };
    // Each item reaches the threshold, so each is written and flushed
    // alone, and fails with its flush.
    let (sink, result) = run_into(vec!["abc", "def"], 2, write_lines(out.clone(), 4)).await;
    assert_eq!((sink.passed(), sink.failed()), (0, 2));
    assert_eq!(out.bytes(), b"abc\ndef\n");
    // And the final flush fails the run.
    let error = result.unwrap_err();
    assert!(format!("{error:?}").contains("flush refused"), "{error:?}");
}

#[tokio::test]
async fn the_final_flush_happens_even_below_the_threshold() {
    let out = Recorder::new();
    let (_, result) = run_into(vec!["x"], 512, write(out.clone(), 1 << 20)).await;
    result.unwrap();
    assert_eq!(out.events(), [write_event("x"), Event::Flush]);
}

// channel

#[tokio::test]
async fn channel_sends_every_item_waiting_for_a_slow_receiver() {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(1);
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(item) = rx.recv().await {
            got.push(item);
            tokio::task::yield_now().await;
        }
        got
    });
    let (sink, result) = run_into((0..100).collect(), 16, channel(tx)).await;
    result.unwrap();
    assert_eq!(reader.await.unwrap(), (0..100).collect::<Vec<_>>());
    assert_eq!((sink.passed(), sink.failed()), (100, 0));
}

#[tokio::test]
async fn channel_fails_items_once_the_receiver_is_gone() {
    let (tx, rx) = tokio::sync::mpsc::channel::<u32>(4);
    drop(rx);
    let mut stage = channel(tx);
    let ctx = pipeline_runtime::stage::StageContext::detached("channel");
    let mut failures = pipeline_runtime::stage::Failures::default();
    stage
        .process_chunk(&mut vec![1, 2, 3], &mut Vec::new(), &mut failures, &ctx)
        .await;
    let errors: Vec<_> = failures.errors().iter().map(|(at, e)| (*at, *e)).collect();
    assert_eq!(
        errors,
        [(0, ChannelClosed), (1, ChannelClosed), (2, ChannelClosed)]
    );
    assert_eq!(
        ChannelClosed.to_string(),
        "the channel's receiver was dropped"
    );
}

// sink

/// A `futures::Sink` that is not ready until its gate opens, records the
/// items it is given and its flushes, and fails `start_send` on `fail_on`.
#[derive(Default)]
struct Gated {
    state: Arc<Mutex<GateState>>,
}

#[derive(Default)]
struct GateState {
    open: bool,
    waker: Option<Waker>,
    not_ready: usize,
    items: Vec<u32>,
    flushed: usize,
    flushes: usize,
    closed: bool,
    fail_on: Option<u32>,
}

impl Gated {
    fn open(state: &Mutex<GateState>) {
        let mut state = state.lock().unwrap();
        state.open = true;
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    }
}

impl futures::Sink<u32> for Gated {
    type Error = String;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), String>> {
        let mut state = self.state.lock().unwrap();
        if state.open {
            Poll::Ready(Ok(()))
        } else {
            state.not_ready += 1;
            state.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    fn start_send(self: Pin<&mut Self>, item: u32) -> Result<(), String> {
        let mut state = self.state.lock().unwrap();
        if state.fail_on == Some(item) {
            return Err(format!("cannot take {item}"));
        }
        state.items.push(item);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), String>> {
        let mut state = self.state.lock().unwrap();
        state.flushed = state.items.len();
        state.flushes += 1;
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), String>> {
        self.state.lock().unwrap().closed = true;
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn sink_waits_for_poll_ready_then_delivers_flushes_and_closes() {
    let gated = Gated::default();
    let state = Arc::clone(&gated.state);
    let run = tokio::spawn(async move { run_into((0..10).collect(), 4, sink(gated)).await });
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    {
        let state = state.lock().unwrap();
        assert!(state.not_ready > 0, "the stage asked, and was told to wait");
        assert!(
            state.items.is_empty(),
            "nothing is sent before the sink is ready"
        );
    }
    assert!(!run.is_finished());
    Gated::open(&state);
    let (stats, result) = run.await.unwrap();
    result.unwrap();
    let state = state.lock().unwrap();
    assert_eq!(state.items, (0..10).collect::<Vec<_>>());
    assert_eq!(state.flushed, 10);
    assert_eq!(state.flushes, 3, "one flush per chunk of 4, 4 and 2");
    assert!(state.closed);
    assert_eq!((stats.passed(), stats.failed()), (10, 0));
}

#[tokio::test]
async fn a_sink_error_fails_the_items_not_yet_flushed() {
    let gated = Gated::default();
    let state = Arc::clone(&gated.state);
    {
        let mut state = state.lock().unwrap();
        state.open = true;
        state.fail_on = Some(5);
    }
    let mut stage = sink(gated);
    let ctx = pipeline_runtime::stage::StageContext::detached("sink");
    let mut failures = pipeline_runtime::stage::Failures::default();
    // Chunk [0, 1, 2, 3]: all delivered. Chunk [4, 5, 6, 7]: 4 was
    // accepted but not flushed when 5 failed, so both fail; 6 and 7 go on.
    for chunk in [vec![0, 1, 2, 3], vec![4, 5, 6, 7]] {
        stage
            .process_chunk(&mut chunk.clone(), &mut Vec::new(), &mut failures, &ctx)
            .await;
    }
    let errors: Vec<_> = failures
        .errors()
        .iter()
        .map(|(at, e)| (*at, e.to_string()))
        .collect();
    assert_eq!(
        errors,
        [
            (4, "the sink failed: cannot take 5".to_owned()),
            (5, "the sink failed: cannot take 5".to_owned()),
        ]
    );
    assert_eq!(state.lock().unwrap().items, [0, 1, 2, 3, 4, 6, 7]);
}

#[tokio::test]
async fn sink_takes_a_tokio_util_framed_write() {
    use futures::SinkExt;
    use tokio_util::codec::{FramedWrite, LinesCodec};

    let out = Recorder::new();
    let framed = FramedWrite::new(out.clone(), LinesCodec::new());
    let framed = SinkExt::<String>::sink_map_err(framed, |e| e.to_string());
    let (_, result) = run_into(vec!["a".to_owned(), "b".to_owned()], 8, sink(framed)).await;
    result.unwrap();
    assert_eq!(out.bytes(), b"a\nb\n");
    assert_eq!(
        out.events().last(),
        Some(&Event::Shutdown),
        "closing a FramedWrite shuts its writer down"
    );
}

/// The sinks' futures are `Send`, so a pipeline using them can be spawned.
#[test]
fn the_sinks_can_be_spawned() {
    // Checked on concrete types: a generic function cannot see through
    // `process_chunk`'s opaque future.
    macro_rules! spawnable {
        ($stage:expr, $items:expr) => {{
            let mut stage = $stage;
            let mut items = $items;
            drop(tokio::spawn(async move {
                let ctx = pipeline_runtime::stage::StageContext::detached("s");
                let mut failures = pipeline_runtime::stage::Failures::default();
                stage
                    .process_chunk(&mut items, &mut Vec::new(), &mut failures, &ctx)
                    .await;
                failures.errors().len()
            }));
        }};
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    spawnable!(write(tokio::io::sink(), 8), vec![Bytes::new()]);
    spawnable!(write_lines(tokio::io::sink(), 8), vec![String::new()]);
    spawnable!(channel(tokio::sync::mpsc::channel::<u8>(1).0), vec![1u8]);
    spawnable!(sink(Gated::default()), vec![1u32]);
}
