use std::future::Future;

use super::{BoxError, StageContext};
use crate::control::Control;

/// Whether a source has more to give after a [`Source::fill`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pull {
    /// The source may produce more items.
    More,
    /// The source is exhausted; this fill was its last.
    Done,
}

/// The head of a chain: produces items.
///
/// ```
/// use pipeline_runtime::stage::{Pull, Source, StageContext};
///
/// /// Counts down from `n` to 1.
/// struct Countdown(u32);
///
/// impl Source for Countdown {
///     type Out = u32;
///     type Error = std::convert::Infallible;
///
///     async fn fill(
///         &mut self,
///         out: &mut Vec<u32>,
///         max: usize,
///         _ctx: &StageContext,
///     ) -> Result<Pull, Self::Error> {
///         while out.len() < max && self.0 > 0 {
///             out.push(self.0);
///             self.0 -= 1;
///         }
///         Ok(if self.0 == 0 { Pull::Done } else { Pull::More })
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a source",
    label = "a chain must start with a source",
    note = "start the chain with `iter(..)`, `stream(..)` or a `#[stage(source)]` function"
)]
pub trait Source {
    /// The items it produces.
    type Out;
    /// The error a read can fail with. A failed read is counted and the
    /// source is asked again; a source that cannot continue returns `Done`.
    type Error: std::fmt::Display;

    /// Called once before the first fill.
    fn init(&mut self, ctx: &StageContext) -> impl Future<Output = Result<(), BoxError>> {
        let _ = ctx;
        std::future::ready(Ok(()))
    }

    /// Appends up to `max - out.len()` items to `out`.
    ///
    /// Waits until at least one item is available or the source ends, then
    /// returns as soon as no more items are immediately available, so
    /// batching never adds latency. Must be cancel-safe: items already
    /// appended to `out` when the future is dropped are kept.
    fn fill(
        &mut self,
        out: &mut Vec<Self::Out>,
        max: usize,
        ctx: &StageContext,
    ) -> impl Future<Output = Result<Pull, Self::Error>>;

    /// Called once after the last fill.
    fn close(&mut self, ctx: &StageContext) -> impl Future<Output = Result<(), BoxError>> {
        let _ = ctx;
        std::future::ready(Ok(()))
    }

    /// Called once, before the first fill, with the pipeline's stop
    /// signal.
    ///
    /// A source that other code feeds while the pipeline runs (a
    /// [`push`](crate::io::push) source) uses it to refuse new items the
    /// moment the pipeline is stopped, so that producers waiting for room
    /// are released at once, even while the rest of the chain is busy
    /// (see [`Control::cancel_on_stop`]). The default ignores it.
    fn watch_stop(&mut self, control: &Control) {
        let _ = control;
    }

    /// Called instead of [`fill`](Source::fill) once the pipeline is
    /// stopping gracefully, until it returns [`Pull::Done`]: appends to
    /// `out` (up to `max - out.len()` items) what the source has already
    /// accepted from other code and owes the pipeline, such as the items a
    /// [`push`](crate::io::push) handle's `send` took, so that a graceful
    /// stop loses nothing a producer handed over. It must not wait for new
    /// input. The default owes nothing: a source that reads on demand
    /// (an iterator, a file) simply stops reading.
    fn drain_accepted(
        &mut self,
        out: &mut Vec<Self::Out>,
        max: usize,
        ctx: &StageContext,
    ) -> impl Future<Output = Pull> {
        let _ = (out, max, ctx);
        std::future::ready(Pull::Done)
    }
}
