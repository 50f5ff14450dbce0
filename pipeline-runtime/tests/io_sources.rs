//! The IO sources: `lines`, `frames`, `results` with `ok`, `push` and
//! `interval`, run through fused chains as `pipeline!` runs them.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pipeline_runtime::chain::{Fuse, Head, drive, join};
use pipeline_runtime::channel::edge;
use pipeline_runtime::fan::{Broadcast, Inlet, Output};
use pipeline_runtime::graph::NodeKind;
use pipeline_runtime::io::{
    Bytes, Collected, LineError, PushClosed, TryPushError, collect, frames, interval, lines, ok,
    push, results,
};
use pipeline_runtime::lifecycle::Control;
use pipeline_runtime::metrics::{EdgeStats, StageStats};
use pipeline_runtime::options::StageOptions;
use pipeline_runtime::stage::{Failed, Never, Pull, Source, StageContext};
use tokio::io::{AsyncRead, ReadBuf};

fn stats(name: &'static str, kind: NodeKind) -> Arc<StageStats> {
    Arc::new(StageStats::new(name, kind))
}

/// Runs `source` into a `collect` sink in chunks of `chunk`; returns what
/// was collected and the source's counters.
async fn drain<S: Source>(source: S, chunk: usize) -> (Vec<S::Out>, Arc<StageStats>) {
    let out = Collected::new();
    let from = stats("source", NodeKind::Source);
    let chain: Fuse<_, _, S::Out, Never, Never> = Fuse::new(
        Head::new(source, from.clone(), chunk),
        collect(&out),
        stats("collect", NodeKind::Sink),
    );
    drive(chain, Control::new()).await.expect("the chain runs");
    (out.take(), from)
}

fn strings(lines: &[&str]) -> Vec<String> {
    lines.iter().map(|s| (*s).to_owned()).collect()
}

/// An `AsyncRead` that hands out `step` bytes per read, and is not ready
/// every other poll, so frames and delimiters are split across reads and
/// across fills. Fails with `fail` once its data is read, if set.
struct Trickle {
    data: Vec<u8>,
    at: usize,
    step: usize,
    ready: bool,
    fail: Option<io::ErrorKind>,
}

impl Trickle {
    fn new(data: &[u8], step: usize) -> Self {
        Trickle {
            data: data.to_vec(),
            at: 0,
            step,
            ready: false,
            fail: None,
        }
    }

    fn failing(mut self, kind: io::ErrorKind) -> Self {
        self.fail = Some(kind);
        self
    }
}

impl AsyncRead for Trickle {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.ready = !self.ready;
        if !self.ready {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let end = (self.at + self.step)
            .min(self.data.len())
            .min(self.at + buf.remaining());
        if self.at == end
            && let Some(kind) = self.fail
        {
            return Poll::Ready(Err(io::Error::new(kind, "the disk caught fire")));
        }
        buf.put_slice(&self.data[self.at..end]);
        self.at = end;
        Poll::Ready(Ok(()))
    }
}

const MIXED: &[u8] = b"first\r\nsecond\n\n\r\nfifth\r\n\r\nlast";
const MIXED_LINES: &[&str] = &["first", "second", "", "", "fifth", "", "last"];

#[tokio::test]
async fn lines_end_at_lf_or_crlf_keep_empty_lines_and_deliver_the_last_line() {
    let (got, source) = drain(lines(MIXED), 512).await;
    assert_eq!(got, strings(MIXED_LINES));
    assert_eq!((source.items_out(), source.failed()), (7, 0));
    // A trailing line ending adds no empty line.
    let (got, _) = drain(lines(&b"a\nb\r\n"[..]), 512).await;
    assert_eq!(got, strings(&["a", "b"]));
    let (got, _) = drain(lines(&b""[..]), 512).await;
    assert!(got.is_empty());
    // A `\r` not before `\n` stays, except at the very end.
    let (got, _) = drain(lines(&b"a\rb\nc\r"[..]), 512).await;
    assert_eq!(got, strings(&["a\rb", "c"]));
}

#[tokio::test]
async fn lines_split_across_tiny_reads_and_small_chunks_read_the_same() {
    for step in [1, 2, 3, 7] {
        for chunk in [1, 2, 512] {
            let (got, source) = drain(lines(Trickle::new(MIXED, step)), chunk).await;
            assert_eq!(
                got,
                strings(MIXED_LINES),
                "{step}-byte reads, chunks of {chunk}"
            );
            assert_eq!(source.failed(), 0);
        }
    }
}

#[tokio::test]
async fn invalid_utf8_fails_its_line_and_reading_goes_on() {
    let input = b"ok\n\xff\xfeoops\r\nnext\n\xc3\x28";
    for step in [1, 4, 64] {
        let (got, source) = drain(lines(Trickle::new(input, step)), 512).await;
        assert_eq!(got, strings(&["ok", "next"]), "{step}-byte reads");
        assert_eq!(source.failed(), 2, "each bad line counts as a failed read");
    }
}

#[tokio::test]
async fn results_turn_bad_lines_into_error_items_in_order() {
    let input: &[u8] = b"ok\n\xff\xfeoops\r\nnext\n";
    let (got, source) = drain(results(lines(input)), 512).await;
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].as_ref().unwrap(), "ok");
    match &got[1] {
        Err(LineError::InvalidUtf8 { line, bytes, error }) => {
            assert_eq!(*line, 2);
            assert_eq!(
                &bytes[..],
                b"\xff\xfeoops",
                "the line's bytes, without CRLF"
            );
            assert_eq!(error.valid_up_to(), 0);
        }
        other => panic!("expected an invalid UTF-8 error, got {other:?}"),
    }
    assert_eq!(
        got[1].as_ref().unwrap_err().to_string(),
        "line 2 is not valid UTF-8 (invalid utf-8 sequence of 1 bytes from index 0); skipped"
    );
    assert_eq!(got[2].as_ref().unwrap(), "next");
    assert_eq!((source.items_out(), source.failed()), (3, 0));
}

#[tokio::test]
async fn results_then_ok_route_bad_lines_to_the_errors_port() {
    let input: &[u8] = b"one\n\xffbad\ntwo\nthis line is far too long\nthree";
    let good = Collected::new();
    let bad: Collected<Failed<Result<String, LineError>, LineError>> = Collected::new();
    let check = stats("ok", NodeKind::Transform);
    let link = Arc::new(EdgeStats::new("ok", "dead_letters", Some("errors")));
    let (tx, rx) = edge(64, 8);
    let errors = Broadcast::single(Output::new(tx, Arc::clone(&link)));
    let head = Head::new(
        results(lines(input).max_line(10)),
        stats("lines", NodeKind::Source),
        2,
    );
    let checked: Fuse<_, _, Result<String, LineError>, String, LineError, _> =
        Fuse::with_errors(head, ok(), check.clone(), StageOptions::default(), errors);
    let main: Fuse<_, _, String, Never, Never> =
        Fuse::new(checked, collect(&good), stats("collect", NodeKind::Sink));
    let dead: Fuse<_, _, _, Never, Never> = Fuse::new(
        Inlet::new(rx, 8),
        collect(&bad),
        stats("dead_letters", NodeKind::Sink),
    );
    let control = Control::new();
    join(drive(main, control.clone()), drive(dead, control))
        .await
        .unwrap();
    assert_eq!(good.take(), strings(&["one", "two", "three"]));
    let bad = bad.take();
    let lines: Vec<_> = bad
        .iter()
        .map(|f| f.error.error().unwrap().line())
        .collect();
    assert_eq!(lines, [Some(2), Some(4)]);
    assert_eq!(bad[0].stage, "ok");
    assert_eq!(
        bad[1].error.to_string(),
        "line 4 is longer than 10 bytes; skipped"
    );
    assert_eq!((check.items_in(), check.dead_lettered()), (5, 2));
}

#[tokio::test]
async fn a_line_over_max_line_is_skipped_and_the_next_is_read() {
    let mut input = b"short\r\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 100));
    input.extend(b"\r\neleven byte\r\n0123456789\r\nafter");
    for step in [1, 5, 1024] {
        let (got, source) = drain(lines(Trickle::new(&input, step)).max_line(10), 512).await;
        assert_eq!(
            got,
            strings(&["short", "0123456789", "after"]),
            "{step}-byte reads"
        );
        assert_eq!(source.failed(), 2, "the 100-byte line and the 11-byte one");
    }
}

#[tokio::test]
async fn frames_cut_at_a_multi_byte_delimiter_split_across_reads() {
    let input = b"HELO\r\n\r\nMAIL FROM:<a@b>\r\nQU\rIT";
    let expected: Vec<Bytes> = [&b"HELO"[..], b"", b"MAIL FROM:<a@b>", b"QU\rIT"]
        .into_iter()
        .map(Bytes::from_static)
        .collect();
    for step in [1, 2, 5, 1024] {
        let (got, source) = drain(frames(Trickle::new(input, step), b"\r\n", 64), 3).await;
        assert_eq!(got, expected, "{step}-byte reads");
        assert_eq!(source.failed(), 0);
    }
}

#[tokio::test]
async fn an_overlong_frame_is_one_failure_and_the_next_frame_is_delivered() {
    let mut input = b"ok\n".to_vec();
    input.extend(std::iter::repeat_n(b'z', 10_000));
    input.extend(b"\ngood\nlast-no-delimiter");
    for step in [1, 3, 4096] {
        let (got, source) = drain(frames(Trickle::new(&input, step), b"\n", 32), 512).await;
        assert_eq!(
            got,
            [
                Bytes::from_static(b"ok"),
                Bytes::from_static(b"good"),
                Bytes::from_static(b"last-no-delimiter")
            ],
            "{step}-byte reads"
        );
        assert_eq!(source.failed(), 1, "reported once, not once per read");
    }
    let (got, _) = drain(results(frames(&input[..], b"\n", 32)), 512).await;
    let error = got[1].as_ref().unwrap_err();
    assert_eq!(
        error.to_string(),
        "frame 2 (at byte 3) is longer than 32 bytes; skipped to the next delimiter"
    );
}

#[tokio::test]
async fn a_read_error_is_reported_once_and_ends_the_source() {
    let reader = Trickle::new(b"a\nb\nunfinished", 3).failing(io::ErrorKind::BrokenPipe);
    let (got, source) = drain(results(lines(reader)), 512).await;
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].as_ref().unwrap(), "a");
    assert_eq!(got[1].as_ref().unwrap(), "b");
    let Err(LineError::Io(error)) = &got[2] else {
        panic!("expected a read error, got {:?}", got[2]);
    };
    assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
    assert_eq!(source.items_out(), 3);
    // Without `results`, the error is counted on the source.
    let reader = Trickle::new(b"a\nb\n", 3).failing(io::ErrorKind::BrokenPipe);
    let (got, source) = drain(frames(reader, b"\n", 8), 512).await;
    assert_eq!(got, [Bytes::from_static(b"a"), Bytes::from_static(b"b")]);
    assert_eq!(source.failed(), 1);
}

// Push.

fn ctx() -> StageContext {
    StageContext::detached("push")
}

#[tokio::test]
async fn try_send_says_full_then_closed() {
    let (mut source, handle) = push::<u32>(2);
    assert_eq!(handle.capacity(), 2);
    handle.try_send(1).unwrap();
    handle.try_send(2).unwrap();
    let full = handle.try_send(3).unwrap_err();
    assert!(full.is_full());
    assert_eq!(
        full.to_string(),
        "the push source is full: the pipeline has not taken the items already sent"
    );
    assert_eq!(full.into_inner(), 3);
    let mut out = Vec::new();
    assert_eq!(source.fill(&mut out, 10, &ctx()).await.unwrap(), Pull::More);
    assert_eq!(out, [1, 2]);
    assert_eq!(handle.room(), 2);
    handle.close();
    assert!(handle.is_closed());
    let closed = handle.try_send(4).unwrap_err();
    assert!(matches!(closed, TryPushError::Closed(4)));
    assert_eq!(
        closed.to_string(),
        "the push source is closed: its pipeline stopped, or a handle closed it"
    );
    assert_eq!(handle.send(5).await, Err(PushClosed(5)));
    out.clear();
    assert_eq!(source.fill(&mut out, 10, &ctx()).await.unwrap(), Pull::Done);
    assert!(out.is_empty());
}

#[tokio::test]
async fn send_waits_while_the_source_is_full_and_goes_on_when_it_is_read() {
    let (mut source, handle) = push::<u32>(2);
    handle.send(1).await.unwrap();
    handle.send(2).await.unwrap();
    let sender = handle.clone();
    let third = tokio::spawn(async move { sender.send(3).await });
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(!third.is_finished(), "the third send waits for room");
    let mut out = Vec::new();
    source.fill(&mut out, 10, &ctx()).await.unwrap();
    assert_eq!(out, [1, 2]);
    third.await.unwrap().unwrap();
    out.clear();
    source.fill(&mut out, 10, &ctx()).await.unwrap();
    assert_eq!(out, [3]);
}

#[tokio::test]
async fn close_releases_a_waiting_sender_and_the_source_drains_what_was_sent() {
    let (mut source, handle) = push::<u32>(1);
    handle.send(1).await.unwrap();
    let sender = handle.clone();
    let waiting = tokio::spawn(async move { sender.send(2).await });
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(!waiting.is_finished());
    handle.close();
    assert_eq!(
        waiting.await.unwrap(),
        Err(PushClosed(2)),
        "handed back, not lost"
    );
    let mut out = Vec::new();
    while source.fill(&mut out, 10, &ctx()).await.unwrap() == Pull::More {}
    assert_eq!(out, [1], "the item sent before `close` is read");
    handle.closed().await;
}

#[tokio::test]
async fn the_source_ends_when_every_handle_is_dropped() {
    let (source, handle) = push::<u32>(4);
    let other = handle.clone();
    let producer = tokio::spawn(async move {
        for i in 0..100 {
            handle.send(i).await.unwrap();
        }
    });
    drop(other);
    let (got, from) = drain(source, 8).await;
    producer.await.unwrap();
    assert_eq!(got, (0..100).collect::<Vec<_>>(), "all of them, in order");
    assert_eq!(from.items_out(), 100);
}

#[tokio::test]
async fn a_running_pipeline_is_fed_under_back_pressure_and_ends_on_close() {
    let (source, handle) = push::<u64>(3);
    let out = Collected::new();
    let into = out.clone();
    let run = tokio::spawn(async move {
        let chain: Fuse<_, _, u64, Never, Never> = Fuse::new(
            Head::new(source, stats("push", NodeKind::Source), 2),
            collect(&into),
            stats("collect", NodeKind::Sink),
        );
        drive(chain, Control::new()).await
    });
    let producers: Vec<_> = (0..4u64)
        .map(|p| {
            let handle = handle.clone();
            tokio::spawn(async move {
                for i in 0..250 {
                    handle.send(p * 1000 + i).await.unwrap();
                }
            })
        })
        .collect();
    for producer in producers {
        producer.await.unwrap();
    }
    handle.close();
    run.await.unwrap().unwrap();
    let mut got = out.take();
    assert_eq!(got.len(), 1000);
    for p in 0..4 {
        let mine: Vec<_> = got.iter().filter(|x| **x / 1000 == p).copied().collect();
        assert_eq!(mine, (p * 1000..p * 1000 + 250).collect::<Vec<_>>());
    }
    got.sort_unstable();
    got.dedup();
    assert_eq!(got.len(), 1000);
    // The pipeline has ended: nobody reads, so sends fail at once.
    assert!(handle.is_closed());
    assert_eq!(handle.send(7).await, Err(PushClosed(7)));
}

#[tokio::test]
async fn stopping_the_pipeline_closes_the_push_source() {
    let (source, handle) = push::<u64>(8);
    let chain: Fuse<_, _, u64, Never, Never> = Fuse::new(
        Head::new(source, stats("push", NodeKind::Source), 4),
        collect(&Collected::new()),
        stats("collect", NodeKind::Sink),
    );
    let control = Control::new();
    let run = tokio::spawn(drive(chain, control.clone()));
    handle.send(1).await.unwrap();
    control.stop();
    run.await.unwrap().unwrap();
    handle.closed().await;
    assert!(matches!(handle.try_send(2), Err(TryPushError::Closed(2))));
}

// Interval.

#[tokio::test(start_paused = true)]
async fn interval_ticks_every_period_from_the_start() {
    let started = tokio::time::Instant::now();
    let (ticks, source) = drain(interval(Duration::from_millis(250)).take(4), 16).await;
    let offsets: Vec<_> = ticks.iter().map(|t| *t - started).collect();
    assert_eq!(
        offsets,
        [0, 250, 500, 750].map(Duration::from_millis),
        "due times on the paused clock"
    );
    assert_eq!(source.items_out(), 4);
    let (none, _) = drain(interval(Duration::from_secs(1)).take(0), 16).await;
    assert!(none.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_slow_pipeline_gets_one_tick_for_the_ticks_it_missed() {
    let mut ticks = interval(Duration::from_millis(10)).take(3);
    let ctx = StageContext::detached("interval");
    let start = tokio::time::Instant::now();
    let mut out = Vec::new();
    ticks.fill(&mut out, 16, &ctx).await.unwrap();
    tokio::time::sleep(Duration::from_millis(55)).await;
    ticks.fill(&mut out, 16, &ctx).await.unwrap();
    ticks.fill(&mut out, 16, &ctx).await.unwrap();
    // The tick due at 10ms comes late, at 55ms; those due at 20..=50ms are
    // skipped, and the next is back on the grid.
    let offsets: Vec<_> = out.iter().map(|t| *t - start).collect();
    assert_eq!(offsets, [0, 10, 60].map(Duration::from_millis));
}

// TCP.

#[tokio::test]
async fn a_line_protocol_round_trips_over_tcp() {
    use pipeline_runtime::io::write_lines;
    use pipeline_runtime::transform::map;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    // The server: each line, upper-cased, back to the client.
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let (read, write) = socket.into_split();
        let upper: Fuse<_, _, String, String, Never> = Fuse::new(
            Head::new(lines(read), stats("lines", NodeKind::Source), 64),
            map(|line: String| line.to_uppercase()),
            stats("upper", NodeKind::Transform),
        );
        let chain: Fuse<_, _, String, Never, _> = Fuse::new(
            upper,
            write_lines(write, 1024).shutdown_on_close(),
            stats("write_lines", NodeKind::Sink),
        );
        drive(chain, Control::new()).await
    });
    // The client: sends lines from one pipeline, reads the replies as
    // frames in another.
    let socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let (read, write) = socket.into_split();
    let sent: Vec<String> = (0..1000).map(|i| format!("line {i} é")).collect();
    let send: Fuse<_, _, String, Never, _> = Fuse::new(
        Head::new(
            pipeline_runtime::io::iter(sent.clone()),
            stats("iter", NodeKind::Source),
            32,
        ),
        write_lines(write, 4096).shutdown_on_close(),
        stats("write_lines", NodeKind::Sink),
    );
    let replies = Collected::new();
    let receive: Fuse<_, _, Bytes, Never, Never> = Fuse::new(
        Head::new(
            frames(read, b"\n", 1024),
            stats("frames", NodeKind::Source),
            64,
        ),
        collect(&replies),
        stats("collect", NodeKind::Sink),
    );
    let control = Control::new();
    join(drive(send, control.clone()), drive(receive, control))
        .await
        .unwrap();
    server.await.unwrap().unwrap();
    let replies: Vec<String> = replies
        .take()
        .into_iter()
        .map(|frame| String::from_utf8(frame.to_vec()).unwrap())
        .collect();
    let expected: Vec<String> = sent.iter().map(|s| s.to_uppercase()).collect();
    assert_eq!(replies, expected);
}

/// The sources' futures are `Send`, so a pipeline using them can be
/// spawned.
#[test]
fn the_sources_can_be_spawned() {
    // Checked on concrete types: a generic function cannot see through
    // `fill`'s opaque future.
    macro_rules! spawnable {
        ($source:expr) => {{
            let mut source = $source;
            let ctx = StageContext::detached("s");
            drop(tokio::spawn(async move {
                let mut out = Vec::new();
                source.fill(&mut out, 1, &ctx).await.map(|_| out.len())
            }));
        }};
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    spawnable!(lines(tokio::io::empty()));
    spawnable!(results(frames(tokio::io::empty(), b"\n", 8)));
    spawnable!(push::<String>(1).0);
    spawnable!(interval(Duration::from_secs(1)));
}
