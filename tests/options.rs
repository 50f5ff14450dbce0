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
