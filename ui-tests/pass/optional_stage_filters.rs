// A `#[stage]` returning `Option<T>` drops the items it maps to `None`.
use pipeline::prelude::*;

#[stage]
fn even(x: u64) -> Option<u64> {
    (x % 2 == 0).then_some(x)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let out = Collected::new();
    let report = pipeline! {
        iter(1..=6u64) >> even >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(out.take(), vec![2, 4, 6]);
    assert_eq!(report.stage("even").unwrap().filtered, 3);
}
