//! The start of a chain: a source, read a chunk at a time.

use std::sync::Arc;

use tracing::Instrument;

use super::finish::{closed_stage, failed_init};
use super::{Chain, Outputs};
use crate::control::Control;
use crate::error::Error;
use crate::metrics::{DEFAULT_PIPELINE_NAME, StageStats};
use crate::stage::{Pull, Source, StageContext};

/// Items pulled from a source per chunk unless the pipeline says otherwise.
pub const DEFAULT_CHUNK: usize = 512;

/// The most items a [long-chunk](Head::with_long_chunks) head reads per
/// chunk.
pub const LONG_CHUNK: usize = 4096;

/// The most bytes of items a [long-chunk](Head::with_long_chunks) head
/// reads per chunk: larger items get fewer per chunk, never fewer than
/// [`DEFAULT_CHUNK`].
pub const LONG_CHUNK_BYTES: usize = 64 << 10;

/// The start of a chain: a source.
pub struct Head<S> {
    source: S,
    ctx: StageContext,
    chunk: usize,
    /// The source has been given the stop signal ([`Source::watch_stop`]).
    watching: bool,
}

impl<S> Head<S> {
    /// A chain head reading chunks of up to `chunk` items from `source`.
    pub fn new(source: S, stats: Arc<StageStats>, chunk: usize) -> Self {
        Head {
            source,
            ctx: StageContext::new(stats),
            chunk: chunk.max(1),
            watching: false,
        }
    }
}

impl<S: Source> Head<S> {
    /// Reads longer chunks: as many items as fit in [`LONG_CHUNK_BYTES`],
    /// at most [`LONG_CHUNK`], never fewer than it read before.
    ///
    /// For a head whose chain does little per item and touches memory out
    /// of cache for each one (a random access into an accumulation's map,
    /// an item reached through a reference): reading the input in longer
    /// runs between those passes was measured to matter (`benches/linear`,
    /// `accumulate` and `nexmark`, in `BENCHMARKS.md`). A source with
    /// fewer items ready returns what it has, so a longer chunk holds
    /// nothing back.
    pub fn with_long_chunks(mut self) -> Self {
        let fits = LONG_CHUNK_BYTES / size_of::<S::Out>().max(1);
        self.chunk = self.chunk.max(fits.min(LONG_CHUNK));
        self
    }
}

impl<S: Source> Outputs for Head<S> {
    type Out = S::Out;
}

impl<S: Source> Chain for Head<S> {
    type Out = S::Out;

    async fn init(&mut self) -> Result<(), Error> {
        let stats = self.ctx.stats();
        stats.observe(DEFAULT_PIPELINE_NAME);
        let init = self.source.init(&self.ctx).await;
        init.map_err(|source| failed_init(stats, source))
    }

    async fn pull(&mut self, out: &mut Vec<S::Out>, control: &Control) -> Result<Pull, Error> {
        if !self.watching {
            self.watching = true;
            self.source.watch_stop(control);
        }
        let before = out.len();
        let max = before + self.chunk;
        let stats = self.ctx.stats();
        let started = stats.start_chunk();
        // `None`: the pipeline is stopping; the source hands on only what
        // it already accepted.
        let filled = if control.is_stopping() {
            None
        } else {
            let fill = self.source.fill(out, max, &self.ctx);
            let fill = async {
                tokio::select! {
                    biased;
                    filled = fill => Some(filled),
                    () = control.stopping() => None,
                }
            };
            let span = stats.span();
            if span.is_disabled() {
                fill.await
            } else {
                fill.instrument(span.clone()).await
            }
        };
        let filled = match filled {
            Some(filled) => filled,
            None => Ok(self.source.drain_accepted(out, max, &self.ctx).await),
        };
        stats.record_produced((out.len() - before) as u64);
        stats.finish_chunk(started);
        match filled {
            Ok(pull) => Ok(pull),
            Err(error) => {
                stats.record_source_error();
                let _entered = stats.span().enter();
                tracing::warn!(stage = self.ctx.name(), %error, "source read failed");
                stats.record_error(format_args!("source read failed: {error}"));
                Ok(Pull::More)
            }
        }
    }

    async fn close(&mut self) -> Result<(), Error> {
        let closed = self.source.close(&self.ctx).await;
        closed_stage(self.ctx.stats(), closed, None)
    }
}
