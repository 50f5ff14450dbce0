//! Every built-in of a linear chain, end to end through `pipeline!`.

use pipeline::prelude::*;

#[tokio::test]
async fn map_filter_map_flat_map_and_inspect_compose_in_order() {
    let out = Collected::new();
    let mut inspected = 0;
    let report = pipeline! {
        iter(vec!["1 2", "x 3", ""])
            >> flat_map(|line| line.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            >> filter_map(|word| word.parse::<u32>().ok())
            >> inspect(|_| inspected += 1)
            >> map(|n| n * 10)
            >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(out.take(), vec![10, 20, 30]);
    assert_eq!(inspected, 3);
    let flat = report.stage("flat_map").unwrap();
    // The empty line yields no word: it is counted as filtered.
    assert_eq!((flat.items_in, flat.items_out, flat.filtered), (3, 4, 1));
    let parsed = report.stage("filter_map").unwrap();
    assert_eq!(
        (parsed.items_in, parsed.items_out, parsed.filtered),
        (4, 3, 1)
    );
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test]
async fn then_awaits_each_item_in_order() {
    let out = Collected::new();
    pipeline! {
        iter(1..=5u64)
            >> then(|x| async move {
                tokio::task::yield_now().await;
                x * x
            })
            >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(out.take(), vec![1, 4, 9, 16, 25]);
}

#[tokio::test]
async fn for_each_with_an_async_closure_awaits_each_item() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    pipeline! {
        iter(["a", "b"]) >> for_each(|s| {
            let sink = sink.clone();
            async move {
                tokio::task::yield_now().await;
                sink.lock().unwrap().push(s);
            }
        });
    }
    .run()
    .await
    .unwrap();
    assert_eq!(*seen.lock().unwrap(), ["a", "b"]);
}

#[tokio::test]
async fn a_sink_returning_err_fails_the_item_and_the_run_goes_on() {
    let mut stored = Vec::new();
    let report = pipeline! {
        iter(1..=4u32) >> for_each(|x| if x == 3 { Err("disk full") } else { stored.push(x); Ok(()) });
    }
    .run()
    .await
    .unwrap();
    assert_eq!(stored, vec![1, 2, 4]);
    let sink = report.stage("for_each").unwrap();
    assert_eq!((sink.items_in, sink.failed), (4, 1));
}

#[tokio::test]
async fn discard_drops_everything_and_counts_it() {
    let report = pipeline! {
        iter(0..1000u32) >> map(|x| x + 1) >> discard();
    }
    .run()
    .await
    .unwrap();
    let discard = report.stage("discard").unwrap();
    assert_eq!((discard.items_in, discard.passed), (1000, 1000));
}

#[tokio::test]
async fn stream_source_delivers_every_item() {
    let out = Collected::new();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let producer = tokio::spawn(async move {
        for i in 0..100u32 {
            tx.send(i).await.unwrap();
        }
    });
    let items =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
    pipeline! {
        stream(items) >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    producer.await.unwrap();
    assert_eq!(out.take(), (0..100).collect::<Vec<_>>());
}

#[tokio::test]
async fn the_same_builtin_twice_gets_distinct_report_names() {
    let report = pipeline! {
        iter(0..10u32) >> filter(|x| x % 2 == 0) >> filter(|x| x % 3 == 0) >> discard();
    }
    .run()
    .await
    .unwrap();
    assert_eq!(report.stage("filter").unwrap().items_out, 5);
    assert_eq!(report.stage("filter#2").unwrap().items_out, 2);
}

#[tokio::test]
async fn a_run_of_adjacent_builtins_counts_each_stage_as_its_own() {
    // `map >> filter >> filter_map >> inspect` is composed into one pass
    // over each chunk; each stage still reports its own counts.
    let out = Collected::new();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let inspected = seen.clone();
    let report = pipeline! {
        iter(0..1_000u64)
            >> map(|x| x * 2)
            >> filter(|x: &u64| !x.is_multiple_of(3))
            >> filter_map(|x: u64| (!x.is_multiple_of(5)).then_some(x + 1))
            >> inspect(move |_: &u64| {
                inspected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            })
            >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    let expected: Vec<u64> = (0..1_000u64)
        .map(|x| x * 2)
        .filter(|x| !x.is_multiple_of(3))
        .filter_map(|x| (!x.is_multiple_of(5)).then_some(x + 1))
        .collect();
    assert_eq!(out.take(), expected);
    let counts = |name: &str| {
        let stage = report.stage(name).unwrap();
        (stage.items_in, stage.items_out, stage.filtered)
    };
    let kept = (0..1_000u64).filter(|x| !(x * 2).is_multiple_of(3)).count() as u64;
    let emitted = expected.len() as u64;
    assert_eq!(counts("map"), (1_000, 1_000, 0));
    assert_eq!(counts("filter"), (1_000, kept, 1_000 - kept));
    assert_eq!(counts("filter_map"), (kept, emitted, kept - emitted));
    assert_eq!(counts("inspect"), (emitted, emitted, 0));
    assert_eq!(
        seen.load(std::sync::atomic::Ordering::Relaxed),
        expected.len() as u64
    );
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test]
async fn a_panic_in_a_run_of_builtins_fails_that_item_in_that_stage_and_the_rest_go_on() {
    let out = Collected::new();
    let report = pipeline! {
        iter(0..100u64)
            >> map(|x| x + 1)
            >> map(|x: u64| {
                assert!(x != 14, "unlucky");
                x
            })
            >> filter(|x: &u64| x.is_multiple_of(2))
            >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    let expected: Vec<u64> = (1..=100u64)
        .filter(|x| *x != 14 && x.is_multiple_of(2))
        .collect();
    assert_eq!(out.take(), expected);
    let unlucky = report.stage("map#2").unwrap();
    assert_eq!(
        (unlucky.items_in, unlucky.items_out, unlucky.failed),
        (100, 99, 1)
    );
    let filter = report.stage("filter").unwrap();
    assert_eq!((filter.items_in, filter.filtered), (99, 50));
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test]
async fn a_sink_ending_a_run_of_builtins_fails_its_bad_items_and_takes_the_rest() {
    // `map >> filter >> for_each` is one pass; the sink's `Err` and its
    // panic each fail one item, counted at the sink.
    let mut stored = Vec::new();
    let report = pipeline! {
        iter(1..=10u32)
            >> map(|x| x * 2)
            >> filter(|x: &u32| *x != 8)
            >> for_each(|x| {
                assert!(x != 12, "twelve");
                if x == 6 { Err("disk full") } else { stored.push(x); Ok(()) }
            });
    }
    .run()
    .await
    .unwrap();
    assert_eq!(stored, vec![2, 4, 10, 14, 16, 18, 20]);
    let sink = report.stage("for_each").unwrap();
    assert_eq!(
        (sink.items_in, sink.items_out, sink.passed, sink.failed),
        (9, 0, 7, 2)
    );
    let filter = report.stage("filter").unwrap();
    assert_eq!(
        (filter.items_in, filter.items_out, filter.filtered),
        (10, 9, 1)
    );
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test]
async fn a_panic_in_a_filter_inside_a_run_fails_that_item_and_counts_the_others() {
    // The filter is neither first nor last in its run, so its counts are
    // the run's own, not derived from what the run emitted.
    let out = Collected::new();
    let report = pipeline! {
        iter(0..100u64)
            >> map(|x| x + 1)
            >> filter(|x: &u64| {
                assert!(*x != 50, "fifty");
                x.is_multiple_of(2)
            })
            >> map(|x| x * 10)
            >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    let expected: Vec<u64> = (1..=100u64)
        .filter(|x| *x != 50 && x.is_multiple_of(2))
        .map(|x| x * 10)
        .collect();
    assert_eq!(out.take(), expected);
    let filter = report.stage("filter").unwrap();
    assert_eq!(
        (
            filter.items_in,
            filter.items_out,
            filter.filtered,
            filter.failed
        ),
        (100, 49, 50, 1)
    );
    let second = report.stage("map#2").unwrap();
    assert_eq!((second.items_in, second.items_out), (49, 49));
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test]
async fn skip_then_take_pass_a_window_of_the_items_composed_in_one_pass() {
    let out = Collected::new();
    let report = pipeline! {
        iter(1..=10u64) >> skip(2) >> take(3) >> map(|x| x * 10) >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(out.take(), vec![30, 40, 50]);
    let skipped = report.stage("skip").unwrap();
    assert_eq!(
        (skipped.items_in, skipped.items_out, skipped.filtered),
        (10, 8, 2)
    );
    let taken = report.stage("take").unwrap();
    assert_eq!((taken.items_in, taken.items_out, taken.filtered), (8, 3, 5));
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test]
async fn take_counts_across_chunks_behind_an_edge_of_its_own() {
    // `buffer` gives `take` an edge, so it reads chunks from a channel
    // rather than being composed: the count still runs across chunks.
    let out = Collected::new();
    let limit = 1500;
    let report = pipeline! {
        iter(0..5000u32) >> #[buffer = 64] take(limit) >> skip(1000) >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(out.take(), (1000..1500).collect::<Vec<_>>());
    assert_eq!(report.stage("take").unwrap().filtered, 3500);
    assert_eq!(report.stage("skip").unwrap().filtered, 1000);
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test]
async fn take_stays_one_stage_when_the_pipeline_runs_transforms_on_workers() {
    // `#![parallel]` puts `map` on workers but leaves `take` as one, so it
    // passes exactly its first `n`, in order.
    let out = Collected::new();
    let report = pipeline! {
        #![parallel = 4]
        #![ordered]
        iter(0..1000u32) >> map(|x| x + 1) >> take(10) >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(out.take(), (1..=10).collect::<Vec<_>>());
    assert_eq!(report.stage("take").unwrap().filtered, 990);
}
