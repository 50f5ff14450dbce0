//! Running chains: to their sink, into an outlet, and two parts of a
//! pipeline side by side.

use std::future::Future;

use super::Chain;
use crate::control::Control;
use crate::error::Error;
use crate::fan::Outlet;
use crate::stage::Pull;

/// Runs a chain to completion: initialise, pull until the source is done
/// (or the pipeline is stopped), then close. Closing marks each stage of
/// the chain [finished](crate::metrics::StageStats::finish) (or failed); a
/// chain cut short by an error is marked by the
/// [`Pipeline`](crate::lifecycle::Pipeline) when its run ends.
///
/// (Not an `async fn`: its future holds the chain once, where an
/// `async fn` would hold its argument twice.)
#[allow(clippy::manual_async_fn)]
pub fn drive<C: Chain>(mut chain: C, control: Control) -> impl Future<Output = Result<(), Error>> {
    async move {
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
}

/// Runs a chain whose output leaves through an [`Outlet`] (a fan-out, a
/// merge input or a branch): like [`drive`], then closes the outlet so the
/// chains downstream see the end of their input.
///
/// The outlet is closed even when the chain fails, so downstream chains
/// finish with what they were sent instead of waiting forever.
#[allow(clippy::manual_async_fn)] // an `async fn` would hold its arguments twice
pub fn drive_into<C, O>(
    mut chain: C,
    mut outlet: O,
    control: Control,
) -> impl Future<Output = Result<(), Error>>
where
    C: Chain,
    O: Outlet<C::Out>,
{
    async move {
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
}

/// Runs two parts of a pipeline concurrently in the current task. The
/// generated code nests it to run every fused chain of a graph.
///
/// An error that stops the pipeline gracefully ([`Error::ItemFailed`]:
/// an item failed under `on_error = fail`, and the sources were told to
/// stop) lets the other part drain what is in flight and finish; then the
/// first such error is returned. Any other error (`init`, `close`) ends
/// both parts at once and is returned.
///
/// (Built from combinators: an `async fn` would hold each part twice, and
/// nested joins would double the pipeline's future at every level.)
pub fn join<A, B>(a: A, b: B) -> impl Future<Output = Result<(), Error>>
where
    A: Future<Output = Result<(), Error>>,
    B: Future<Output = Result<(), Error>>,
{
    use futures::FutureExt;
    // A draining error counts as done for `try_join`, so the other part
    // runs on; it is returned once both parts are.
    fn done(result: Result<(), Error>) -> Result<Option<Error>, Error> {
        match result {
            Ok(()) => Ok(None),
            Err(error) if error.drains() => Ok(Some(error)),
            Err(error) => Err(error),
        }
    }
    futures::future::try_join(a.map(done), b.map(done)).map(|joined| {
        let (a, b) = joined?;
        match a.or(b) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    })
}
