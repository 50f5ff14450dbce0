//! `accumulate(..)` and `batch(..)` written in `pipeline!`: the fields the
//! macro reads become the policy the runtime applies. Each test is named
//! after the behaviour a user relies on.

use std::collections::HashMap;
use std::time::Duration;

use pipeline::accumulate::{Accumulator, Completeness, UnfinishedReason};
use pipeline::prelude::*;

/// A stream that yields `items`, sleeping `gap` before each, then stays
/// open, silent, for `quiet` before it ends.
fn then_quiet<T: Send + 'static>(
    items: Vec<T>,
    gap: Duration,
    quiet: Duration,
) -> impl futures::Stream<Item = T> + Send + 'static {
    use futures::StreamExt;
    let silence = futures::stream::once(tokio::time::sleep(quiet)).filter_map(|()| async { None });
    slowly(items, gap).chain(silence)
}

/// A stream that yields `items`, sleeping `gap` before each.
fn slowly<T: Send + 'static>(
    items: Vec<T>,
    gap: Duration,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::unfold(items.into_iter(), move |mut items| async move {
        let item = items.next()?;
        tokio::time::sleep(gap).await;
        Some((item, items))
    })
}

#[tokio::test]
async fn batches_hold_one_key_each_in_arrival_order_and_never_exceed_max_items() {
    let batches = Collected::new();
    let report = pipeline! {
        iter(0..10_000u64) >> accumulate(key = |x| x % 7, max_items = 64) >> collect(&batches);
    }
    .run()
    .await
    .unwrap();
    let batches = batches.take();
    let mut seen: Vec<u64> = Vec::new();
    let mut per_key: HashMap<u64, Vec<u64>> = HashMap::new();
    for batch in &batches {
        assert!(batch.len() <= 64 && !batch.is_empty());
        assert!(batch.items().iter().all(|x| x % 7 == *batch.key()));
        per_key
            .entry(*batch.key())
            .or_default()
            .extend(batch.items());
        seen.extend(batch.items());
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        (0..10_000).collect::<Vec<_>>(),
        "every item exactly once"
    );
    for (key, items) in per_key {
        let expected: Vec<u64> = (0..10_000).filter(|x| x % 7 == key).collect();
        assert_eq!(items, expected, "key {key} keeps its order");
    }
    let stage = report.stage("accumulate").unwrap();
    assert_eq!(stage.items_in, 10_000);
    assert_eq!(stage.items_out, batches.len() as u64);
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test(start_paused = true)]
async fn max_latency_flushes_a_waiting_batch_without_new_input() {
    let flushed_at = Collected::new();
    let started = tokio::time::Instant::now();
    pipeline! {
        stream(then_quiet(vec![1u64, 2, 3], Duration::from_millis(5), Duration::from_secs(1)))
            >> batch(max_items = 100, max_latency = 50ms)
            >> map(move |b| (b.into_items(), started.elapsed()))
            >> collect(&flushed_at);
    }
    .run()
    .await
    .unwrap();
    let flushed = flushed_at.take();
    assert_eq!(flushed.len(), 1);
    let (items, at) = &flushed[0];
    assert_eq!(items, &vec![1, 2, 3]);
    // The first item arrived at 5ms; the batch waited 50ms after it, not
    // for the end of the input (at 15ms) and not longer.
    assert_eq!(*at, Duration::from_millis(55));
}

#[tokio::test(start_paused = true)]
async fn ttl_without_partial_flush_sends_the_unfinished_state_to_errors() {
    let delivered = Collected::new();
    let expired = Collected::new();
    let report = pipeline! {
        sessions = stream(then_quiet(vec![(1u32, "a"), (2, "b"), (1, "c")], Duration::from_millis(10), Duration::from_secs(1)))
            >> accumulate(key = |e: &(u32, &str)| e.0, ttl = 15ms, partial_flush = false);
        sessions >> collect(&delivered);
        sessions[errors] >> collect(&expired);
    }
    .run()
    .await
    .unwrap();
    assert!(delivered.take().is_empty());
    let expired = expired.take();
    assert_eq!(expired.len(), 3, "{expired:?}");
    assert!(
        expired
            .iter()
            .all(|u| u.reason == UnfinishedReason::Expired)
    );
    let keys: Vec<u32> = expired.iter().map(|u| u.key).collect();
    assert_eq!(keys, [1, 2, 1]);
    let held: usize = expired
        .iter()
        .map(|u| u.partial.as_ref().map_or(0, |b| b.len()))
        .sum();
    assert_eq!(held, 3, "the expired states carry their items");
    let stage = report.stage("sessions").unwrap();
    assert_eq!(stage.dead_lettered, 3);
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test(start_paused = true)]
async fn ttl_with_partial_flush_emits_what_is_there() {
    let delivered = Collected::new();
    pipeline! {
        stream(slowly(vec![1u64, 2, 3], Duration::from_millis(10)))
            >> accumulate(key = |x| x % 2, ttl = 25ms)
            >> map(|b| b.into_items())
            >> collect(&delivered);
    }
    .run()
    .await
    .unwrap();
    let mut delivered = delivered.take();
    delivered.sort();
    assert_eq!(delivered, vec![vec![1, 3], vec![2]]);
}

#[tokio::test]
async fn max_bytes_measures_strings_by_length_and_other_items_by_size_closure() {
    let words = Collected::new();
    let sized = Collected::new();
    pipeline! {
        iter(["aaaa", "bb", "cc", "dddddd", "e"].map(String::from))
            >> batch(max_bytes = 6B)
            >> map(|b| b.total_bytes())
            >> collect(&words);
        iter(vec![3u64, 3, 3, 5, 1])
            >> batch(max_bytes = 6B, size = |x: &u64| *x)
            >> map(|b| b.into_items())
            >> collect(&sized);
    }
    .run()
    .await
    .unwrap();
    let totals = words.take();
    // "aaaa" and "bb" share a batch (6 bytes); each later item would take
    // the open batch over 6, so it starts a new one.
    assert_eq!(totals, vec![6, 2, 6, 1]);
    assert_eq!(sized.take(), vec![vec![3, 3], vec![3], vec![5, 1]]);
}

/// Reassembles numbered parts into a message; a message is complete when
/// it has `total` parts.
#[derive(Default)]
struct Reassemble;

impl Accumulator<(u32, u32, u32, char)> for Reassemble {
    type Key = u32;
    /// The parts so far, and how many there are in all.
    type State = (usize, Vec<(u32, char)>);
    type Out = (u32, String);

    fn key(&mut self, part: &(u32, u32, u32, char)) -> u32 {
        part.0
    }
    fn open(&mut self, _: &u32) -> Self::State {
        (0, Vec::new())
    }
    fn update(&mut self, _: &u32, state: &mut Self::State, part: (u32, u32, u32, char)) {
        state.0 = part.2 as usize;
        state.1.push((part.1, part.3));
    }
    fn check(&mut self, key: &u32, state: &mut Self::State) -> Completeness<(u32, String)> {
        if state.1.len() == state.0 {
            state.1.sort();
            Completeness::Complete((*key, state.1.iter().map(|p| p.1).collect()))
        } else {
            Completeness::Incomplete
        }
    }
    fn flush(&mut self, key: u32, mut state: Self::State) -> Option<(u32, String)> {
        state.1.sort();
        Some((key, state.1.iter().map(|p| p.1).collect()))
    }
}

#[tokio::test(start_paused = true)]
async fn a_custom_accumulator_completes_messages_and_expires_the_rest() {
    let done = Collected::new();
    let lost = Collected::new();
    let parts = vec![
        (1, 1, 2, 'i'),
        (2, 0, 3, 'a'),
        (1, 0, 2, 'h'),
        (2, 1, 3, 'b'),
        // part 2 of message 2 never arrives
    ];
    pipeline! {
        messages = stream(then_quiet(parts, Duration::from_millis(1), Duration::from_secs(5)))
            >> accumulate(Reassemble, ttl = 1s, partial_flush = false);
        messages >> collect(&done);
        messages[errors] >> map(|u| (u.key, u.reason)) >> collect(&lost);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(done.take(), vec![(1, "hi".to_string())]);
    assert_eq!(lost.take(), vec![(2, UnfinishedReason::Expired)]);
}

#[tokio::test]
async fn spilling_to_disk_gives_the_same_batches_as_memory() {
    let in_memory = Collected::new();
    let spilled = Collected::new();
    let report = pipeline! {
        numbers = iter(0..20_000u64);
        numbers >> accumulate(key = |x| x % 500, max_items = 50) >> map(|b| b.into_items()) >> collect(&in_memory);
        numbers >> accumulate(key = |x| x % 500, max_items = 50, spill, max_memory = 1KiB) >> map(|b| b.into_items()) >> collect(&spilled);
    }
    .run()
    .await
    .unwrap();
    let (mut a, mut b) = (in_memory.take(), spilled.take());
    a.sort();
    b.sort();
    assert_eq!(a, b);
    let spilling = report.stage("accumulate#2").unwrap();
    let accumulator = spilling.accumulator.as_ref().unwrap();
    assert!(accumulator.bytes_spilled > 0, "{report}");
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test]
async fn spill_goes_to_a_directory_chosen_at_run_time() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    // A directory known only at run time, as from configuration.
    let dir = std::env::temp_dir().join(format!("pipeline-spill-dir-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let watched = dir.clone();
    let files_seen = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&files_seen);
    let batches = Collected::new();
    let report = pipeline! {
        per_key = iter(0..20_000u64)
            >> accumulate(key = |x| x % 500, max_items = 50, spill = &dir, max_memory = 1KiB);
        per_key
            >> inspect(move |_| {
                if std::fs::read_dir(&watched).unwrap().next().is_some() {
                    seen.store(true, Ordering::Relaxed);
                }
            })
            >> map(|b| b.into_items())
            >> collect(&batches);
    }
    .run()
    .await
    .unwrap();
    let mut items: Vec<u64> = batches.take().into_iter().flatten().collect();
    items.sort_unstable();
    assert_eq!(items, (0..20_000).collect::<Vec<_>>());
    let accumulator = report
        .stage("per_key")
        .unwrap()
        .accumulator
        .as_ref()
        .unwrap();
    assert!(accumulator.bytes_spilled > 0, "{report}");
    assert!(
        files_seen.load(Ordering::Relaxed),
        "no spill files appeared under {}",
        dir.display()
    );
    // The run's files are removed with the accumulator.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(start_paused = true)]
async fn stop_flushes_open_batches() {
    let batches = Collected::new();
    let out = batches.clone();
    let handle = pipeline! {
        stream(slowly((0..1_000_000u64).collect(), Duration::from_millis(1)))
            >> accumulate(key = |x| x % 3, max_items = 1000)
            >> collect(&out);
    }
    .spawn();
    tokio::time::sleep(Duration::from_millis(50)).await;
    handle.stop();
    let report = handle.join().await.unwrap();
    let batches = batches.take();
    let items: usize = batches.iter().map(|b| b.len()).sum();
    assert!(items > 0);
    assert_eq!(items as u64, report.stage("stream").unwrap().items_out);
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test]
async fn a_key_function_that_panics_fails_that_item_and_the_rest_go_on() {
    let batches = Collected::new();
    let report = pipeline! {
        grouped = iter(0..100u64) >> accumulate(key = |x| {
            assert!(*x != 13, "unlucky");
            x % 2
        }, max_items = 10);
        grouped >> map(|b| b.len()) >> collect(&batches);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(batches.take().iter().sum::<usize>(), 99);
    let stage = report.stage("grouped").unwrap();
    assert_eq!((stage.items_in, stage.failed), (100, 1));
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test(start_paused = true)]
async fn inspect_shows_what_an_accumulator_holds_while_it_runs() {
    let handle = pipeline! {
        sessions = stream(then_quiet((0..30u64).collect(), Duration::from_millis(1), Duration::from_secs(10)))
            >> accumulate(key = |x| x % 3, max_items = 100);
        sessions >> discard();
    }
    .spawn();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let held = handle.inspect("sessions").unwrap();
    let accumulator = held.accumulator.as_ref().unwrap();
    assert_eq!((accumulator.open_keys, accumulator.items_held), (3, 30));
    handle.stop();
    let report = handle.join().await.unwrap();
    let accumulator = report.stage("sessions").unwrap().accumulator.unwrap();
    assert_eq!(accumulator.items_held, 0);
    assert_eq!(
        accumulator.flushes.stop, 3,
        "stop flushed the three open batches"
    );
    assert!(report.stopped);
}

/// Fails every item from 50 on.
#[stage]
fn below_fifty(x: u64) -> Result<u64, String> {
    if x < 50 {
        Ok(x)
    } else {
        Err(format!("{x} is too big"))
    }
}

/// Waits for a run that fails with an item under `on_error = fail`, and
/// checks that the accumulation `grouped` let go of every item it took
/// before the failure (items 0 to 49), in batches, holding nothing.
async fn fails_after_letting_go_of_fifty_items(
    handle: pipeline::PipelineHandle,
    batches: Collected<Batch<u64, u64>>,
) {
    while !handle.is_finished() {
        tokio::task::yield_now().await;
    }
    let grouped = handle.inspect("grouped").unwrap();
    let error = handle.join().await.unwrap_err();
    assert!(
        matches!(error, pipeline::Error::ItemFailed { .. }),
        "{error}"
    );
    let mut items: Vec<u64> = batches
        .take()
        .into_iter()
        .flat_map(|b| b.into_items())
        .collect();
    items.sort_unstable();
    assert_eq!(
        items,
        (0..50).collect::<Vec<_>>(),
        "every item taken before the failure is in a batch"
    );
    assert_eq!((grouped.items_in, grouped.passed), (50, 50));
    assert_eq!(grouped.accumulator.unwrap().items_held, 0);
}

#[tokio::test]
async fn an_accumulation_after_a_stage_that_fails_the_run_still_lets_go_of_its_open_batches() {
    // No `max_latency`/`ttl`: the accumulation pulls `below_fifty` itself,
    // in the same chain; the failure stops the source, and the chain ends.
    let batches = Collected::new();
    let handle = pipeline! {
        grouped = iter(0..1_000u64)
            >> #[on_error = fail] below_fifty
            >> accumulate(key = |x: &u64| x % 3, max_items = 1_000);
        grouped >> collect(&batches);
    }
    .spawn();
    fails_after_letting_go_of_fifty_items(handle, batches).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accumulation_after_parallel_workers_that_fail_the_run_still_lets_go_of_its_open_batches()
 {
    // The accumulation pulls the workers' head in the same chain: when a
    // worker fails an item, the source stops and the accumulation must
    // still let go of what it took, as it would at the end of an edge.
    let batches = Collected::new();
    let handle = pipeline! {
        grouped = iter(0..1_000u64)
            >> #[parallel = 2] #[ordered] #[on_error = fail] below_fifty
            >> accumulate(key = |x: &u64| x % 3, max_items = 1_000);
        grouped >> collect(&batches);
    }
    .spawn();
    fails_after_letting_go_of_fifty_items(handle, batches).await;
}

#[tokio::test]
async fn batch_byte_totals_without_max_bytes_are_string_lengths_or_in_memory_sizes() {
    let words = Collected::new();
    let numbers = Collected::new();
    pipeline! {
        iter(["a", "bb", "ccc"].map(String::from)) >> batch(max_items = 10) >> collect(&words);
        iter(0..5u64) >> batch(max_items = 10) >> collect(&numbers);
    }
    .run()
    .await
    .unwrap();
    let words = words.take();
    assert_eq!(words.len(), 1);
    assert_eq!(words[0].total_bytes(), 1 + 2 + 3);
    let numbers = numbers.take();
    assert_eq!(numbers.len(), 1);
    assert_eq!(numbers[0].total_bytes(), 5 * 8);
}
