//! The IO built-ins end to end through `pipeline!`: `lines`, `frames`,
//! `interval`, `results` and `ok` as sources and stages, `write`,
//! `write_lines`, `channel` and `sink` as sinks, and sources made before the
//! macro (a `push` source and its handle, a configured `lines`) at the head
//! of a chain.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use pipeline::io::{Bytes, LineError, push};
use pipeline::prelude::*;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// A writer that keeps what it is given, and the length of its contents at
/// each flush, readable while a pipeline owns it.
#[derive(Clone, Default)]
struct Recorder {
    written: Arc<Mutex<Vec<u8>>>,
    flushes: Arc<Mutex<Vec<usize>>>,
    /// Bytes taken per `poll_write` at most, to split writes.
    max_write: Option<usize>,
}

impl Recorder {
    fn text(&self) -> String {
        String::from_utf8(self.written.lock().unwrap().clone()).unwrap()
    }

    fn flushes(&self) -> Vec<usize> {
        self.flushes.lock().unwrap().clone()
    }
}

impl AsyncWrite for Recorder {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let n = self.max_write.map_or(buf.len(), |max| buf.len().min(max));
        self.written.lock().unwrap().extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let len = self.written.lock().unwrap().len();
        self.flushes.lock().unwrap().push(len);
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn lines_reads_crlf_and_lf_empty_lines_and_a_last_line_without_ending() {
    let input: &[u8] = b"GET /a\r\n\nPOST /b\n\xff\xfe\nPUT /c";
    let out = Collected::new();
    let report = pipeline! {
        lines(input) >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(out.take(), ["GET /a", "", "POST /b", "PUT /c"]);
    // The line that is not UTF-8 is skipped, and counted as a failure of
    // the source.
    assert_eq!(report.stage("lines").unwrap().failed, 1);
}

#[tokio::test]
async fn lines_from_a_duplex_split_across_writes_with_max_line() {
    let (mut client, server) = tokio::io::duplex(8);
    let writer = tokio::spawn(async move {
        for piece in [
            &b"short\nfits in 16\nthis one is far too long"[..],
            b"\nlast\n",
        ] {
            for byte in piece.chunks(3) {
                client.write_all(byte).await.unwrap();
            }
        }
    });
    let out = Collected::new();
    let errors = Collected::new();
    let report = pipeline! {
        text = results(lines(server, max_line = 16B)) >> ok();
        text >> collect(&out);
        text[errors] >> map(|failed| failed.error.to_string()) >> collect(&errors);
    }
    .run()
    .await
    .unwrap();
    writer.await.unwrap();
    assert_eq!(out.take(), ["short", "fits in 16", "last"]);
    assert_eq!(
        errors.take(),
        ["line 3 is longer than 16 bytes; skipped"],
        "the overlong line reaches the errors port, and reading goes on"
    );
    let text = report.stage("text").unwrap();
    assert_eq!((text.items_in, text.dead_lettered), (4, 1));
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test]
async fn frames_cut_at_a_delimiter_and_skip_a_frame_over_max_frame() {
    let input: &[u8] = b"HELO\r\nMAIL FROM:<someone@a.very.long.domain>\r\n\r\nQUIT";
    let out = Collected::new();
    let report = pipeline! {
        frames(input, b"\r\n", max_frame = 16B) >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(
        out.take(),
        [
            Bytes::from_static(b"HELO"),
            Bytes::new(),
            Bytes::from_static(b"QUIT")
        ]
    );
    assert_eq!(report.stage("frames").unwrap().failed, 1);

    // A byte literal works as a one-byte delimiter; without `max_frame`
    // the limit is `DEFAULT_MAX_LINE`.
    let input: &[u8] = b"a|bb|ccc";
    let sizes = Collected::new();
    pipeline! {
        frames(input, b'|') >> map(|frame| frame.len()) >> collect(&sizes);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(sizes.take(), [1, 2, 3]);
}

#[tokio::test]
async fn frame_errors_reach_the_errors_port_of_ok() {
    let input: &[u8] = b"ok\n0123456789\nfine\n";
    let out = Collected::new();
    let too_long = Collected::new();
    pipeline! {
        checked = results(frames(input, "\n", max_frame = 4B)) >> ok();
        checked >> map(|frame| String::from_utf8(frame.to_vec()).unwrap()) >> collect(&out);
        checked[errors] >> map(|failed| failed.error.to_string()) >> collect(&too_long);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(out.take(), ["ok", "fine"]);
    assert_eq!(
        too_long.take(),
        ["frame 2 (at byte 3) is longer than 4 bytes; skipped to the next delimiter"]
    );
}

#[tokio::test]
async fn a_source_made_before_the_macro_starts_a_chain() {
    let input: &[u8] = b"one\ntwo\nthree is too long\n";
    // Configured outside, as the macro's named arguments allow only
    // literals: the limit may come from anywhere.
    let limit = 5;
    let log = pipeline::io::lines(input).max_line(limit);
    let out = Collected::new();
    let report = pipeline! {
        log >> map(|line| line.len()) >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(out.take(), [3, 3]);
    let log = report.stage("log").unwrap();
    assert_eq!((log.items_out, log.failed), (2, 1));
}

#[tokio::test]
async fn push_takes_items_from_another_task_under_back_pressure() {
    const CAPACITY: usize = 4;
    const ITEMS: u64 = 1_000;
    let (numbers, handle) = push::<u64>(CAPACITY);
    // Before the pipeline runs, the source holds `CAPACITY` items at most.
    for n in 0..CAPACITY as u64 {
        handle.send(n).await.unwrap();
    }
    let full = handle.try_send(99).unwrap_err();
    assert!(full.is_full(), "{full}");
    assert_eq!(handle.room(), 0);

    let sent = Arc::new(AtomicUsize::new(CAPACITY));
    let producer = {
        let sent = Arc::clone(&sent);
        tokio::spawn(async move {
            for n in CAPACITY as u64..ITEMS {
                // Waits while the pipeline is behind.
                handle.send(n).await.unwrap();
                sent.fetch_add(1, Ordering::SeqCst);
            }
            // Dropping the last handle ends the source.
        })
    };
    let mut seen = Vec::new();
    let mut most_ahead = 0;
    let report = pipeline! {
        numbers >> then(|n| async move {
            tokio::task::yield_now().await;
            n
        }) >> for_each(|n| {
            seen.push(n);
            let ahead = sent.load(Ordering::SeqCst) - seen.len();
            most_ahead = most_ahead.max(ahead);
        });
    }
    .run()
    .await
    .unwrap();
    producer.await.unwrap();
    assert_eq!(seen, (0..ITEMS).collect::<Vec<_>>());
    // The producer was never more than the source's capacity and the
    // chunk in flight (which the capacity bounds too) ahead of the sink.
    assert!(most_ahead <= 2 * CAPACITY, "ran {most_ahead} items ahead");
    assert_eq!(report.stage("numbers").unwrap().items_out, ITEMS);
}

#[tokio::test(start_paused = true)]
async fn interval_ticks_on_paused_time_until_stopped() {
    let ticks = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&ticks);
    let started = tokio::time::Instant::now();
    let handle = pipeline! {
        interval(10ms) >> map(move |at| at - started) >> for_each(move |since: Duration| {
            assert_eq!(since.as_millis() % 10, 0, "ticks fall on the period");
            counted.fetch_add(1, Ordering::SeqCst);
        });
    }
    .spawn();
    tokio::time::sleep(Duration::from_millis(95)).await;
    handle.stop();
    let report = handle.join().await.unwrap();
    // At 0, 10, .., 90 ms.
    assert_eq!(ticks.load(Ordering::SeqCst), 10);
    assert_eq!(report.stage("interval").unwrap().items_out, 10);
}

#[tokio::test(start_paused = true)]
async fn interval_with_an_expression_period_and_take_ends_by_itself() {
    let period = Duration::from_secs(30);
    let started = tokio::time::Instant::now();
    let out = Collected::new();
    pipeline! {
        interval(period, take = 3) >> map(|at| (at - started).as_secs()) >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(out.take(), [0, 30, 60]);
}

#[tokio::test]
async fn write_lines_flushes_every_threshold_and_at_the_end() {
    let recorder = Recorder::default();
    let report = pipeline! {
        iter(["alpha", "beta", "gamma", "delta", "epsilon"])
            >> write_lines(recorder.clone(), flush_every = 12B);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(recorder.text(), "alpha\nbeta\ngamma\ndelta\nepsilon\n");
    // The chunk's lines are gathered until they reach 12 bytes, written
    // and flushed (`alpha beta gamma`: 17 bytes, then `delta epsilon`: 14
    // more), then flushed once more when the pipeline completes.
    assert_eq!(recorder.flushes(), [17, 31, 31]);
    assert_eq!(report.stage("write_lines").unwrap().items_in, 5);
}

#[tokio::test]
async fn write_takes_bytes_and_text_and_flush_every_zero_flushes_each_chunk() {
    let recorder = Recorder {
        max_write: Some(3),
        ..Recorder::default()
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(1);
    let feeder = tokio::spawn(async move {
        for piece in [b"abc".to_vec(), b"defg".to_vec()] {
            tx.send(piece).await.unwrap();
            tokio::task::yield_now().await;
        }
    });
    let chunks = tokio_stream_from(rx);
    pipeline! {
        stream(chunks) >> write(recorder.clone(), flush_every = 0);
    }
    .run()
    .await
    .unwrap();
    feeder.await.unwrap();
    assert_eq!(recorder.text(), "abcdefg");
    // One flush per chunk (each piece came alone), and the final one.
    assert_eq!(recorder.flushes(), [3, 7, 7]);

    // Without `flush_every`, the default (32 KiB) holds small writes until
    // the end.
    let recorder = Recorder::default();
    pipeline! {
        iter([Bytes::from_static(b"x"), Bytes::from_static(b"y")]) >> write(recorder.clone());
    }
    .run()
    .await
    .unwrap();
    assert_eq!(recorder.text(), "xy");
    assert_eq!(recorder.flushes(), [2]);
}

/// A tokio `mpsc` receiver as a `Stream`.
fn tokio_stream_from<T>(mut rx: tokio::sync::mpsc::Receiver<T>) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn channel_sends_into_a_tokio_mpsc_receiver_and_closes_it_at_the_end() {
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(item) = rx.recv().await {
            got.push(item);
        }
        got
    });
    let report = pipeline! {
        iter(0..100u32) >> map(|n| n * 2) >> channel(tx);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(
        reader.await.unwrap(),
        (0..100).map(|n| n * 2).collect::<Vec<u32>>()
    );
    assert_eq!(report.stage("channel").unwrap().items_in, 100);
}

#[tokio::test]
async fn channel_to_a_dropped_receiver_fails_each_item_to_the_errors_port() {
    let (tx, rx) = tokio::sync::mpsc::channel::<u8>(4);
    drop(rx);
    let lost = Collected::new();
    let report = pipeline! {
        out = iter([1u8, 2, 3]) >> channel(tx);
        out[errors] >> map(|failed| failed.input) >> collect(&lost);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(lost.take(), [1, 2, 3]);
    assert_eq!(report.stage("out").unwrap().dead_lettered, 3);
}

#[tokio::test]
async fn sink_feeds_a_futures_sink_that_is_not_always_ready() {
    use futures::{SinkExt, StreamExt};
    // Capacity 0 (one slot per sender): not ready until the reader takes.
    let (tx, rx) = futures::channel::mpsc::channel::<String>(0);
    let reader = tokio::spawn(rx.collect::<Vec<String>>());
    let report = pipeline! {
        iter(1..=50u32) >> map(|n| format!("#{n}")) >> sink(tx.sink_map_err(|e| e.to_string()));
    }
    .run()
    .await
    .unwrap();
    let got = reader.await.unwrap();
    assert_eq!(got.len(), 50);
    assert_eq!((got[0].as_str(), got[49].as_str()), ("#1", "#50"));
    assert_eq!(report.stage("sink").unwrap().items_in, 50);
}

// The example of issue 6: three chains into one node, fed by a file read
// line by line, a TCP stream cut into frames, and a push handle; out
// through `write_lines`.

#[derive(Debug, Clone)]
struct Event {
    from: &'static str,
    text: String,
}

#[derive(Debug, Clone)]
struct Order {
    id: u32,
    amount: i64,
}

#[stage]
fn parse_line(line: String) -> Event {
    Event {
        from: "log",
        text: line,
    }
}

#[stage]
fn decode(frame: Bytes) -> Result<Event, std::str::Utf8Error> {
    Ok(Event {
        from: "tcp",
        text: std::str::from_utf8(&frame)?.to_owned(),
    })
}

#[stage]
fn validate(order: Order) -> Option<Event> {
    (order.amount > 0).then(|| Event {
        from: "orders",
        text: format!("order {} for {}", order.id, order.amount),
    })
}

#[stage]
fn normalize(event: Event) -> String {
    format!("{}: {}", event.from, event.text.trim().to_lowercase())
}

#[tokio::test]
async fn issue_6_example_three_sources_into_one_node() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let client = tokio::spawn(async move {
        let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
        socket.write_all(b"HELLO\r\nPING\r\n").await.unwrap();
        socket.write_all(b"BYE").await.unwrap();
        socket.shutdown().await.unwrap();
    });
    let (tcp_stream, _) = listener.accept().await.unwrap();

    let (orders_in, handle) = push::<Order>(1024);
    let sender = tokio::spawn(async move {
        for (id, amount) in [(1, 250), (2, -5), (3, 40)] {
            handle.send(Order { id, amount }).await.unwrap();
        }
    });
    let log: &[u8] = b"GET /index.html 200\nGET /missing 404\n";
    let stdout = Recorder::default();

    let report = pipeline! {
        norm = normalize;                                  // one node, fed by three chains
        lines(log) >> parse_line >> norm;
        frames(tcp_stream, b"\r\n", max_frame = 64KiB) >> decode >> norm;
        orders_in >> validate >> norm;
        norm >> write_lines(stdout.clone(), flush_every = 32KiB);
    }
    .run()
    .await
    .unwrap();
    client.await.unwrap();
    sender.await.unwrap();

    let mut written: Vec<String> = stdout.text().lines().map(str::to_owned).collect();
    written.sort();
    assert_eq!(
        written,
        [
            "log: get /index.html 200",
            "log: get /missing 404",
            "orders: order 1 for 250",
            "orders: order 3 for 40",
            "tcp: bye",
            "tcp: hello",
            "tcp: ping",
        ]
    );
    assert_eq!(report.stage("norm").unwrap().items_in, 7);
    assert_eq!(report.stage("validate").unwrap().filtered, 1);
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test]
async fn results_of_lines_keeps_errors_as_items() {
    let input: &[u8] = b"1\n\xc3\x28\n3\n";
    let out = Collected::new();
    pipeline! {
        results(lines(input)) >> map(|line: Result<String, LineError>| line.map_err(|e| e.line())) >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(
        out.take(),
        [Ok("1".to_owned()), Err(Some(2)), Ok("3".to_owned())]
    );
}

mod sources {
    use pipeline::prelude::*;

    #[stage(source)]
    pub fn numbers() -> Vec<u64> {
        vec![1, 2, 3]
    }

    #[stage(source)]
    pub fn letters() -> impl Iterator<Item = char> + Send {
        "ab".chars()
    }

    #[stage(source)]
    pub fn ticks() -> impl futures::Stream<Item = u8> + Send {
        futures::stream::iter([7u8, 8])
    }
}

#[tokio::test]
async fn stage_sources_and_values_at_the_head_of_a_chain() {
    use sources::{letters, ticks};
    let (numbers, letters_out, ticks_out, pushed) = (
        Collected::new(),
        Collected::new(),
        Collected::new(),
        Collected::new(),
    );
    let (queued, handle) = push::<&str>(4);
    handle.send("first").await.unwrap();
    handle.send("second").await.unwrap();
    drop(handle);
    let report = pipeline! {
        sources::numbers >> collect(&numbers);   // a path to a `#[stage(source)]` function
        letters >> collect(&letters_out);        // returning `impl Iterator`
        ticks >> collect(&ticks_out);            // returning `impl Stream`
        q = queued;                              // a value, bound: fans out
        q >> map(str::len) >> discard();
        q >> collect(&pushed);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(numbers.take(), [1, 2, 3]);
    assert_eq!(letters_out.take(), ['a', 'b']);
    assert_eq!(ticks_out.take(), [7, 8]);
    assert_eq!(pushed.take(), ["first", "second"]);
    assert_eq!(report.stage("numbers").unwrap().items_out, 3);
    assert_eq!(report.stage("q").unwrap().items_out, 2);
}
