//! A hop: an edge in the middle of a chain that would otherwise be fused,
//! for a stage whose `#[stage(..)]` defaults ask for its own input edge
//! (`buffer`, `on_full`, `backpressure`) or its own workers (`parallel`).
//!
//! `pipeline!` cannot see a stage's defaults when it lays out the graph (they
//! are written on another item), so it cannot cut the chain there itself.
//! Instead the chain before the stage is handed to a [`Hopped`], which runs
//! it concurrently with the chain after it, in the same task, joined by a
//! real edge built from the stage's options.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use crate::chain::{Chain, Outputs};
use crate::channel::{EdgeReceiver, edge_for};
use crate::control::Control;
use crate::error::Error;
use crate::fan::{Broadcast, Output};
use crate::metrics::EdgeStats;
use crate::options::StageOptions;
use crate::stage::Pull;

/// The chain before a hop, until it starts; then its running future.
enum Upstream<A, Out, F, Fut> {
    Ready {
        chain: A,
        output: Broadcast<Out>,
        drive: F,
    },
    Running(Pin<Box<Fut>>),
    Ended(Result<(), Error>),
    Taken,
}

/// A chain `C` that reads the edge fed by another chain `A`, run together:
/// `A` is driven (by `F`, which is
/// [`drive_into`](crate::chain::drive_into)) whenever `C` waits, so the
/// two make progress concurrently without a task of their own.
///
/// Built by [`Hopped::new`] from an edge made by [`hop_edge`]: `C` reads
/// its receiver (an [`Inlet`](crate::fan::Inlet), or a
/// [`ParallelHead`](crate::parallel::ParallelHead)).
pub struct Hopped<C, A, Out, F, Fut> {
    downstream: C,
    upstream: Upstream<A, Out, F, Fut>,
}

/// An edge built from `options` (`buffer`, `on_full`, `backpressure`),
/// counting into `stats`: its sender, as an outlet, and its receiver.
pub fn hop_edge<T>(
    options: &StageOptions,
    chunk: usize,
    stats: &Arc<EdgeStats>,
) -> (Broadcast<T>, EdgeReceiver<T>) {
    let (tx, rx) = edge_for(options, chunk);
    stats.mark_hop();
    (Broadcast::single(Output::new(tx, Arc::clone(stats))), rx)
}

impl<C, A, Out, F, Fut> Hopped<C, A, Out, F, Fut>
where
    A: Chain<Out = Out>,
    F: FnOnce(A, Broadcast<Out>, Control) -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    /// `downstream`, reading the edge that `output` feeds, with `upstream`
    /// driven into `output` by `drive` from the first pull on.
    pub fn new(downstream: C, upstream: A, output: Broadcast<Out>, drive: F) -> Self {
        Hopped {
            downstream,
            upstream: Upstream::Ready {
                chain: upstream,
                output,
                drive,
            },
        }
    }
}

impl<C: Outputs, A, Out, F, Fut> Outputs for Hopped<C, A, Out, F, Fut> {
    type Out = C::Out;
}

impl<C, A, Out, F, Fut> Chain for Hopped<C, A, Out, F, Fut>
where
    C: Chain,
    A: Chain<Out = Out>,
    F: FnOnce(A, Broadcast<Out>, Control) -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    type Out = C::Out;

    /// Initialises the chain after the hop; the chain before it is
    /// initialised when it starts, at the first pull.
    async fn init(&mut self) -> Result<(), Error> {
        self.downstream.init().await
    }

    async fn pull(&mut self, out: &mut Vec<C::Out>, control: &Control) -> Result<Pull, Error> {
        if matches!(self.upstream, Upstream::Ready { .. })
            && let Upstream::Ready {
                chain,
                output,
                drive,
            } = std::mem::replace(&mut self.upstream, Upstream::Taken)
        {
            self.upstream = Upstream::Running(Box::pin(drive(chain, output, control.clone())));
        }
        let Hopped {
            downstream,
            upstream,
        } = self;
        let mut pull = std::pin::pin!(downstream.pull(out, control));
        std::future::poll_fn(|cx| {
            if let Upstream::Running(running) = upstream
                && let Poll::Ready(result) = running.as_mut().poll(cx)
            {
                *upstream = Upstream::Ended(result);
            }
            pull.as_mut().poll(cx)
        })
        .await
    }

    /// Closes the chain after the hop, then returns the first error of:
    /// the chain before the hop (which ended when it closed the edge, so
    /// before the chain after it saw the edge's end), closing the chain
    /// after.
    async fn close(&mut self) -> Result<(), Error> {
        let closed = self.downstream.close().await;
        let upstream = match std::mem::replace(&mut self.upstream, Upstream::Taken) {
            Upstream::Running(running) => running.await,
            Upstream::Ended(result) => result,
            Upstream::Ready { .. } | Upstream::Taken => Ok(()),
        };
        upstream?;
        closed
    }
}

impl<C: fmt::Debug, A, Out, F, Fut> fmt::Debug for Hopped<C, A, Out, F, Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let upstream = match self.upstream {
            Upstream::Ready { .. } => "ready",
            Upstream::Running(_) => "running",
            Upstream::Ended(_) => "ended",
            Upstream::Taken => "taken",
        };
        f.debug_struct("Hopped")
            .field("downstream", &self.downstream)
            .field("upstream", &upstream)
            .finish()
    }
}
