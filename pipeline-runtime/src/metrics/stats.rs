use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock, PoisonError};

use tokio::time::Instant;
use tracing::Span;

use super::observe::StageObservers;
use super::state::StageStatus;
use crate::graph::NodeKind;
use crate::policy::BreakerState;

/// Live counters of one stage.
///
/// Every item a stage takes in is accounted for exactly once:
/// `items_in = passed + filtered + failed + dropped + dead_lettered`, where
/// `passed` is the number of inputs that produced at least one output.
/// For stages that emit one output per input, `passed == items_out`.
///
/// An accumulator holds items for a while before they leave in an output:
/// while it runs, the items it holds ([`items_held`](Self::items_held)) are
/// in flight and complete the sum; once it has finished, it holds none.
///
/// # Observability
///
/// Once [`observe`](Self::observe) has been called (the
/// [`Pipeline`](crate::lifecycle::Pipeline) does it as it starts), every
/// `record_*` method also adds to the stage's `metrics` counters (see
/// [`crate::metrics`]), still once per chunk. The stage also keeps its
/// [status](Self::status), when it [ended](Self::ended_at) and its
/// [last error](Self::last_error), which
/// [`PipelineHandle::inspect`](crate::lifecycle::PipelineHandle::inspect)
/// shows.
#[derive(Debug)]
pub struct StageStats {
    name: &'static str,
    kind: NodeKind,
    items_in: AtomicU64,
    items_out: AtomicU64,
    passed: AtomicU64,
    filtered: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    dead_lettered: AtomicU64,
    accumulator: AccumulatorCounters,
    policy: PolicyCounters,
    /// A [`StageStatus`], as [`status_code`].
    status: AtomicU8,
    ended: OnceLock<Instant>,
    /// Written only when an item fails, so the fast path never locks it.
    last_error: Mutex<Option<String>>,
    observers: OnceLock<StageObservers>,
}

/// Counters of a stage's error policy and circuit breaker.
#[derive(Debug, Default)]
struct PolicyCounters {
    retries: AtomicU64,
    /// 0: no breaker; else 1 + the state's index (closed, open, half-open).
    breaker_state: AtomicU8,
    breaker_opens: AtomicU64,
    breaker_half_opens: AtomicU64,
    breaker_closes: AtomicU64,
}

/// Why an accumulator let go of a key's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlushReason {
    /// The state reached `max_items`.
    Items,
    /// The state reached `max_bytes`, or the next item would have taken it
    /// over.
    Bytes,
    /// The state's first item had waited `max_latency`.
    Latency,
    /// The accumulator said the state was complete.
    Complete,
    /// The state was not complete within its `ttl`, or the accumulator said
    /// it had expired.
    Expired,
    /// The input ended (the pipeline completed or was stopped) while the
    /// state was open.
    Stop,
}

impl FlushReason {
    /// Every reason, in the order [`FlushCounts`] lists them.
    pub const ALL: [FlushReason; 6] = [
        FlushReason::Items,
        FlushReason::Bytes,
        FlushReason::Latency,
        FlushReason::Complete,
        FlushReason::Expired,
        FlushReason::Stop,
    ];

    /// The reason as a lower-case word: `items`, `bytes`, `latency`,
    /// `complete`, `expired` or `stop`.
    pub fn as_str(self) -> &'static str {
        match self {
            FlushReason::Items => "items",
            FlushReason::Bytes => "bytes",
            FlushReason::Latency => "latency",
            FlushReason::Complete => "complete",
            FlushReason::Expired => "expired",
            FlushReason::Stop => "stop",
        }
    }
}

impl std::fmt::Display for FlushReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many states an accumulator let go of, by [`FlushReason`].
///
/// A state counts once, whether it left as an output, went to the `errors`
/// port as an [`Unfinished`](crate::accumulate::Unfinished) or produced
/// nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FlushCounts {
    /// States that reached `max_items`.
    pub items: u64,
    /// States that reached `max_bytes`.
    pub bytes: u64,
    /// States flushed after `max_latency`.
    pub latency: u64,
    /// States the accumulator completed.
    pub complete: u64,
    /// States that expired.
    pub expired: u64,
    /// States open when the input ended.
    pub stop: u64,
}

impl FlushCounts {
    /// The count for `reason`.
    pub fn get(&self, reason: FlushReason) -> u64 {
        match reason {
            FlushReason::Items => self.items,
            FlushReason::Bytes => self.bytes,
            FlushReason::Latency => self.latency,
            FlushReason::Complete => self.complete,
            FlushReason::Expired => self.expired,
            FlushReason::Stop => self.stop,
        }
    }

    /// Adds one flush for `reason`.
    #[inline]
    pub fn add(&mut self, reason: FlushReason) {
        *match reason {
            FlushReason::Items => &mut self.items,
            FlushReason::Bytes => &mut self.bytes,
            FlushReason::Latency => &mut self.latency,
            FlushReason::Complete => &mut self.complete,
            FlushReason::Expired => &mut self.expired,
            FlushReason::Stop => &mut self.stop,
        } += 1;
    }

    /// All flushes, whatever the reason.
    pub fn total(&self) -> u64 {
        FlushReason::ALL.iter().map(|&r| self.get(r)).sum()
    }
}

/// What an accumulator did since it last reported, recorded at once with
/// [`StageStats::record_accumulated`].
///
/// Every item taken is eventually released exactly once: in an output
/// (`passed`), into no output (`filtered`: the accumulator's flush returned
/// nothing), lost (`failed`: its spilled state could not be read back, or
/// it was unfinished and the `errors` port is not connected) or inside an
/// [`Unfinished`](crate::accumulate::Unfinished) on the `errors` port
/// (`dead_lettered`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccumulatorDelta {
    /// Items taken from the input.
    pub taken: u64,
    /// Outputs emitted.
    pub outputs: u64,
    /// Items released inside an output.
    pub passed: u64,
    /// Items released into no output.
    pub filtered: u64,
    /// Items lost.
    pub failed: u64,
    /// Items released to the `errors` port.
    pub dead_lettered: u64,
    /// Bytes written to the spill store.
    pub bytes_spilled: u64,
    /// States let go of, by reason.
    pub flushes: FlushCounts,
}

impl AccumulatorDelta {
    /// Whether nothing happened.
    pub fn is_empty(&self) -> bool {
        *self == AccumulatorDelta::default()
    }
}

/// What an accumulator holds right now, published with
/// [`StageStats::record_accumulated`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccumulatorGauges {
    /// Keys with an open state, in memory or spilled.
    pub open_keys: u64,
    /// Items held in open states.
    pub items_held: u64,
    /// Bytes (as the accumulation's `size` measures them) of the items held.
    pub bytes_held: u64,
    /// Keys whose state is spilled to disk.
    pub spilled_keys: u64,
}

#[derive(Debug, Default)]
struct AccumulatorCounters {
    open_keys: AtomicU64,
    items_held: AtomicU64,
    bytes_held: AtomicU64,
    spilled_keys: AtomicU64,
    bytes_spilled: AtomicU64,
    flushes: [AtomicU64; 6],
}

impl StageStats {
    /// Zeroed counters for the stage `name`.
    pub fn new(name: &'static str, kind: NodeKind) -> Self {
        StageStats {
            name,
            kind,
            items_in: AtomicU64::new(0),
            items_out: AtomicU64::new(0),
            passed: AtomicU64::new(0),
            filtered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            accumulator: AccumulatorCounters::default(),
            policy: PolicyCounters::default(),
            status: AtomicU8::new(status_code(StageStatus::Running)),
            ended: OnceLock::new(),
            last_error: Mutex::new(None),
            observers: OnceLock::new(),
        }
    }

    /// Registers the stage's `metrics` handles (labelled `pipeline` and
    /// `stage`) with the recorder in effect now, and makes its `tracing`
    /// span, named `stage` with the fields `pipeline`, `stage` and `kind`.
    ///
    /// Only the first call counts: the [`Pipeline`](crate::lifecycle::Pipeline)
    /// calls it with its [name](crate::lifecycle::Pipeline::named) as it
    /// starts, and a fused stage calls it with
    /// [`DEFAULT_PIPELINE_NAME`](super::DEFAULT_PIPELINE_NAME) in its
    /// `init` in case nothing did (a chain driven by hand).
    pub fn observe(&self, pipeline: &'static str) {
        self.observers
            .get_or_init(|| StageObservers::register(pipeline, self.name, self.kind));
    }

    /// The name of the pipeline the stage reports under, once
    /// [`observe`](Self::observe) has been called.
    pub fn pipeline(&self) -> Option<&'static str> {
        self.observed().map(|o| o.pipeline)
    }

    #[inline]
    fn observed(&self) -> Option<&StageObservers> {
        self.observers.get()
    }

    /// The stage's `tracing` span (disabled until [`observe`](Self::observe)
    /// has been called, or if no subscriber wants it). The runtime enters
    /// it around each chunk a stage processes.
    pub fn span(&self) -> &Span {
        static NONE: Span = Span::none();
        self.observed().map_or(&NONE, |o| &o.span)
    }

    /// Starts timing a chunk for `pipeline_stage_chunk_seconds`: the
    /// current time if a recorder records, else `None` (and no clock is
    /// read). Pass it to [`finish_chunk`](Self::finish_chunk).
    #[inline]
    pub fn start_chunk(&self) -> Option<std::time::Instant> {
        self.observed()?.start()
    }

    /// Records the time since [`start_chunk`](Self::start_chunk) in
    /// `pipeline_stage_chunk_seconds`; does nothing given `None`.
    #[inline]
    pub fn finish_chunk(&self, started: Option<std::time::Instant>) {
        if let (Some(started), Some(o)) = (started, self.observed()) {
            o.chunk_seconds.record(started.elapsed());
        }
    }

    /// Records in `pipeline_stage_chunk_seconds` a chunk that took
    /// `elapsed`, timed where it ran: by a parallel stage's worker.
    #[inline]
    pub fn record_chunk_time(&self, elapsed: std::time::Duration) {
        if let Some(o) = self.observed() {
            o.chunk_seconds.record(elapsed);
        }
    }

    /// Marks the stage as ended: [`Finished`](StageStatus::Finished) if
    /// `ok`, else [`Failed`](StageStatus::Failed), and notes the time. Only
    /// the first call counts. A fused stage calls it when it closes; the
    /// pipeline calls it for every stage still running when its run ends.
    pub fn finish(&self, ok: bool) {
        let status = if ok {
            StageStatus::Finished
        } else {
            StageStatus::Failed
        };
        if self
            .status
            .compare_exchange(
                status_code(StageStatus::Running),
                status_code(status),
                Relaxed,
                Relaxed,
            )
            .is_ok()
        {
            let _ = self.ended.set(Instant::now());
        }
    }

    /// Whether the stage is running, finished or failed.
    pub fn status(&self) -> StageStatus {
        match self.status.load(Relaxed) {
            1 => StageStatus::Finished,
            2 => StageStatus::Failed,
            _ => StageStatus::Running,
        }
    }

    /// When the stage ended ([`finish`](Self::finish)), if it has.
    pub fn ended_at(&self) -> Option<Instant> {
        self.ended.get().copied()
    }

    /// Records why an item (or the stage) failed, as the stage's
    /// [last error](Self::last_error). Called only on failure: it formats
    /// the error and takes a lock.
    pub fn record_error(&self, error: impl fmt::Display) {
        let message = error.to_string();
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(message);
    }

    /// The last error recorded with [`record_error`](Self::record_error):
    /// of a failed item (logged, dead-lettered or failing the pipeline), a
    /// failed source read, or the stage's failed `init` or `close`.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The stage's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// What kind of node the stage is.
    pub fn kind(&self) -> NodeKind {
        self.kind
    }

    /// Records one processed chunk.
    #[inline]
    pub fn record_chunk(&self, items_in: u64, items_out: u64, filtered: u64, failed: u64) {
        self.items_in.fetch_add(items_in, Relaxed);
        self.items_out.fetch_add(items_out, Relaxed);
        self.passed.fetch_add(items_in - filtered - failed, Relaxed);
        if filtered != 0 {
            self.filtered.fetch_add(filtered, Relaxed);
        }
        if failed != 0 {
            self.failed.fetch_add(failed, Relaxed);
        }
        if let Some(o) = self.observed() {
            o.items_in.increment(items_in);
            o.items_out.increment(items_out);
            if failed != 0 {
                o.failed.increment(failed);
            }
        }
    }

    /// Records items produced by a source.
    #[inline]
    pub fn record_produced(&self, items: u64) {
        self.items_out.fetch_add(items, Relaxed);
        if let Some(o) = self.observed() {
            o.items_out.increment(items);
        }
    }

    /// Records a source read that failed.
    pub fn record_source_error(&self) {
        self.failed.fetch_add(1, Relaxed);
        if let Some(o) = self.observed() {
            o.failed.increment(1);
        }
    }

    /// Records items that failed and were handed to the stage's `errors`
    /// port instead of being lost. They were taken in with the chunk
    /// [`record_chunk`](Self::record_chunk) counted as passed; this moves
    /// them from passed to dead-lettered.
    pub fn record_dead_lettered(&self, items: u64) {
        if items != 0 {
            self.passed.fetch_sub(items, Relaxed);
            self.dead_lettered.fetch_add(items, Relaxed);
            if let Some(o) = self.observed() {
                o.dead_lettered.increment(items);
            }
        }
    }

    /// Records what an accumulator did since its last report, and what it
    /// holds now.
    ///
    /// Items taken count into `items_in`, items released into `passed`,
    /// `filtered`, `failed` or `dead_lettered`, and outputs into
    /// `items_out`; the gauges replace the previous ones.
    pub fn record_accumulated(&self, delta: &AccumulatorDelta, gauges: &AccumulatorGauges) {
        let add = |counter: &AtomicU64, n: u64| {
            if n != 0 {
                counter.fetch_add(n, Relaxed);
            }
        };
        let acc = &self.accumulator;
        // Each counter is updated on its own, so a snapshot taken while
        // the accumulator runs may be one step apart between them.
        acc.items_held.store(gauges.items_held, Relaxed);
        acc.open_keys.store(gauges.open_keys, Relaxed);
        acc.bytes_held.store(gauges.bytes_held, Relaxed);
        acc.spilled_keys.store(gauges.spilled_keys, Relaxed);
        add(&self.items_in, delta.taken);
        add(&self.items_out, delta.outputs);
        add(&self.passed, delta.passed);
        add(&self.filtered, delta.filtered);
        add(&self.failed, delta.failed);
        add(&self.dead_lettered, delta.dead_lettered);
        add(&acc.bytes_spilled, delta.bytes_spilled);
        for (counter, reason) in acc.flushes.iter().zip(FlushReason::ALL) {
            add(counter, delta.flushes.get(reason));
        }
        if let Some(o) = self.observed() {
            o.items_in.increment(delta.taken);
            o.items_out.increment(delta.outputs);
            o.failed.increment(delta.failed);
            o.dead_lettered.increment(delta.dead_lettered);
            if let Some(flushes) = &o.flushes {
                for (counter, reason) in flushes.iter().zip(FlushReason::ALL) {
                    let n = delta.flushes.get(reason);
                    if n != 0 {
                        counter.increment(n);
                    }
                }
            }
        }
    }

    /// Records `calls` more calls of the stage that retried a failed item.
    pub fn record_retries(&self, calls: u64) {
        if calls != 0 {
            self.policy.retries.fetch_add(calls, Relaxed);
        }
    }

    /// Records that the stage has a circuit breaker, now in `state`,
    /// without counting a change.
    pub fn set_breaker_state(&self, state: BreakerState) {
        self.policy
            .breaker_state
            .store(breaker_code(state), Relaxed);
    }

    /// Records that the stage's circuit breaker moved to `state`, counting
    /// the change (an open, a half-open or a close).
    pub fn record_breaker(&self, state: BreakerState) {
        self.set_breaker_state(state);
        let counter = match state {
            BreakerState::Open => &self.policy.breaker_opens,
            BreakerState::HalfOpen => &self.policy.breaker_half_opens,
            BreakerState::Closed => &self.policy.breaker_closes,
        };
        counter.fetch_add(1, Relaxed);
    }

    /// Calls made to retry failed items (an item retried twice counts 2).
    pub fn retries(&self) -> u64 {
        self.policy.retries.load(Relaxed)
    }

    /// Where the stage's circuit breaker is, or `None` if it has none.
    pub fn breaker_state(&self) -> Option<BreakerState> {
        match self.policy.breaker_state.load(Relaxed) {
            1 => Some(BreakerState::Closed),
            2 => Some(BreakerState::Open),
            3 => Some(BreakerState::HalfOpen),
            _ => None,
        }
    }

    /// Times the stage's circuit breaker opened.
    pub fn breaker_opens(&self) -> u64 {
        self.policy.breaker_opens.load(Relaxed)
    }

    /// Times the stage's circuit breaker turned half-open.
    pub fn breaker_half_opens(&self) -> u64 {
        self.policy.breaker_half_opens.load(Relaxed)
    }

    /// Times the stage's circuit breaker closed after a trial call.
    pub fn breaker_closes(&self) -> u64 {
        self.policy.breaker_closes.load(Relaxed)
    }

    /// Records items dropped by a full buffer.
    pub fn record_dropped(&self, items: u64) {
        self.dropped.fetch_add(items, Relaxed);
        if let Some(o) = self.observed() {
            o.dropped.increment(items);
        }
    }

    /// Items taken in so far.
    pub fn items_in(&self) -> u64 {
        self.items_in.load(Relaxed)
    }

    /// Items emitted so far.
    pub fn items_out(&self) -> u64 {
        self.items_out.load(Relaxed)
    }

    /// Inputs that produced at least one output.
    pub fn passed(&self) -> u64 {
        self.passed.load(Relaxed)
    }

    /// Inputs that produced no output and no error.
    pub fn filtered(&self) -> u64 {
        self.filtered.load(Relaxed)
    }

    /// Inputs that failed (and, for sources, failed reads).
    pub fn failed(&self) -> u64 {
        self.failed.load(Relaxed)
    }

    /// Items dropped by a full buffer.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }

    /// Failed items routed to an error port.
    pub fn dead_lettered(&self) -> u64 {
        self.dead_lettered.load(Relaxed)
    }

    /// Items an accumulator holds in open states (zero for other stages).
    pub fn items_held(&self) -> u64 {
        self.accumulator.items_held.load(Relaxed)
    }

    /// Keys with an open state in an accumulator.
    pub fn open_keys(&self) -> u64 {
        self.accumulator.open_keys.load(Relaxed)
    }

    /// Bytes of the items an accumulator holds, as its `size` measures them.
    pub fn bytes_held(&self) -> u64 {
        self.accumulator.bytes_held.load(Relaxed)
    }

    /// Keys whose state an accumulator has spilled to disk right now.
    pub fn spilled_keys(&self) -> u64 {
        self.accumulator.spilled_keys.load(Relaxed)
    }

    /// Bytes an accumulator has written to its spill store so far.
    pub fn bytes_spilled(&self) -> u64 {
        self.accumulator.bytes_spilled.load(Relaxed)
    }

    /// States an accumulator has let go of so far, by reason.
    pub fn flushes(&self) -> FlushCounts {
        let f = &self.accumulator.flushes;
        FlushCounts {
            items: f[0].load(Relaxed),
            bytes: f[1].load(Relaxed),
            latency: f[2].load(Relaxed),
            complete: f[3].load(Relaxed),
            expired: f[4].load(Relaxed),
            stop: f[5].load(Relaxed),
        }
    }
}

fn status_code(status: StageStatus) -> u8 {
    match status {
        StageStatus::Running => 0,
        StageStatus::Finished => 1,
        StageStatus::Failed => 2,
    }
}

fn breaker_code(state: BreakerState) -> u8 {
    match state {
        BreakerState::Closed => 1,
        BreakerState::Open => 2,
        BreakerState::HalfOpen => 3,
    }
}
