use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::StageStats;

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
        }
    }

    /// Items shipped into the edge so far, delivered or dropped.
    pub fn sent(&self) -> u64 {
        match &self.fused_into {
            Some(stage) => stage.items_in(),
            None => self.sent.load(Relaxed),
        }
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
