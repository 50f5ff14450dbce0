//! Following an item's trace through the stages: [`traced`].
//!
//! An item that travels as an [`Envelope`] may carry a W3C trace context
//! ([`Envelope::trace`]), read from the headers it came with. Wrapping a
//! stage in [`traced`] makes a stage that takes `Envelope<T>` out of a
//! stage that takes `T`, and, for each item that has a trace context:
//!
//! 1. moves the context one hop on, in place
//!    ([`TraceContext::advance`]): same trace id, flags and baggage, a new
//!    span id whose parent is the item's previous span id;
//! 2. runs the wrapped stage on the payload inside a `tracing` span, `item`,
//!    that stands for that new span (its fields are below), and makes the
//!    context the [`current`] one while the stage's code runs;
//! 3. wraps each output in an envelope with the item's sequence id,
//!    timestamp and metadata, whose trace context is the advanced one.
//!
//! Two traced stages in a row therefore give an item two spans of its
//! trace, the second a child of the first, and the item leaves with a
//! `traceparent` two hops on: each stage's span is the parent of the next
//! stage's, and the last one is the parent of whatever the next service
//! does with the item.
//!
//! An item without a trace context runs through the wrapped stage as it
//! is: no span, no span id, and its metadata untouched (none is allocated
//! for an envelope without it). The runtime never starts a trace.
//!
//! What it costs: untraced stages pay nothing. A traced stage runs its
//! items one at a time through the wrapped stage's `process` (its own
//! `process_chunk`, if it has one, is not used: each item needs its
//! span), so a panic fails only its item, as by default; each output
//! after an item's first copies the item's metadata. An item without a
//! context costs a branch more than the wrapped stage; one with a context
//! adds an atomic increment for the new span id, the span if a subscriber
//! wants it, and the move of the context in and out of a thread-local
//! around each poll.
//!
//! ```
//! use pipeline_runtime::envelope::Envelope;
//! use pipeline_runtime::stage::{Failures, Stage, StageContext};
//! use pipeline_runtime::trace::traced;
//! use pipeline_runtime::transform::map;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // As a source that read an HTTP request or a Kafka record makes it.
//! let mut item = Envelope::new(20u64, 1);
//! item.set_header(
//!     "traceparent",
//!     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
//! );
//! item.extract_trace_from_headers();
//! let untraced = Envelope::new(1u64, 2);
//!
//! let mut double = traced(map(|x: u64| x * 2));
//! let ctx = StageContext::detached("double");
//! let (mut input, mut out) = (vec![item, untraced], Vec::new());
//! double
//!     .process_chunk(&mut input, &mut out, &mut Failures::default(), &ctx)
//!     .await;
//!
//! assert_eq!(*out[0].payload(), 40);
//! let hop = out[0].trace().unwrap();
//! assert_eq!(
//!     hop.to_traceparent()[..36],
//!     *"00-4bf92f3577b34da6a3ce929d0e0e4736-", // the same trace
//! );
//! assert_ne!(hop.span_id, [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]);
//! assert!(hop.sampled);
//!
//! assert_eq!(*out[1].payload(), 2);
//! assert!(!out[1].has_metadata());
//! # }
//! ```
//!
//! # The span
//!
//! The `item` span is at level `INFO`, made inside the stage's own span
//! (see [`crate::metrics`]), so it is that span's child in `tracing`'s
//! tree. Its fields link it to the item's trace:
//!
//! | field | value |
//! | --- | --- |
//! | `trace_id` | the trace id, 32 lowercase hex digits |
//! | `parent_id` | the span id the item came with, 16 lowercase hex digits |
//! | `span_id` | the new span id, the one the outputs carry on |
//! | `sampled` | the `sampled` flag |
//! | `stage` | the stage's name |
//! | `seq` | the item's [sequence id](Envelope::seq) |
//! | `otel.name` | the stage's name again, which `tracing-opentelemetry` takes as the span's name |
//!
//! So a subscriber or layer that exports spans can give the `item` span
//! the W3C ids of the fields, and the trace is whole: the caller's span,
//! then one span per traced stage, then the next service's. The span is
//! entered around each poll of the stage's work and around the call that
//! makes it, so the work of a synchronous stage (which happens in that
//! call) is inside it too, and so is whatever the stage logs. When no
//! subscriber wants the span, it is disabled and entering it is a branch;
//! the context still advances, as propagation does not depend on
//! `tracing`.
//!
//! # Into and out of the pipeline
//!
//! A source that reads records with headers (an HTTP server, a Kafka
//! consumer) copies the headers into each envelope and calls
//! [`Envelope::extract_trace_from_headers`]:
//!
//! ```
//! use pipeline_runtime::envelope::Envelope;
//! use pipeline_runtime::stage::{Pull, Source, StageContext};
//!
//! /// A record as a broker client hands it over.
//! struct Record {
//!     headers: Vec<(String, String)>,
//!     body: Vec<u8>,
//! }
//!
//! struct Records(std::vec::IntoIter<Record>, u64);
//!
//! impl Source for Records {
//!     type Out = Envelope<Vec<u8>>;
//!     type Error = std::convert::Infallible;
//!
//!     async fn fill(
//!         &mut self,
//!         out: &mut Vec<Envelope<Vec<u8>>>,
//!         max: usize,
//!         _ctx: &StageContext,
//!     ) -> Result<Pull, Self::Error> {
//!         while out.len() < max {
//!             let Some(record) = self.0.next() else {
//!                 return Ok(Pull::Done);
//!             };
//!             let mut env = Envelope::new(record.body, self.1);
//!             self.1 += 1;
//!             for (name, value) in record.headers {
//!                 env.set_header(name, value);
//!             }
//!             // The envelope's trace is now the caller's, if it sent one.
//!             env.extract_trace_from_headers();
//!             out.push(env);
//!         }
//!         Ok(Pull::More)
//!     }
//! }
//! ```
//!
//! A sink that writes records with headers takes the envelopes (it is not
//! traced itself, as a traced stage sees payloads only) and calls
//! [`Envelope::inject_trace_into_headers`] before writing, so the record
//! carries the context of the last traced stage:
//!
//! ```
//! use pipeline_runtime::envelope::Envelope;
//!
//! fn send(mut env: Envelope<Vec<u8>>, topic: &mut Vec<(Vec<(String, String)>, Vec<u8>)>) {
//!     env.inject_trace_into_headers();
//!     let headers = env.metadata().map_or_else(Vec::new, |m| {
//!         m.headers
//!             .iter()
//!             .map(|(k, v)| (k.to_owned(), v.to_owned()))
//!             .collect()
//!     });
//!     topic.push((headers, env.into_payload()));
//! }
//! # let mut topic = Vec::new();
//! # let mut env = Envelope::new(b"{}".to_vec(), 0);
//! # env.set_trace(pipeline_runtime::envelope::TraceContext::new([1; 16], [2; 8], true));
//! # send(env, &mut topic);
//! # assert_eq!(topic[0].0[0].1, "00-01010101010101010101010101010101-0202020202020202-01");
//! ```
//!
//! (`for_each(|env: Envelope<Vec<u8>>| send(env, ..))` in a `pipeline!`.)
//! A traced stage whose work calls another service mid-pipeline writes the
//! context of its own span into that call's headers with
//! [`inject_current`].
//!
//! The envelope's [trace](Envelope::trace) is the context of record:
//! traced stages leave the headers as they came, so a `traceparent` header
//! read on the way in is stale until it is injected again.
//!
//! # In `pipeline!`
//!
//! `traced(..)` takes any stage value: a `#[stage]` function's struct
//! (`parse {}`), a `Stage` implemented by hand, or a built-in made with
//! its function from [`crate::transform`]. The items between traced
//! stages are `Envelope<T>`: the stage before a traced one emits envelopes
//! (a source that reads headers, or another traced stage), and so does the
//! traced stage. A report names a stage written as a call after the
//! function, `traced` (then `traced#2`, ..), so bind each traced stage to
//! the name it should have:
//!
//! ```ignore
//! use pipeline::trace::traced;
//!
//! pipeline! {
//!     parsed = records(consumer) >> traced(parse {});
//!     enriched = parsed >> traced(enrich {});
//!     enriched >> for_each(|env: Envelope<Order>| send(env, &mut topic));
//! }
//! ```
//!
//! (`pipeline_runtime` does not depend on the macros, so this example is
//! not run here.)

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt as _;
use tracing::Span;

use crate::envelope::{Envelope, Headers};
use crate::stage::{BoxError, Emit, Failures, IsSink, Stage, StageContext};

pub mod context;

pub use context::TraceContext;

/// A stage over [`Envelope`]s that runs the stage `S` on their payloads,
/// each item with a trace context in a span of its trace, and hands the
/// context on one hop further. Made by [`traced`]; see [the module
/// docs](self).
///
/// `Traced<S>` is a `Stage<Envelope<T>>` for every `S: Stage<T>`, with
/// `Envelope<S::Out>` as its output and `S`'s error. It is a sink if `S`
/// is, and `Clone` if `S` is (so it can run on `parallel` workers).
#[derive(Debug, Clone, Default)]
pub struct Traced<S> {
    stage: S,
}

/// Wraps `stage` so that it takes [`Envelope`]s and follows each item's
/// trace: see [the module docs](self).
///
/// ```
/// use pipeline_runtime::envelope::{Envelope, TraceContext};
/// use pipeline_runtime::stage::{Emit, Stage, StageContext};
/// use pipeline_runtime::trace::{current, traced};
/// use pipeline_runtime::transform::map;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let caller = TraceContext::new([7; 16], [1; 8], true);
/// let mut item = Envelope::new(String::from("21"), 0);
/// item.set_trace(caller.clone());
///
/// // `current()` is the item's context while the stage runs.
/// let mut parse = traced(map(|s: String| (s.parse::<u32>().unwrap(), current())));
/// let mut out = Vec::new();
/// parse
///     .process(item, &mut Emit::new(&mut out), &StageContext::detached("parse"))
///     .await
///     .unwrap();
///
/// let (n, seen) = out[0].payload().clone();
/// let hop = out[0].trace().unwrap();
/// assert_eq!(n, 21);
/// assert_eq!(seen.as_ref(), Some(hop));
/// assert_eq!(hop.trace_id, caller.trace_id);
/// assert_ne!(hop.span_id, caller.span_id);
/// assert_eq!(current(), None, "only while the stage runs");
/// # }
/// ```
pub fn traced<S>(stage: S) -> Traced<S> {
    Traced { stage }
}

impl<S> Traced<S> {
    /// The wrapped stage.
    pub fn get_ref(&self) -> &S {
        &self.stage
    }

    /// The wrapped stage, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stage
    }

    /// Unwraps the stage.
    pub fn into_inner(self) -> S {
        self.stage
    }
}

impl<T, S: Stage<T>> Stage<Envelope<T>> for Traced<S> {
    type Out = Envelope<S::Out>;
    type Error = S::Error;

    fn init(&mut self, ctx: &StageContext) -> impl Future<Output = Result<(), BoxError>> {
        self.stage.init(ctx)
    }

    /// Runs `S` on the payload (in the item's span, if it has a trace
    /// context), and emits each of its outputs in an envelope with the
    /// item's metadata and advanced context. Outputs `S` emitted before
    /// failing are emitted too, as `S`'s own would be.
    async fn process(
        &mut self,
        item: Envelope<T>,
        out: &mut Emit<'_, Self::Out>,
        ctx: &StageContext,
    ) -> Result<(), Self::Error> {
        let mut outputs = Vec::new();
        let (result, rest) = run_item(&mut self.stage, item, &mut outputs, ctx).await;
        wrap(rest, &mut outputs, |output| out.emit(output));
        result
    }

    /// Processes the items one at a time, as the default does, each in its
    /// own span: a panic fails its item only (its outputs are dropped).
    /// `S`'s own `process_chunk` is not used, as each item needs its span.
    async fn process_chunk(
        &mut self,
        input: &mut Vec<Envelope<T>>,
        out: &mut Vec<Self::Out>,
        failures: &mut Failures<Self::Error>,
        ctx: &StageContext,
    ) {
        let mut outputs = Vec::new();
        for item in input.drain(..) {
            let before = out.len();
            let caught = AssertUnwindSafe(run_item(&mut self.stage, item, &mut outputs, ctx))
                .catch_unwind()
                .await;
            match caught {
                Ok((result, rest)) => {
                    wrap(rest, &mut outputs, |output| out.push(output));
                    match result {
                        Ok(()) => failures.note_output(out.len() - before),
                        Err(error) => failures.fail(error),
                    }
                }
                Err(panic) => {
                    outputs.clear();
                    failures.panicked(crate::policy::panic_message(&*panic));
                }
            }
        }
    }

    fn close(&mut self, ctx: &StageContext) -> impl Future<Output = Result<(), BoxError>> {
        self.stage.close(ctx)
    }
}

impl<S: IsSink> IsSink for Traced<S> {}

/// Runs `stage` on `item`'s payload, its outputs going to `outputs`, and
/// returns its result with the rest of the envelope, whose context (if it
/// has one) is advanced.
async fn run_item<T, S: Stage<T>>(
    stage: &mut S,
    item: Envelope<T>,
    outputs: &mut Vec<S::Out>,
    ctx: &StageContext,
) -> (Result<(), S::Error>, Envelope<()>) {
    outputs.clear();
    let (payload, mut rest) = item.split_payload();
    // Taken out, so the scope can lend it to `current()` without a copy.
    let trace = if rest.has_metadata() {
        rest.metadata_mut().trace.take()
    } else {
        None
    };
    let Some(mut trace) = trace else {
        let result = stage.process(payload, &mut Emit::new(outputs), ctx).await;
        return (result, rest);
    };
    let parent = trace.advance();
    let mut scope = ItemScope {
        span: item_span(ctx, rest.seq(), &trace, &parent),
        trace: Some(trace),
    };
    let mut emit = Emit::new(outputs);
    let result = {
        // A synchronous stage does its work in this call.
        let work = scope.enter(|| stage.process(payload, &mut emit, ctx));
        let mut work = std::pin::pin!(work);
        std::future::poll_fn(|cx| scope.enter(|| work.as_mut().poll(cx))).await
    };
    rest.metadata_mut().trace = scope.trace.take();
    (result, rest)
}

/// Emits each of `outputs` in an envelope made of `rest` (moved into the
/// last one, copied for the others).
fn wrap<O>(rest: Envelope<()>, outputs: &mut Vec<O>, mut emit: impl FnMut(Envelope<O>)) {
    let mut outputs = outputs.drain(..);
    let Some(last) = outputs.next_back() else {
        return;
    };
    for output in outputs {
        emit(rest.clone().map(|()| output));
    }
    emit(rest.map(|()| last));
}

/// The `item` span of an item of `ctx`'s stage whose context, advanced,
/// is `trace`.
fn item_span(ctx: &StageContext, seq: u64, trace: &TraceContext, parent: &[u8; 8]) -> Span {
    tracing::info_span!(
        "item",
        trace_id = %Hex(&trace.trace_id),
        parent_id = %Hex(parent),
        span_id = %Hex(&trace.span_id),
        sampled = trace.sampled,
        stage = ctx.name(),
        seq,
        otel.name = ctx.name(),
    )
}

/// Bytes as lowercase hex, written without allocating.
struct Hex<'a>(&'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

/// What is entered while an item's work runs: its span, and its context
/// as the [`current`] one.
struct ItemScope {
    span: Span,
    /// `None` while entered: the context is lent to [`CURRENT`].
    trace: Option<TraceContext>,
}

impl ItemScope {
    /// Runs `f` with the span entered and the context current.
    fn enter<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let _span = self.span.enter();
        let _current = Lent::new(&mut self.trace);
        f()
    }
}

thread_local! {
    /// The context of the item whose work runs on this thread, if traced.
    static CURRENT: RefCell<Option<TraceContext>> = const { RefCell::new(None) };
}

/// A context lent to [`CURRENT`] by swapping it in, until dropped (on
/// unwinding too), which swaps the previous one back.
struct Lent<'a> {
    slot: &'a mut Option<TraceContext>,
    swapped: bool,
}

impl<'a> Lent<'a> {
    fn new(slot: &'a mut Option<TraceContext>) -> Self {
        let swapped = swap_current(slot);
        Lent { slot, swapped }
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if self.swapped {
            swap_current(self.slot);
        }
    }
}

/// Swaps `slot` with [`CURRENT`]; `false` if the thread's locals are gone.
fn swap_current(slot: &mut Option<TraceContext>) -> bool {
    CURRENT
        .try_with(|current| std::mem::swap(&mut *current.borrow_mut(), slot))
        .is_ok()
}

/// The trace context of the item whose work is running, inside a
/// [`traced`] stage: the item's context advanced to the stage's span (the
/// one its outputs will carry). `None` outside a traced stage's work, and
/// for an item without a trace context.
///
/// It is set while the wrapped stage's `process` is called and while its
/// future is polled, on the thread that polls it; a task the stage
/// spawns does not see it (pass it along).
///
/// ```
/// use pipeline_runtime::trace::current;
///
/// assert_eq!(current(), None);
/// ```
pub fn current() -> Option<TraceContext> {
    CURRENT
        .try_with(|current| current.borrow().clone())
        .ok()
        .flatten()
}

/// Writes the [`current`] context into `headers` (see
/// [`TraceContext::inject_into`]), for a call that a traced stage makes to
/// another service, so that service's span is a child of the stage's.
/// Returns `false`, changing nothing, outside a traced item's work.
///
/// ```
/// use pipeline_runtime::envelope::{Envelope, Headers, TraceContext};
/// use pipeline_runtime::stage::{Emit, Stage, StageContext};
/// use pipeline_runtime::trace::{inject_current, traced};
/// use pipeline_runtime::transform::map;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // A stage that calls out, with the trace in the request's headers.
/// let mut lookup = traced(map(|id: u64| {
///     let mut request = Headers::new();
///     inject_current(&mut request);
///     (id, request)
/// }));
/// let mut item = Envelope::new(5u64, 0);
/// item.set_trace(TraceContext::new([3; 16], [4; 8], false));
/// let mut out = Vec::new();
/// let ctx = StageContext::detached("lookup");
/// lookup.process(item, &mut Emit::new(&mut out), &ctx).await.unwrap();
///
/// let (_, request) = out[0].payload();
/// assert_eq!(
///     request.get("traceparent"),
///     Some(out[0].trace().unwrap().to_traceparent().as_str()),
/// );
/// assert!(!inject_current(&mut Headers::new()));
/// # }
/// ```
pub fn inject_current(headers: &mut Headers) -> bool {
    CURRENT
        .try_with(|current| match &*current.borrow() {
            Some(trace) => {
                trace.inject_into(headers);
                true
            }
            None => false,
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests;
