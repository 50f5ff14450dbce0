//! What pipelines report through the `metrics` facade, caught by a
//! recorder made for the tests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};

use super::*;
use crate::chain::{Fuse, Head, drive, drive_into, join};
use crate::channel::edge;
use crate::fan::{Broadcast, Inlet, Output};
use crate::graph::NodeKind;
use crate::io::{Collected, collect, iter};
use crate::lifecycle::Pipeline;
use crate::stage::{Emit, Never, StageContext, SyncStage};

/// Every metric registered with it, by `name{label=value,..}` (labels
/// sorted by name).
#[derive(Default)]
struct TestRecorder {
    counters: Mutex<HashMap<String, Arc<AtomicU64>>>,
    gauges: Mutex<HashMap<String, Arc<AtomicU64>>>,
    histograms: Mutex<HashMap<String, Arc<Samples>>>,
}

#[derive(Default)]
struct Samples(Mutex<Vec<f64>>);

impl HistogramFn for Samples {
    fn record(&self, value: f64) {
        self.0.lock().unwrap().push(value);
    }
}

fn render(key: &Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|label| format!("{}={}", label.key(), label.value()))
        .collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut counters = self.counters.lock().unwrap();
        Counter::from_arc(Arc::clone(counters.entry(render(key)).or_default()))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let mut gauges = self.gauges.lock().unwrap();
        Gauge::from_arc(Arc::clone(gauges.entry(render(key)).or_default()))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let mut histograms = self.histograms.lock().unwrap();
        Histogram::from_arc(Arc::clone(histograms.entry(render(key)).or_default()))
    }
}

impl TestRecorder {
    #[track_caller]
    fn counter(&self, key: &str) -> u64 {
        let counters = self.counters.lock().unwrap();
        let Some(counter) = counters.get(key) else {
            panic!("no counter {key}; have {:?}", counters.keys());
        };
        counter.load(Relaxed)
    }

    #[track_caller]
    fn gauge(&self, key: &str) -> f64 {
        let gauges = self.gauges.lock().unwrap();
        let Some(gauge) = gauges.get(key) else {
            panic!("no gauge {key}; have {:?}", gauges.keys());
        };
        f64::from_bits(gauge.load(Relaxed))
    }

    #[track_caller]
    fn samples(&self, key: &str) -> Vec<f64> {
        let histograms = self.histograms.lock().unwrap();
        let Some(histogram) = histograms.get(key) else {
            panic!("no histogram {key}; have {:?}", histograms.keys());
        };
        histogram.0.lock().unwrap().clone()
    }
}

/// Passes items on, failing every tenth.
struct Parse;

impl SyncStage<u64> for Parse {
    type Out = u64;
    type Error = String;

    fn process(
        &mut self,
        item: u64,
        out: &mut Emit<'_, u64>,
        _: &StageContext,
    ) -> Result<(), String> {
        if item % 10 == 9 {
            return Err(format!("bad item {item}"));
        }
        out.emit(item);
        Ok(())
    }
}

crate::sync_stage!(Parse: u64);

fn stats(name: &'static str, kind: NodeKind) -> Arc<StageStats> {
    Arc::new(StageStats::new(name, kind))
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_hand_built_pipeline_reports_its_counters_queue_and_timings() {
    let recorder = TestRecorder::default();
    let out = Collected::new();
    let source = stats("iter", NodeKind::Source);
    let parse = stats("parse", NodeKind::Transform);
    let sink = stats("collect", NodeKind::Sink);
    let link = Arc::new(EdgeStats::new("parse", "collect", None));
    let report = metrics::with_local_recorder(&recorder, || {
        current_thread().block_on(async {
            // iter >> parse | edge | collect: 100 items in chunks of 16.
            let (tx, rx) = edge(1024, 16);
            let first: Fuse<_, _, u64, u64, String> = Fuse::new(
                Head::new(iter(0..100u64), source.clone(), 16),
                Parse,
                parse.clone(),
            );
            let outlet = Broadcast::single(Output::new(tx, Arc::clone(&link)));
            let second: Fuse<_, _, u64, Never, Never> =
                Fuse::new(Inlet::new(rx, 16), collect(&out), sink.clone());
            Pipeline::new(
                vec![source.clone(), parse.clone(), sink.clone()],
                move |control| {
                    join(
                        drive_into(first, outlet, control.clone()),
                        drive(second, control),
                    )
                },
            )
            .with_edges(vec![Arc::clone(&link)])
            .named("orders")
            .run()
            .await
        })
    })
    .unwrap();
    assert_eq!(out.take().len(), 90);
    let stage = |name: &str| format!("pipeline=orders,stage={name}");
    assert_eq!(
        recorder.counter(&format!("pipeline_items_out_total{{{}}}", stage("iter"))),
        100
    );
    assert_eq!(
        recorder.counter(&format!("pipeline_items_in_total{{{}}}", stage("parse"))),
        100
    );
    assert_eq!(
        recorder.counter(&format!("pipeline_items_out_total{{{}}}", stage("parse"))),
        90
    );
    assert_eq!(
        recorder.counter(&format!(
            "pipeline_items_failed_total{{{}}}",
            stage("parse")
        )),
        10
    );
    assert_eq!(
        recorder.counter(&format!("pipeline_items_in_total{{{}}}", stage("collect"))),
        90
    );
    assert_eq!(
        recorder.counter(&format!(
            "pipeline_items_dropped_total{{{}}}",
            stage("parse")
        )),
        0
    );
    assert_eq!(
        recorder.counter(&format!(
            "pipeline_items_dead_lettered_total{{{}}}",
            stage("parse")
        )),
        0
    );
    // The counters agree with the report.
    let parsed = report.stage("parse").unwrap();
    assert_eq!(
        (parsed.items_in, parsed.items_out, parsed.failed),
        (100, 90, 10)
    );

    // Seven chunks (6 x 16 + 4) went through `parse`, each timed once.
    let chunks = recorder.samples(&format!(
        "pipeline_stage_chunk_seconds{{{}}}",
        stage("parse")
    ));
    assert_eq!(chunks.len(), 7, "{chunks:?}");
    assert!(chunks.iter().all(|s| s.is_finite()), "{chunks:?}");
    let edge = "from=parse,pipeline=orders,to=collect";
    let waits = recorder.samples(&format!("pipeline_send_wait_seconds{{{edge}}}"));
    assert!(!waits.is_empty());
    // The queue was published as it changed, and ended empty.
    assert_eq!(
        recorder.gauge(&format!("pipeline_queue_depth{{{edge}}}")),
        0.0
    );
    // No flush counters for stages that are not accumulators.
    assert!(
        !recorder
            .counters
            .lock()
            .unwrap()
            .keys()
            .any(|k| k.starts_with("pipeline_batch_flushes_total")),
    );

    // Each stage finished; `parse` remembers its last failure.
    for stats in [&source, &parse, &sink] {
        assert_eq!(stats.status(), StageStatus::Finished, "{}", stats.name());
    }
    assert_eq!(parse.last_error().as_deref(), Some("bad item 99"));
    assert_eq!(parse.pipeline(), Some("orders"));
}

#[test]
fn dead_letters_drops_and_flushes_reach_the_recorder() {
    let recorder = TestRecorder::default();
    metrics::with_local_recorder(&recorder, || {
        let stage = StageStats::new("by_user", NodeKind::Accumulator);
        let edge = EdgeStats::new("by_user", "sink", None);
        // Nothing is reported before `observe`.
        stage.record_produced(1);
        stage.observe("sessions");
        edge.observe("sessions");
        // Only the first name counts.
        stage.observe("other");
        let mut delta = AccumulatorDelta {
            taken: 6,
            outputs: 2,
            passed: 4,
            failed: 1,
            dead_lettered: 1,
            ..AccumulatorDelta::default()
        };
        delta.flushes.add(FlushReason::Items);
        delta.flushes.add(FlushReason::Expired);
        delta.flushes.add(FlushReason::Expired);
        stage.record_accumulated(&delta, &AccumulatorGauges::default());
        stage.record_dropped(2);
        edge.record_sent(5);
        edge.record_dropped(3);
    });
    let key = |name: &str| format!("{name}{{pipeline=sessions,stage=by_user}}");
    assert_eq!(recorder.counter(&key("pipeline_items_in_total")), 6);
    assert_eq!(recorder.counter(&key("pipeline_items_out_total")), 2);
    assert_eq!(recorder.counter(&key("pipeline_items_failed_total")), 1);
    assert_eq!(
        recorder.counter(&key("pipeline_items_dead_lettered_total")),
        1
    );
    // The stage's own drops and those on the edge out of it.
    assert_eq!(recorder.counter(&key("pipeline_items_dropped_total")), 5);
    let flushes = |reason: &str| {
        recorder.counter(&format!(
            "pipeline_batch_flushes_total{{pipeline=sessions,reason={reason},stage=by_user}}"
        ))
    };
    assert_eq!(
        (flushes("items"), flushes("expired"), flushes("stop")),
        (1, 2, 0)
    );
    assert!(
        !recorder
            .counters
            .lock()
            .unwrap()
            .keys()
            .any(|k| k.contains("other"))
    );
}

#[test]
fn without_a_recorder_nothing_is_timed() {
    let stage = StageStats::new("map", NodeKind::Transform);
    assert_eq!(stage.start_chunk(), None, "not observed yet");
    stage.observe(DEFAULT_PIPELINE_NAME);
    assert_eq!(
        stage.start_chunk(),
        None,
        "the no-op recorder records nothing"
    );
    stage.finish_chunk(None);
    stage.record_chunk(3, 3, 0, 0);
    assert_eq!(stage.items_in(), 3);

    let recorder = TestRecorder::default();
    let timed = StageStats::new("map", NodeKind::Transform);
    metrics::with_local_recorder(&recorder, || timed.observe("timed"));
    let started = timed.start_chunk();
    assert!(started.is_some(), "a real recorder is told apart");
    timed.finish_chunk(started);
    assert_eq!(
        recorder
            .samples("pipeline_stage_chunk_seconds{pipeline=timed,stage=map}")
            .len(),
        1
    );
}

/// A `tracing` subscriber that notes the spans made and entered, and for
/// each event the `stage` field of the span entered when it was emitted,
/// on threads that are [recording](RECORDING) only.
///
/// It is the global default, not a scoped one: `tracing` caches whether a
/// callsite is wanted, and a scoped subscriber can miss a callsite that a
/// test on another thread registers first. Other tests, on threads that do
/// not record, see their spans disabled as without a subscriber.
#[derive(Default)]
struct Spans {
    /// By span id (from 1): the span's `stage` field.
    stages: Mutex<Vec<String>>,
    entered: Mutex<Vec<u64>>,
    entries: AtomicU64,
    /// Each event's level and the stage of the span it was emitted in.
    events: Mutex<Vec<(tracing::Level, Option<String>)>>,
}

thread_local! {
    /// Whether this thread's spans and events go to [`Spans`].
    static RECORDING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The global [`Spans`], installed on first use.
fn spans() -> &'static Spans {
    static SPANS: std::sync::OnceLock<&'static Spans> = std::sync::OnceLock::new();
    SPANS.get_or_init(|| {
        let spans: &'static Spans = Box::leak(Box::default());
        tracing::subscriber::set_global_default(SpansSubscriber(spans))
            .expect("no other test sets a global subscriber");
        spans
    })
}

struct SpansSubscriber(&'static Spans);

struct StageField(Option<String>);

impl tracing::field::Visit for StageField {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "stage" {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
}

impl tracing::Subscriber for SpansSubscriber {
    fn register_callsite(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        // Asked every time: only recording threads want anything.
        tracing::subscriber::Interest::sometimes()
    }

    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        RECORDING.with(std::cell::Cell::get)
    }

    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut stage = StageField(None);
        span.record(&mut stage);
        let mut stages = self.0.stages.lock().unwrap();
        stages.push(stage.0.unwrap_or_default());
        tracing::span::Id::from_u64(stages.len() as u64)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let current = self.0.entered.lock().unwrap().last().copied();
        let stage = current.map(|id| self.0.stages.lock().unwrap()[id as usize - 1].clone());
        self.0
            .events
            .lock()
            .unwrap()
            .push((*event.metadata().level(), stage));
    }

    fn enter(&self, span: &tracing::span::Id) {
        self.0.entries.fetch_add(1, Relaxed);
        self.0.entered.lock().unwrap().push(span.into_u64());
    }

    fn exit(&self, _: &tracing::span::Id) {
        self.0.entered.lock().unwrap().pop();
    }
}

#[test]
fn each_stage_processes_its_chunks_in_its_span() {
    let spans = spans();
    let source = stats("iter", NodeKind::Source);
    let parse = stats("parse", NodeKind::Transform);
    let sink = stats("collect", NodeKind::Sink);
    let out = Collected::new();
    RECORDING.with(|recording| recording.set(true));
    let run = current_thread().block_on(async {
        let chain: Fuse<_, _, u64, u64, String> = Fuse::new(
            Head::new(iter(0..20u64), source.clone(), 8),
            Parse,
            parse.clone(),
        );
        let chain: Fuse<_, _, u64, Never, Never> = Fuse::new(chain, collect(&out), sink.clone());
        Pipeline::new(
            vec![source.clone(), parse.clone(), sink.clone()],
            |control| drive(chain, control),
        )
        .run()
        .await
    });
    RECORDING.with(|recording| recording.set(false));
    run.unwrap();
    assert_eq!(out.take().len(), 18);
    assert_eq!(*spans.stages.lock().unwrap(), ["iter", "parse", "collect"]);
    assert!(
        spans.entries.load(Relaxed) >= 3 * 3,
        "three chunks, three stages"
    );
    // The two failed items were logged inside `parse`'s span.
    let events = spans.events.lock().unwrap();
    let warnings: Vec<_> = events
        .iter()
        .filter(|(level, _)| *level == tracing::Level::WARN)
        .collect();
    assert_eq!(warnings.len(), 2, "{events:?}");
    assert!(
        warnings
            .iter()
            .all(|(_, stage)| stage.as_deref() == Some("parse")),
        "{events:?}"
    );
}
