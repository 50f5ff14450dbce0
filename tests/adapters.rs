//! The runtime's adapters used from `pipeline!`: a pipeline as the body of
//! a request/response service (`duplex`), and a pipeline's outputs as a
//! `futures::Stream` (`stream_sink`). A value made before the macro starts
//! a chain by its name, and ends one in parentheses.

use futures::StreamExt;
use pipeline::io::{DuplexError, Tagged, duplex, stream_sink};
use pipeline::prelude::*;

#[tokio::test]
async fn a_pipeline_serves_requests_and_each_caller_gets_its_own_response() {
    let (client, requests, responses) = duplex::<u64, String>(16);
    let running = pipeline! {
        requests
            >> filter(|r: &Tagged<u64>| *r.value() != 13)
            >> map(|r: Tagged<u64>| r.map(|x| format!("{x} squared is {}", x * x)))
            >> (responses);
    }
    .spawn();
    let calls = (0..20u64).map(|x| {
        let client = client.clone();
        async move { (x, client.call(x).await) }
    });
    let answers = futures::future::join_all(calls).await;
    for (x, answer) in answers {
        if x == 13 {
            // Filtered out in the pipeline: the caller is told, not left
            // waiting.
            assert!(matches!(answer, Err(DuplexError::NoResponse)), "{answer:?}");
        } else {
            assert_eq!(answer.unwrap(), format!("{x} squared is {}", x * x));
        }
    }
    client.close();
    let report = running.join().await.unwrap();
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test]
async fn a_pipelines_outputs_can_be_read_as_a_stream() {
    let (out, mut stream) = stream_sink::<u64>(8);
    let running = pipeline! {
        iter(0..100u64) >> filter(|x: &u64| x.is_multiple_of(3)) >> (out);
    }
    .spawn();
    let mut got = Vec::new();
    while let Some(x) = stream.next().await {
        got.push(x);
    }
    assert_eq!(
        got,
        (0..100)
            .filter(|x: &u64| x.is_multiple_of(3))
            .collect::<Vec<u64>>()
    );
    let report = running.join().await.unwrap();
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test]
async fn a_sink_and_stream_pair_sits_inside_a_pipeline() {
    use futures::SinkExt;
    // Another task doubles what it is sent, and ends when its input does.
    let (requests, mut rx) = futures::channel::mpsc::channel::<u64>(4);
    let (mut tx, answers) = futures::channel::mpsc::channel::<u64>(4);
    tokio::spawn(async move {
        while let Some(n) = rx.next().await {
            tx.send(n * 2).await.unwrap();
        }
    });
    let out = Collected::new();
    let report = pipeline! {
        iter(1..=50u64) >> through(requests, answers) >> map(|x| x + 1) >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(
        out.take(),
        (1..=50u64).map(|x| x * 2 + 1).collect::<Vec<_>>()
    );
    assert_eq!(report.stage("through").unwrap().items_out, 50, "{report}");
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test]
async fn a_pipeline_with_an_open_output_is_read_as_a_stream() {
    let stream = pipeline! {
        iter(0..1_000u64) >> filter(|x: &u64| x.is_multiple_of(7)) >> map(|x| x * 2) >> output();
    }
    .into_stream();
    futures::pin_mut!(stream);
    let mut got = Vec::new();
    while let Some(item) = stream.next().await {
        got.push(item.unwrap());
    }
    assert_eq!(
        got,
        (0..1_000u64)
            .filter(|x| x.is_multiple_of(7))
            .map(|x| x * 2)
            .collect::<Vec<_>>()
    );
    let report = stream.report().expect("the run completed");
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test]
async fn an_open_pipeline_runs_at_the_readers_pace_and_merges_into_one_output() {
    let stream = pipeline! {
        out = output();
        iter(0..5_000u64) >> out;
        iter(10_000..10_010u64) >> out;
    }
    .into_stream();
    futures::pin_mut!(stream);
    // Read a few, then the rest: the pipeline waits in between.
    let first: Vec<u64> = stream.as_mut().take(3).map(Result::unwrap).collect().await;
    assert_eq!(first.len(), 3);
    let rest: Vec<u64> = stream.map(Result::unwrap).collect().await;
    assert_eq!(first.len() + rest.len(), 5_010);
}

#[tokio::test]
async fn an_open_pipeline_that_fails_ends_its_stream_with_the_error() {
    let stream = pipeline! {
        iter(["1", "2", "x"].map(String::from)) >> #[on_error = fail] parse_number >> output();
    }
    .into_stream();
    let items: Vec<Result<u64, pipeline::Error>> = stream.collect().await;
    assert_eq!(items.len(), 3, "{items:?}");
    assert_eq!(*items[0].as_ref().unwrap(), 1);
    assert_eq!(*items[1].as_ref().unwrap(), 2);
    assert!(
        matches!(items[2], Err(pipeline::Error::ItemFailed { .. })),
        "{items:?}"
    );
}

#[stage]
fn parse_number(text: String) -> Result<u64, std::num::ParseIntError> {
    text.parse()
}
