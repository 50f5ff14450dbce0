//! Where an accumulation's items come from: an edge of its own, or the
//! chain before it, fused into the same segment.

use std::future::Future;

use crate::chain::{Chain, Outputs};
use crate::channel::EdgeReceiver;
use crate::control::Control;
use crate::error::Error;
use crate::stage::Pull;

/// The input of an [`AccumulateHead`](super::AccumulateHead): chunks of
/// items, then an end.
///
/// An [`EdgeReceiver`] lets the accumulation wait for input and for its
/// next deadline at once, so `max_latency` and `ttl` fire on time even
/// when no input comes. A [`Pulled`] chain saves the edge's hop (a copy of
/// every item and a trip through the scheduler per chunk), but the chain's
/// pull cannot be abandoned half way, so deadlines are only checked
/// between its chunks: the generated code fuses an accumulation only when
/// its policy has no `max_latency` and no `ttl`.
pub trait Intake<T> {
    /// Whether a [`take`](Intake::take) may be dropped before it completes
    /// without losing items, so that the accumulation can race it against
    /// its next deadline.
    const CANCEL_SAFE: bool;

    /// Initialises whatever produces the items.
    fn init(&mut self) -> impl Future<Output = Result<(), Error>>;

    /// Appends the next chunk to `out`: about `max` items from an edge,
    /// a chunk of the chain's own size from a [`Pulled`] chain. Returns
    /// `Ok(false)` (with nothing appended) once the input has ended.
    fn take(
        &mut self,
        out: &mut Vec<T>,
        max: usize,
        control: &Control,
    ) -> impl Future<Output = Result<bool, Error>>;

    /// Closes whatever produces the items, after the input ended.
    fn close(&mut self) -> impl Future<Output = Result<(), Error>>;
}

impl<T> Intake<T> for EdgeReceiver<T> {
    const CANCEL_SAFE: bool = true;

    async fn init(&mut self) -> Result<(), Error> {
        Ok(())
    }

    async fn take(&mut self, out: &mut Vec<T>, max: usize, _: &Control) -> Result<bool, Error> {
        Ok(self.recv_into(out, max).await)
    }

    async fn close(&mut self) -> Result<(), Error> {
        Ok(())
    }
}

/// The chain before an accumulation fused into its segment: the
/// accumulation pulls it directly, with no edge in between.
///
/// An error that drains the pipeline ([`Error::ItemFailed`]: an item
/// failed under `on_error = fail` and the sources were told to stop) ends
/// the input here just as it would close an edge, so the accumulation
/// still lets go of its open states; the error is returned by
/// [`close`](Intake::close). Any other error is returned at once.
///
/// An accumulation pulling a source directly, by hand:
///
/// ```
/// use std::sync::Arc;
///
/// use pipeline_runtime::accumulate::{AccumulateHead, Policy, Pulled, batch_by, default_size};
/// use pipeline_runtime::chain::{Chain, Head};
/// use pipeline_runtime::graph::NodeKind;
/// use pipeline_runtime::io::iter;
/// use pipeline_runtime::lifecycle::Control;
/// use pipeline_runtime::metrics::StageStats;
/// use pipeline_runtime::stage::Pull;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let stats = |name, kind| Arc::new(StageStats::new(name, kind));
/// let source = Head::new(iter(0..10u32), stats("iter", NodeKind::Source), 4);
/// let policy = Policy {
///     max_items: Some(3),
///     ..Policy::default()
/// };
/// let by_parity = batch_by(|n: &u32| n % 2);
/// let acc = stats("acc", NodeKind::Accumulator);
/// let mut grouped =
///     AccumulateHead::new(Pulled::new(source), by_parity, default_size, policy, acc, 4);
/// grouped.init().await.unwrap();
/// let (control, mut batches) = (Control::new(), Vec::new());
/// while grouped.pull(&mut batches, &control).await.unwrap() == Pull::More {}
/// grouped.close().await.unwrap();
/// let mut groups: Vec<Vec<u32>> = batches.into_iter().map(|b| b.into_items()).collect();
/// groups.sort();
/// // Full batches of 3 as they fill, the rest when the source ends.
/// assert_eq!(groups, [vec![0, 2, 4], vec![1, 3, 5], vec![6, 8], vec![7, 9]]);
/// # }
/// ```
#[derive(Debug)]
pub struct Pulled<C> {
    chain: C,
    ended: bool,
    failed: Option<Error>,
}

impl<C> Pulled<C> {
    /// The input read by pulling `chain`.
    pub fn new(chain: C) -> Self {
        Pulled {
            chain,
            ended: false,
            failed: None,
        }
    }
}

impl<C: Outputs> Outputs for Pulled<C> {
    type Out = C::Out;
}

impl<C: Chain> Intake<C::Out> for Pulled<C> {
    const CANCEL_SAFE: bool = false;

    fn init(&mut self) -> impl Future<Output = Result<(), Error>> {
        self.chain.init()
    }

    async fn take(
        &mut self,
        out: &mut Vec<C::Out>,
        _: usize,
        control: &Control,
    ) -> Result<bool, Error> {
        while !self.ended {
            match self.chain.pull(out, control).await {
                Ok(Pull::Done) => self.ended = true,
                Ok(Pull::More) => {}
                Err(error) if error.drains() => {
                    // Like the end of an edge whose chain failed: what was
                    // already taken is still accumulated and let go of.
                    self.ended = true;
                    self.failed = Some(error);
                }
                Err(error) => {
                    self.ended = true;
                    return Err(error);
                }
            }
            // A chunk whose every item was filtered is no chunk: pull on.
            if !out.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn close(&mut self) -> Result<(), Error> {
        // A chain cut short by an error is not closed, as `drive` would
        // not close it: the pipeline marks its stages when the run ends.
        match self.failed.take() {
            Some(error) => Err(error),
            None => self.chain.close().await,
        }
    }
}
