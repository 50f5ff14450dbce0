//! A chain whose pull future is boxed, to end the nesting of a long
//! chain's future.

use std::future::Future;

use super::{Chain, Fed, Outputs};
use crate::control::Control;
use crate::error::Error;
use crate::stage::Pull;

/// A chain whose pull future is boxed: the expansion puts one every few
/// fused stages of a long chain.
///
/// A fused chain's pull future holds the pull future of the chain before
/// it, so its type nests once per stage, and rustc's layout query recurses
/// once per level: a chain of twenty stages awaited in an `async fn`
/// overflowed rustc's default depth limit. A box ends the nesting there
/// (the layout of a `Box` does not depend on what it holds), for one
/// allocation per chunk.
#[derive(Debug)]
pub struct Boxed<A>(pub A);

impl<A: Outputs> Outputs for Boxed<A> {
    type Out = A::Out;
}

impl<A: Fed> Fed for Boxed<A> {
    type In = A::In;

    #[inline]
    fn feed(&mut self) -> &mut Vec<A::In> {
        self.0.feed()
    }
}

impl<A: Chain> Chain for Boxed<A> {
    type Out = A::Out;

    fn init(&mut self) -> impl Future<Output = Result<(), Error>> {
        Box::pin(self.0.init())
    }

    fn pull(
        &mut self,
        out: &mut Vec<A::Out>,
        control: &Control,
    ) -> impl Future<Output = Result<Pull, Error>> {
        Box::pin(self.0.pull(out, control))
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Error>> {
        Box::pin(self.0.close())
    }
}
