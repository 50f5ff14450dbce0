//! Reading a large input through `frames` and `lines` into a slow sink
//! keeps memory bounded by the buffers, not by the input: measured with a
//! counting allocator (the only test in this binary, so nothing else
//! allocates meanwhile).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use pipeline_runtime::chain::{Fuse, Head, drive, drive_into, join};
use pipeline_runtime::channel::edge;
use pipeline_runtime::fan::{Broadcast, Inlet, Output};
use pipeline_runtime::graph::NodeKind;
use pipeline_runtime::io::{for_each_async, frames, lines};
use pipeline_runtime::lifecycle::Control;
use pipeline_runtime::metrics::{EdgeStats, StageStats};
use pipeline_runtime::stage::{Never, Source};
use tokio::io::{AsyncRead, ReadBuf};

/// Counts the bytes allocated now and the most allocated at once.
struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Starts a measurement: the peak from now on, above what is allocated now.
fn reset_peak() -> usize {
    let now = CURRENT.load(Ordering::Relaxed);
    PEAK.store(now, Ordering::Relaxed);
    now
}

/// A generated input of `total` bytes of 100-byte lines, made as it is
/// read, in reads of up to 64 KiB.
struct Generated {
    left: usize,
    line: u64,
    at: usize,
    current: [u8; 100],
}

impl Generated {
    fn new(total: usize) -> Self {
        let mut generated = Generated {
            left: total,
            line: 0,
            at: 0,
            current: [b' '; 100],
        };
        generated.next_line();
        generated
    }

    fn next_line(&mut self) {
        let text = format!("{:>12} GET /orders/{} HTTP/1.1", self.line, self.line % 977);
        self.current = [b'.'; 100];
        self.current[..text.len()].copy_from_slice(text.as_bytes());
        self.current[99] = b'\n';
        self.line += 1;
        self.at = 0;
    }
}

impl AsyncRead for Generated {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut room = buf.remaining().min(64 * 1024).min(self.left);
        while room > 0 {
            let n = room.min(100 - self.at);
            let at = self.at;
            buf.put_slice(&self.current[at..at + n]);
            self.at += n;
            self.left -= n;
            room -= n;
            if self.at == 100 {
                self.next_line();
            }
        }
        Poll::Ready(Ok(()))
    }
}

fn stats(name: &'static str, kind: NodeKind) -> Arc<StageStats> {
    Arc::new(StageStats::new(name, kind))
}

/// Runs `source` through an edge of `capacity` items into a sink that
/// yields to the runtime for every item; returns how many items it got.
async fn through_a_slow_sink<S>(source: S, capacity: usize) -> u64
where
    S: Source,
{
    let read = stats("read", NodeKind::Source);
    let slow = stats("slow", NodeKind::Sink);
    let (tx, rx) = edge(capacity, 64);
    let link = Arc::new(EdgeStats::new("read", "slow", None));
    let producer = drive_into(
        Head::new(source, read, 512),
        Broadcast::single(Output::new(tx, link)),
        Control::new(),
    );
    let consumer: Fuse<_, _, S::Out, Never, Never> = Fuse::new(
        Inlet::new(rx, 64),
        for_each_async(|item: S::Out| async move {
            drop(item);
            tokio::task::yield_now().await;
        }),
        slow.clone(),
    );
    join(producer, drive(consumer, Control::new()))
        .await
        .expect("the pipeline runs");
    slow.items_in()
}

#[test]
fn reading_a_large_input_into_a_slow_sink_keeps_memory_bounded() {
    const INPUT: usize = 32 * 1024 * 1024;
    const BOUND: usize = 1024 * 1024;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();

    let base = reset_peak();
    let got = rt.block_on(through_a_slow_sink(
        frames(Generated::new(INPUT), b"\n", 64 * 1024),
        1024,
    ));
    let frames_peak = PEAK.load(Ordering::Relaxed) - base;
    assert_eq!(
        got,
        (INPUT / 100) as u64 + 1,
        "every line, and the partial last one"
    );
    assert!(
        frames_peak < BOUND,
        "frames: {frames_peak} bytes at most, for a {INPUT}-byte input"
    );

    let base = reset_peak();
    let got = rt.block_on(through_a_slow_sink(lines(Generated::new(INPUT)), 1024));
    let lines_peak = PEAK.load(Ordering::Relaxed) - base;
    assert_eq!(got, (INPUT / 100) as u64 + 1);
    assert!(
        lines_peak < BOUND,
        "lines: {lines_peak} bytes at most, for a {INPUT}-byte input"
    );
    println!("peak memory for a {INPUT}-byte input: frames {frames_peak} B, lines {lines_peak} B");
}
