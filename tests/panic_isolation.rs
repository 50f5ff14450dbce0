//! A panic (or an error) on one item fails that item only: every other item
//! of its chunk goes on, in order, whatever shape the stage was fused into
//! (a lone stage, a composed pass, a fused chain, a diamond, parallel
//! workers, the inlet of an accumulation) and whatever its `on_error`.
//!
//! Each test is named after the shape it covers; the chunk the bad item
//! sits in is the first of the run, so a stage that failed its whole chunk
//! would lose the items on both sides of it.

use pipeline::prelude::*;
use pipeline::stages::Failed;

/// The item every test panics on.
const BAD: u64 = 5;

/// `x * 10`, or a panic on [`BAD`].
fn tenfold(x: u64) -> u64 {
    assert!(x != BAD, "bad item {x}");
    x * 10
}

/// What a run over `0..n` delivers when only [`BAD`] fails in `tenfold`.
fn tenfold_all_but_bad(n: u64) -> Vec<u64> {
    (0..n).filter(|x| *x != BAD).map(|x| x * 10).collect()
}

/// Checks that `stage` took `items_in` items and failed exactly one of
/// them, and that the whole report balances.
fn assert_failed_one(report: &Report, stage: &str, items_in: u64) {
    let counts = report
        .stage(stage)
        .unwrap_or_else(|| panic!("no stage `{stage}` in\n{report}"));
    assert_eq!(
        (counts.items_in, counts.failed + counts.dead_lettered),
        (items_in, 1),
        "{report}"
    );
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test]
async fn a_panic_in_a_lone_map_fails_only_its_item() {
    let out = Collected::new();
    let report = pipeline! {
        iter(0..10u64) >> map(tenfold) >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(out.take(), tenfold_all_but_bad(10));
    assert_failed_one(&report, "map", 10);
    assert_eq!(report.stage("map").unwrap().items_out, 9);
}

#[tokio::test]
async fn a_panic_in_a_lone_map_over_many_chunks_fails_only_its_item() {
    let out = Collected::new();
    let report = pipeline! {
        iter(0..10_000u64) >> map(tenfold) >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(out.take(), tenfold_all_but_bad(10_000));
    assert_failed_one(&report, "map", 10_000);
}

#[tokio::test]
async fn panics_on_several_items_of_one_chunk_fail_each_only_its_own_item() {
    let out = Collected::new();
    let report = pipeline! {
        iter(0..100u64)
            >> map(|x| {
                assert!(!x.is_multiple_of(7), "a multiple of seven");
                x
            })
            >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    let expected: Vec<u64> = (0..100u64).filter(|x| !x.is_multiple_of(7)).collect();
    assert_eq!(out.take(), expected);
    let map = report.stage("map").unwrap();
    assert_eq!((map.items_in, map.items_out, map.failed), (100, 85, 15));
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test]
async fn a_panic_in_a_lone_filter_fails_only_its_item_and_counts_the_filtered() {
    let out = Collected::new();
    let report = pipeline! {
        iter(0..10u64)
            >> filter(|x: &u64| {
                assert!(*x != BAD, "bad item");
                x.is_multiple_of(2)
            })
            >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(out.take(), vec![0, 2, 4, 6, 8]);
    let filter = report.stage("filter").unwrap();
    assert_eq!(
        (
            filter.items_in,
            filter.items_out,
            filter.filtered,
            filter.failed
        ),
        (10, 5, 4, 1)
    );
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test]
async fn a_panic_in_a_lone_filter_map_fails_only_its_item() {
    let out = Collected::new();
    let report = pipeline! {
        iter(0..10u64)
            >> filter_map(|x| {
                assert!(x != BAD, "bad item");
                x.is_multiple_of(3).then_some(x)
            })
            >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(out.take(), vec![0, 3, 6, 9]);
    let stage = report.stage("filter_map").unwrap();
    assert_eq!(
        (
            stage.items_in,
            stage.items_out,
            stage.filtered,
            stage.failed
        ),
        (10, 4, 5, 1)
    );
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test]
async fn a_panic_in_a_lone_inspect_fails_only_its_item() {
    let out = Collected::new();
    let report = pipeline! {
        iter(0..10u64)
            >> inspect(|x: &u64| assert!(*x != BAD, "bad item"))
            >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    let expected: Vec<u64> = (0..10).filter(|x| *x != BAD).collect();
    assert_eq!(out.take(), expected);
    assert_failed_one(&report, "inspect", 10);
}

#[tokio::test]
async fn a_panic_in_a_lone_flat_map_fails_only_its_item() {
    let out = Collected::new();
    let report = pipeline! {
        iter(0..10u64) >> flat_map(|x| [tenfold(x), tenfold(x) + 1]) >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    let expected: Vec<u64> = tenfold_all_but_bad(10)
        .into_iter()
        .flat_map(|x| [x, x + 1])
        .collect();
    assert_eq!(out.take(), expected);
    assert_failed_one(&report, "flat_map", 10);
}

#[tokio::test]
async fn a_panic_in_a_lone_async_map_fails_only_its_item() {
    let out = Collected::new();
    let report = pipeline! {
        iter(0..10u64) >> then(|x| async move { tenfold(x) }) >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(out.take(), tenfold_all_but_bad(10));
    assert_failed_one(&report, "then", 10);
}

#[tokio::test]
async fn a_panic_in_a_for_each_sink_fails_only_its_item() {
    let mut seen = Vec::new();
    let report = pipeline! {
        iter(0..10u64) >> for_each(|x| seen.push(tenfold(x)));
    }
    .run()
    .await
    .unwrap();
    assert_eq!(seen, tenfold_all_but_bad(10));
    assert_failed_one(&report, "for_each", 10);
}

#[tokio::test]
async fn a_panic_in_a_fallible_for_each_fails_only_its_item_and_dead_letters_it() {
    let mut seen = Vec::new();
    let failed = Collected::new();
    let report = pipeline! {
        store = iter(0..10u64) >> for_each(|x| -> Result<(), String> {
            seen.push(tenfold(x));
            Ok(())
        });
        store[errors] >> map(|f: Failed<u64, String>| f.input) >> collect(&failed);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(seen, tenfold_all_but_bad(10));
    assert_eq!(failed.take(), vec![BAD]);
    assert_failed_one(&report, "store", 10);
}

#[tokio::test]
async fn a_panic_in_a_composed_pass_fails_only_its_item() {
    let out = Collected::new();
    let report = pipeline! {
        iter(0..10u64) >> map(|x| x) >> map(tenfold) >> filter(|_: &u64| true) >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(out.take(), tenfold_all_but_bad(10));
    assert_failed_one(&report, "map#2", 10);
}

#[stage]
fn checked(x: u64) -> Result<u64, String> {
    if x == BAD {
        Err(format!("bad item {x}"))
    } else {
        Ok(x)
    }
}

#[stage]
fn panicky(x: u64) -> u64 {
    tenfold(x)
}

#[tokio::test]
async fn a_panic_in_a_map_fused_after_a_stage_fails_only_its_item() {
    // `checked` is a `#[stage]`, so the map after it is fused, not composed.
    let out = Collected::new();
    let report = pipeline! {
        iter(0..10u64) >> #[on_error = ignore] checked >> map(|x| x + 1) >> map(|x| x * 10) >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    let expected: Vec<u64> = (0..10)
        .filter(|x| *x != BAD)
        .map(|x| (x + 1) * 10)
        .collect();
    assert_eq!(out.take(), expected);
    assert_failed_one(&report, "checked", 10);

    let out = Collected::new();
    let report = pipeline! {
        iter(0..10u64) >> #[on_error = ignore] checked >> map(|x| if x == 7 { tenfold(BAD) } else { x * 10 }) >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    let expected: Vec<u64> = (0..10)
        .filter(|x| *x != BAD && *x != 7)
        .map(|x| x * 10)
        .collect();
    assert_eq!(out.take(), expected);
    assert_failed_one(&report, "map", 9);
}

#[tokio::test]
async fn a_panic_in_one_chain_of_a_diamond_fails_only_its_item() {
    let out = Collected::new();
    let report = pipeline! {
        numbers = iter(0..10u64);
        numbers >> map(tenfold) >> merged;
        numbers >> map(|x| x + 1000) >> merged;
        merged = map(|x: u64| x);
        merged >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    let mut got = out.take();
    let mut expected = tenfold_all_but_bad(10);
    expected.extend(1000..1010);
    got.sort_unstable();
    expected.sort_unstable();
    assert_eq!(got, expected);
    assert_failed_one(&report, "map", 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_parallel_map_fails_only_its_item_and_keeps_order() {
    let out = Collected::new();
    let report = pipeline! {
        iter(0..10_000u64) >> #[parallel = 2] #[ordered] map(tenfold) >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(out.take(), tenfold_all_but_bad(10_000));
    assert_failed_one(&report, "map", 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_parallel_stage_fails_only_its_item_and_dead_letters_it() {
    let out = Collected::new();
    let failed = Collected::new();
    let report = pipeline! {
        work = iter(0..1_000u64) >> #[parallel = 2] #[on_error = dead_letter] panicky;
        work >> collect(&out);
        work[errors] >> map(|f: Failed<u64, std::convert::Infallible>| f.input) >> collect(&failed);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(out.take(), tenfold_all_but_bad(1_000));
    assert_eq!(failed.take(), vec![BAD]);
    assert_failed_one(&report, "work", 1_000);
}

#[tokio::test]
async fn a_panic_before_an_accumulation_fails_only_its_item() {
    let out = Collected::new();
    let report = pipeline! {
        iter(0..10u64)
            >> map(tenfold)
            >> accumulate(key = |x: &u64| x % 2, max_items = 100)
            >> map(|batch| batch.into_items())
            >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    let mut got: Vec<u64> = out.take().into_iter().flatten().collect();
    got.sort_unstable();
    assert_eq!(got, tenfold_all_but_bad(10));
    assert_failed_one(&report, "map", 10);
}

#[tokio::test]
async fn a_panic_under_retry_fails_only_its_item_after_its_attempts() {
    let out = Collected::new();
    let report = pipeline! {
        iter(0..10u64) >> #[on_error = retry(2, backoff = 1ms)] panicky >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(out.take(), tenfold_all_but_bad(10));
    assert_failed_one(&report, "panicky", 10);
    assert_eq!(report.stage("panicky").unwrap().retries, 2);
}

#[tokio::test]
async fn a_panic_under_on_error_fail_fails_the_run_but_delivers_the_rest_of_the_chunk() {
    let out = Collected::new();
    let result = pipeline! {
        #![on_error = fail]
        iter(0..10u64) >> map(tenfold) >> collect(&out);
    }
    .run()
    .await;
    let error = result.expect_err("a failed item fails the run under `fail`");
    assert!(error.to_string().contains("`map`"), "{error}");
    assert_eq!(out.take(), tenfold_all_but_bad(10));
}
