//! What a pipeline says about itself: the counters of its stages and edges,
//! and the graph it reports.

use std::sync::Arc;

use pipeline_runtime::graph::NodeKind;
use pipeline_runtime::metrics::StageStats;

pub use pipeline_runtime::graph::{GraphEdge, GraphNode, PipelineGraph};
pub use pipeline_runtime::metrics::EdgeStats;

/// Counters for a stage called `name`.
pub fn stats(name: &'static str, kind: NodeKind) -> Arc<StageStats> {
    Arc::new(StageStats::new(name, kind))
}

/// Counters for the edge from `from` (its `port`, if any) to `to`.
pub fn edge_stats(
    from: &'static str,
    to: &'static str,
    port: Option<&'static str>,
) -> Arc<EdgeStats> {
    Arc::new(EdgeStats::new(from, to, port))
}

/// Counters for an edge inside a fused chain, into the stage counted by
/// `into`.
pub fn fused_edge_stats(from: &'static str, into: &Arc<StageStats>) -> Arc<EdgeStats> {
    Arc::new(EdgeStats::fused(from, Arc::clone(into), None))
}

/// The counters of an edge from the end of a diamond's branch into its
/// merge node.
pub fn merge_edge_stats(from: &Arc<StageStats>, to: &'static str) -> Arc<EdgeStats> {
    Arc::new(EdgeStats::fused_from(Arc::clone(from), to, None))
}
