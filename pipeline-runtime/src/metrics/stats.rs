use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::graph::NodeKind;

/// Live counters of one stage.
///
/// Every item a stage takes in is accounted for exactly once:
/// `items_in = passed + filtered + failed + dropped + dead_lettered`, where
/// `passed` is the number of inputs that produced at least one output.
/// For stages that emit one output per input, `passed == items_out`.
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
        }
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
    }

    /// Records items produced by a source.
    #[inline]
    pub fn record_produced(&self, items: u64) {
        self.items_out.fetch_add(items, Relaxed);
    }

    /// Records a source read that failed.
    pub fn record_source_error(&self) {
        self.failed.fetch_add(1, Relaxed);
    }

    /// Records items that failed and were handed to the stage's `errors`
    /// port instead of being lost. They were taken in with the chunk
    /// [`record_chunk`](Self::record_chunk) counted as passed; this moves
    /// them from passed to dead-lettered.
    pub fn record_dead_lettered(&self, items: u64) {
        if items != 0 {
            self.passed.fetch_sub(items, Relaxed);
            self.dead_lettered.fetch_add(items, Relaxed);
        }
    }

    /// Records items dropped by a full buffer.
    pub fn record_dropped(&self, items: u64) {
        self.dropped.fetch_add(items, Relaxed);
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
}
