use super::*;
use crate::metrics::EdgeStats;
use crate::options::OnFull;
use futures::FutureExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::timeout;

/// Drains every remaining chunk after all senders are gone.
async fn drain<T>(rx: &mut EdgeReceiver<T>) -> Vec<Vec<T>> {
    let mut chunks = Vec::new();
    while let Some(chunk) = rx.recv_chunk().await {
        chunks.push(chunk);
    }
    chunks
}

#[test]
fn clamps_capacity_and_chunk() {
    let (tx, rx) = edge::<u8>(0, 0);
    assert_eq!((tx.capacity(), tx.chunk_size(), rx.capacity()), (1, 1, 1));
    let (tx, _rx) = edge::<u8>(4, 100);
    assert_eq!((tx.capacity(), tx.chunk_size()), (4, 4));
    let (tx, _rx) = edge::<u8>(usize::MAX, 8);
    assert_eq!(tx.capacity(), super::MAX_CAPACITY);
}

#[tokio::test]
async fn items_arrive_in_order() {
    let (mut tx, mut rx) = edge(64, 4);
    for i in 0..10 {
        tx.send(i).await.unwrap();
    }
    tx.close().await.unwrap();
    let chunks = drain(&mut rx).await;
    assert_eq!(chunks, vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]]);
}

#[tokio::test]
async fn chunk_is_sent_only_when_full() {
    let (mut tx, mut rx) = edge(16, 3);
    tx.send('a').await.unwrap();
    tx.send('b').await.unwrap();
    assert_eq!(rx.try_recv_chunk(), None);
    assert_eq!(tx.buffered(), 2);
    assert_eq!(rx.queued_items(), 0);

    tx.send('c').await.unwrap();
    assert_eq!(tx.buffered(), 0);
    assert_eq!(rx.queued_items(), 3);
    assert_eq!(rx.try_recv_chunk(), Some(vec!['a', 'b', 'c']));
    assert_eq!(rx.queued_items(), 0);
}

#[tokio::test]
async fn flush_sends_partial_chunk() {
    let (mut tx, mut rx) = edge(16, 8);
    tx.send(1).await.unwrap();
    tx.send(2).await.unwrap();
    assert_eq!(rx.try_recv_chunk(), None);
    tx.flush().await.unwrap();
    assert_eq!(rx.try_recv_chunk(), Some(vec![1, 2]));
    // Flushing an empty buffer sends nothing.
    tx.flush().await.unwrap();
    assert_eq!(rx.try_recv_chunk(), None);
}

#[tokio::test(start_paused = true)]
async fn sender_blocks_at_capacity_and_resumes_after_recv() {
    let (mut tx, mut rx) = edge(4, 2);
    for i in 0..4 {
        tx.send(i).await.unwrap();
    }
    assert_eq!(rx.queued_items(), 4);

    // The fifth item is only buffered; the sixth completes a chunk that
    // cannot fit.
    tx.send(4).await.unwrap();
    assert!(
        timeout(Duration::from_secs(60), tx.send(5)).await.is_err(),
        "send must wait for capacity"
    );
    // The cancelled send left item 5 buffered, nothing was lost.
    assert_eq!(tx.buffered(), 2);

    assert_eq!(rx.recv_chunk().await, Some(vec![0, 1]));
    // Capacity for two items is free again: the buffered chunk ships.
    tx.flush()
        .now_or_never()
        .expect("flush must not block once capacity is free")
        .unwrap();
    drop(tx);
    assert_eq!(drain(&mut rx).await, vec![vec![2, 3], vec![4, 5]]);
}

#[tokio::test(start_paused = true)]
async fn blocked_sender_is_woken_by_receiver() {
    let (mut tx, mut rx) = edge(2, 2);
    let producer = tokio::spawn(async move {
        for i in 0..6 {
            tx.send(i).await.unwrap();
        }
        tx.close().await.unwrap();
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!producer.is_finished());
    assert_eq!(rx.queued_items(), 2);
    let chunks = drain(&mut rx).await;
    assert_eq!(chunks, vec![vec![0, 1], vec![2, 3], vec![4, 5]]);
    producer.await.unwrap();
}

#[tokio::test]
async fn capacity_counts_items_not_chunks() {
    // Three single-item chunks fill a capacity of 3 items.
    let (mut tx, mut rx) = edge(3, 1);
    for i in 0..3 {
        tx.send(i).await.unwrap();
    }
    assert_eq!(rx.queued_items(), 3);
    assert!(tx.send(3).now_or_never().is_none(), "fourth item must wait");

    // A chunk of 2 items needs 2 permits: one free slot is not enough.
    let (mut tx, mut rx2) = edge(3, 1);
    tx.send(0).await.unwrap();
    tx.send(1).await.unwrap();
    assert!(tx.send_chunk(vec![2, 3]).now_or_never().is_none());
    assert_eq!(rx2.try_recv_chunk(), Some(vec![0]));
    tx.flush().now_or_never().unwrap().unwrap();
    assert_eq!(rx2.try_recv_chunk(), Some(vec![1]));
    assert_eq!(rx2.try_recv_chunk(), Some(vec![2, 3]));

    assert_eq!(rx.try_recv_chunk(), Some(vec![0]));
}

#[tokio::test(start_paused = true)]
async fn cloned_senders_all_deliver_then_end_of_stream() {
    let (tx, mut rx) = edge(8, 4);
    let mut producers = Vec::new();
    for p in 0..3u32 {
        let mut tx = tx.clone();
        producers.push(tokio::spawn(async move {
            for i in 0..50u32 {
                tx.send(p * 1000 + i).await.unwrap();
                if i % 7 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            tx.close().await.unwrap();
        }));
    }
    drop(tx);

    let mut received = Vec::new();
    while let Some(chunk) = rx.recv_chunk().await {
        assert!(chunk.len() <= 4);
        received.extend(chunk);
    }
    assert_eq!(received.len(), 150);
    for p in 0..3u32 {
        let from_p: Vec<u32> = received.iter().copied().filter(|x| x / 1000 == p).collect();
        let expected: Vec<u32> = (0..50).map(|i| p * 1000 + i).collect();
        assert_eq!(from_p, expected, "per-sender order is preserved");
    }
    for producer in producers {
        producer.await.unwrap();
    }
    assert_eq!(rx.recv_chunk().await, None);
}

#[tokio::test]
async fn dropping_sender_delivers_buffered_items() {
    let (mut tx, mut rx) = edge(8, 4);
    tx.send(1).await.unwrap();
    tx.send(2).await.unwrap();
    drop(tx);
    assert_eq!(rx.recv_chunk().await, Some(vec![1, 2]));
    assert_eq!(rx.recv_chunk().await, None);
}

#[tokio::test]
async fn dropping_sender_at_capacity_overcommits_instead_of_losing() {
    let (mut tx, mut rx) = edge(2, 2);
    tx.send(1).await.unwrap();
    tx.send(2).await.unwrap();
    tx.send(3).await.unwrap();
    drop(tx);
    assert_eq!(rx.queued_items(), 3);
    assert_eq!(drain(&mut rx).await, vec![vec![1, 2], vec![3]]);
    assert_eq!(rx.queued_items(), 0);
}

#[tokio::test]
async fn overcommitted_chunk_does_not_inflate_capacity() {
    let (mut tx, mut rx) = edge(2, 2);
    let mut extra = tx.clone();
    tx.send(1).await.unwrap();
    tx.send(2).await.unwrap();
    extra.send(3).await.unwrap();
    drop(extra); // over-committed: no permits held
    assert_eq!(rx.recv_chunk().await, Some(vec![1, 2]));
    assert_eq!(rx.recv_chunk().await, Some(vec![3]));
    // Exactly `capacity` permits are free again, not more.
    tx.send(4).await.unwrap();
    tx.send(5).await.unwrap();
    tx.send(6).await.unwrap();
    assert!(tx.send(7).now_or_never().is_none());
}

#[tokio::test(start_paused = true)]
async fn oversized_send_chunk_is_split_without_deadlock() {
    let (mut tx, mut rx) = edge(3, 2);
    let consumer = tokio::spawn(async move { drain(&mut rx).await });
    tx.send(0).await.unwrap();
    tx.send_chunk((1..=10).collect()).await.unwrap();
    drop(tx);
    let chunks = consumer.await.unwrap();
    assert!(chunks.iter().all(|c| c.len() <= 3), "{chunks:?}");
    assert_eq!(chunks.concat(), (0..=10).collect::<Vec<_>>());
    assert_eq!(
        chunks[1..],
        [vec![1, 2, 3], vec![4, 5, 6], vec![7, 8, 9], vec![10]]
    );
}

#[tokio::test]
async fn send_chunk_merges_small_chunk_with_partial_buffer() {
    let (mut tx, mut rx) = edge(8, 4);
    tx.send(1).await.unwrap();
    tx.send_chunk(vec![2, 3]).await.unwrap();
    assert_eq!(rx.try_recv_chunk(), Some(vec![1, 2, 3]));
    tx.send_chunk(Vec::new()).await.unwrap();
    assert_eq!(rx.try_recv_chunk(), None);
}

#[tokio::test]
async fn recv_into_appends_available_chunks_up_to_max() {
    let (mut tx, mut rx) = edge(16, 2);
    for i in 0..7 {
        tx.send(i).await.unwrap();
    }
    tx.flush().await.unwrap();

    let mut out = Vec::new();
    assert!(rx.recv_into(&mut out, 3).await);
    // Whole chunks: [0, 1] then [2, 3] since 2 < 3.
    assert_eq!(out, vec![0, 1, 2, 3]);

    out.clear();
    assert!(rx.recv_into(&mut out, 100).await);
    assert_eq!(out, vec![4, 5, 6]);

    drop(tx);
    let mut rest = vec![42];
    assert!(!rx.recv_into(&mut rest, 10).await);
    assert_eq!(rest, vec![42]);
}

#[tokio::test]
async fn dropped_receiver_returns_items_to_senders() {
    let (mut tx, rx) = edge(4, 2);
    tx.send(1).await.unwrap();
    drop(rx);
    assert!(tx.is_closed());
    assert_eq!(tx.send(2).await, Err(Closed(2)));
    assert_eq!(tx.flush().await, Err(Closed(vec![1])));
    assert_eq!(tx.send_chunk(vec![3, 4]).await, Err(Closed(vec![3, 4])));
    assert_eq!(tx.try_send(5), Err(TrySendError::Closed(5)));
    assert_eq!(
        Closed(7).to_string(),
        "edge closed: the receiver was dropped"
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_receiver_wakes_blocked_sender() {
    let (mut tx, mut rx) = edge(2, 2);
    let producer = tokio::spawn(async move {
        for i in 0..6 {
            if let Err(Closed(item)) = tx.send(i).await {
                return (item, tx.take_buffered());
            }
        }
        panic!("the edge should have closed");
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(rx.try_recv_chunk(), Some(vec![0, 1]));
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Items 2 and 3 now hold the capacity, so the chunk [4, 5] waits.
    assert_eq!(rx.queued_items(), 2);
    drop(rx);
    let (failed, rest) = producer.await.unwrap();
    assert_eq!(failed, 5);
    assert_eq!(rest, vec![4]);
}

#[tokio::test]
async fn try_send_and_try_flush() {
    let (mut tx, mut rx) = edge(2, 2);
    assert_eq!(tx.try_send(1), Ok(()));
    assert_eq!(tx.try_send(2), Ok(()));
    assert_eq!(tx.try_send(3), Ok(()), "buffered locally");
    assert_eq!(tx.try_send(4), Err(TrySendError::Full(4)));
    assert_eq!(tx.buffered(), 1);
    assert_eq!(tx.try_flush(), Ok(false));

    assert_eq!(rx.try_recv_chunk(), Some(vec![1, 2]));
    assert_eq!(tx.try_flush(), Ok(true));
    assert_eq!(tx.buffered(), 0);
    assert_eq!(rx.try_recv_chunk(), Some(vec![3]));
    assert_eq!(TrySendError::Full(9).into_inner(), 9);
}

// `on_full` policies.

fn stats(from: &'static str) -> Arc<EdgeStats> {
    Arc::new(EdgeStats::new(from, "sink", None))
}

/// Sends `items` one by one; each send must complete without waiting.
fn send_now<T>(tx: &mut EdgeSender<T>, items: impl IntoIterator<Item = T>) {
    for item in items {
        tx.send(item)
            .now_or_never()
            .expect("a dropping edge never waits")
            .unwrap();
    }
}

#[test]
fn edge_is_edge_with_block_and_no_strategy() {
    let (tx, rx) = edge::<u8>(8, 2);
    assert_eq!((tx.on_full(), rx.on_full()), (OnFull::Block, OnFull::Block));
    assert_eq!((tx.backpressure(), rx.backpressure()), (None, None));
    let (tx, rx) = edge_with::<u8>(0, 0, OnFull::DropOldest, None);
    assert_eq!((tx.capacity(), tx.chunk_size(), rx.capacity()), (1, 1, 1));
    assert_eq!(rx.on_full(), OnFull::DropOldest);
}

#[tokio::test]
async fn drop_newest_keeps_the_oldest_items_and_counts_the_rest() {
    let (mut tx, mut rx) = edge_with(4, 2, OnFull::DropNewest, None);
    let counters = stats("src");
    tx.count_drops_in(Arc::clone(&counters));
    send_now(&mut tx, 0..10);
    assert_eq!(rx.queued_items(), 4, "the capacity bound holds");
    assert_eq!((rx.dropped_items(), counters.dropped()), (6, 6));

    // A chunk that only partly fits keeps its oldest items.
    assert_eq!(rx.recv_chunk().await, Some(vec![0, 1]));
    tx.send_chunk(vec![10, 11, 12])
        .now_or_never()
        .unwrap()
        .unwrap();
    assert_eq!(counters.dropped(), 7);
    drop(tx);
    assert_eq!(drain(&mut rx).await, vec![vec![2, 3], vec![10, 11]]);
    assert_eq!(rx.dropped_items(), 7);
}

#[tokio::test]
async fn drop_oldest_evicts_queued_items_to_keep_the_newest() {
    let (mut tx, mut rx) = edge_with(4, 2, OnFull::DropOldest, None);
    let counters = stats("src");
    tx.count_drops_in(Arc::clone(&counters));
    send_now(&mut tx, 0..10);
    assert_eq!(rx.queued_items(), 4);
    assert_eq!((rx.dropped_items(), counters.dropped()), (6, 6));
    drop(tx);
    assert_eq!(drain(&mut rx).await, vec![vec![6, 7], vec![8, 9]]);
    assert_eq!(rx.queued_items(), 0);
}

#[tokio::test]
async fn drop_oldest_evicts_part_of_a_chunk() {
    let (mut tx, mut rx) = edge_with(5, 2, OnFull::DropOldest, None);
    send_now(&mut tx, 0..6); // [0, 1] [2, 3] [4, 5]: one item too many
    assert_eq!(rx.queued_items(), 5);
    assert_eq!(rx.dropped_items(), 1);
    tx.send_chunk(vec![6, 7, 8, 9])
        .now_or_never()
        .unwrap()
        .unwrap();
    assert_eq!(rx.dropped_items(), 5);
    drop(tx);
    assert_eq!(drain(&mut rx).await, vec![vec![5], vec![6, 7, 8, 9]]);
}

#[tokio::test]
async fn drop_oldest_charges_an_eviction_to_the_sender_of_the_item() {
    let (mut a, mut rx) = edge_with(4, 2, OnFull::DropOldest, None);
    let mut b = a.clone();
    let (from_a, from_b) = (stats("a"), stats("b"));
    a.count_drops_in(Arc::clone(&from_a));
    b.count_drops_in(Arc::clone(&from_b));
    send_now(&mut a, [1, 2, 3, 4]);
    send_now(&mut b, [101, 102]);
    // b's chunk evicted two of a's items.
    assert_eq!((from_a.dropped(), from_b.dropped()), (2, 0));
    send_now(&mut b, [103, 104, 105, 106]);
    assert_eq!((from_a.dropped(), from_b.dropped()), (4, 2));
    assert_eq!(rx.dropped_items(), 6);
    drop((a, b));
    assert_eq!(drain(&mut rx).await, vec![vec![103, 104], vec![105, 106]]);
}

#[tokio::test]
async fn try_send_never_reports_full_on_a_dropping_edge() {
    let (mut tx, mut rx) = edge_with(2, 1, OnFull::DropNewest, None);
    for i in 0..5 {
        assert_eq!(tx.try_send(i), Ok(()));
    }
    assert_eq!(tx.try_flush(), Ok(true));
    assert_eq!(rx.dropped_items(), 3);
    assert_eq!(rx.try_recv_chunk(), Some(vec![0]));
    assert_eq!(rx.try_recv_chunk(), Some(vec![1]));
    assert_eq!(rx.try_recv_chunk(), None);
}

#[tokio::test(start_paused = true)]
async fn block_loses_nothing_with_a_slow_consumer() {
    let (mut tx, mut rx) = edge_with(8, 3, OnFull::Block, None);
    let producer = tokio::spawn(async move {
        for i in 0..200u32 {
            tx.send(i).await.unwrap();
        }
        tx.close().await.unwrap();
    });
    let mut received = Vec::new();
    while let Some(chunk) = rx.recv_chunk().await {
        assert!(rx.queued_items() <= 8);
        received.extend(chunk);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    producer.await.unwrap();
    assert_eq!(received, (0..200).collect::<Vec<_>>());
    assert_eq!(rx.dropped_items(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_waiting_receiver_is_woken_by_a_push_and_by_the_last_sender() {
    for policy in [OnFull::DropNewest, OnFull::DropOldest] {
        let (mut tx, mut rx) = edge_with(4, 2, policy, None);
        let extra = tx.clone();
        let consumer = tokio::spawn(async move {
            let mut chunks = Vec::new();
            while let Some(chunk) = rx.recv_chunk().await {
                chunks.push(chunk);
            }
            chunks
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        tx.send(1).await.unwrap();
        tx.send(2).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        tx.send(3).await.unwrap();
        drop(tx); // delivers 3
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!consumer.is_finished(), "a sender is still alive");
        drop(extra);
        assert_eq!(consumer.await.unwrap(), vec![vec![1, 2], vec![3]]);
    }
}

#[tokio::test]
async fn a_dropping_sender_applies_its_policy_on_drop() {
    let (mut tx, mut rx) = edge_with(2, 4, OnFull::DropNewest, None);
    let counters = stats("src");
    tx.count_drops_in(Arc::clone(&counters));
    send_now(&mut tx, [1, 2, 3]); // chunk clamped to 2: [1, 2] ships, 3 is buffered
    drop(tx); // the edge is full: 3 is dropped, not over-committed
    assert_eq!(counters.dropped(), 1);
    assert_eq!(drain(&mut rx).await, vec![vec![1, 2]]);
}

#[tokio::test]
async fn a_dropped_receiver_closes_a_dropping_edge() {
    let (mut tx, rx) = edge_with(4, 2, OnFull::DropOldest, None);
    tx.send(1).await.unwrap();
    drop(rx);
    assert!(tx.is_closed());
    assert_eq!(tx.send(2).await, Err(Closed(2)));
    assert_eq!(tx.flush().await, Err(Closed(vec![1])));
    assert_eq!(tx.try_send(3), Err(TrySendError::Closed(3)));
    // Nothing was dropped by the policy: losses to a closed edge are the
    // producer's to count.
    assert_eq!(tx.dropped_items(), 0);
}

#[tokio::test(start_paused = true)]
async fn concurrent_senders_on_a_dropping_edge_respect_capacity() {
    for policy in [OnFull::DropNewest, OnFull::DropOldest] {
        let (tx, mut rx) = edge_with(16, 4, policy, None);
        let mut producers = Vec::new();
        for p in 0..4u64 {
            let mut tx = tx.clone();
            producers.push(tokio::spawn(async move {
                for i in 0..1000u64 {
                    tx.send(p * 10_000 + i).await.unwrap();
                    if i % 3 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                tx.close().await.unwrap();
            }));
        }
        drop(tx);
        let mut received = 0u64;
        while let Some(chunk) = rx.recv_chunk().await {
            assert!(rx.queued_items() <= 16);
            received += chunk.len() as u64;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        for producer in producers {
            producer.await.unwrap();
        }
        assert!(rx.dropped_items() > 0, "{policy:?}");
        assert_eq!(received + rx.dropped_items(), 4000, "{policy:?}");
    }
}
