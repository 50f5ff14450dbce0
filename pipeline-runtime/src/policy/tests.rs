//! Error policies, panics, retries and the breaker on hand-built chains.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::chain::{Chain, Fuse, Head, drive, drive_into, join};
use crate::channel::{EdgeReceiver, edge};
use crate::control::Control;
use crate::error::Error;
use crate::fan::{Broadcast, Inlet, Output};
use crate::graph::NodeKind;
use crate::io::{Collected, collect, iter};
use crate::lifecycle::Pipeline;
use crate::metrics::{EdgeStats, StageReport, StageStats};
use crate::options::StageOptions;
use crate::stage::{Emit, Failed, Never, Pull, Stage, StageContext, StageError};
use crate::transform::{map, then};

fn stats(name: &'static str, kind: NodeKind) -> Arc<StageStats> {
    Arc::new(StageStats::new(name, kind))
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `items_in = passed + filtered + failed + dropped + dead_lettered`.
#[track_caller]
fn assert_balanced(stats: &StageStats) {
    let report = StageReport::from_stats(stats);
    assert!(report.is_balanced(), "{report:?}");
}

/// When each call was made: (item, time since the test started).
type Calls = Arc<Mutex<Vec<(u32, Duration)>>>;

/// A stage calling `f(item, attempt)` for each item (attempt counts from
/// 1 per item), through the default per-item loop, after `delay`, logging
/// each call. `f` may fail or panic.
struct Service<F> {
    f: F,
    attempts: HashMap<u32, u32>,
    calls: Calls,
    start: Instant,
    delay: Duration,
    closed: Arc<Mutex<bool>>,
}

fn service<F: FnMut(u32, u32) -> Result<u32, String>>(f: F) -> (Service<F>, Calls) {
    let calls = Calls::default();
    let service = Service {
        f,
        attempts: HashMap::new(),
        calls: calls.clone(),
        start: Instant::now(),
        delay: Duration::ZERO,
        closed: Arc::default(),
    };
    (service, calls)
}

impl<F: FnMut(u32, u32) -> Result<u32, String>> Stage<u32> for Service<F> {
    type Out = u32;
    type Error = String;

    async fn process(
        &mut self,
        item: u32,
        out: &mut Emit<'_, u32>,
        _: &StageContext,
    ) -> Result<(), String> {
        let attempt = self.attempts.entry(item).or_default();
        *attempt += 1;
        let attempt = *attempt;
        self.calls
            .lock()
            .unwrap()
            .push((item, self.start.elapsed()));
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        out.emit((self.f)(item, attempt)?);
        Ok(())
    }

    async fn close(&mut self, _: &StageContext) -> Result<(), crate::stage::BoxError> {
        *self.closed.lock().unwrap() = true;
        Ok(())
    }
}

fn called(calls: &Calls) -> Vec<u32> {
    calls
        .lock()
        .unwrap()
        .iter()
        .map(|(item, _)| *item)
        .collect()
}

/// Pulls `chain` to the end, returning its outputs and what `close`
/// returned.
async fn run<C: Chain>(chain: &mut C) -> (Vec<C::Out>, Result<(), Error>) {
    chain.init().await.unwrap();
    let control = Control::new();
    let mut out = Vec::new();
    loop {
        let pull = chain.pull(&mut out, &control).await.unwrap();
        if pull == Pull::Done {
            break;
        }
    }
    (out, chain.close().await)
}

/// A connected `errors` port and the receiving end of its edge.
fn errors_port<T>() -> (Broadcast<T>, EdgeReceiver<T>) {
    let (tx, rx) = edge(1 << 16, 64);
    let stats = Arc::new(EdgeStats::new("call", "dead", Some("errors")));
    (Broadcast::single(Output::new(tx, stats)), rx)
}

/// Everything the port received, once its sender is gone.
async fn received<T>(mut rx: EdgeReceiver<T>) -> Vec<T> {
    let mut all = Vec::new();
    while let Some(chunk) = rx.recv_chunk().await {
        all.extend(chunk);
    }
    all
}

fn with_on_error(on_error: OnError) -> StageOptions {
    StageOptions {
        on_error: Some(on_error),
        ..StageOptions::NONE
    }
}

fn retry(attempts: u32, then: Exhausted) -> OnError {
    OnError::Retry {
        retry: Retry {
            attempts,
            backoff: ms(10),
            max_backoff: ms(1_000),
        },
        then,
    }
}

// Panics.

#[tokio::test]
async fn a_panic_in_a_per_item_stage_fails_only_its_item() {
    let (stage, calls) = service(|x, _| {
        if x == 3 {
            panic!("three is right out");
        }
        Ok(x * 10)
    });
    let call = stats("call", NodeKind::Transform);
    let head = Head::new(iter(0..6u32), stats("iter", NodeKind::Source), 4);
    let mut chain: Fuse<_, _, u32, u32, String> = Fuse::new(head, stage, call.clone());
    let (out, closed) = run(&mut chain).await;
    closed.unwrap();
    assert_eq!(out, [0, 10, 20, 40, 50]);
    assert_eq!(called(&calls), [0, 1, 2, 3, 4, 5]);
    assert_eq!((call.items_in(), call.passed(), call.failed()), (6, 5, 1));
    assert_balanced(&call);
}

#[tokio::test]
async fn a_panic_in_a_map_fails_only_its_item_and_the_rest_of_its_chunk_goes_on() {
    let call = stats("map", NodeKind::Transform);
    let head = Head::new(iter(0..10u32), stats("iter", NodeKind::Source), 4);
    // `map` runs a chunk as one pass, which resumes after a panic.
    let stage = map(|x: u32| {
        assert_ne!(x, 5, "five");
        x
    });
    let mut chain: Fuse<_, _, u32, u32, Never> = Fuse::new(head, stage, call.clone());
    let (out, closed) = run(&mut chain).await;
    closed.unwrap();
    assert_eq!(out, [0, 1, 2, 3, 4, 6, 7, 8, 9]);
    assert_eq!((call.items_in(), call.passed(), call.failed()), (10, 9, 1));
    assert_eq!(call.items_out(), 9);
    assert_balanced(&call);
}

#[tokio::test]
async fn a_panic_in_a_whole_chunk_stage_fails_that_chunk_and_discards_its_outputs() {
    use crate::stage::{Failures, StageContext, SyncStage};
    /// Runs its chunk as one pass with no guard of its own.
    struct WholeChunk;
    impl SyncStage<u32> for WholeChunk {
        type Out = u32;
        type Error = Never;
        fn process(
            &mut self,
            item: u32,
            out: &mut crate::stage::Emit<'_, u32>,
            _: &StageContext,
        ) -> Result<(), Never> {
            out.emit(item);
            Ok(())
        }
        fn process_chunk(
            &mut self,
            input: &mut Vec<u32>,
            out: &mut Vec<u32>,
            failures: &mut Failures<Never>,
            _: &StageContext,
        ) {
            failures.note_passed(input.len());
            out.extend(input.drain(..).inspect(|x| assert_ne!(*x, 5, "five")));
        }
    }
    crate::sync_stage!(WholeChunk: u32);
    let call = stats("whole", NodeKind::Transform);
    let head = Head::new(iter(0..10u32), stats("iter", NodeKind::Source), 4);
    // A panic escaping `process_chunk` on 5 takes its chunk (4..8) down,
    // outputs included; the chunks around it go on.
    let mut chain: Fuse<_, _, u32, u32, Never> = Fuse::new(head, WholeChunk, call.clone());
    let (out, closed) = run(&mut chain).await;
    closed.unwrap();
    assert_eq!(out, [0, 1, 2, 3, 8, 9]);
    assert_eq!((call.items_in(), call.passed(), call.failed()), (10, 6, 4));
    assert_eq!(call.items_out(), 6);
    assert_balanced(&call);
}

#[tokio::test]
async fn a_whole_chunk_panic_keeps_the_errors_the_stage_recorded_itself() {
    use crate::stage::Failures;
    /// Fails even items, filters 1, and panics on 7, in its own loop.
    struct Own;
    impl Stage<u32> for Own {
        type Out = u32;
        type Error = String;
        async fn process(
            &mut self,
            _: u32,
            _: &mut Emit<'_, u32>,
            _: &StageContext,
        ) -> Result<(), String> {
            unreachable!()
        }
        async fn process_chunk(
            &mut self,
            input: &mut Vec<u32>,
            out: &mut Vec<u32>,
            failures: &mut Failures<String>,
            _: &StageContext,
        ) {
            for x in input.drain(..) {
                match x {
                    7 => panic!("seven"),
                    1 => failures.note_filtered(1),
                    x if x % 2 == 0 => failures.fail(format!("even {x}")),
                    x => {
                        out.push(x);
                        failures.note_passed(1);
                    }
                }
            }
        }
    }
    let call = stats("own", NodeKind::Transform);
    let head = Head::new(iter(0..9u32), stats("iter", NodeKind::Source), 9);
    let (errors, rx) = errors_port();
    let chain: Fuse<_, _, u32, u32, String, _> =
        Fuse::with_errors(head, Own, call.clone(), StageOptions::NONE, errors);
    let mut chain = chain;
    let (out, closed) = run(&mut chain).await;
    closed.unwrap();
    drop(chain);
    assert!(out.is_empty(), "the chunk's outputs are discarded");
    let failed: Vec<(u32, String)> = received(rx)
        .await
        .into_iter()
        .map(|f: Failed<u32, String>| (f.input, f.error.to_string()))
        .collect();
    let expected: Vec<(u32, String)> = [
        (0, "even 0"),
        (1, "panicked: seven"),
        (2, "even 2"),
        (3, "panicked: seven"),
        (4, "even 4"),
        (5, "panicked: seven"),
        (6, "even 6"),
        (7, "panicked: seven"),
        (8, "panicked: seven"),
    ]
    .into_iter()
    .map(|(x, e)| (x, e.to_owned()))
    .collect();
    assert_eq!(failed, expected);
    assert_eq!((call.filtered(), call.dead_lettered()), (0, 9));
    assert_balanced(&call);
}

#[tokio::test]
async fn a_panic_goes_to_the_errors_port_as_panicked_with_its_input() {
    let (stage, _) = service(|x, _| match x {
        2 => panic!("boom on {x}"),
        4 => Err("four".to_owned()),
        x => Ok(x),
    });
    let call = stats("call", NodeKind::Transform);
    let head = Head::new(iter(0..6u32), stats("iter", NodeKind::Source), 8);
    let (errors, rx) = errors_port();
    let mut chain: Fuse<_, _, u32, u32, String, _> =
        Fuse::with_errors(head, stage, call.clone(), StageOptions::NONE, errors);
    let (out, closed) = run(&mut chain).await;
    closed.unwrap();
    drop(chain);
    assert_eq!(out, [0, 1, 3, 5]);
    let failed = received(rx).await;
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[0].input, 2);
    assert_eq!(failed[0].error, StageError::Panicked("boom on 2".into()));
    assert_eq!(
        failed[0].to_string(),
        "stage `call` failed on an item: panicked: boom on 2"
    );
    assert_eq!(failed[1], Failed::new("call", 4, "four".to_owned()));
    assert_eq!((call.failed(), call.dead_lettered()), (0, 2));
    assert_balanced(&call);
}

// Ignore, dead letter, fail.

#[tokio::test]
async fn ignore_counts_failed_items_and_goes_on() {
    let (stage, _) = service(|x, _| {
        if x % 3 == 0 {
            Err(format!("{x}"))
        } else {
            Ok(x)
        }
    });
    let call = stats("call", NodeKind::Transform);
    let head = Head::new(iter(0..10u32), stats("iter", NodeKind::Source), 4);
    let mut chain: Fuse<_, _, u32, u32, String> =
        Fuse::with_options(head, stage, call.clone(), with_on_error(OnError::Ignore));
    let (out, closed) = run(&mut chain).await;
    closed.unwrap();
    assert_eq!(out, [1, 2, 4, 5, 7, 8]);
    assert_eq!(
        (call.passed(), call.failed(), call.dead_lettered()),
        (6, 4, 0)
    );
    assert_balanced(&call);
}

#[tokio::test]
async fn dead_letter_sends_each_failed_input_to_the_errors_port() {
    let (stage, _) = service(|x, _| {
        if x % 3 == 0 {
            Err(format!("bad {x}"))
        } else {
            Ok(x)
        }
    });
    let call = stats("call", NodeKind::Transform);
    let head = Head::new(iter(0..10u32), stats("iter", NodeKind::Source), 4);
    let (errors, rx) = errors_port();
    let mut chain: Fuse<_, _, u32, u32, String, _> = Fuse::with_errors(
        head,
        stage,
        call.clone(),
        with_on_error(OnError::DeadLetter),
        errors,
    );
    let (out, closed) = run(&mut chain).await;
    closed.unwrap();
    drop(chain);
    assert_eq!(out, [1, 2, 4, 5, 7, 8]);
    let inputs: Vec<u32> = received(rx).await.iter().map(|f| f.input).collect();
    assert_eq!(inputs, [0, 3, 6, 9]);
    assert_eq!(
        (call.passed(), call.failed(), call.dead_lettered()),
        (6, 0, 4)
    );
    assert_balanced(&call);
}

#[tokio::test]
async fn dead_letter_without_a_port_ignores() {
    let (stage, _) = service(|x, _| if x == 1 { Err("one".into()) } else { Ok(x) });
    let call = stats("call", NodeKind::Transform);
    let head = Head::new(iter(0..3u32), stats("iter", NodeKind::Source), 4);
    let mut chain: Fuse<_, _, u32, u32, String> = Fuse::with_options(
        head,
        stage,
        call.clone(),
        with_on_error(OnError::DeadLetter),
    );
    let (out, _) = run(&mut chain).await;
    assert_eq!(out, [0, 2]);
    assert_eq!((call.failed(), call.dead_lettered()), (1, 0));
    assert_balanced(&call);
}

#[tokio::test]
async fn fail_returns_the_stage_and_position_from_close_after_the_chunk_and_its_close_hook() {
    let (stage, calls) = service(|x, _| if x == 5 { Err("five".into()) } else { Ok(x) });
    let closed_hook = stage.closed.clone();
    let call = stats("call", NodeKind::Transform);
    let head = Head::new(iter(0..100u32), stats("iter", NodeKind::Source), 4);
    let chain: Fuse<_, _, u32, u32, String> =
        Fuse::with_options(head, stage, call.clone(), with_on_error(OnError::Fail));
    let out = Collected::new();
    let sink = stats("collect", NodeKind::Sink);
    let chain: Fuse<_, _, u32, Never, Never> = Fuse::new(chain, collect(&out), sink.clone());
    let error = drive(chain, Control::new()).await.unwrap_err();
    let Error::ItemFailed {
        stage,
        position,
        error: message,
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!((*stage, *position, message.as_str()), ("call", 5, "five"));
    assert_eq!(
        error.to_string(),
        "stage `call` failed on item 5 (on_error = fail): five"
    );
    // The source stopped after the chunk (4..8) holding the failed item;
    // the rest of that chunk still went through.
    assert_eq!(called(&calls), [0, 1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(out.take(), [0, 1, 2, 3, 4, 6, 7]);
    assert!(*closed_hook.lock().unwrap(), "close hooks ran");
    assert_eq!((call.items_in(), call.failed()), (8, 1));
    assert_balanced(&call);
    assert_balanced(&sink);
}

#[tokio::test]
async fn fail_stops_the_pipeline_and_other_chains_drain_before_run_returns_it() {
    let call = stats("call", NodeKind::Transform);
    let sink = stats("collect", NodeKind::Sink);
    let out = Collected::new();
    let out_ref = &out;
    let call_stats = call.clone();
    let sink_stats = sink.clone();
    let pipeline = Pipeline::new(vec![call.clone(), sink.clone()], move |control: Control| {
        let (stage, _) = service(|x, _| if x == 5 { Err("five".into()) } else { Ok(x) });
        let head = Head::new(iter(0..100u32), stats("iter", NodeKind::Source), 4);
        let first: Fuse<_, _, u32, u32, String> =
            Fuse::with_options(head, stage, call_stats, with_on_error(OnError::Fail));
        // A tiny edge, so the second chain still has items queued when
        // the first one fails.
        let (tx, rx) = edge(2, 1);
        let outlet = Broadcast::single(Output::new(
            tx,
            Arc::new(EdgeStats::new("call", "collect", None)),
        ));
        let slow = then(|x: u32| async move {
            tokio::time::sleep(ms(1)).await;
            x
        });
        let second: Fuse<_, _, u32, u32, Never> =
            Fuse::new(Inlet::new(rx, 1), slow, stats("slow", NodeKind::Transform));
        let second: Fuse<_, _, u32, Never, Never> = Fuse::new(second, collect(out_ref), sink_stats);
        join(
            drive_into(first, outlet, control.clone()),
            drive(second, control),
        )
    });
    let error = pipeline.run().await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::ItemFailed {
                stage: "call",
                position: 5,
                ..
            }
        ),
        "{error:?}"
    );
    // Everything the first chain passed reached the sink: nothing in flight
    // was dropped.
    assert_eq!(out.take(), [0, 1, 2, 3, 4, 6, 7]);
    assert_balanced(&call);
    assert_balanced(&sink);
    assert_eq!(sink.items_in(), 7);
}

#[tokio::test]
async fn a_run_error_other_than_fail_still_ends_the_join_at_once() {
    let result = join(
        async { Err(Error::Aborted) },
        std::future::pending::<Result<(), Error>>(),
    )
    .await;
    assert!(matches!(result, Err(Error::Aborted)));
    let drained = join(
        async {
            Err(Error::ItemFailed {
                stage: "a",
                position: 0,
                error: String::new(),
            })
        },
        async { Ok(()) },
    )
    .await;
    assert!(matches!(drained, Err(Error::ItemFailed { stage: "a", .. })));
}

// Retry.

#[tokio::test(start_paused = true)]
async fn retry_succeeds_on_the_third_attempt_after_the_exact_waits() {
    let (stage, calls) = service(|x, attempt| {
        if x == 1 && attempt < 3 {
            Err(format!("attempt {attempt}"))
        } else {
            Ok(x)
        }
    });
    let call = stats("call", NodeKind::Transform);
    let head = Head::new(iter(0..3u32), stats("iter", NodeKind::Source), 8);
    let on_error = retry(5, Exhausted::Fail);
    let mut chain: Fuse<_, _, u32, u32, String> =
        Fuse::with_options_cloning(head, stage, call.clone(), with_on_error(on_error));
    let (out, closed) = run(&mut chain).await;
    closed.unwrap();
    // The retried item's output follows the rest of its chunk.
    assert_eq!(out, [0, 2, 1]);
    let calls = calls.lock().unwrap().clone();
    let item_1: Vec<Duration> = calls.iter().filter(|c| c.0 == 1).map(|c| c.1).collect();
    let OnError::Retry { retry, .. } = on_error else {
        unreachable!()
    };
    let mut waits = Backoff::new(&retry, Jitter::Equal, seed("call"));
    let (first, second) = (waits.delay(1), waits.delay(2));
    assert_eq!(item_1, [Duration::ZERO, first, first + second]);
    assert!(first >= ms(5) && first <= ms(10), "{first:?}");
    assert!(second >= ms(10) && second <= ms(20), "{second:?}");
    assert_eq!(call.retries(), 2);
    assert_eq!((call.passed(), call.failed()), (3, 0));
    assert_balanced(&call);
}

#[tokio::test(start_paused = true)]
async fn retry_waits_double_up_to_the_cap_without_jitter() {
    let (stage, calls) = service(|_, attempt| Err(format!("attempt {attempt}")));
    let call = stats("call", NodeKind::Transform);
    let head = Head::new(iter([7u32]), stats("iter", NodeKind::Source), 8);
    let on_error = OnError::Retry {
        retry: Retry {
            attempts: 4,
            backoff: ms(10),
            max_backoff: ms(30),
        },
        then: Exhausted::Ignore,
    };
    let mut chain: Fuse<_, _, u32, u32, String> =
        Fuse::with_options_cloning(head, stage, call.clone(), with_on_error(on_error))
            .with_jitter(Jitter::None);
    let (out, _) = run(&mut chain).await;
    assert!(out.is_empty());
    let at: Vec<u64> = calls
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.1.as_millis() as u64)
        .collect();
    // Waits of 10, 20, 30 (capped), 30 ms.
    assert_eq!(at, [0, 10, 30, 60, 90]);
    assert_eq!((call.retries(), call.failed()), (4, 1));
    assert_balanced(&call);
}

#[tokio::test(start_paused = true)]
async fn retry_retries_only_the_failed_items_of_a_chunk_together() {
    let (stage, calls) = service(|x, attempt| {
        if x % 2 == 1 && attempt == 1 {
            Err("odd".into())
        } else {
            Ok(x)
        }
    });
    let call = stats("call", NodeKind::Transform);
    let head = Head::new(iter(0..6u32), stats("iter", NodeKind::Source), 8);
    let mut chain: Fuse<_, _, u32, u32, String> = Fuse::with_options_cloning(
        head,
        stage,
        call.clone(),
        with_on_error(retry(2, Exhausted::Ignore)),
    );
    let (out, _) = run(&mut chain).await;
    assert_eq!(out, [0, 2, 4, 1, 3, 5]);
    assert_eq!(called(&calls), [0, 1, 2, 3, 4, 5, 1, 3, 5]);
    assert_eq!((call.retries(), call.passed(), call.failed()), (3, 6, 0));
    assert_balanced(&call);
}

#[tokio::test(start_paused = true)]
async fn retry_exhausted_into_ignore_counts_the_item_failed() {
    let (stage, calls) = service(|x, _| if x == 1 { Err("never".into()) } else { Ok(x) });
    let call = stats("call", NodeKind::Transform);
    let head = Head::new(iter(0..3u32), stats("iter", NodeKind::Source), 8);
    let mut chain: Fuse<_, _, u32, u32, String> = Fuse::with_options_cloning(
        head,
        stage,
        call.clone(),
        with_on_error(retry(2, Exhausted::Ignore)),
    );
    let (out, closed) = run(&mut chain).await;
    closed.unwrap();
    assert_eq!(out, [0, 2]);
    assert_eq!(called(&calls), [0, 1, 2, 1, 1]);
    assert_eq!(
        (call.retries(), call.failed(), call.dead_lettered()),
        (2, 1, 0)
    );
    assert_balanced(&call);
}

#[tokio::test(start_paused = true)]
async fn retry_exhausted_into_dead_letter_sends_the_last_error_with_the_input() {
    let (stage, _) = service(|x, attempt| {
        if x == 1 {
            Err(format!("attempt {attempt}"))
        } else {
            Ok(x)
        }
    });
    let call = stats("call", NodeKind::Transform);
    let head = Head::new(iter(0..3u32), stats("iter", NodeKind::Source), 8);
    let (errors, rx) = errors_port();
    let mut chain: Fuse<_, _, u32, u32, String, _> = Fuse::with_errors(
        head,
        stage,
        call.clone(),
        with_on_error(retry(2, Exhausted::DeadLetter)),
        errors,
    );
    let (out, closed) = run(&mut chain).await;
    closed.unwrap();
    drop(chain);
    assert_eq!(out, [0, 2]);
    assert_eq!(
        received(rx).await,
        [Failed::new("call", 1, "attempt 3".to_owned())]
    );
    assert_eq!(
        (call.retries(), call.failed(), call.dead_lettered()),
        (2, 0, 1)
    );
    assert_balanced(&call);
}

#[tokio::test(start_paused = true)]
async fn retry_exhausted_into_fail_stops_with_the_original_position() {
    let (stage, _) = service(|x, _| if x == 6 { Err("six".into()) } else { Ok(x) });
    let call = stats("call", NodeKind::Transform);
    let head = Head::new(iter(0..20u32), stats("iter", NodeKind::Source), 4);
    let mut chain: Fuse<_, _, u32, u32, String> = Fuse::with_options_cloning(
        head,
        stage,
        call.clone(),
        with_on_error(retry(1, Exhausted::Fail)),
    );
    chain.init().await.unwrap();
    let control = Control::new();
    let mut out = Vec::new();
    while chain.pull(&mut out, &control).await.unwrap() == Pull::More {}
    assert!(control.is_stopping());
    let error = chain.close().await.unwrap_err();
    assert!(
        matches!(error, Error::ItemFailed { stage: "call", position: 6, ref error } if error == "six"),
        "{error:?}"
    );
    assert_eq!(out, [0, 1, 2, 3, 4, 5, 7]);
    assert_eq!((call.retries(), call.failed(), call.items_in()), (1, 1, 8));
    assert_balanced(&call);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_item_is_retried_too() {
    let (stage, _) = service(|x, attempt| {
        if x == 0 && attempt == 1 {
            panic!("first time");
        }
        Ok(x)
    });
    let call = stats("call", NodeKind::Transform);
    let head = Head::new(iter(0..2u32), stats("iter", NodeKind::Source), 8);
    let mut chain: Fuse<_, _, u32, u32, String> = Fuse::with_options_cloning(
        head,
        stage,
        call.clone(),
        with_on_error(retry(1, Exhausted::Ignore)),
    );
    let (out, _) = run(&mut chain).await;
    assert_eq!(out, [1, 0]);
    assert_eq!((call.retries(), call.passed(), call.failed()), (1, 2, 0));
    assert_balanced(&call);
}

#[test]
#[should_panic(expected = "`on_error = retry(..)` needs a clone of each input")]
fn retry_without_a_way_to_clone_the_input_is_refused_when_built() {
    let (stage, _) = service(|x, _| Ok(x));
    let head = Head::new(iter(0..1u32), stats("iter", NodeKind::Source), 8);
    let _: Fuse<_, _, u32, u32, String> = Fuse::with_options(
        head,
        stage,
        stats("call", NodeKind::Transform),
        with_on_error(retry(1, Exhausted::Ignore)),
    );
}

#[tokio::test]
async fn without_a_retry_nothing_is_cloned() {
    /// An input whose clones are counted.
    #[derive(Debug)]
    struct Counted(u32, Arc<Mutex<u32>>);
    impl Clone for Counted {
        fn clone(&self) -> Self {
            *self.1.lock().unwrap() += 1;
            Counted(self.0, self.1.clone())
        }
    }
    let clones = Arc::new(Mutex::new(0));
    let items: Vec<Counted> = (0..5).map(|x| Counted(x, clones.clone())).collect();
    let head = Head::new(iter(items), stats("iter", NodeKind::Source), 8);
    let options = StageOptions {
        on_error: Some(OnError::Fail),
        ..StageOptions::NONE
    };
    let mut chain: Fuse<_, _, Counted, u32, Never> = Fuse::with_options_cloning(
        head,
        map(|c: Counted| c.0),
        stats("map", NodeKind::Transform),
        options,
    );
    let (out, _) = run(&mut chain).await;
    assert_eq!(out, [0, 1, 2, 3, 4]);
    assert_eq!(*clones.lock().unwrap(), 0);
}

// The circuit breaker.

fn breaker_options(on_error: OnError, latency: Option<Duration>) -> StageOptions {
    StageOptions {
        on_error: Some(on_error),
        breaker: Some(Breaker {
            error_rate: 0.5,
            latency,
            window: Duration::from_secs(10),
            min_calls: 3,
            cooldown: Duration::from_secs(5),
        }),
        ..StageOptions::NONE
    }
}

/// A chain whose items reach the stage one second apart (the first at 1s):
/// a source of one item per chunk, then a stage that sleeps a second.
fn paced(items: std::ops::Range<u32>) -> impl Chain<Out = u32> {
    let head = Head::new(iter(items), stats("iter", NodeKind::Source), 1);
    let pace = then(|x: u32| async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        x
    });
    let paced: Fuse<_, _, u32, u32, Never> =
        Fuse::new(head, pace, stats("pace", NodeKind::Transform));
    paced
}

#[tokio::test(start_paused = true)]
async fn the_breaker_opens_fails_fast_half_opens_and_closes() {
    // Items 0..3 fail (3 of 3 calls: open at 3s); the cooldown refuses
    // the items arriving at 4s..7s without calling the stage; the item at
    // 8s is the half-open trial, succeeds, and closes the breaker.
    let (stage, calls) = service(|x, _| {
        if x < 3 {
            Err(format!("down {x}"))
        } else {
            Ok(x)
        }
    });
    let call = stats("call", NodeKind::Transform);
    let (errors, rx) = errors_port();
    let mut chain: Fuse<_, _, u32, u32, String, _> = Fuse::with_errors(
        paced(0..10),
        stage,
        call.clone(),
        breaker_options(OnError::DeadLetter, None),
        errors,
    );
    assert_eq!(chain.breaker_state(), Some(BreakerState::Closed));
    chain.init().await.unwrap();
    let control = Control::new();
    let mut out = Vec::new();
    let mut states = Vec::new();
    loop {
        let pull = chain.pull(&mut out, &control).await.unwrap();
        if pull == Pull::Done {
            break;
        }
        states.push(chain.breaker_state().unwrap());
    }
    chain.close().await.unwrap();
    drop(chain);
    use BreakerState::{Closed, HalfOpen, Open};
    assert_eq!(
        states,
        [
            Closed, Closed, Open, Open, Open, Open, Open, Closed, Closed, Closed
        ]
    );
    let _ = HalfOpen;
    assert_eq!(called(&calls), [0, 1, 2, 7, 8, 9]);
    assert_eq!(out, [7, 8, 9]);
    let failed: Vec<(u32, String)> = received(rx)
        .await
        .into_iter()
        .map(|f| (f.input, f.error.to_string()))
        .collect();
    assert_eq!(
        failed,
        [
            (0, "down 0".to_owned()),
            (1, "down 1".to_owned()),
            (2, "down 2".to_owned()),
            (3, "circuit breaker open".to_owned()),
            (4, "circuit breaker open".to_owned()),
            (5, "circuit breaker open".to_owned()),
            (6, "circuit breaker open".to_owned()),
        ]
    );
    assert_eq!(
        (
            call.breaker_opens(),
            call.breaker_half_opens(),
            call.breaker_closes()
        ),
        (1, 1, 1)
    );
    assert_eq!(call.breaker_state(), Some(BreakerState::Closed));
    let report = StageReport::from_stats(&call).breaker.unwrap();
    assert_eq!(report.state, BreakerState::Closed);
    assert_eq!((call.passed(), call.dead_lettered()), (3, 7));
    assert_balanced(&call);
}

#[tokio::test(start_paused = true)]
async fn a_failed_trial_opens_the_breaker_again() {
    // Items 0..3 fail: open at 3s. The trial at 8s (item 7) fails: open
    // again until 13s; the trial at 13s (item 12) succeeds.
    let (stage, calls) = service(|x, _| {
        if x < 3 || x == 7 {
            Err("down".into())
        } else {
            Ok(x)
        }
    });
    let call = stats("call", NodeKind::Transform);
    let mut chain: Fuse<_, _, u32, u32, String> = Fuse::with_options(
        paced(0..14),
        stage,
        call.clone(),
        breaker_options(OnError::Ignore, None),
    );
    let (out, _) = run(&mut chain).await;
    assert_eq!(called(&calls), [0, 1, 2, 7, 12, 13]);
    assert_eq!(out, [12, 13]);
    assert_eq!(
        (
            call.breaker_opens(),
            call.breaker_half_opens(),
            call.breaker_closes()
        ),
        (2, 2, 1)
    );
    assert_eq!(chain.breaker_state(), Some(BreakerState::Closed));
    assert_eq!((call.passed(), call.failed()), (2, 12));
    assert_balanced(&call);
}

#[tokio::test(start_paused = true)]
async fn slow_calls_open_the_breaker_though_their_items_pass() {
    let (mut stage, calls) = service(|x, _| Ok(x));
    stage.delay = ms(200);
    let call = stats("call", NodeKind::Transform);
    let mut chain: Fuse<_, _, u32, u32, String> = Fuse::with_options(
        paced(0..5),
        stage,
        call.clone(),
        breaker_options(OnError::Ignore, Some(ms(100))),
    );
    let (out, _) = run(&mut chain).await;
    // Three slow calls open it; the next two items are refused.
    assert_eq!(out, [0, 1, 2]);
    assert_eq!(called(&calls), [0, 1, 2]);
    assert_eq!(call.breaker_state(), Some(BreakerState::Open));
    assert_eq!((call.passed(), call.failed()), (3, 2));
    assert_balanced(&call);
}

#[tokio::test(start_paused = true)]
async fn refused_items_are_retried_after_the_backoff() {
    // Open after three failures; the retries of the refused items wait
    // out the cooldown and go through as the trial and after.
    let (stage, calls) = service(|x, attempt| {
        if x < 3 && attempt == 1 {
            Err("down".into())
        } else {
            Ok(x)
        }
    });
    let call = stats("call", NodeKind::Transform);
    let head = Head::new(iter(0..5u32), stats("iter", NodeKind::Source), 8);
    let options = StageOptions {
        on_error: Some(OnError::Retry {
            retry: Retry {
                attempts: 1,
                backoff: Duration::from_secs(5),
                max_backoff: Duration::from_secs(5),
            },
            then: Exhausted::Ignore,
        }),
        ..breaker_options(OnError::Ignore, None)
    };
    let mut chain: Fuse<_, _, u32, u32, String> =
        Fuse::with_options_cloning(head, stage, call.clone(), options).with_jitter(Jitter::None);
    let (out, _) = run(&mut chain).await;
    assert_eq!(out, [0, 1, 2, 3, 4]);
    assert_eq!(called(&calls), [0, 1, 2, 0, 1, 2, 3, 4]);
    assert_eq!(
        (
            call.breaker_opens(),
            call.breaker_half_opens(),
            call.breaker_closes()
        ),
        (1, 1, 1)
    );
    assert_eq!((call.retries(), call.passed(), call.failed()), (5, 5, 0));
    assert_balanced(&call);
}

#[test]
fn the_report_shows_retries_and_the_breaker() {
    use crate::metrics::Report;
    let call = StageStats::new("call", NodeKind::Transform);
    call.set_breaker_state(BreakerState::Closed);
    call.record_breaker(BreakerState::Open);
    call.record_breaker(BreakerState::HalfOpen);
    call.record_breaker(BreakerState::Closed);
    call.record_retries(3);
    let plain = StageStats::new("plain", NodeKind::Transform);
    plain.record_retries(2);
    let report = Report {
        stages: vec![
            StageReport::from_stats(&call),
            StageReport::from_stats(&plain),
            StageReport::from_stats(&StageStats::new("none", NodeKind::Transform)),
        ],
        duration: Duration::ZERO,
        stopped: false,
        edges: Vec::new(),
    };
    let text = report.to_string();
    assert!(
        text.contains(
            "\ncall: 3 retries; breaker closed (opened 1, half-opened 1, closed 1)\nplain: 2 retries\ncompleted"
        ),
        "{text}"
    );
    assert_eq!(report.stages[2].breaker, None);
}
