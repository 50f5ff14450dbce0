//! Linear pipelines end to end: each test is named after the behaviour a
//! user relies on.

use pipeline::prelude::*;

#[stage]
fn double(x: u64) -> u64 {
    x * 2
}

#[stage]
async fn parse(line: String) -> Result<u64, std::num::ParseIntError> {
    line.trim().parse()
}

#[tokio::test]
async fn failed_items_are_counted_and_the_run_continues() {
    let out = Collected::new();
    let report = pipeline! {
        iter(["1", "2", "x", "4"].map(String::from)) >> parse >> double
            >> filter(|x| *x > 2) >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(out.take(), vec![4, 8]);
    let parse = report.stage("parse").unwrap();
    assert_eq!((parse.items_in, parse.items_out, parse.failed), (4, 3, 1));
    let filter = report.stage("filter").unwrap();
    assert_eq!(
        (filter.items_in, filter.items_out, filter.filtered),
        (3, 2, 1)
    );
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test]
async fn closures_infer_their_parameter_types_from_upstream() {
    let mut seen = Vec::new();
    pipeline! {
        iter(vec!["a".to_string(), "bb".to_string()])
            >> map(|s| s.len())
            >> for_each(|n| seen.push(n));
    }
    .run()
    .await
    .unwrap();
    assert_eq!(seen, vec![1, 2]);
}
