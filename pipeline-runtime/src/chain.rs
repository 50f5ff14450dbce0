//! Fusion: a linear run of stages executed inside one task as direct calls.
//!
//! A fused chain is pulled chunk by chunk from its end. [`Head`] fills a
//! chunk from its [`Source`]; each [`Fuse`] pulls a chunk from the chain
//! before it and runs it through one stage. The nesting is static, so the
//! compiler sees through the whole chain and a run of synchronous stages
//! becomes one loop per stage over a chunk held in cache.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::error::Error;
use crate::fan::{FailureRoute, LogFailures, Outlet};
use crate::graph::NodeKind;
use crate::lifecycle::Control;
use crate::metrics::StageStats;
use crate::stage::{Failures, Pull, Source, Stage, StageContext};

/// Items pulled from a source per chunk unless the pipeline says otherwise.
pub const DEFAULT_CHUNK: usize = 512;

/// A fused chain of stages that can be pulled for chunks of output.
pub trait Chain {
    /// The items the chain emits.
    type Out;

    /// Initialises every stage, source first.
    fn init(&mut self) -> impl Future<Output = Result<(), Error>>;

    /// Pulls the next chunk of outputs into `out` (which may stay empty if
    /// every item of the chunk was filtered). Returns [`Pull::Done`] with the
    /// chain's last chunk.
    fn pull(
        &mut self,
        out: &mut Vec<Self::Out>,
        control: &Control,
    ) -> impl Future<Output = Result<Pull, Error>>;

    /// Closes every stage, source first, so each sees its input end before
    /// it closes.
    fn close(&mut self) -> impl Future<Output = Result<(), Error>>;
}

/// The type of item a chain emits, known without checking the chain.
///
/// The generated code uses it to tell a closure its parameter type, and it
/// is implemented without bounds so that a type error earlier in the chain
/// is reported once, not again at every later stage.
pub trait Outputs {
    /// The items the chain emits.
    type Out;
}

/// The start of a chain: a source.
pub struct Head<S> {
    source: S,
    ctx: StageContext,
    chunk: usize,
}

impl<S> Head<S> {
    /// A chain head reading chunks of up to `chunk` items from `source`.
    pub fn new(source: S, stats: Arc<StageStats>, chunk: usize) -> Self {
        Head {
            source,
            ctx: StageContext::new(stats),
            chunk: chunk.max(1),
        }
    }
}

impl<S: Source> Outputs for Head<S> {
    type Out = S::Out;
}

impl<S: Source> Chain for Head<S> {
    type Out = S::Out;

    async fn init(&mut self) -> Result<(), Error> {
        self.source
            .init(&self.ctx)
            .await
            .map_err(|source| Error::Init {
                stage: self.ctx.name(),
                source,
            })
    }

    async fn pull(&mut self, out: &mut Vec<S::Out>, control: &Control) -> Result<Pull, Error> {
        if control.is_stopping() {
            return Ok(Pull::Done);
        }
        let before = out.len();
        let max = before + self.chunk;
        let filled = {
            let fill = self.source.fill(out, max, &self.ctx);
            tokio::select! {
                biased;
                filled = fill => filled,
                () = control.stopping() => Ok(Pull::Done),
            }
        };
        self.ctx
            .stats()
            .record_produced((out.len() - before) as u64);
        match filled {
            Ok(pull) => Ok(pull),
            Err(error) => {
                self.ctx.stats().record_source_error();
                tracing::warn!(stage = self.ctx.name(), %error, "source read failed");
                Ok(Pull::More)
            }
        }
    }

    async fn close(&mut self) -> Result<(), Error> {
        self.source
            .close(&self.ctx)
            .await
            .map_err(|source| Error::Close {
                stage: self.ctx.name(),
                source,
            })
    }
}

/// A chain `A` followed by the stage `B`, which takes `M` and emits `O`;
/// failed items go to `P` (logged and dropped unless the stage's `errors`
/// port is connected).
///
/// `M` and `O` are parameters rather than projections so that this type
/// stays well-formed, and the mismatch is reported only where it is made.
pub struct Fuse<A, B, M, O, E, P = LogFailures> {
    upstream: A,
    stage: B,
    ctx: StageContext,
    input: Vec<M>,
    failures: Failures<E>,
    on_failure: P,
    _out: PhantomData<fn() -> O>,
}

impl<A, B, M, O, E> Fuse<A, B, M, O, E> {
    /// `upstream` followed by `stage`, counting into `stats`.
    pub fn new(upstream: A, stage: B, stats: Arc<StageStats>) -> Self {
        Fuse::with_failures(upstream, stage, stats, LogFailures)
    }
}

impl<A, B, M, O, E, P> Fuse<A, B, M, O, E, P> {
    /// `upstream` followed by `stage`, with failed items going to
    /// `on_failure`.
    pub fn with_failures(upstream: A, stage: B, stats: Arc<StageStats>, on_failure: P) -> Self {
        Fuse {
            upstream,
            stage,
            ctx: StageContext::new(stats),
            input: Vec::new(),
            failures: Failures::default(),
            on_failure,
            _out: PhantomData,
        }
    }
}

impl<A, B, M, O, E, P> Outputs for Fuse<A, B, M, O, E, P> {
    type Out = O;
}

impl<A, B, M, O, E, P> Chain for Fuse<A, B, M, O, E, P>
where
    A: Chain<Out = M>,
    B: Stage<M, Out = O, Error = E>,
    E: std::fmt::Display,
    P: FailureRoute<M, E>,
{
    type Out = O;

    async fn init(&mut self) -> Result<(), Error> {
        self.upstream.init().await?;
        self.stage
            .init(&self.ctx)
            .await
            .map_err(|source| Error::Init {
                stage: self.ctx.name(),
                source,
            })
    }

    async fn pull(&mut self, out: &mut Vec<O>, control: &Control) -> Result<Pull, Error> {
        let pull = self.upstream.pull(&mut self.input, control).await?;
        let items_in = self.input.len();
        if items_in == 0 {
            return Ok(pull);
        }
        let before = out.len();
        self.on_failure.keep(&self.input);
        let start = self.failures.position();
        self.stage
            .process_chunk(&mut self.input, out, &mut self.failures, &self.ctx)
            .await;
        // A stage that leaves inputs behind would lose them silently.
        debug_assert!(self.input.is_empty(), "a stage must drain its input chunk");
        self.input.clear();
        let (mut filtered, errors) = self.failures.take();
        // A sink emits nothing by design: an item it took without an error
        // was consumed, not filtered.
        if self.ctx.stats().kind() == NodeKind::Sink {
            filtered = 0;
        }
        let failed: Vec<(usize, E)> = errors
            .map(|(position, error)| ((position - start) as usize, error))
            .collect();
        let failed_count = failed.len() as u64;
        let (failed_count, dead_lettered) = if P::HANDS_ON {
            (0, failed_count)
        } else {
            (failed_count, 0)
        };
        let stats = self.ctx.stats();
        stats.record_chunk(
            items_in as u64,
            (out.len() - before) as u64,
            filtered,
            failed_count,
        );
        stats.record_dead_lettered(dead_lettered);
        if !failed.is_empty() {
            self.on_failure.route(failed, &self.ctx).await;
        }
        Ok(pull)
    }

    async fn close(&mut self) -> Result<(), Error> {
        self.upstream.close().await?;
        self.stage
            .close(&self.ctx)
            .await
            .map_err(|source| Error::Close {
                stage: self.ctx.name(),
                source,
            })
    }
}

/// Runs a chain to completion: initialise, pull until the source is done
/// (or the pipeline is stopped), then close.
pub async fn drive<C: Chain>(mut chain: C, control: Control) -> Result<(), Error> {
    chain.init().await?;
    let mut out = Vec::new();
    loop {
        let pull = chain.pull(&mut out, &control).await?;
        // Only a sink ends a complete chain, and sinks emit nothing.
        out.clear();
        if pull == Pull::Done {
            break;
        }
    }
    chain.close().await
}

/// Runs a chain whose output leaves through an [`Outlet`] (a fan-out, a
/// merge input or a branch): like [`drive`], then closes the outlet so the
/// chains downstream see the end of their input.
///
/// The outlet is closed even when the chain fails, so downstream chains
/// finish with what they were sent instead of waiting forever.
pub async fn drive_into<C, O>(mut chain: C, mut outlet: O, control: Control) -> Result<(), Error>
where
    C: Chain,
    O: Outlet<C::Out>,
{
    let result = async {
        chain.init().await?;
        let mut out = Vec::new();
        loop {
            let pull = chain.pull(&mut out, &control).await?;
            outlet.send(&mut out).await;
            if pull == Pull::Done {
                break;
            }
        }
        chain.close().await
    }
    .await;
    outlet.close().await;
    result
}

/// Runs two parts of a pipeline concurrently in the current task, ending
/// at the first error. The generated code nests it to run every fused
/// chain of a graph.
pub async fn join<A, B>(a: A, b: B) -> Result<(), Error>
where
    A: Future<Output = Result<(), Error>>,
    B: Future<Output = Result<(), Error>>,
{
    tokio::try_join!(a, b).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{Collected, collect, iter};
    use crate::transform::{filter, map};

    fn stats(name: &'static str, kind: NodeKind) -> Arc<StageStats> {
        Arc::new(StageStats::new(name, kind))
    }

    #[tokio::test]
    async fn a_hand_built_chain_runs_in_chunks_and_counts_per_stage() {
        let out = Collected::new();
        let source = stats("iter", NodeKind::Source);
        let double = stats("map", NodeKind::Transform);
        let odd = stats("filter", NodeKind::Transform);
        let sink = stats("collect", NodeKind::Sink);
        // A chunk of 3 makes the 10 items cross four chunks.
        let chain = Head::new(iter(0..10u32), source.clone(), 3);
        let chain: Fuse<_, _, u32, u32, crate::stage::Never> =
            Fuse::new(chain, map(|x: u32| x * 2 + 1), double.clone());
        let chain: Fuse<_, _, u32, u32, crate::stage::Never> =
            Fuse::new(chain, filter(|x: &u32| !x.is_multiple_of(3)), odd.clone());
        let chain: Fuse<_, _, u32, crate::stage::Never, crate::stage::Never> =
            Fuse::new(chain, collect(&out), sink.clone());
        drive(chain, Control::new()).await.unwrap();
        assert_eq!(out.take(), vec![1, 5, 7, 11, 13, 17, 19]);
        assert_eq!(source.items_out(), 10);
        assert_eq!((double.items_in(), double.items_out()), (10, 10));
        assert_eq!(
            (odd.items_in(), odd.filtered(), odd.items_out()),
            (10, 3, 7)
        );
        assert_eq!((sink.items_in(), sink.passed(), sink.filtered()), (7, 7, 0));
    }

    #[tokio::test]
    async fn a_chain_stopped_before_it_starts_reads_nothing_and_still_closes() {
        let out = Collected::new();
        let control = Control::new();
        control.stop();
        let source = stats("iter", NodeKind::Source);
        let chain = Head::new(iter(0..10u32), source.clone(), 4);
        let chain: Fuse<_, _, u32, crate::stage::Never, crate::stage::Never> =
            Fuse::new(chain, collect(&out), stats("collect", NodeKind::Sink));
        drive(chain, control).await.unwrap();
        assert!(out.is_empty());
        assert_eq!(source.items_out(), 0);
    }
}
