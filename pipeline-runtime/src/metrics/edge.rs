use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use metrics::Gauge;

use super::StageStats;
use super::observe::{DEFAULT_PIPELINE_NAME, EdgeObservers};

/// The queue of a channel edge, as the counters of its producers see it.
pub(crate) trait EdgeQueue: Send + Sync + fmt::Debug {
    /// Items queued on the edge now.
    fn queued_items(&self) -> usize;

    /// Keeps `gauge` set to the edge's depth from now on, whenever items
    /// are queued or taken.
    fn watch(&self, gauge: Gauge);
}

/// Live counters of one edge between two stages.
///
/// - `sent`: items the producer shipped into the edge, including those it
///   then dropped.
/// - `dropped`: of those, the items that never reach the consumer: refused
///   by a full [`OnFull::DropNewest`](crate::options::OnFull::DropNewest)
///   edge, evicted from a full
///   [`OnFull::DropOldest`](crate::options::OnFull::DropOldest) edge, or
///   lost because the consumer was gone (its chain failed, or the pipeline
///   was aborted).
///
/// So once the edge is drained, the consumer has received `sent - dropped`
/// items. With `OnFull::Block` and a consumer that runs to the end,
/// `dropped` is zero.
///
/// The producer records each chunk it sends over the edge once, so keeping
/// the counters costs one atomic add per chunk, not per item; drops are
/// recorded where they happen (in the edge, for its `on_full` policy), so a
/// live snapshot shows them as they occur.
///
/// An edge that is a channel also knows its queue (once an
/// [`Output`](crate::fan::Output) wraps its sender), so a snapshot shows
/// how many items wait on it ([`queued`](Self::queued)). Once
/// [`observe`](Self::observe) has been called, drops also count in
/// `pipeline_items_dropped_total` of the producing stage, and, when a
/// recorder records, the queue depth and the producer's send waits go to
/// `pipeline_queue_depth` and `pipeline_send_wait_seconds` (see
/// [`crate::metrics`]).
#[derive(Debug)]
pub struct EdgeStats {
    from: &'static str,
    to: &'static str,
    port: Option<&'static str>,
    sent: AtomicU64,
    dropped: AtomicU64,
    /// For an edge inside a fused chain: the stage it feeds, whose input
    /// count is the edge's count (no channel, so nothing to count twice).
    fused_into: Option<Arc<StageStats>>,
    /// For an edge from the end of a diamond's branch into the merge node:
    /// the stage it leaves, whose output count is the edge's count.
    fused_from: Option<Arc<StageStats>>,
    /// Set when a fused edge became a real one at run time (a hop, for a
    /// stage whose defaults ask for its own input edge): its counts are
    /// its own from then on.
    hopped: AtomicBool,
    /// The channel's queue, once a producer's output is attached.
    queue: OnceLock<Arc<dyn EdgeQueue>>,
    observers: OnceLock<EdgeObservers>,
}

impl EdgeStats {
    /// Zeroed counters for the edge from the stage `from` to the stage `to`,
    /// leaving `from`'s named `port` (`Some("errors")`) or its main output
    /// (`None`).
    pub fn new(from: &'static str, to: &'static str, port: Option<&'static str>) -> Self {
        EdgeStats {
            from,
            to,
            port,
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            fused_into: None,
            fused_from: None,
            hopped: AtomicBool::new(false),
            queue: OnceLock::new(),
            observers: OnceLock::new(),
        }
    }

    /// Counters for an edge inside a fused chain, from `from` into the
    /// stage counted by `into`: items cross it by a direct call, so its
    /// count is the stage's input count and nothing is ever dropped on it.
    pub fn fused(from: &'static str, into: Arc<StageStats>, port: Option<&'static str>) -> Self {
        EdgeStats {
            fused_into: Some(Arc::clone(&into)),
            ..EdgeStats::new(from, into.name(), port)
        }
    }

    /// Counters for an edge inside a fused chain out of the stage counted
    /// by `from` into `to`, which has other inputs too (the merge node of a
    /// diamond): its count is `from`'s output count.
    pub fn fused_from(from: Arc<StageStats>, to: &'static str, port: Option<&'static str>) -> Self {
        EdgeStats {
            fused_from: Some(Arc::clone(&from)),
            ..EdgeStats::new(from.name(), to, port)
        }
    }

    /// The upstream stage's name.
    pub fn from(&self) -> &'static str {
        self.from
    }

    /// The downstream stage's name.
    pub fn to(&self) -> &'static str {
        self.to
    }

    /// The named port the edge leaves from, or `None` for the main output.
    pub fn port(&self) -> Option<&'static str> {
        self.port
    }

    /// Records `items` sent over the edge, once per chunk.
    #[inline]
    pub fn record_sent(&self, items: u64) {
        self.sent.fetch_add(items, Relaxed);
    }

    /// Records `items` dropped: refused or evicted because the edge's buffer
    /// was full, or lost because its consumer was gone. They were (or will
    /// be) counted as sent too.
    #[inline]
    pub fn record_dropped(&self, items: u64) {
        if items != 0 {
            self.dropped.fetch_add(items, Relaxed);
            if let Some(o) = self.observers.get() {
                o.dropped.increment(items);
            }
        }
    }

    /// Registers the edge's `metrics` handles, labelled `pipeline`, `from`
    /// and `to` (its drops: `pipeline` and `stage`, the producer), with the
    /// recorder in effect now; if that recorder records, the edge's queue
    /// depth is published from now on. An edge inside a fused chain (no
    /// queue, no waits, no drops) registers nothing. Only the first call counts: the
    /// [`Pipeline`](crate::lifecycle::Pipeline) calls it as it starts, and
    /// an [`Output`](crate::fan::Output) with the default pipeline name
    /// when it first ships, in case nothing did.
    pub fn observe(&self, pipeline: &'static str) {
        self.observers.get_or_init(|| {
            if self.fused_into.is_some() || self.fused_from.is_some() {
                return EdgeObservers::fused();
            }
            let observers = EdgeObservers::register(pipeline, self.from, self.to);
            if observers.timed
                && let Some(queue) = self.queue.get()
            {
                queue.watch(observers.depth.clone());
            }
            observers
        });
    }

    /// Starts timing a send for `pipeline_send_wait_seconds`: the current
    /// time if a recorder records, else `None` (and no clock is read).
    #[inline]
    pub(crate) fn start_send(&self) -> Option<std::time::Instant> {
        let observers = match self.observers.get() {
            Some(observers) => observers,
            None => {
                self.observe(DEFAULT_PIPELINE_NAME);
                self.observers.get()?
            }
        };
        observers.timed.then(std::time::Instant::now)
    }

    /// Records the time since [`start_send`](Self::start_send).
    #[inline]
    pub(crate) fn finish_send(&self, started: Option<std::time::Instant>) {
        if let (Some(started), Some(o)) = (started, self.observers.get()) {
            o.send_wait.record(started.elapsed());
        }
    }

    /// Attaches the channel's queue, whose depth the edge then reports.
    /// The first queue attached stays.
    pub(crate) fn attach_queue(&self, queue: Arc<dyn EdgeQueue>) {
        if self.queue.set(queue).is_ok()
            && let (Some(queue), Some(o)) = (self.queue.get(), self.observers.get())
            && o.timed
        {
            queue.watch(o.depth.clone());
        }
    }

    /// Items queued on the edge now: `None` for an edge inside a fused
    /// chain (no queue), or one whose queue was never attached. On a merge,
    /// every edge into the node shares one queue and reports all of it.
    pub fn queued(&self) -> Option<u64> {
        self.queue_probe().map(|(_, items)| items)
    }

    /// The queue's identity (to count a shared queue once) and depth.
    pub(crate) fn queue_probe(&self) -> Option<(usize, u64)> {
        let queue = self.queue.get()?;
        let id = Arc::as_ptr(queue).cast::<()>() as usize;
        Some((id, queue.queued_items() as u64))
    }

    /// Items shipped into the edge so far, delivered or dropped.
    pub fn sent(&self) -> u64 {
        if self.hopped.load(Relaxed) {
            return self.sent.load(Relaxed);
        }
        match (&self.fused_into, &self.fused_from) {
            (Some(into), _) => into.items_in(),
            (None, Some(from)) => from.items_out(),
            (None, None) => self.sent.load(Relaxed),
        }
    }

    /// Marks a fused edge as a real one from now on: a hop, which queues
    /// and may drop items, so it counts what is sent over it itself.
    pub(crate) fn mark_hop(&self) {
        self.hopped.store(true, Relaxed);
    }

    /// Items sent over the edge that did not (and will not) reach its
    /// consumer, so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_accumulate() {
        let stats = EdgeStats::new("split", "big_sink", Some("big"));
        assert_eq!(
            (stats.from(), stats.to(), stats.port()),
            ("split", "big_sink", Some("big"))
        );
        stats.record_sent(3);
        stats.record_sent(4);
        stats.record_dropped(0);
        stats.record_dropped(2);
        assert_eq!((stats.sent(), stats.dropped()), (7, 2));
    }
}
