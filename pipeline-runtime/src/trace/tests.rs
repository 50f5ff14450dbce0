//! Traced stages, watched by a `tracing` subscriber made for the tests.
//!
//! Each test that runs a traced stage installs its own [`Recorder`] as the
//! thread's default subscriber before the `item` span's callsite is first
//! reached, and the recorder always answers `Interest::sometimes`: so
//! whichever thread registers the callsite first, with whichever
//! subscribers exist then, the callsite asks each subscriber every time,
//! and no test sees it disabled for another's sake.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::*;
use crate::chain::{Fuse, Head, drive};
use crate::graph::NodeKind;
use crate::io::{Collected, collect, iter};
use crate::lifecycle::Pipeline;
use crate::metrics::StageStats;
use crate::stage::{Never, SyncStage};

const TRACE_A: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE_B: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";

/// A span as the recorder saw it.
#[derive(Debug, Clone)]
struct SpanRecord {
    name: &'static str,
    /// The id of its parent span in `tracing`'s tree, if any.
    parent: Option<u64>,
    fields: HashMap<&'static str, String>,
}

impl SpanRecord {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

#[derive(Debug, Default)]
struct Recorded {
    /// By span id (from 1).
    spans: Vec<SpanRecord>,
    /// The spans entered, innermost last.
    stack: Vec<u64>,
    /// Each event's `message`, with the span entered when it was emitted.
    events: Vec<(String, Option<u64>)>,
}

impl Recorded {
    fn span(&self, id: u64) -> &SpanRecord {
        &self.spans[id as usize - 1]
    }

    /// The `item` spans, with their ids.
    fn items(&self) -> Vec<(u64, &SpanRecord)> {
        (1..)
            .zip(&self.spans)
            .filter(|(_, span)| span.name == "item")
            .collect()
    }
}

/// A subscriber that keeps every span with its fields and parent, and
/// every event with the span it was emitted in. Disabled, it wants
/// nothing (as no subscriber at all), but still answers `sometimes`.
#[derive(Clone, Default)]
struct Recorder {
    recorded: Arc<Mutex<Recorded>>,
    disabled: bool,
}

struct Fields<'a>(&'a mut HashMap<&'static str, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name(), value.to_owned());
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name(), format!("{value:?}"));
    }
}

impl tracing::Subscriber for Recorder {
    fn register_callsite(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }

    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        !self.disabled
    }

    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut recorded = self.recorded.lock().unwrap();
        let parent = match span.parent() {
            Some(parent) => Some(parent.into_u64()),
            None if span.is_contextual() => recorded.stack.last().copied(),
            None => None,
        };
        let mut fields = HashMap::new();
        span.record(&mut Fields(&mut fields));
        recorded.spans.push(SpanRecord {
            name: span.metadata().name(),
            parent,
            fields,
        });
        tracing::span::Id::from_u64(recorded.spans.len() as u64)
    }

    fn record(&self, span: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut recorded = self.recorded.lock().unwrap();
        let fields = &mut recorded.spans[span.into_u64() as usize - 1].fields;
        values.record(&mut Fields(fields));
    }

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = HashMap::new();
        event.record(&mut Fields(&mut fields));
        let mut recorded = self.recorded.lock().unwrap();
        let current = recorded.stack.last().copied();
        let message = fields.remove("message").unwrap_or_default();
        recorded.events.push((message, current));
    }

    fn enter(&self, span: &tracing::span::Id) {
        self.recorded.lock().unwrap().stack.push(span.into_u64());
    }

    fn exit(&self, span: &tracing::span::Id) {
        let popped = self.recorded.lock().unwrap().stack.pop();
        assert_eq!(popped, Some(span.into_u64()), "spans exit in order");
    }
}

impl Recorder {
    /// Runs `f` with the recorder as this thread's subscriber, on a
    /// current-thread runtime, and returns what it recorded.
    fn run<R>(self, f: impl Future<Output = R>) -> (R, Recorded) {
        let recorded = Arc::clone(&self.recorded);
        let result = tracing::subscriber::with_default(self, || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(f)
        });
        let recorded = std::mem::take(&mut *recorded.lock().unwrap());
        (result, recorded)
    }
}

fn hex(bytes: &[u8]) -> String {
    Hex(bytes).to_string()
}

/// What the stages saw as [`current`], by stage, payload and poll.
type Seen = Arc<Mutex<Vec<(&'static str, String, Option<TraceContext>)>>>;

/// Parses a number, logging as it goes: fails on what is not one.
struct Parse(Seen);

impl SyncStage<String> for Parse {
    type Out = u64;
    type Error = String;

    fn process(
        &mut self,
        text: String,
        out: &mut Emit<'_, u64>,
        _: &StageContext,
    ) -> Result<(), String> {
        tracing::info!("parsing {text}");
        self.0
            .lock()
            .unwrap()
            .push(("parse", text.clone(), current()));
        out.emit(text.parse().map_err(|_| format!("not a number: {text}"))?);
        Ok(())
    }
}

crate::sync_stage!(Parse: String);

/// Emits `n` and `10 * n`, after a yield (so its work spans two polls).
struct Fan(Seen);

impl Stage<u64> for Fan {
    type Out = u64;
    type Error = Never;

    async fn process(
        &mut self,
        n: u64,
        out: &mut Emit<'_, u64>,
        _: &StageContext,
    ) -> Result<(), Never> {
        self.0
            .lock()
            .unwrap()
            .push(("fan", n.to_string(), current()));
        tokio::task::yield_now().await;
        tracing::info!("fanning {n}");
        self.0
            .lock()
            .unwrap()
            .push(("fan", n.to_string(), current()));
        out.emit(n);
        out.emit(n * 10);
        Ok(())
    }
}

/// An envelope of `text` with sequence id `seq`, whose trace (if any) is
/// read from its `traceparent` header, as a source would.
fn incoming(text: &str, seq: u64, traceparent: Option<&str>) -> Envelope<String> {
    let mut env = Envelope::new(text.to_owned(), seq);
    if let Some(traceparent) = traceparent {
        env.set_header("traceparent", traceparent);
        env.set_header("baggage", "tenant=acme");
        env.extract_trace_from_headers().unwrap();
    }
    env
}

#[test]
fn two_traced_stages_advance_the_trace_one_hop_each_in_a_span_per_item() {
    let seen = Seen::default();
    let out = Collected::new();
    let stats = |name, kind| Arc::new(StageStats::new(name, kind));
    let (source, parse, fan, sink) = (
        stats("iter", NodeKind::Source),
        stats("parse", NodeKind::Transform),
        stats("fan", NodeKind::Transform),
        stats("collect", NodeKind::Sink),
    );
    let items = vec![
        incoming("1", 0, Some(TRACE_A)),
        incoming("2", 1, None),
        incoming("x", 2, Some(TRACE_B)),
        incoming("3", 3, Some(TRACE_B)),
    ];
    let (run, recorded) = Recorder::default().run(async {
        let chain: Fuse<_, _, Envelope<String>, Envelope<u64>, String> = Fuse::new(
            Head::new(iter(items), source.clone(), 8),
            traced(Parse(Arc::clone(&seen))),
            parse.clone(),
        );
        let chain: Fuse<_, _, Envelope<u64>, Envelope<u64>, Never> =
            Fuse::new(chain, traced(Fan(Arc::clone(&seen))), fan.clone());
        let chain: Fuse<_, _, Envelope<u64>, Never, Never> =
            Fuse::new(chain, collect(&out), sink.clone());
        let stages = vec![source.clone(), parse.clone(), fan.clone(), sink.clone()];
        Pipeline::new(stages, |control| drive(chain, control))
            .run()
            .await
    });
    let report = run.unwrap();
    assert_eq!(report.stage("parse").unwrap().failed, 1, "`x` failed");
    assert_eq!(current(), None, "nothing is left current");

    // The outputs: `1`, `2` and `3`, each twice, in order.
    let out = out.take();
    let payloads: Vec<(u64, u64)> = out.iter().map(|e| (e.seq(), *e.payload())).collect();
    assert_eq!(
        payloads,
        [(0, 1), (0, 10), (1, 2), (1, 20), (3, 3), (3, 30)]
    );

    // The spans: one per traced item and stage (none for `2`, which has
    // no trace), each a child of its stage's span, in the item's trace.
    let items = recorded.items();
    let described: Vec<(&str, &str)> = items
        .iter()
        .map(|(_, span)| (span.field("stage").unwrap(), span.field("seq").unwrap()))
        .collect();
    assert_eq!(
        described,
        [
            ("parse", "0"),
            ("parse", "2"),
            ("parse", "3"),
            ("fan", "0"),
            ("fan", "3"),
        ]
    );
    for (_, span) in &items {
        let parent = recorded.span(span.parent.expect("made inside the stage's span"));
        assert_eq!(parent.name, "stage");
        assert_eq!(parent.field("stage"), span.field("stage"));
        assert_eq!(span.field("otel.name"), span.field("stage"));
    }

    // Item `1`: the caller's span, then parse's, then fan's, which its
    // outputs carry on.
    let caller = TraceContext::from_traceparent(TRACE_A).unwrap();
    let (parse_1, fan_1) = (items[0].1, items[3].1);
    assert_eq!(parse_1.field("trace_id"), Some(&*hex(&caller.trace_id)));
    assert_eq!(fan_1.field("trace_id"), Some(&*hex(&caller.trace_id)));
    assert_eq!(parse_1.field("parent_id"), Some(&*hex(&caller.span_id)));
    assert_eq!(parse_1.field("sampled"), Some("true"));
    let parse_span = parse_1.field("span_id").unwrap();
    assert_ne!(parse_span, hex(&caller.span_id));
    assert_eq!(fan_1.field("parent_id"), Some(parse_span));
    let fan_span = fan_1.field("span_id").unwrap();
    assert_ne!(fan_span, parse_span);
    for output in &out[..2] {
        let trace = output.trace().unwrap();
        assert_eq!(trace.trace_id, caller.trace_id);
        assert_eq!(hex(&trace.span_id), fan_span);
        assert!(trace.sampled);
        assert_eq!(trace.baggage, [("tenant".to_owned(), "acme".to_owned())]);
        assert_eq!(
            output.header("traceparent"),
            Some(TRACE_A),
            "headers are left as they came"
        );
    }
    // A sink injecting it passes the last hop on.
    let mut leaving = out[1].clone();
    assert!(leaving.inject_trace_into_headers());
    let next = TraceContext::from_traceparent(leaving.header("traceparent").unwrap()).unwrap();
    assert_eq!(
        (next.trace_id, hex(&next.span_id)),
        (caller.trace_id, fan_span.to_owned())
    );

    // Item `3` goes the same way in its own trace, unsampled; `x` failed
    // in parse, in its span, and went no further.
    let other = TraceContext::from_traceparent(TRACE_B).unwrap();
    let (parse_x, parse_3, fan_3) = (items[1].1, items[2].1, items[4].1);
    assert_eq!(parse_x.field("parent_id"), Some(&*hex(&other.span_id)));
    assert_eq!(parse_3.field("parent_id"), Some(&*hex(&other.span_id)));
    assert_ne!(parse_x.field("span_id"), parse_3.field("span_id"));
    assert_eq!(fan_3.field("parent_id"), parse_3.field("span_id"));
    assert_eq!(fan_3.field("sampled"), Some("false"));
    let last = out[5].trace().unwrap();
    assert_eq!(last.trace_id, other.trace_id);
    assert!(!last.sampled);
    assert_eq!(Some(&*hex(&last.span_id)), fan_3.field("span_id"));

    // Item `2` passed through without a trace, or metadata.
    assert!(!out[2].has_metadata() && !out[3].has_metadata());

    // What the stages logged is in the item's span (or, without a trace,
    // in the stage's).
    let span_of = |message: &str| {
        let (_, span) = recorded
            .events
            .iter()
            .find(|(m, _)| m == message)
            .unwrap_or_else(|| panic!("no event {message:?}: {:?}", recorded.events));
        recorded.span(span.unwrap())
    };
    assert_eq!(span_of("parsing 1").field("span_id"), Some(parse_span));
    assert_eq!(span_of("parsing x").field("seq"), Some("2"));
    assert_eq!(span_of("fanning 1").field("span_id"), Some(fan_span));
    assert_eq!(span_of("parsing 2").name, "stage");
    assert_eq!(span_of("fanning 2").name, "stage");

    // `current()` was the stage's own hop while its work ran, across the
    // await too; nothing for `2`.
    let seen = seen.lock().unwrap();
    let current_of = |stage: &str, item: &str| -> Vec<Option<String>> {
        seen.iter()
            .filter(|(s, i, _)| *s == stage && i == item)
            .map(|(_, _, trace)| trace.as_ref().map(|t| hex(&t.span_id)))
            .collect()
    };
    assert_eq!(current_of("parse", "1"), [Some(parse_span.to_owned())]);
    assert_eq!(current_of("fan", "1"), vec![Some(fan_span.to_owned()); 2]);
    assert_eq!(current_of("parse", "2"), [None]);
    assert_eq!(current_of("fan", "2"), [None, None]);
}

#[test]
fn items_without_a_trace_pass_through_untouched() {
    let ((out, failures), recorded) = Recorder::default().run(async {
        let mut plain = Envelope::new(3u32, 1);
        plain.set_header("content-type", "json");
        let mut input = vec![Envelope::new(1u32, 0), plain];
        let mut out = Vec::new();
        let mut failures = Failures::default();
        let ctx = StageContext::detached("double");
        traced(crate::transform::map(|x: u32| x * 2))
            .process_chunk(&mut input, &mut out, &mut failures, &ctx)
            .await;
        (out, failures)
    });
    assert_eq!(failures.position(), 2);
    assert_eq!(failures.filtered(), 0);
    assert!(recorded.spans.is_empty(), "{:?}", recorded.spans);
    assert_eq!(*out[0].payload(), 2);
    assert!(!out[0].has_metadata(), "no metadata is made");
    assert_eq!((out[1].seq(), *out[1].payload()), (1, 6));
    assert_eq!(out[1].header("content-type"), Some("json"));
    assert_eq!(out[1].trace(), None, "no trace is started");
}

/// Fails `0`, panics on `1` after emitting, emits nothing for `2`, and
/// three outputs for the rest.
struct Moody;

impl SyncStage<u64> for Moody {
    type Out = u64;
    type Error = String;

    fn process(&mut self, n: u64, out: &mut Emit<'_, u64>, _: &StageContext) -> Result<(), String> {
        match n {
            0 => Err("zero".to_owned()),
            1 => {
                out.emit(1);
                panic!("one")
            }
            2 => Ok(()),
            _ => {
                out.extend([n, n + 1, n + 2]);
                Ok(())
            }
        }
    }
}

crate::sync_stage!(Moody: u64);

#[test]
fn failures_panics_and_several_outputs_keep_to_their_item() {
    let traced_item = |n: u64| {
        let mut env = Envelope::new(n, n);
        env.set_trace(TraceContext::new([9; 16], [n as u8 + 1; 8], true));
        env
    };
    let ((out, failures, after), recorded) = Recorder::default().run(async {
        let mut input: Vec<_> = (0..4).map(traced_item).collect();
        let mut out = Vec::new();
        let mut failures = Failures::default();
        let ctx = StageContext::detached("moody");
        let mut stage = traced(Moody);
        stage
            .process_chunk(&mut input, &mut out, &mut failures, &ctx)
            .await;
        let after = current();
        (out, failures, after)
    });
    assert_eq!(after, None, "a panic does not leave its context current");
    assert!(recorded.stack.is_empty(), "nor its span entered");
    assert_eq!(recorded.items().len(), 4, "one span per item");
    let failed: Vec<_> = failures
        .errors()
        .iter()
        .map(|(p, e)| (*p, e.as_str()))
        .collect();
    assert_eq!(failed, [(0, "zero")]);
    assert_eq!(failures.panics(), [(1, "one".to_owned())]);
    assert_eq!(failures.filtered(), 1, "`2`");
    assert_eq!(failures.position(), 4);

    // `3`'s three outputs share its envelope: seq, and the one new hop.
    let payloads: Vec<_> = out.iter().map(|e| (e.seq(), *e.payload())).collect();
    assert_eq!(payloads, [(3, 3), (3, 4), (3, 5)]);
    let hop = out[0].trace().unwrap().clone();
    assert_ne!(hop.span_id, [4; 8]);
    assert!(out.iter().all(|e| e.trace() == Some(&hop)));
    let (_, span) = recorded.items()[3];
    assert_eq!(span.field("span_id"), Some(&*hex(&hop.span_id)));
    assert_eq!(span.field("parent_id"), Some(&*hex(&[4; 8])));
}

#[test]
fn the_trace_advances_without_a_subscriber() {
    let recorder = Recorder {
        disabled: true,
        ..Recorder::default()
    };
    let (out, recorded) = recorder.run(async {
        let mut item = Envelope::new(String::from("7"), 0);
        item.set_trace(TraceContext::from_traceparent(TRACE_A).unwrap());
        let mut stage = traced(Parse(Seen::default()));
        let mut out = Vec::new();
        let ctx = StageContext::detached("parse");
        stage
            .process(item, &mut Emit::new(&mut out), &ctx)
            .await
            .unwrap();
        let seen = stage.get_ref().0.lock().unwrap()[0].2.clone();
        (out, seen)
    });
    let (out, seen) = out;
    assert!(recorded.spans.is_empty() && recorded.events.is_empty());
    let hop = out[0].trace().unwrap();
    let caller = TraceContext::from_traceparent(TRACE_A).unwrap();
    assert_eq!(hop.trace_id, caller.trace_id);
    assert_ne!(hop.span_id, caller.span_id);
    assert_eq!(seen.as_ref(), Some(hop), "`current()` does not need a span");
}

#[test]
fn traced_is_a_sink_and_clones_if_its_stage_does() {
    fn sink<S: IsSink>(_: &S) {}
    fn clones<S: Clone>(_: &S) {}
    let out = Collected::<u64>::new();
    let stage = traced(collect(&out));
    sink(&stage);
    clones(&traced(crate::transform::map(|x: u64| x + 1)));
    let _: &crate::io::Collect<u64> = stage.get_ref();
    let _: crate::io::Collect<u64> = stage.into_inner();
}
