//! The strategies end to end: an [`Output`] producing into an edge built
//! with [`edge_with`], and its receiver (or an [`Inlet`]) consuming.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};

use crate::chain::Chain;
use crate::channel::{EdgeReceiver, edge_with};
use crate::control::Control;
use crate::fan::{Inlet, Output};
use crate::metrics::{EdgeReport, EdgeStats};
use crate::options::{Backpressure, OnFull};
use crate::stage::Pull;

fn stats() -> Arc<EdgeStats> {
    Arc::new(EdgeStats::new("producer", "consumer", None))
}

/// Lets every task that can run, run (paused time only advances once all
/// are idle).
async fn settle() {
    sleep(Duration::from_millis(1)).await;
}

/// Ships `0..n` in chunks of `chunk` items, then finishes the output.
fn produce(mut output: Output<u32>, n: u32, chunk: u32) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut start = 0;
        while start < n {
            let end = (start + chunk).min(n);
            output.ship((start..end).collect()).await;
            start = end;
        }
        output.finish().await;
    })
}

/// Receives everything, pausing `pause` after each chunk, and returns the
/// items and the most items outstanding (sent and not yet received) seen
/// when a chunk arrived.
async fn consume(
    rx: &mut EdgeReceiver<u32>,
    counters: &EdgeStats,
    pause: Duration,
) -> (Vec<u32>, u64) {
    let mut received = Vec::new();
    let mut most = 0;
    while let Some(chunk) = rx.recv_chunk().await {
        most = most.max(counters.sent() - received.len() as u64);
        received.extend(chunk);
        sleep(pause).await;
    }
    (received, most)
}

#[test]
fn values_that_would_hang_are_clamped() {
    let (tx, _rx) = edge_with::<u8>(
        16,
        4,
        OnFull::Block,
        Some(Backpressure::Credit {
            initial: 0,
            replenish: 5,
        }),
    );
    assert_eq!(
        tx.backpressure(),
        Some(Backpressure::Credit {
            initial: 1,
            replenish: 1
        })
    );
    let (_tx, rx) = edge_with::<u8>(16, 4, OnFull::Block, Some(Backpressure::Pull { window: 0 }));
    assert_eq!(rx.backpressure(), Some(Backpressure::Pull { window: 1 }));
    let (tx, _rx) = edge_with::<u8>(
        16,
        4,
        OnFull::Block,
        Some(Backpressure::Adaptive { min: 0, max: 100 }),
    );
    assert_eq!(
        tx.backpressure(),
        Some(Backpressure::Adaptive { min: 1, max: 16 })
    );
}

#[tokio::test]
async fn without_a_strategy_an_output_has_no_pacer_and_counts_a_closed_edge() {
    let (tx, rx) = edge_with::<u32>(8, 4, OnFull::Block, None);
    let counters = stats();
    let mut output = Output::new(tx, Arc::clone(&counters));
    assert!(output.pacer().is_none());
    output.ship(vec![1, 2]).await;
    drop(rx);
    output.ship(vec![3, 4, 5]).await;
    output.finish().await;
    // Sent means shipped into the edge; the three shipped after the consumer
    // left never reach it.
    assert_eq!((counters.sent(), counters.dropped()), (5, 3));
}

#[tokio::test]
async fn an_output_counts_what_its_edge_drops_in_the_report() {
    for (policy, kept) in [
        (OnFull::DropNewest, vec![0, 1, 2, 3]),
        (OnFull::DropOldest, vec![6, 7, 8, 9]),
        (OnFull::Block, (0..10).collect()),
    ] {
        let (tx, mut rx) = edge_with::<u32>(4, 4, policy, None);
        let counters = stats();
        let mut output = Output::new(tx, Arc::clone(&counters));
        let consumer = tokio::spawn(async move {
            let mut items = Vec::new();
            while let Some(chunk) = rx.recv_chunk().await {
                items.extend(chunk);
            }
            items
        });
        // Shipped without yielding: a dropping edge cannot wait for the
        // consumer, a blocking one must.
        for i in 0..5 {
            output.ship(vec![2 * i, 2 * i + 1]).await;
        }
        output.finish().await;
        assert_eq!(consumer.await.unwrap(), kept, "{policy:?}");
        let report = EdgeReport::from_stats(&counters);
        assert_eq!(
            (report.sent, report.dropped),
            (10, 10 - kept.len() as u64),
            "{policy:?}"
        );
    }
}

// Credit.

#[tokio::test(start_paused = true)]
async fn credit_never_lets_more_than_initial_items_be_outstanding() {
    let (tx, mut rx) = edge_with::<u32>(
        1000,
        16,
        OnFull::Block,
        Some(Backpressure::Credit {
            initial: 10,
            replenish: 4,
        }),
    );
    let counters = stats();
    let producer = produce(Output::new(tx, Arc::clone(&counters)), 100, 16);
    let (received, most) = consume(&mut rx, &counters, Duration::from_millis(10)).await;
    producer.await.unwrap();
    assert_eq!(received, (0..100).collect::<Vec<_>>());
    assert_eq!(most, 10, "the producer uses its credits, and no more");
    assert_eq!((counters.sent(), counters.dropped()), (100, 0));
}

#[tokio::test(start_paused = true)]
async fn credit_is_granted_in_batches_of_replenish() {
    let (tx, mut rx) = edge_with::<u32>(
        100,
        100,
        OnFull::Block,
        Some(Backpressure::Credit {
            initial: 4,
            replenish: 3,
        }),
    );
    let counters = stats();
    let producer = produce(Output::new(tx, Arc::clone(&counters)), 10, 10);
    settle().await;
    assert_eq!(counters.sent(), 4);
    // Four items taken: one batch of three credits, one item towards the next.
    assert_eq!(rx.recv_chunk().await, Some(vec![0, 1, 2, 3]));
    settle().await;
    assert_eq!(counters.sent(), 7);
    assert_eq!(rx.recv_chunk().await, Some(vec![4, 5, 6]));
    settle().await;
    assert_eq!(counters.sent(), 10);
    assert_eq!(rx.recv_chunk().await, Some(vec![7, 8, 9]));
    producer.await.unwrap();
    assert_eq!(rx.recv_chunk().await, None);
    assert_eq!(counters.dropped(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_producer_waiting_for_credit_sees_the_consumer_leave() {
    let (tx, rx) = edge_with::<u32>(
        100,
        100,
        OnFull::Block,
        Some(Backpressure::Credit {
            initial: 2,
            replenish: 1,
        }),
    );
    let counters = stats();
    let producer = produce(Output::new(tx, Arc::clone(&counters)), 5, 5);
    settle().await;
    assert!(!producer.is_finished());
    drop(rx);
    producer.await.unwrap();
    // The three items held back for want of credit are lost and counted.
    assert_eq!((counters.sent(), counters.dropped()), (5, 3));
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_ship_keeps_the_items_it_held_back() {
    let (tx, mut rx) = edge_with::<u32>(
        100,
        100,
        OnFull::Block,
        Some(Backpressure::Credit {
            initial: 2,
            replenish: 2,
        }),
    );
    let counters = stats();
    let mut output = Output::new(tx, Arc::clone(&counters));
    assert!(
        timeout(Duration::from_secs(1), output.ship((0..5).collect()))
            .await
            .is_err()
    );
    assert_eq!((output.held(), counters.sent()), (3, 2));
    let consumer = tokio::spawn(async move {
        let mut items = Vec::new();
        while let Some(chunk) = rx.recv_chunk().await {
            items.extend(chunk);
        }
        items
    });
    output.finish().await;
    assert_eq!(consumer.await.unwrap(), vec![0, 1, 2, 3, 4]);
    assert_eq!((counters.sent(), counters.dropped()), (5, 0));
}

#[tokio::test]
async fn items_an_edge_drops_give_their_credit_back() {
    // More credit than room: without the credits of dropped items coming
    // back, the producer would wait forever for a consumer that never reads.
    let (tx, mut rx) = edge_with::<u32>(
        2,
        2,
        OnFull::DropNewest,
        Some(Backpressure::Credit {
            initial: 4,
            replenish: 4,
        }),
    );
    let counters = stats();
    let mut output = Output::new(tx, Arc::clone(&counters));
    output
        .ship((0..10).collect())
        .now_or_never()
        .expect("never waits for credit the edge threw away");
    assert_eq!((counters.sent(), counters.dropped()), (10, 8));
    assert_eq!(rx.dropped_items(), 8);
    assert_eq!(rx.try_recv_chunk(), Some(vec![0, 1]));
}

// Rate.

/// Receives everything and returns when each chunk arrived.
async fn arrivals(rx: &mut EdgeReceiver<u32>, start: Instant) -> Vec<(Duration, usize)> {
    let mut seen = Vec::new();
    while let Some(chunk) = rx.recv_chunk().await {
        seen.push((start.elapsed(), chunk.len()));
    }
    seen
}

#[tokio::test(start_paused = true)]
async fn rate_lets_a_burst_through_then_paces_the_rest() {
    let start = Instant::now();
    let (tx, mut rx) = edge_with::<u32>(
        1000,
        64,
        OnFull::Block,
        Some(Backpressure::Rate {
            per_sec: 10.0,
            burst: 5,
        }),
    );
    let counters = stats();
    let producer = produce(Output::new(tx, Arc::clone(&counters)), 25, 25);
    let seen = arrivals(&mut rx, start).await;
    producer.await.unwrap();
    // 5 at once, then one every 100 ms: the 25th leaves (25 - 5) / 10 s in.
    assert_eq!(seen[0], (Duration::ZERO, 5));
    assert_eq!(seen.len(), 21);
    for (i, &(at, len)) in seen.iter().enumerate().skip(1) {
        assert_eq!((at, len), (Duration::from_millis(100 * i as u64), 1));
    }
    assert_eq!(seen.last().unwrap().0, Duration::from_secs(2));
    assert_eq!((counters.sent(), counters.dropped()), (25, 0));
}

#[tokio::test(start_paused = true)]
async fn producers_of_a_merge_share_the_rate() {
    let start = Instant::now();
    let (tx, mut rx) = edge_with::<u32>(
        1000,
        64,
        OnFull::Block,
        Some(Backpressure::Rate {
            per_sec: 10.0,
            burst: 2,
        }),
    );
    let (a, b) = (stats(), stats());
    let first = produce(Output::new(tx.clone(), Arc::clone(&a)), 10, 5);
    let second = produce(Output::new(tx, Arc::clone(&b)), 10, 5);
    let seen = arrivals(&mut rx, start).await;
    first.await.unwrap();
    second.await.unwrap();
    assert_eq!(seen.iter().map(|&(_, len)| len).sum::<usize>(), 20);
    // 20 items at 10 a second after a burst of 2.
    assert_eq!(seen.last().unwrap().0, Duration::from_millis(1800));
    assert_eq!((a.sent(), b.sent()), (10, 10));
}

// Adaptive.

#[tokio::test]
async fn adaptive_chunks_grow_on_a_shallow_edge_and_shrink_on_a_deep_one() {
    let (tx, mut rx) = edge_with::<u32>(
        128,
        128,
        OnFull::Block,
        Some(Backpressure::Adaptive { min: 2, max: 16 }),
    );
    // A second producer, without a pacer, sets the edge's depth.
    let mut filler = tx.clone();
    let counters = stats();
    let mut output = Output::new(tx, Arc::clone(&counters));
    let size = |output: &Output<u32>| output.pacer().and_then(|p| p.chunk_size());
    assert_eq!(size(&output), Some(2));

    // Shallow (at most a quarter full): the size doubles before each chunk,
    // up to `max`; the last chunk is what is left.
    output.ship((0..40).collect()).await;
    let mut sizes = Vec::new();
    while let Some(chunk) = rx.try_recv_chunk() {
        sizes.push(chunk.len());
    }
    assert_eq!(sizes, [4, 8, 16, 12]);
    assert_eq!(size(&output), Some(16));

    // Deep (at least three quarters full): it halves, down to `min`.
    filler.send_chunk((0..100).collect()).await.unwrap();
    let mut shrinking = Vec::new();
    for _ in 0..4 {
        output.ship(vec![1, 2, 3]).await;
        shrinking.push(size(&output).unwrap());
    }
    assert_eq!(shrinking, [8, 4, 2, 2]);
    output.ship((0..10).collect()).await;
    let mut sizes = Vec::new();
    while let Some(chunk) = rx.try_recv_chunk() {
        sizes.push(chunk.len());
    }
    // The filler's chunk, then three items each time: whole while the size
    // is 8 or 4, split once it is 2; then ten items in chunks of 2.
    assert_eq!(sizes, [100, 3, 3, 2, 1, 2, 1, 2, 2, 2, 2, 2]);

    // Shallow again: it grows back.
    output.ship(vec![7]).await;
    assert_eq!(size(&output), Some(4));
    assert_eq!((counters.sent(), counters.dropped()), (40 + 12 + 10 + 1, 0));
}

#[tokio::test(start_paused = true)]
async fn adaptive_chunks_follow_a_consumer_that_slows_down() {
    let (tx, mut rx) = edge_with::<u32>(
        256,
        64,
        OnFull::Block,
        Some(Backpressure::Adaptive { min: 4, max: 64 }),
    );
    let counters = stats();
    let mut output = Output::new(tx, Arc::clone(&counters));
    let producer = tokio::spawn(async move {
        for round in 0..400u32 {
            output.ship((round * 64..(round + 1) * 64).collect()).await;
            // A source that has new items every millisecond.
            sleep(Duration::from_millis(1)).await;
        }
        output.finish().await;
    });
    let start = Instant::now();
    let mut fast = Vec::new();
    let mut slow = Vec::new();
    let mut received = 0;
    while let Some(chunk) = rx.recv_chunk().await {
        received += chunk.len();
        if start.elapsed() < Duration::from_millis(100) {
            // Keeps up: takes each chunk as it comes.
            fast.push(chunk.len());
        } else {
            // Falls behind: the edge fills up.
            slow.push(chunk.len());
            sleep(Duration::from_millis(5)).await;
        }
    }
    producer.await.unwrap();
    assert_eq!(received, 400 * 64);
    assert_eq!(fast.iter().max(), Some(&64), "grows to max: {fast:?}");
    assert!(
        slow[slow.len() - 100..].iter().all(|&len| len == 4),
        "shrinks to min: {:?}",
        &slow[slow.len() - 100..]
    );
    assert_eq!((counters.sent(), counters.dropped()), (400 * 64, 0));
}

// Pull.

#[tokio::test(start_paused = true)]
async fn pull_sends_only_what_the_consumer_requested() {
    let (tx, mut rx) = edge_with::<u32>(
        1000,
        64,
        OnFull::Block,
        Some(Backpressure::Pull { window: 8 }),
    );
    let counters = stats();
    let producer = produce(Output::new(tx, Arc::clone(&counters)), 50, 16);
    sleep(Duration::from_secs(1)).await;
    assert_eq!(
        counters.sent(),
        0,
        "nothing leaves before the consumer asks"
    );
    assert_eq!(rx.queued_items(), 0);
    let (received, most) = consume(&mut rx, &counters, Duration::from_millis(10)).await;
    producer.await.unwrap();
    assert_eq!(received, (0..50).collect::<Vec<_>>());
    assert_eq!(most, 8, "never more than a window outstanding");
    assert_eq!((counters.sent(), counters.dropped()), (50, 0));
}

#[tokio::test(start_paused = true)]
async fn an_inlet_requests_a_window_each_time_it_is_pulled() {
    let (tx, rx) = edge_with::<u32>(
        1000,
        64,
        OnFull::Block,
        Some(Backpressure::Pull { window: 3 }),
    );
    let counters = stats();
    let producer = produce(Output::new(tx, Arc::clone(&counters)), 7, 7);
    let mut inlet = Inlet::new(rx, 64);
    let control = Control::new();
    let mut out = Vec::new();
    let mut pulls = Vec::new();
    loop {
        out.clear();
        let pull = inlet.pull(&mut out, &control).await.unwrap();
        if pull == Pull::Done {
            break;
        }
        pulls.push(out.clone());
        assert!(counters.sent() as usize - pulls.concat().len() <= 3);
        sleep(Duration::from_millis(10)).await;
    }
    producer.await.unwrap();
    assert_eq!(pulls, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
}
