//! A long chain awaited inside an `async fn`, as most users run pipelines.

use pipeline::prelude::*;

#[tokio::test]
async fn a_chain_of_twenty_four_stages_compiles_and_runs_in_an_async_fn() {
    let out = Collected::new();
    let report = pipeline! {
        iter(0..100u64)
            >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1)
            >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1)
            >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1)
            >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1)
            >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1)
            >> map(|x| x + 1) >> map(|x| x + 1) >> filter(|x: &u64| x.is_multiple_of(2))
            >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(
        out.take(),
        (22..122u64)
            .filter(|x| x.is_multiple_of(2))
            .collect::<Vec<_>>()
    );
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test]
async fn a_chain_of_forty_stages_runs_in_an_async_fn() {
    let out = Collected::new();
    let report = pipeline! {
        iter(0..10u64)
            >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1)
            >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1)
            >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1)
            >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1)
            >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1)
            >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1)
            >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1)
            >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1)
            >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1)
            >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1)
            >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(out.take(), (40..50u64).collect::<Vec<_>>());
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test]
async fn a_chain_of_twenty_four_stages_can_be_spawned() {
    let out = Collected::new();
    let handle = pipeline! {
        iter(0..10u64)
            >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1)
            >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1)
            >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1)
            >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1)
            >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1)
            >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1) >> map(|x| x + 1)
            >> collect(&out);
    }
    .spawn();
    let report = handle.join().await.unwrap();
    assert_eq!(out.take(), (24..34u64).collect::<Vec<_>>());
    assert!(report.is_balanced(), "{report}");
}
