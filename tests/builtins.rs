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
