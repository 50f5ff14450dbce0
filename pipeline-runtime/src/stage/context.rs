use std::sync::Arc;

use crate::metrics::StageStats;

/// What a stage knows about where it runs: its name and its pipeline.
///
/// A `#[stage]` function can take `&StageContext` as its second parameter.
#[derive(Debug, Clone)]
pub struct StageContext {
    stats: Arc<StageStats>,
}

impl StageContext {
    /// A context for the stage whose counters are `stats`.
    pub fn new(stats: Arc<StageStats>) -> Self {
        StageContext { stats }
    }

    /// A context for a stage used outside a pipeline (tests, direct calls).
    pub fn detached(name: &'static str) -> Self {
        StageContext::new(Arc::new(StageStats::new(
            name,
            crate::graph::NodeKind::Transform,
        )))
    }

    /// The stage's name, as written in the `pipeline!`.
    pub fn name(&self) -> &'static str {
        self.stats.name()
    }

    /// The stage's live counters.
    pub fn stats(&self) -> &Arc<StageStats> {
        &self.stats
    }
}
