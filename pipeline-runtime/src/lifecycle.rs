//! Starting, stopping and joining a pipeline.
//!
//! | how it ends | sources | items in flight | `close` hooks | result |
//! | --- | --- | --- | --- | --- |
//! | complete | exhausted | all processed | run | `Ok(Report)` |
//! | [`stop`](PipelineHandle::stop) | stop reading at the next chunk | all processed | run | `Ok(Report)` with `stopped` |
//! | [`abort`](PipelineHandle::abort) | dropped | dropped | not run | `Err(Error::Aborted)` |
//! | a stage's `init` or `close` fails | stop | dropped | not run | `Err(Error::Init / Close)` |

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::Error;
use crate::graph::PipelineGraph;
use crate::metrics::{EdgeReport, EdgeStats, Report, StageReport, StageStats};

/// The stop signal shared by a pipeline's tasks.
#[derive(Debug, Clone, Default)]
pub struct Control {
    inner: Arc<ControlInner>,
}

#[derive(Debug, Default)]
struct ControlInner {
    stopping: AtomicBool,
    notify: Notify,
}

impl Control {
    /// A control that has not been stopped.
    pub fn new() -> Self {
        Control::default()
    }

    /// Asks the sources to stop; in-flight items still drain.
    pub fn stop(&self) {
        self.inner.stopping.store(true, Ordering::Release);
        self.inner.notify.notify_waiters();
    }

    /// Whether [`stop`](Control::stop) has been called.
    pub fn is_stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::Acquire)
    }

    /// Completes once [`stop`](Control::stop) has been called.
    pub async fn stopping(&self) {
        let notified = self.inner.notify.notified();
        tokio::pin!(notified);
        // Registering before the check closes the race with a concurrent stop.
        notified.as_mut().enable();
        if self.is_stopping() {
            return;
        }
        notified.await;
    }
}

/// A pipeline built by `pipeline!`, ready to run.
///
/// Nothing happens until [`run`](Pipeline::run) is awaited or
/// [`spawn`](Pipeline::spawn) is called.
///
/// Besides its stages' counters, a pipeline may carry the
/// [graph](Pipeline::with_graph) it was built from and counters for its
/// [edges](Pipeline::with_edges); both are empty unless given.
#[must_use = "a pipeline does nothing until `.run().await` or `.spawn()`"]
pub struct Pipeline<F> {
    stages: Arc<[Arc<StageStats>]>,
    edges: Arc<[Arc<EdgeStats>]>,
    graph: PipelineGraph,
    body: F,
}

impl<F> Pipeline<F> {
    /// Attaches the graph the pipeline was built from, returned by
    /// [`graph`](Pipeline::graph) and [`PipelineHandle::graph`].
    pub fn with_graph(mut self, graph: PipelineGraph) -> Self {
        self.graph = graph;
        self
    }

    /// Attaches the counters of the pipeline's edges; the
    /// [`Report`](Report::edges) and
    /// [`PipelineHandle::edge_snapshot`] list them in this order.
    /// Replaces any edges attached before.
    pub fn with_edges(mut self, edges: Vec<Arc<EdgeStats>>) -> Self {
        self.edges = edges.into();
        self
    }

    /// The graph the pipeline was built from: its nodes, kinds, ports and
    /// edges, renderable with [`to_mermaid`](PipelineGraph::to_mermaid) and
    /// [`to_dot`](PipelineGraph::to_dot). Empty unless
    /// [`with_graph`](Pipeline::with_graph) was called.
    pub fn graph(&self) -> &PipelineGraph {
        &self.graph
    }
}

impl<F, Fut> Pipeline<F>
where
    F: FnOnce(Control) -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    /// A pipeline whose stages count into `stages` and whose work is `body`,
    /// with an empty graph and no edge counters.
    pub fn new(stages: Vec<Arc<StageStats>>, body: F) -> Self {
        Pipeline {
            stages: stages.into(),
            edges: Arc::new([]),
            graph: PipelineGraph::default(),
            body,
        }
    }

    /// Runs the pipeline in the current task until it completes.
    ///
    /// Stages may borrow from the caller, since nothing is spawned.
    pub async fn run(self) -> Result<Report, Error> {
        let control = Control::new();
        let started = Instant::now();
        (self.body)(control.clone()).await?;
        Ok(report(
            &self.stages,
            &self.edges,
            started,
            control.is_stopping(),
        ))
    }

    /// Starts the pipeline on the tokio runtime and returns a handle to
    /// stop, abort or join it.
    pub fn spawn(self) -> PipelineHandle
    where
        F: Send + 'static,
        Fut: Send + 'static,
    {
        let control = Control::new();
        let stages = Arc::clone(&self.stages);
        let edges = Arc::clone(&self.edges);
        let body = self.body;
        let task_control = control.clone();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            body(task_control.clone()).await?;
            Ok(report(&stages, &edges, started, task_control.is_stopping()))
        });
        PipelineHandle {
            control,
            stages: self.stages,
            edges: self.edges,
            graph: self.graph,
            task,
        }
    }

    /// The names of the pipeline's stages, in the order they were written.
    pub fn stage_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.stages.iter().map(|s| s.name())
    }
}

fn report(
    stages: &[Arc<StageStats>],
    edges: &[Arc<EdgeStats>],
    started: Instant,
    stopped: bool,
) -> Report {
    Report {
        stages: stages.iter().map(|s| StageReport::from_stats(s)).collect(),
        duration: started.elapsed(),
        stopped,
        edges: edges.iter().map(|e| EdgeReport::from_stats(e)).collect(),
    }
}

/// A running pipeline, from [`Pipeline::spawn`].
///
/// Dropping the handle does not stop the pipeline; it runs to completion
/// in the background.
#[derive(Debug)]
pub struct PipelineHandle {
    control: Control,
    stages: Arc<[Arc<StageStats>]>,
    edges: Arc<[Arc<EdgeStats>]>,
    graph: PipelineGraph,
    task: JoinHandle<Result<Report, Error>>,
}

impl PipelineHandle {
    /// Stops gracefully: sources stop reading, every item already read is
    /// processed, and every stage is closed. Returns at once; use
    /// [`join`](PipelineHandle::join) to wait for the end.
    pub fn stop(&self) {
        self.control.stop();
    }

    /// Stops immediately: items in flight are dropped and `close` hooks do
    /// not run. [`join`](PipelineHandle::join) then returns
    /// [`Error::Aborted`].
    pub fn abort(&self) {
        self.task.abort();
    }

    /// The counts so far, while the pipeline runs.
    pub fn snapshot(&self) -> Vec<StageReport> {
        self.stages
            .iter()
            .map(|s| StageReport::from_stats(s))
            .collect()
    }

    /// The counts so far of the stage called `name` (as the report names
    /// it), while the pipeline runs: for an accumulator, also its open
    /// keys, items and bytes held, bytes spilled and flushes by reason.
    pub fn inspect(&self, name: &str) -> Option<StageReport> {
        self.stages
            .iter()
            .find(|s| s.name() == name)
            .map(|s| StageReport::from_stats(s))
    }

    /// The counts of each edge so far, while the pipeline runs, in the
    /// order given to [`Pipeline::with_edges`].
    pub fn edge_snapshot(&self) -> Vec<EdgeReport> {
        self.edges
            .iter()
            .map(|e| EdgeReport::from_stats(e))
            .collect()
    }

    /// The graph the pipeline was built from (see [`Pipeline::graph`]).
    pub fn graph(&self) -> &PipelineGraph {
        &self.graph
    }

    /// Whether the pipeline has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Waits for the pipeline to end and returns its report.
    pub async fn join(self) -> Result<Report, Error> {
        match self.task.await {
            Ok(result) => result,
            Err(join) if join.is_cancelled() => Err(Error::Aborted),
            Err(join) => {
                let panic = join.into_panic();
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic payload".to_owned());
                Err(Error::Panicked { message })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{GraphEdge, GraphNode, NodeKind};

    fn graph() -> PipelineGraph {
        let node = |name, kind| GraphNode {
            name,
            kind,
            ports: Vec::new(),
            line: 1,
            column: 1,
        };
        PipelineGraph::new(
            vec![node("iter", NodeKind::Source), node("sink", NodeKind::Sink)],
            vec![GraphEdge {
                from: 0,
                to: 1,
                port: None,
            }],
        )
    }

    #[tokio::test]
    async fn defaults_are_empty() {
        let pipeline = Pipeline::new(Vec::new(), |_| async { Ok(()) });
        assert_eq!(pipeline.graph(), &PipelineGraph::default());
        let report = pipeline.run().await.unwrap();
        assert!(report.edges.is_empty());
    }

    #[tokio::test]
    async fn run_reports_edges() {
        let edge = Arc::new(EdgeStats::new("iter", "sink", None));
        let counted = Arc::clone(&edge);
        let pipeline = Pipeline::new(Vec::new(), move |_| async move {
            counted.record_sent(5);
            Ok(())
        })
        .with_graph(graph())
        .with_edges(vec![edge]);
        assert_eq!(pipeline.graph().node("sink").unwrap().kind, NodeKind::Sink);
        let report = pipeline.run().await.unwrap();
        let e = report.edge("iter", "sink").unwrap();
        assert_eq!((e.sent, e.dropped), (5, 0));
    }

    #[tokio::test]
    async fn spawned_handle_exposes_graph_and_edges() {
        let edge = Arc::new(EdgeStats::new("iter", "sink", None));
        let counted = Arc::clone(&edge);
        let handle = Pipeline::new(Vec::new(), move |control: Control| async move {
            counted.record_sent(2);
            control.stopping().await;
            counted.record_dropped(1);
            Ok(())
        })
        .with_edges(vec![edge])
        .with_graph(graph())
        .spawn();
        assert_eq!(handle.graph(), &graph());
        while handle.edge_snapshot()[0].sent == 0 {
            tokio::task::yield_now().await;
        }
        let snapshot = handle.edge_snapshot();
        assert_eq!(snapshot.len(), 1);
        assert_eq!((snapshot[0].from, snapshot[0].sent), ("iter", 2));
        handle.stop();
        let report = handle.join().await.unwrap();
        assert!(report.stopped);
        assert_eq!(report.edges[0].dropped, 1);
    }
}
