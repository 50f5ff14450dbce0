//! Reading an edge without waiting never blocks the thread, so it cannot
//! swallow a wake-up of the task that reads it (issue 14, part 0: two
//! parallel stages in a row hung in `run().await` on a multi-thread
//! runtime).
//!
//! Tokio's `try_recv` on an unbounded channel, when it finds a message
//! that a sender on another thread has claimed a slot for but not written
//! yet, parks the thread on the same thread-local parker that
//! `Runtime::block_on` sleeps on, and so consumes an unpark meant for the
//! task being polled. These tests hold a sender in exactly that window,
//! deterministically: the channel's 33rd message needs a new block of 32
//! slots, and this binary's allocator stalls that allocation (the first
//! one of at least [`BLOCK_BYTES`] on a thread that armed it) until the
//! test releases it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError, mpsc};
use std::task::{Context, Poll};
use std::time::Duration;

use pipeline_runtime::channel::{EdgeReceiver, edge};

/// A block of tokio's channel holds 32 messages; of an edge of `u32`
/// (a `Vec` and a permit count, 32 bytes each) it weighs more than this.
/// Nothing else the sender allocates while armed is this large.
const BLOCK_BYTES: usize = 1024;

/// Slots in a block of tokio's channel.
const BLOCK_SLOTS: u32 = 32;

thread_local! {
    /// Whether this thread's next large allocation stalls.
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

/// A sender is stalled in the allocation.
static STALLED: AtomicBool = AtomicBool::new(false);
/// The stalled allocation may go on.
static RELEASED: AtomicBool = AtomicBool::new(false);

/// The system allocator, which stalls a large allocation on a thread that
/// armed it.
struct Stalling;

// SAFETY: forwards to the system allocator; only waits first.
unsafe impl GlobalAlloc for Stalling {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= BLOCK_BYTES && ARMED.try_with(|armed| armed.replace(false)) == Ok(true)
        {
            STALLED.store(true, Ordering::SeqCst);
            while !RELEASED.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Stalling = Stalling;

/// One test at a time: the stall flags are global.
static SERIAL: Mutex<()> = Mutex::new(());

/// What [`take_while_a_chunk_is_being_queued`] saw.
struct Seen<R> {
    /// What `take` returned.
    took: R,
    /// Whether the task was polled again only because a watchdog woke it:
    /// its own wake-up was lost.
    rescued: bool,
    /// The chunks read after `take`, until the edge closed.
    rest: Vec<Vec<u32>>,
}

/// Queues chunks `[0]`, `[1]`, .. `[31]` on an edge, reads all but the
/// last `left` of them, then has a sender on another thread queue `[32]`
/// and stalls it midway (its slot claimed, not written). Then, inside a
/// multi-thread runtime's `block_on`, in a poll in which the task has
/// just been woken, calls `take`, returns `Pending`, and checks that the
/// task is polled again without outside help.
fn take_while_a_chunk_is_being_queued<R>(
    left: u32,
    mut take: impl FnMut(&mut EdgeReceiver<u32>, &mut Context<'_>) -> R,
) -> Seen<R> {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    STALLED.store(false, Ordering::SeqCst);
    RELEASED.store(false, Ordering::SeqCst);
    let (mut tx, mut rx) = edge::<u32>(1024, 1);
    for i in 0..BLOCK_SLOTS {
        tx.try_send(i).expect("room for every chunk");
    }
    for _ in left..BLOCK_SLOTS {
        rx.try_recv_chunk().expect("a queued chunk");
    }
    // The sender is let go of only after the poll: its end of the edge
    // wakes the receiver's waker, which could stand in for a lost wake-up.
    let (hold_tx, hold_rx) = mpsc::channel::<()>();
    let sender = std::thread::spawn(move || {
        ARMED.with(|armed| armed.set(true));
        tx.try_send(BLOCK_SLOTS).expect("room for the last chunk");
        let _ = hold_rx.recv();
        drop(tx);
    });
    while !STALLED.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
    // Lets the sender go on once a `take` that blocks until then (as
    // tokio's `try_recv` does) has surely started blocking. A `take` that
    // does not block has returned long before; the test waits for the
    // chunk afterwards either way.
    let releaser = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(200));
        RELEASED.store(true, Ordering::SeqCst);
    });
    let (waker_tx, waker_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let rescued = std::sync::Arc::new(AtomicBool::new(false));
    let watchdog = std::thread::spawn({
        let rescued = std::sync::Arc::clone(&rescued);
        move || {
            let waker: std::task::Waker = waker_rx.recv().expect("the task's waker");
            // Far longer than a lost wake-up takes to show.
            if done_rx.recv_timeout(Duration::from_secs(10)).is_err() {
                rescued.store(true, Ordering::SeqCst);
                waker.wake();
            }
        }
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let (took, rest) = runtime.block_on(async {
        let mut took = None;
        poll_fn(|cx| {
            if took.is_some() {
                return Poll::Ready(());
            }
            waker_tx.send(cx.waker().clone()).expect("the watchdog");
            // A wake-up delivered while the task is being polled, as when
            // a worker of another parallel stage reports back: the task
            // must be polled again once this poll returns `Pending`.
            cx.waker().wake_by_ref();
            took = Some(take(&mut rx, cx));
            Poll::Pending
        })
        .await;
        let _ = done_tx.send(());
        let _ = hold_tx.send(());
        let mut rest = Vec::new();
        while let Some(chunk) = rx.recv_chunk().await {
            rest.push(chunk);
        }
        (took.expect("taken"), rest)
    });
    sender.join().expect("the sender");
    releaser.join().expect("the releaser");
    watchdog.join().expect("the watchdog");
    Seen {
        took,
        rescued: rescued.load(Ordering::SeqCst),
        rest,
    }
}

#[test]
fn try_recv_chunk_does_not_swallow_a_wake_up_while_a_chunk_is_being_queued() {
    let seen = take_while_a_chunk_is_being_queued(0, |rx, _| rx.try_recv_chunk());
    assert!(
        !seen.rescued,
        "the task's wake-up was lost: `try_recv_chunk` blocked the thread"
    );
    // Not there yet, and not lost: it arrives once queued.
    assert_eq!(seen.took, None);
    assert_eq!(seen.rest, vec![vec![BLOCK_SLOTS]]);
}

#[test]
fn recv_into_does_not_swallow_a_wake_up_while_its_next_chunk_is_being_queued() {
    let seen = take_while_a_chunk_is_being_queued(1, |rx, cx| {
        let mut out = Vec::new();
        let more = pin!(rx.recv_into(&mut out, 64)).poll(cx);
        (more, out)
    });
    assert!(
        !seen.rescued,
        "the task's wake-up was lost: `recv_into` blocked the thread"
    );
    // The chunk that was queued; the one being queued comes next.
    assert_eq!(seen.took, (Poll::Ready(true), vec![BLOCK_SLOTS - 1]));
    assert_eq!(seen.rest, vec![vec![BLOCK_SLOTS]]);
}
