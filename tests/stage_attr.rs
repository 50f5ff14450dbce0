//! `#[stage]` on every supported function shape.

use pipeline::prelude::*;

#[stage(source)]
fn numbers() -> std::ops::Range<u64> {
    1..6
}

#[stage(source)]
fn evens() -> impl Iterator<Item = u64> + Send {
    (0..10).filter(|x| x % 2 == 0)
}

#[stage]
fn odd_only(x: u64) -> Option<u64> {
    (x % 2 == 1).then_some(x)
}

#[stage(flat)]
fn twice(x: u64) -> Vec<u64> {
    vec![x, x]
}

#[stage]
fn digits(x: u64) -> impl Iterator<Item = u32> {
    x.to_string()
        .chars()
        .filter_map(|c| c.to_digit(10))
        .collect::<Vec<_>>()
        .into_iter()
}

#[stage]
fn tagged(x: u64, ctx: &StageContext) -> String {
    format!("{}:{x}", ctx.name())
}

#[stage]
async fn slow_square(x: u64) -> u64 {
    tokio::task::yield_now().await;
    x * x
}

#[stage]
fn checked(x: u64) -> Result<u64, String> {
    if x == 3 {
        Err(format!("{x} is unlucky"))
    } else {
        Ok(x)
    }
}

#[stage(sink)]
fn ignore(_x: String) {}

#[stage(sink)]
async fn refuse_sevens(x: u32) -> Result<(), String> {
    if x == 7 {
        Err("no sevens".into())
    } else {
        Ok(())
    }
}

#[tokio::test]
async fn functions_stay_callable() {
    assert_eq!(odd_only(3), Some(3));
    assert_eq!(twice(2), vec![2, 2]);
    assert_eq!(slow_square(4).await, 16);
    assert_eq!(numbers().count(), 5);
}

#[tokio::test]
async fn source_option_and_flat_shapes() {
    let out = Collected::new();
    let report = pipeline! {
        numbers >> odd_only >> twice >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(out.take(), vec![1, 1, 3, 3, 5, 5]);
    assert_eq!(report.stage("odd_only").unwrap().filtered, 2);
    assert_eq!(report.stage("numbers").unwrap().items_out, 5);
}

#[tokio::test]
async fn impl_iterator_source_and_impl_iterator_flat_map() {
    let out = Collected::new();
    pipeline! {
        evens >> map(|x| x * 11) >> digits >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    // 0, 22, 44, 66, 88 -> digits
    assert_eq!(out.take(), vec![0, 2, 2, 4, 4, 6, 6, 8, 8]);
}

#[tokio::test]
async fn async_fallible_and_context_stages() {
    let out = Collected::new();
    let report = pipeline! {
        iter(1..=4u64) >> checked >> slow_square >> tagged >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(out.take(), vec!["tagged:1", "tagged:4", "tagged:16"]);
    assert_eq!(report.stage("checked").unwrap().failed, 1);
    assert!(report.is_balanced());
}

#[tokio::test]
async fn sink_functions_plain_and_fallible() {
    let report = pipeline! {
        iter(5..=9u32) >> refuse_sevens;
    }
    .run()
    .await
    .unwrap();
    let sink = report.stage("refuse_sevens").unwrap();
    assert_eq!((sink.items_in, sink.failed, sink.passed), (5, 1, 4));

    pipeline! {
        iter(["a".to_string()]) >> ignore;
    }
    .run()
    .await
    .unwrap();
}
