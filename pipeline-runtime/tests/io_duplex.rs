//! `duplex`: a pipeline as the body of a service. Each call gets its own
//! response, whatever the order; a request filtered, failed or dropped in
//! the pipeline, or still inside when it ends, answers `NoResponse`; a
//! call to a pipeline that is gone answers `Closed`; requests are
//! back-pressured.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

use futures::future::join_all;
use futures::poll;
use pipeline_runtime::chain::{Fuse, Head, drive};
use pipeline_runtime::graph::NodeKind;
use pipeline_runtime::io::{DuplexError, DuplexSink, ForeignTag, Tagged, duplex};
use pipeline_runtime::lifecycle::{Pipeline, PipelineHandle};
use pipeline_runtime::metrics::{StageReport, StageStats};
use pipeline_runtime::stage::{Emit, Failures, Never, Pull, Source, StageContext, SyncStage};
use pipeline_runtime::sync_stage;
use pipeline_runtime::transform::then;

fn stats(name: &'static str, kind: NodeKind) -> Arc<StageStats> {
    Arc::new(StageStats::new(name, kind))
}

/// Answers `n` with `n * 10`, reversing each chunk (so responses leave in
/// another order than requests came), dropping multiples of 7 and failing
/// multiples of 11.
struct Service;

#[derive(Debug)]
struct Refused(u64);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused {}", self.0)
    }
}

impl SyncStage<Tagged<u64>> for Service {
    type Out = Tagged<u64>;
    type Error = Refused;

    fn process(
        &mut self,
        request: Tagged<u64>,
        out: &mut Emit<'_, Tagged<u64>>,
        _: &StageContext,
    ) -> Result<(), Refused> {
        let n = *request.value();
        if n.is_multiple_of(11) {
            return Err(Refused(n));
        }
        if !n.is_multiple_of(7) {
            out.emit(request.map(|n| n * 10));
        }
        Ok(())
    }

    fn process_chunk(
        &mut self,
        input: &mut Vec<Tagged<u64>>,
        out: &mut Vec<Tagged<u64>>,
        failures: &mut Failures<Refused>,
        ctx: &StageContext,
    ) {
        input.reverse();
        for request in input.drain(..) {
            failures.call(out, |emit| SyncStage::process(self, request, emit, ctx));
        }
    }
}

sync_stage!(Service: Tagged<u64>);

/// Spawns `requests >> stage >> responses`; returns the handle and the
/// stage's and the sink's counters. (A macro, so that the chain's types are
/// concrete where it is spawned, and known to be `Send`.)
macro_rules! serve {
    ($requests:expr, $stage:expr, $responses:expr) => {{
        let service = stats("service", NodeKind::Transform);
        let sink = stats("responses", NodeKind::Sink);
        let chain = Head::new($requests, stats("requests", NodeKind::Source), 16);
        let chain: Fuse<_, _, Tagged<u64>, Tagged<u64>, _> =
            Fuse::new(chain, $stage, service.clone());
        let chain: Fuse<_, _, Tagged<u64>, Never, ForeignTag> =
            Fuse::new(chain, $responses, sink.clone());
        let handle: PipelineHandle =
            Pipeline::new(Vec::new(), move |control| drive(chain, control)).spawn();
        (handle, service, sink)
    }};
}

/// Hands `response` to the sink, as the pipeline would.
fn answer<T: Send + 'static>(
    sink: &mut DuplexSink<T>,
    response: Tagged<T>,
) -> Result<(), ForeignTag> {
    let ctx = StageContext::detached("responses");
    SyncStage::process(sink, response, &mut Emit::new(&mut Vec::new()), &ctx)
}

#[tokio::test]
async fn each_call_gets_its_own_response_and_lost_requests_answer_no_response() {
    let (client, requests, responses) = duplex::<u64, u64>(8);
    let (handle, service, sink) = serve!(requests, Service, responses);
    let calls = (1..=200u64).map(|n| {
        let client = client.clone();
        async move { (n, client.call(n).await) }
    });
    for (n, answer) in join_all(calls).await {
        let expected = if n.is_multiple_of(11) || n.is_multiple_of(7) {
            Err(DuplexError::NoResponse)
        } else {
            Ok(n * 10)
        };
        assert_eq!(answer, expected, "call {n}");
    }
    assert_eq!(client.pending(), 0);
    drop(client);
    handle.join().await.unwrap();
    let service = StageReport::from_stats(&service);
    let filtered = (1..=200u64)
        .filter(|n| n.is_multiple_of(7) && !n.is_multiple_of(11))
        .count() as u64;
    let failed = (1..=200u64).filter(|n| n.is_multiple_of(11)).count() as u64;
    assert_eq!(
        (service.items_in, service.filtered, service.failed),
        (200, filtered, failed)
    );
    assert_eq!(sink.items_in(), 200 - filtered - failed);
}

#[tokio::test]
async fn a_call_waits_while_capacity_requests_wait_for_the_pipeline() {
    let (client, mut requests, _responses) = duplex::<u64, u64>(2);
    let ctx = StageContext::detached("requests");
    let mut first = pin!(client.call(1));
    let mut second = pin!(client.call(2));
    let mut third = pin!(client.call(3));
    assert!(poll!(first.as_mut()).is_pending());
    assert!(poll!(second.as_mut()).is_pending());
    assert!(poll!(third.as_mut()).is_pending());
    // Only two were sent: the third waits for room.
    let mut taken = Vec::new();
    assert_eq!(requests.fill(&mut taken, 16, &ctx).await, Ok(Pull::More));
    let values: Vec<u64> = taken.iter().map(|t| *t.value()).collect();
    assert_eq!(values, [1, 2]);
    assert!(poll!(third.as_mut()).is_pending());
    let mut more = Vec::new();
    assert_eq!(requests.fill(&mut more, 16, &ctx).await, Ok(Pull::More));
    assert_eq!(*more[0].value(), 3);
    // Dropping the taken requests answers their calls.
    drop(taken);
    assert_eq!(first.await, Err(DuplexError::NoResponse));
    assert_eq!(second.await, Err(DuplexError::NoResponse));
}

#[tokio::test]
async fn calls_still_inside_an_aborted_pipeline_answer_no_response_and_later_ones_closed() {
    let (client, requests, responses) = duplex::<u64, u64>(8);
    // A stage that never finishes its first item.
    let stuck = then(|request: Tagged<u64>| async move {
        std::future::pending::<()>().await;
        request
    });
    let (handle, _, _) = serve!(requests, stuck, responses);
    let mut call = pin!(client.call(1));
    assert!(poll!(call.as_mut()).is_pending(), "sent, and waiting");
    for _ in 0..10 {
        tokio::task::yield_now().await;
        assert!(poll!(call.as_mut()).is_pending());
    }
    assert_eq!(client.pending(), 1);
    handle.abort();
    assert!(matches!(
        handle.join().await,
        Err(pipeline_runtime::Error::Aborted)
    ));
    assert_eq!(call.await, Err(DuplexError::NoResponse));
    assert!(client.is_closed());
    assert_eq!(client.call(2).await, Err(DuplexError::Closed));
}

#[tokio::test]
async fn a_stopped_pipeline_answers_what_it_took_and_refuses_new_calls() {
    let (client, requests, responses) = duplex::<u64, u64>(8);
    let (handle, _, _) = serve!(requests, Service, responses);
    assert_eq!(client.call(3).await, Ok(30));
    handle.stop();
    handle.join().await.unwrap();
    assert_eq!(client.call(4).await, Err(DuplexError::Closed));
}

#[tokio::test]
async fn dropping_every_client_ends_the_pipeline() {
    let (client, requests, responses) = duplex::<u64, u64>(8);
    let (handle, _, sink) = serve!(requests, Service, responses);
    let other = client.clone();
    assert_eq!(client.call(1).await, Ok(10));
    assert_eq!(other.call(2).await, Ok(20));
    drop(client);
    assert!(!other.is_closed());
    drop(other);
    let report = handle.join().await.unwrap();
    assert!(!report.stopped);
    assert_eq!(sink.items_in(), 2);
}

#[tokio::test]
async fn a_caller_that_gives_up_does_not_disturb_the_others() {
    let (client, mut requests, mut responses) = duplex::<u64, u64>(8);
    let ctx = StageContext::detached("duplex");
    let mut given_up = Box::pin(client.call(1));
    let mut kept = pin!(client.call(2));
    assert!(poll!(given_up.as_mut()).is_pending());
    assert!(poll!(kept.as_mut()).is_pending());
    drop(given_up);
    let mut taken = Vec::new();
    requests.fill(&mut taken, 16, &ctx).await.unwrap();
    assert_eq!(client.pending(), 2, "the pipeline still holds both");
    for request in taken {
        answer(&mut responses, request.map(|n| n * 10)).unwrap();
    }
    assert_eq!(kept.await, Ok(20));
    assert_eq!(client.pending(), 0);
}

#[tokio::test]
async fn a_cloned_item_answers_once_every_copy_is_gone_or_the_first_responds() {
    let (client, mut requests, mut responses) = duplex::<u64, u64>(8);
    let ctx = StageContext::detached("duplex");

    let mut call = pin!(client.call(5));
    assert!(poll!(call.as_mut()).is_pending());
    let mut taken = Vec::new();
    requests.fill(&mut taken, 16, &ctx).await.unwrap();
    let original = taken.pop().unwrap();
    let copy = original.clone();
    assert_eq!(copy.id(), original.id());
    drop(original);
    assert!(poll!(call.as_mut()).is_pending(), "a copy is still alive");
    answer(&mut responses, copy.map(|n| n + 1)).unwrap();
    assert_eq!(call.await, Ok(6));

    let mut call = pin!(client.call(7));
    assert!(poll!(call.as_mut()).is_pending());
    requests.fill(&mut taken, 16, &ctx).await.unwrap();
    let original = taken.pop().unwrap();
    let copies = [original.clone(), original.clone()];
    drop(original);
    drop(copies);
    assert_eq!(call.await, Err(DuplexError::NoResponse));
}

#[tokio::test]
async fn a_response_tagged_by_another_duplex_fails_and_its_caller_answers_no_response() {
    let (client, mut requests, _responses) = duplex::<u64, u64>(8);
    let (_other, _, mut other_sink) = duplex::<u64, u64>(8);
    let ctx = StageContext::detached("duplex");
    let mut call = pin!(client.call(1));
    assert!(poll!(call.as_mut()).is_pending());
    let mut taken = Vec::new();
    requests.fill(&mut taken, 16, &ctx).await.unwrap();
    let request = taken.pop().unwrap();
    let id = request.id();
    let error = answer(&mut other_sink, request).unwrap_err();
    assert_eq!(error, ForeignTag { id });
    assert_eq!(call.await, Err(DuplexError::NoResponse));
}

#[tokio::test]
async fn the_sink_closing_answers_every_waiting_call() {
    let (client, mut requests, mut responses) = duplex::<u64, u64>(8);
    let ctx = StageContext::detached("duplex");
    let mut call = pin!(client.call(1));
    assert!(poll!(call.as_mut()).is_pending());
    let mut taken = Vec::new();
    requests.fill(&mut taken, 16, &ctx).await.unwrap();
    // The item is kept somewhere, but the pipeline ends.
    SyncStage::close(&mut responses, &ctx).unwrap();
    assert_eq!(call.await, Err(DuplexError::NoResponse));
    assert_eq!(client.call(2).await, Err(DuplexError::Closed));
    drop(taken);
}

#[tokio::test]
async fn tagged_values_map_and_come_apart() {
    let (client, mut requests, mut responses) = duplex::<String, usize>(8);
    let ctx = StageContext::detached("duplex");
    let mut call = pin!(client.call("four".to_string()));
    assert!(matches!(poll!(call.as_mut()), Poll::Pending));
    let mut taken = Vec::new();
    requests.fill(&mut taken, 16, &ctx).await.unwrap();
    let mut request = taken.pop().unwrap();
    request.value_mut().push('!');
    let parsed: Result<Tagged<usize>, &str> = request.try_map(|text| Ok(text.len()));
    let (len, tag) = parsed.unwrap().into_parts();
    answer(&mut responses, tag.with(len)).unwrap();
    assert_eq!(call.await, Ok(5));
}

/// A future that is `Send`: a service can spawn its calls.
#[allow(dead_code)]
fn calls_are_send(client: pipeline_runtime::io::DuplexClient<String, u64>) -> impl Future + Send {
    async move { client.call("x".to_string()).await }
}

#[tokio::test]
async fn a_pipeline_dropped_before_it_runs_refuses_calls() {
    let (client, requests, responses) = duplex::<u64, u64>(8);
    drop((requests, responses));
    assert!(client.is_closed());
    assert_eq!(client.call(1).await, Err(DuplexError::Closed));
}
