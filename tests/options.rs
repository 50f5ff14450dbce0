//! Execution options written in `pipeline!`: each test is named after the
//! behaviour the option promises, and checks the accounting invariant.

use std::time::Duration;

use pipeline::prelude::*;

#[tokio::test(start_paused = true)]
async fn drop_newest_keeps_the_oldest_items_and_counts_the_rest() {
    let kept = Collected::new();
    let report = pipeline! {
        numbers = iter(0..1000u64);
        numbers >> #[buffer = 16] #[on_full = drop_newest] then(|x| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            x
        }) >> collect(&kept);
        numbers >> discard();
    }
    .run()
    .await
    .unwrap();
    let kept = kept.take();
    let edge = report.edge("numbers", "then").unwrap();
    assert!(edge.dropped > 0, "{report}");
    assert_eq!(kept.len() as u64 + edge.dropped, 1000, "{report}");
    assert!(
        kept.windows(2).all(|w| w[0] < w[1]),
        "order kept among survivors"
    );
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test(start_paused = true)]
async fn block_loses_nothing_behind_a_slow_consumer() {
    let kept = Collected::new();
    let report = pipeline! {
        numbers = iter(0..500u64);
        numbers >> #[buffer = 8] #[on_full = block] then(|x| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            x
        }) >> collect(&kept);
        numbers >> discard();
    }
    .run()
    .await
    .unwrap();
    assert_eq!(kept.take(), (0..500).collect::<Vec<_>>());
    assert_eq!(report.edge("numbers", "then").unwrap().dropped, 0);
}

#[tokio::test(start_paused = true)]
async fn rate_holds_a_producer_to_its_token_bucket() {
    let started = tokio::time::Instant::now();
    let report = pipeline! {
        iter(0..50u64) >> #[backpressure = rate(10, 10)] discard();
    }
    .run()
    .await
    .unwrap();
    // A burst of 10 at once, then 40 more at 10 a second.
    assert_eq!(started.elapsed(), Duration::from_secs(4));
    assert_eq!(report.stage("discard").unwrap().items_in, 50);
}

#[tokio::test(start_paused = true)]
async fn a_pipeline_default_applies_to_every_edge_and_a_node_option_overrides_it() {
    let kept = Collected::new();
    let report = pipeline! {
        #![on_full = drop_newest]
        numbers = iter(0..100u64);
        numbers >> #[buffer = 4] then(|x| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            x
        }) >> collect(&kept);
        numbers >> #[on_full = block] #[buffer = 4] then(|x| async move { x }) >> discard();
    }
    .run()
    .await
    .unwrap();
    let dropping = report.edge("numbers", "then").unwrap();
    let blocking = report.edge("numbers", "then#2").unwrap();
    assert!(dropping.dropped > 0, "{report}");
    assert_eq!(blocking.dropped, 0, "{report}");
    assert_eq!(kept.take().len() as u64, 100 - dropping.dropped);
}

#[stage]
fn parse(line: String) -> Result<u64, std::num::ParseIntError> {
    line.trim().parse()
}

fn lines(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn on_error_fail_stops_the_run_with_the_stage_and_item() {
    let result = pipeline! {
        iter(lines(&["1", "2", "x", "4"])) >> #[on_error = fail] parse >> discard();
    }
    .run()
    .await;
    match result {
        Err(error @ pipeline::Error::ItemFailed { .. }) => {
            let message = error.to_string();
            assert!(
                message.contains("`parse`") && message.contains("item 2"),
                "{message}"
            );
        }
        other => panic!("expected the run to fail, got {other:?}"),
    }
}

#[tokio::test]
async fn on_error_dead_letter_sends_failed_items_to_the_errors_port() {
    let bad = Collected::new();
    let report = pipeline! {
        numbers = iter(lines(&["1", "x", "3"])) >> #[on_error = dead_letter] parse;
        numbers >> discard();
        numbers[errors] >> map(|f| f.input) >> collect(&bad);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(bad.take(), vec!["x".to_string()]);
    assert_eq!(report.stage("numbers").unwrap().dead_lettered, 1);
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test(start_paused = true)]
async fn retry_tries_a_failing_item_again_with_backoff() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let attempts = AtomicU32::new(0);
    let done = Collected::new();
    let started = tokio::time::Instant::now();
    let report = pipeline! {
        iter(vec![7u64])
            >> #[on_error = retry(3, backoff = 100ms)] map(|x| {
                // Fails (by panicking) on the first two attempts.
                if attempts.fetch_add(1, Ordering::SeqCst) < 2 {
                    panic!("flaky");
                }
                x
            })
            >> collect(&done);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(done.take(), vec![7]);
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    // Two waits: about 100ms then about 200ms, with jitter below each.
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(150) && waited <= Duration::from_millis(300),
        "{waited:?}"
    );
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_fails_items_fast_without_calling_the_stage() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let calls = AtomicU32::new(0);
    let report = pipeline! {
        iter(0..100u64)
            >> #[breaker(error_rate = 0.5, window = 10s, min_calls = 5, cooldown = 5s)] map(|x| {
                calls.fetch_add(1, Ordering::SeqCst);
                assert!(x > 1000, "always fails");
                x
            })
            >> discard();
    }
    .run()
    .await
    .unwrap();
    let calls = calls.load(Ordering::SeqCst);
    assert!(
        calls < 100,
        "the breaker stopped calling the stage after {calls} calls"
    );
    let map = report.stage("map").unwrap();
    assert_eq!(map.failed, 100, "{report}");
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_ordered_keeps_input_order_across_workers() {
    let out = Collected::new();
    let report = pipeline! {
        iter(0..20_000u64)
            >> #[parallel = 2] #[ordered] map(|x| {
                // Uneven work, so the workers finish out of order.
                let mut h = x;
                for _ in 0..(x % 7) * 50 {
                    h = h.wrapping_mul(6364136223846793005).wrapping_add(1);
                }
                std::hint::black_box(h);
                x * 2
            })
            >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(
        out.take(),
        (0..20_000u64).map(|x| x * 2).collect::<Vec<_>>()
    );
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_by_key_keeps_each_keys_order() {
    let out = Collected::new();
    pipeline! {
        iter(0..10_000u64)
            >> #[parallel = 4] #[by_key(|x: &u64| x % 10)] map(|x| x)
            >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    let got = out.take();
    assert_eq!(got.len(), 10_000);
    for key in 0..10 {
        let of_key: Vec<u64> = got.iter().copied().filter(|x| x % 10 == key).collect();
        assert!(
            of_key.windows(2).all(|w| w[0] < w[1]),
            "key {key} out of order"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_unordered_delivers_every_item() {
    let out = Collected::new();
    pipeline! {
        iter(0..5_000u64) >> #[parallel = cpu] #[unordered] filter(|x| x % 3 != 0) >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    let mut got = out.take();
    got.sort_unstable();
    assert_eq!(
        got,
        (0..5_000u64).filter(|x| x % 3 != 0).collect::<Vec<_>>()
    );
}

/// Attempts per item, shared by the clones of a parallel stage.
type Attempts = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<u64, u32>>>;

fn attempt(attempts: &Attempts, x: u64) -> u32 {
    let mut attempts = attempts.lock().unwrap();
    let n = attempts.entry(x).or_insert(0);
    *n += 1;
    *n
}

#[tokio::test(start_paused = true)]
async fn parallel_retry_tries_each_failing_item_again_on_its_worker() {
    let attempts = Attempts::default();
    let counted = attempts.clone();
    let done = Collected::new();
    let report = pipeline! {
        iter(0..200u64)
            >> #[parallel = 2] #[on_error = retry(3, backoff = 100ms)] map(move |x| {
                // Every third item fails on its first two attempts.
                if x % 3 == 0 && attempt(&counted, x) < 3 {
                    panic!("flaky");
                }
                x
            })
            >> collect(&done);
    }
    .run()
    .await
    .unwrap();
    // A retried item leaves after the other items of its chunk.
    let mut done = done.take();
    done.sort_unstable();
    assert_eq!(done, (0..200u64).collect::<Vec<_>>());
    let attempts = attempts.lock().unwrap();
    assert_eq!(attempts.len(), 67);
    assert!(attempts.values().all(|&n| n == 3), "{attempts:?}");
    let map = report.stage("map").unwrap();
    // The first panic failed its whole call; the retries call one item at
    // a time, so the other items of that call succeed on their first retry.
    assert_eq!(map.failed, 0, "{report}");
    assert!(map.retries >= 67 * 2, "{report}");
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test(start_paused = true)]
async fn parallel_retry_exhausted_sends_the_item_to_the_errors_port() {
    let bad = Collected::new();
    let good = Collected::new();
    let report = pipeline! {
        numbers = iter(lines(&["1", "x", "3", "y", "5"]))
            >> #[parallel = 2] #[on_error = retry(2, backoff = 10ms)] parse;
        numbers >> collect(&good);
        numbers[errors] >> map(|f| f.input) >> collect(&bad);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(good.take(), vec![1, 3, 5]);
    let mut bad = bad.take();
    bad.sort();
    assert_eq!(bad, lines(&["x", "y"]));
    let numbers = report.stage("numbers").unwrap();
    assert_eq!(
        (numbers.dead_lettered, numbers.retries, numbers.failed),
        (2, 4, 0),
        "{report}"
    );
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_dead_letter_sends_failed_items_to_the_errors_port() {
    let bad = Collected::new();
    let good = Collected::new();
    let input: Vec<String> = (0..1_000u64)
        .map(|x| {
            if x % 10 == 0 {
                format!("bad{x}")
            } else {
                x.to_string()
            }
        })
        .collect();
    let report = pipeline! {
        numbers = iter(input) >> #[parallel = 2] parse;
        numbers >> collect(&good);
        numbers[errors] >> map(|f| f.input) >> collect(&bad);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(
        good.take(),
        (0..1_000u64).filter(|x| x % 10 != 0).collect::<Vec<_>>()
    );
    let mut bad = bad.take();
    bad.sort();
    let mut expected: Vec<String> = (0..1_000u64)
        .filter(|x| x % 10 == 0)
        .map(|x| format!("bad{x}"))
        .collect();
    expected.sort();
    assert_eq!(bad, expected);
    assert_eq!(report.stage("numbers").unwrap().dead_lettered, 100);
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test(start_paused = true)]
async fn parallel_breaker_is_shared_by_the_workers_and_fails_items_fast() {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counted = calls.clone();
    let report = pipeline! {
        iter(0..1_000u64)
            >> #[parallel = 4] #[breaker(error_rate = 0.5, window = 10s, min_calls = 5, cooldown = 5s)] map(move |x| {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                assert!(x > 1_000_000, "always fails");
                x
            })
            >> discard();
    }
    .run()
    .await
    .unwrap();
    let calls = calls.load(std::sync::atomic::Ordering::SeqCst);
    // The workers share one breaker: it opens after the stage's fifth
    // failed call, whichever workers made them, not after five per worker.
    assert!(
        (5..=8).contains(&calls),
        "the breaker let {calls} calls through"
    );
    let map = report.stage("map").unwrap();
    assert_eq!(map.failed, 1_000, "{report}");
    assert!(report.is_balanced(), "{report}");
}

/// A stage that takes its time, and says by default that a full input
/// edge drops the newest items: a pipeline that fuses it to the stage
/// before still gets that edge.
#[stage(buffer = 16, on_full = drop_newest)]
async fn slow_sample(x: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(1)).await;
    x
}

#[tokio::test(start_paused = true)]
async fn a_stage_default_buffer_and_on_full_put_an_edge_before_a_fused_stage() {
    let kept = Collected::new();
    let report = pipeline! {
        iter(0..1000u64) >> map(|x| x) >> slow_sample >> collect(&kept);
    }
    .run()
    .await
    .unwrap();
    let kept = kept.take();
    let edge = report.edge("map", "slow_sample").unwrap();
    assert!(edge.dropped > 0, "{report}");
    assert_eq!(kept.len() as u64 + edge.dropped, 1000, "{report}");
    assert_eq!(edge.sent, 1000, "{report}");
    assert!(
        kept.windows(2).all(|w| w[0] < w[1]),
        "order kept among survivors"
    );
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test(start_paused = true)]
async fn a_node_option_overrides_a_stage_default_on_full() {
    let kept = Collected::new();
    let report = pipeline! {
        iter(0..300u64) >> map(|x| x) >> #[on_full = block] slow_sample >> collect(&kept);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(kept.take(), (0..300).collect::<Vec<_>>());
    assert_eq!(report.edge("map", "slow_sample").unwrap().dropped, 0);
    assert!(report.is_balanced(), "{report}");
}

/// Fails the first two times it sees an item (by panicking), by default
/// retried.
#[stage(on_error = retry(3, backoff = 10ms))]
fn flaky_double(x: u64, ctx: &StageContext) -> u64 {
    let _ = ctx;
    let seen = FLAKY_SEEN.with(|seen| {
        let mut seen = seen.borrow_mut();
        let n = seen.entry(x).or_insert(0u32);
        *n += 1;
        *n
    });
    assert!(seen > 2, "flaky on attempt {seen}");
    x * 2
}

thread_local! {
    static FLAKY_SEEN: std::cell::RefCell<std::collections::HashMap<u64, u32>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

#[tokio::test(start_paused = true)]
async fn a_stage_default_retry_tries_each_failing_item_again() {
    let done = Collected::new();
    let report = pipeline! {
        iter(0..5u64) >> flaky_double >> collect(&done);
    }
    .run()
    .await
    .unwrap();
    let mut done = done.take();
    done.sort_unstable();
    assert_eq!(done, vec![0, 2, 4, 6, 8]);
    let stage = report.stage("flaky_double").unwrap();
    assert_eq!(stage.failed, 0, "{report}");
    assert!(stage.retries >= 2, "{report}");
    assert!(report.is_balanced(), "{report}");
}

/// CPU-bound work, on two workers wherever the stage is used.
#[stage(parallel = 2)]
fn spin(x: u64) -> u64 {
    let mut h = x;
    for _ in 0..(x % 7) * 50 {
        h = h.wrapping_mul(6364136223846793005).wrapping_add(1);
    }
    std::hint::black_box(h);
    x * 3
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_default_parallel_runs_the_stage_on_workers_in_input_order() {
    let out = Collected::new();
    let report = pipeline! {
        iter(0..20_000u64) >> map(|x| x + 1) >> spin >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(
        out.take(),
        (0..20_000u64).map(|x| (x + 1) * 3).collect::<Vec<_>>()
    );
    assert_eq!(report.stage("spin").unwrap().items_in, 20_000);
    assert_eq!(report.edge("map", "spin").unwrap().sent, 20_000);
    assert!(report.is_balanced(), "{report}");
}

#[derive(Debug, Clone, PartialEq)]
struct Event {
    account: u64,
    seq: u64,
}

/// Keeps each account's events in order across its workers.
#[stage(parallel = 3, by_key(|e: &Event| e.account))]
async fn settle_event(event: Event) -> Event {
    if event.seq.is_multiple_of(5) {
        tokio::task::yield_now().await;
    }
    event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_default_by_key_keeps_each_keys_order() {
    let out = Collected::new();
    let events: Vec<Event> = (0..6_000u64)
        .map(|seq| Event {
            account: seq % 13,
            seq,
        })
        .collect();
    pipeline! {
        iter(events) >> settle_event >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    let got = out.take();
    assert_eq!(got.len(), 6_000);
    for account in 0..13 {
        let seqs: Vec<u64> = got
            .iter()
            .filter(|e| e.account == account)
            .map(|e| e.seq)
            .collect();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "account {account} out of order"
        );
    }
}

/// Fails odd numbers, on two workers, failed items to the `errors` port
/// when it is connected.
#[stage(parallel = 2, unordered)]
fn even_only(x: u64) -> Result<u64, String> {
    if x.is_multiple_of(2) {
        Ok(x)
    } else {
        Err(format!("{x} is odd"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parallel_by_default_stage_sends_failed_items_to_its_errors_port() {
    let good = Collected::new();
    let bad = Collected::new();
    let report = pipeline! {
        evens = iter(0..1_000u64) >> even_only;
        evens >> collect(&good);
        evens[errors] >> map(|f| f.input) >> collect(&bad);
    }
    .run()
    .await
    .unwrap();
    let mut good = good.take();
    good.sort_unstable();
    assert_eq!(good, (0..1_000).step_by(2).collect::<Vec<_>>());
    let mut bad = bad.take();
    bad.sort_unstable();
    assert_eq!(bad, (1..1_000).step_by(2).collect::<Vec<_>>());
    assert_eq!(report.stage("evens").unwrap().dead_lettered, 500);
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_parallel_option_overrides_a_stage_default() {
    let out = Collected::new();
    let report = pipeline! {
        iter(0..1_000u64) >> #[parallel = 1] spin >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(out.take(), (0..1_000u64).map(|x| x * 3).collect::<Vec<_>>());
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_default_parallel_runs_every_transform_on_workers_in_order() {
    /// Counts its clones: a stage on workers is cloned for each of them,
    /// a fused one never.
    struct CountsClones(std::sync::Arc<std::sync::atomic::AtomicUsize>);
    impl Clone for CountsClones {
        fn clone(&self) -> Self {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            CountsClones(self.0.clone())
        }
    }
    let clones = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = CountsClones(clones.clone());
    let out = Collected::new();
    let report = pipeline! {
        #![parallel = 2]
        #![ordered]
        iter(0..20_000u64)
            >> map(move |x| {
                let _ = &counter;
                x * 2
            })
            >> filter(|x: &u64| !x.is_multiple_of(3))
            >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(
        out.take(),
        (0..20_000u64)
            .map(|x| x * 2)
            .filter(|x| !x.is_multiple_of(3))
            .collect::<Vec<_>>()
    );
    // `map` ran on two workers, each with its own clone.
    assert!(
        clones.load(std::sync::atomic::Ordering::SeqCst) >= 2,
        "{report}"
    );
    assert!(report.is_balanced(), "{report}");
}
