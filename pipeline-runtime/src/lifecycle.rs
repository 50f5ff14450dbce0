//! Starting, stopping and joining a pipeline.
//!
//! | how it ends | sources | items in flight | `close` hooks | result |
//! | --- | --- | --- | --- | --- |
//! | complete | exhausted | all processed | run | `Ok(Report)` |
//! | [`stop`](PipelineHandle::stop) | stop reading at the next chunk; a [`push`](crate::io::push) source refuses new items at once and hands on those its handles already sent | all processed | run | `Ok(Report)` with `stopped` |
//! | an item fails under `on_error = fail` | stop reading at the next chunk | all processed (the other chains drain) | run | `Err(Error::ItemFailed)` naming the stage and item |
//! | [`abort`](PipelineHandle::abort) | dropped | dropped | not run | `Err(Error::Aborted)` |
//! | a stage's `init` or `close` fails | stop | dropped | not run | `Err(Error::Init / Close)` |
//!
//! Accumulators flush their open state on complete, stop and fail (or send
//! it to their `errors` port with `partial_flush = false`), and lose it on
//! abort. Each row has a test: `tests/lifecycle.rs` (complete, stop, abort,
//! init), `tests/options.rs` (`on_error = fail`), `tests/accumulate.rs`
//! (stop flushes open batches).
//!
//! While it runs, a [`PipelineHandle`] shows each stage's
//! [`StageState`]: its status, the queues around it, its counters, its
//! throughput and its last error. A pipeline reports through the
//! `metrics` and `tracing` crates too, under its [name](Pipeline::named)
//! (see [`crate::metrics`]).

use std::future::Future;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use crate::control::Control;
use crate::error::Error;
use crate::graph::PipelineGraph;
use crate::metrics::{
    DEFAULT_PIPELINE_NAME, EdgeReport, EdgeStats, Report, StageReport, StageState, StageStats,
    StageStatus,
};
pub use crate::segments::{Body, SegmentList, Segments, SpawnBody, SpawnList};

/// A pipeline built by `pipeline!`, ready to run.
///
/// Nothing happens until [`run`](Pipeline::run) is awaited or
/// [`spawn`](Pipeline::spawn) is called.
///
/// Besides its stages' counters, a pipeline may carry the
/// [graph](Pipeline::with_graph) it was built from and counters for its
/// [edges](Pipeline::with_edges); both are empty unless given, and a
/// [name](Pipeline::named) for its metrics.
#[must_use = "a pipeline does nothing until `.run().await` or `.spawn()`"]
pub struct Pipeline<F> {
    name: &'static str,
    stages: Arc<[Arc<StageStats>]>,
    edges: Arc<[Arc<EdgeStats>]>,
    graph: PipelineGraph,
    body: F,
}

impl<F> Pipeline<F> {
    /// Names the pipeline: the value of the `pipeline` label of its
    /// metrics and the `pipeline` field of its stages' spans (see
    /// [`crate::metrics`]). Without a name, it is
    /// [`DEFAULT_PIPELINE_NAME`] (`"pipeline"`).
    pub fn named(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// The pipeline's [name](Pipeline::named).
    pub fn name(&self) -> &'static str {
        self.name
    }

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
    /// with an empty graph and no edge counters. Spawned, it runs as one
    /// task.
    pub fn new(stages: Vec<Arc<StageStats>>, body: F) -> Self {
        Pipeline::with_body(stages, body)
    }
}

impl<L: SegmentList> Pipeline<Segments<L>> {
    /// A pipeline whose stages count into `stages` and whose work is its
    /// `segments`, `(first, (second, (.., ())))`, each a closure that
    /// starts one part (a fused chain, in `pipeline!`): run, they share
    /// the calling task; spawned, each is a task of its own.
    ///
    /// Two chains joined by an edge, by hand:
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// use pipeline_runtime::chain::{Head, drive_into};
    /// use pipeline_runtime::channel::edge;
    /// use pipeline_runtime::fan::{Broadcast, Inlet, Output};
    /// use pipeline_runtime::graph::NodeKind;
    /// use pipeline_runtime::io::iter;
    /// use pipeline_runtime::lifecycle::{Control, Pipeline};
    /// use pipeline_runtime::metrics::{EdgeStats, StageStats};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let source = Arc::new(StageStats::new("iter", NodeKind::Source));
    /// let (tx, rx) = edge::<u32>(1024, 512);
    /// let edge_stats = Arc::new(EdgeStats::new("iter", "sum", None));
    /// let producer = {
    ///     let stats = Arc::clone(&source);
    ///     move |control: Control| {
    ///         let chain = Head::new(iter(1..=100u32), stats, 512);
    ///         drive_into(chain, Broadcast::new(vec![Output::new(tx, edge_stats)]), control)
    ///     }
    /// };
    /// let total = Arc::new(std::sync::atomic::AtomicU32::new(0));
    /// let sum = Arc::clone(&total);
    /// let consumer = move |control: Control| async move {
    ///     let mut chain = Inlet::new(rx, 512);
    ///     let mut out = Vec::new();
    ///     use pipeline_runtime::chain::Chain;
    ///     use pipeline_runtime::stage::Pull;
    ///     loop {
    ///         let pull = chain.pull(&mut out, &control).await?;
    ///         let chunk: u32 = out.drain(..).sum();
    ///         sum.fetch_add(chunk, std::sync::atomic::Ordering::Relaxed);
    ///         if pull == Pull::Done {
    ///             return Ok(());
    ///         }
    ///     }
    /// };
    /// let report = Pipeline::segmented(vec![source], (producer, (consumer, ())))
    ///     .spawn()
    ///     .join()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(total.load(std::sync::atomic::Ordering::Relaxed), 5050);
    /// assert_eq!(report.stage("iter").unwrap().items_out, 100);
    /// # }
    /// ```
    pub fn segmented(stages: Vec<Arc<StageStats>>, segments: L) -> Self {
        Pipeline::with_body(stages, Segments(segments))
    }
}

impl<B> Pipeline<B> {
    fn with_body(stages: Vec<Arc<StageStats>>, body: B) -> Self {
        Pipeline {
            name: DEFAULT_PIPELINE_NAME,
            stages: stages.into(),
            edges: Arc::new([]),
            graph: PipelineGraph::default(),
            body,
        }
    }
}

impl<B: Body> Pipeline<B> {
    /// Runs the pipeline in the current task until it completes.
    ///
    /// Stages may borrow from the caller, since nothing is spawned: the
    /// parts of the pipeline run concurrently, in this task. The
    /// pipeline's metrics are registered with the `metrics` recorder in
    /// effect when the returned future is first polled.
    pub async fn run(self) -> Result<Report, Error> {
        let control = Control::new();
        let started = Instant::now();
        observe(self.name, &self.stages, &self.edges);
        let result = self.body.run(control.clone()).await;
        settle(&self.stages, &result);
        result?;
        Ok(report(
            &self.stages,
            &self.edges,
            started,
            control.is_stopping(),
        ))
    }

    /// Starts the pipeline on the tokio runtime and returns a handle to
    /// stop, abort or join it.
    ///
    /// A pipeline of [segments](Pipeline::segmented), as `pipeline!` builds,
    /// runs each segment (each fused chain) as a task of its own, so a
    /// multi-thread runtime runs them on several cores at once; a task
    /// joins them, and is the one [`abort`](PipelineHandle::abort) aborts
    /// (with every segment's task).
    ///
    /// The pipeline's metrics are registered with the `metrics` recorder
    /// in effect here, on the calling thread.
    pub fn spawn(self) -> PipelineHandle
    where
        B: SpawnBody,
    {
        let control = Control::new();
        observe(self.name, &self.stages, &self.edges);
        let started = Instant::now();
        let stages = Arc::clone(&self.stages);
        let edges = Arc::clone(&self.edges);
        let task_control = control.clone();
        let abort = CancellationToken::new();
        let body = self.body.spawn(control.clone(), abort.clone());
        let task = tokio::spawn(async move {
            let result = body.await;
            settle(&stages, &result);
            result?;
            Ok(report(&stages, &edges, started, task_control.is_stopping()))
        });
        PipelineHandle {
            name: self.name,
            started,
            control,
            stages: self.stages,
            edges: self.edges,
            graph: self.graph,
            abort,
            task,
        }
    }

    /// The names of the pipeline's stages, in the order they were written.
    pub fn stage_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.stages.iter().map(|s| s.name())
    }
}

/// Registers the metric handles and spans of every stage and edge.
fn observe(name: &'static str, stages: &[Arc<StageStats>], edges: &[Arc<EdgeStats>]) {
    crate::metrics::describe();
    for stage in stages {
        stage.observe(name);
    }
    for edge in edges {
        edge.observe(name);
    }
}

/// Marks every stage still running at the end of a run: finished if the
/// run completed; else failed, and the stage the error names gets it as
/// its last error.
fn settle(stages: &[Arc<StageStats>], result: &Result<(), Error>) {
    let culprit = match result {
        Ok(()) => None,
        Err(
            Error::Init { stage, .. }
            | Error::Close { stage, .. }
            | Error::ItemFailed { stage, .. },
        ) => Some(*stage),
        Err(_) => Some(""),
    };
    for stage in stages {
        if stage.status() != StageStatus::Running {
            continue;
        }
        if let (Some(name), Err(error)) = (culprit, result)
            && name == stage.name()
        {
            stage.record_error(error);
        }
        stage.finish(culprit.is_none());
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
    name: &'static str,
    /// When the run started, for each stage's throughput.
    started: Instant,
    control: Control,
    stages: Arc<[Arc<StageStats>]>,
    edges: Arc<[Arc<EdgeStats>]>,
    graph: PipelineGraph,
    abort: CancellationToken,
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
    /// [`Error::Aborted`], once every task of the pipeline (one per
    /// segment) has stopped.
    pub fn abort(&self) {
        self.abort.cancel();
    }

    /// The state of every stage now, in the order they appear in the
    /// `pipeline!` (see [`inspect`](PipelineHandle::inspect)).
    pub fn snapshot(&self) -> Vec<StageState> {
        self.stages.iter().map(|s| self.state(s)).collect()
    }

    /// The state now of the stage called `name` (as the report names it),
    /// while the pipeline runs or after it ended: its status, the items
    /// queued on the edges into and out of it, its counters so far
    /// (processed, out, failed, dropped, dead-lettered, retries), its last
    /// error, its circuit breaker, its throughput over the run so far and,
    /// for an accumulator, its open keys, items and bytes held, bytes
    /// spilled and flushes by reason. See [`StageState`].
    ///
    /// Queue depths are known only for edges that are channels (between
    /// fused chains), so only if the pipeline was given its
    /// [edges](Pipeline::with_edges), as `pipeline!` does.
    pub fn inspect(&self, name: &str) -> Option<StageState> {
        self.stages
            .iter()
            .find(|s| s.name() == name)
            .map(|s| self.state(s))
    }

    fn state(&self, stats: &StageStats) -> StageState {
        let mut state = StageState::read(stats, &self.edges, self.started);
        // A stage still running in a task that has ended was cut short:
        // the run was aborted, or a task panicked.
        if state.status == StageStatus::Running && self.task.is_finished() {
            state.status = StageStatus::Failed;
        }
        state
    }

    /// The pipeline's [name](Pipeline::named).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The counts of each edge so far, while the pipeline runs, in the
    /// order given to [`Pipeline::with_edges`], with the items queued on
    /// each.
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
                let message = crate::policy::panic_message(&*join.into_panic());
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

    fn stats(name: &'static str, kind: NodeKind) -> Arc<StageStats> {
        Arc::new(StageStats::new(name, kind))
    }

    #[tokio::test(start_paused = true)]
    async fn inspect_shows_queue_depth_and_throughput_while_it_runs() {
        use crate::chain::{Fuse, Head, drive, drive_into, join};
        use crate::channel::edge;
        use crate::fan::{Broadcast, Inlet, Output};
        use crate::io::{for_each_async, iter};
        use crate::stage::Never;
        use std::time::Duration;

        // A fast source into an edge of 100 items, read by a sink that
        // takes a millisecond per item: the edge fills up.
        let source = stats("iter", NodeKind::Source);
        let sink = stats("slow", NodeKind::Sink);
        let link = Arc::new(EdgeStats::new("iter", "slow", None));
        let (tx, rx) = edge(100, 10);
        let first = Head::new(iter(0..10_000u64), Arc::clone(&source), 10);
        let outlet = Broadcast::single(Output::new(tx, Arc::clone(&link)));
        let second: Fuse<_, _, u64, Never, Never> = Fuse::new(
            Inlet::new(rx, 10),
            for_each_async(|_: u64| tokio::time::sleep(Duration::from_millis(1))),
            Arc::clone(&sink),
        );
        let handle = Pipeline::new(vec![source, sink], move |control: Control| {
            join(
                drive_into(first, outlet, control.clone()),
                drive(second, control),
            )
        })
        .with_edges(vec![link])
        .named("slow_sink")
        .spawn();
        assert_eq!(handle.name(), "slow_sink");
        tokio::time::sleep(Duration::from_millis(500)).await;

        let slow = handle.inspect("slow").unwrap();
        assert_eq!(slow.status, StageStatus::Running);
        let queued = slow.input_queue.expect("fed by an edge");
        assert!(queued > 0 && queued <= 100, "{slow}");
        assert_eq!(slow.output_queue, None, "a sink feeds no edge");
        assert_eq!(slow.elapsed, Duration::from_millis(500));
        // About a thousand items a second, a chunk of ten at a time.
        assert!(
            (900.0..=1000.0).contains(&slow.items_per_sec),
            "{} items/s",
            slow.items_per_sec
        );
        let iter = handle.inspect("iter").unwrap();
        assert_eq!(iter.input_queue, None, "a source has no input");
        assert_eq!(iter.output_queue, Some(queued), "the same edge");
        assert!(iter.items_per_sec >= slow.items_per_sec, "{iter}");
        assert_eq!(handle.edge_snapshot()[0].queued, queued);
        assert_eq!(handle.snapshot().len(), 2);
        assert!(handle.inspect("missing").is_none());

        handle.stop();
        let report = handle.join().await.unwrap();
        assert!(report.stopped);
        assert_eq!(report.edges[0].queued, 0, "drained");
    }

    #[tokio::test]
    async fn a_stage_whose_init_fails_is_failed_with_its_error() {
        use crate::chain::{Fuse, Head, drive};
        use crate::io::iter;
        use crate::stage::{BoxError, Emit, Stage, StageContext};

        struct Broken;
        impl Stage<u32> for Broken {
            type Out = u32;
            type Error = String;
            async fn init(&mut self, _: &StageContext) -> Result<(), BoxError> {
                Err("no connection".into())
            }
            async fn process(
                &mut self,
                item: u32,
                out: &mut Emit<'_, u32>,
                _: &StageContext,
            ) -> Result<(), String> {
                out.emit(item);
                Ok(())
            }
        }

        let source = stats("iter", NodeKind::Source);
        let broken = stats("broken", NodeKind::Sink);
        let chain: Fuse<_, _, u32, u32, String> = Fuse::new(
            Head::new(iter(0..3u32), Arc::clone(&source), 4),
            Broken,
            Arc::clone(&broken),
        );
        let result = Pipeline::new(vec![Arc::clone(&source), Arc::clone(&broken)], |control| {
            drive(chain, control)
        })
        .run()
        .await;
        assert!(matches!(
            result,
            Err(Error::Init {
                stage: "broken",
                ..
            })
        ));
        assert_eq!(broken.status(), StageStatus::Failed);
        assert_eq!(
            broken.last_error().as_deref(),
            Some("init failed: no connection")
        );
        // The source never got to read: the run failed around it.
        assert_eq!(source.status(), StageStatus::Failed);
        assert_eq!(source.last_error(), None);
    }
}
