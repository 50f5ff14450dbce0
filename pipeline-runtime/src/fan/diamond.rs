//! A diamond: a fan-out whose branches all merge back into one node, fused
//! into one chain, so that nothing crosses a channel where nothing forces
//! one (no option, no accumulator, no parallel stage on the way).
//!
//! Each branch is a chain whose head is a [`Feed`]: for every chunk the
//! chain before the fan-out emits, the [`DiamondOf`] hands each branch its
//! copy (the last branch gets the chunk itself) and pulls the branch's
//! outputs into one chunk, branch after branch, for the merge node.

use std::fmt;

use crate::chain::{Chain, Fed, Outputs};
use crate::control::Control;
use crate::error::Error;
use crate::stage::Pull;

/// The head of a diamond's branch: it emits what the diamond put in it.
pub struct Feed<T> {
    items: Vec<T>,
}

impl<T> Feed<T> {
    /// An empty feed.
    pub fn new() -> Self {
        Feed { items: Vec::new() }
    }
}

impl<T> Default for Feed<T> {
    fn default() -> Self {
        Feed::new()
    }
}

impl<T> fmt::Debug for Feed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Feed")
            .field("items", &self.items.len())
            .finish()
    }
}

impl<T> Outputs for Feed<T> {
    type Out = T;
}

impl<T> Fed for Feed<T> {
    type In = T;

    #[inline]
    fn feed(&mut self) -> &mut Vec<T> {
        &mut self.items
    }
}

impl<T> Chain for Feed<T> {
    type Out = T;

    async fn init(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// Hands on what the diamond put in. A branch never ends by itself:
    /// the diamond ends when the chain before it does.
    async fn pull(&mut self, out: &mut Vec<T>, _: &Control) -> Result<Pull, Error> {
        if out.is_empty() {
            std::mem::swap(out, &mut self.items);
        } else {
            out.append(&mut self.items);
        }
        Ok(Pull::More)
    }

    async fn close(&mut self) -> Result<(), Error> {
        Ok(())
    }
}

/// The branches of a diamond, as a list: `(first, (second, (.., ())))`,
/// each a chain headed by a [`Feed`] of `T`, emitting `O`.
pub trait Branches<T, O> {
    /// Initialises every branch, in order.
    fn init(&mut self) -> impl Future<Output = Result<(), Error>>;

    /// Runs `chunk` through every branch (a clone of it through each but
    /// the last), appending their outputs to `out`.
    fn run(
        &mut self,
        chunk: &mut Vec<T>,
        out: &mut Vec<O>,
        control: &Control,
    ) -> impl Future<Output = Result<(), Error>>;

    /// Closes every branch, in order; returns the first error.
    fn close(&mut self) -> impl Future<Output = Result<(), Error>>;
}

impl<T, O> Branches<T, O> for () {
    async fn init(&mut self) -> Result<(), Error> {
        Ok(())
    }

    async fn run(&mut self, chunk: &mut Vec<T>, _: &mut Vec<O>, _: &Control) -> Result<(), Error> {
        chunk.clear();
        Ok(())
    }

    async fn close(&mut self) -> Result<(), Error> {
        Ok(())
    }
}

impl<T, O, B, R> Branches<T, O> for (B, R)
where
    T: Clone,
    B: Chain<Out = O> + Fed<In = T>,
    R: Branches<T, O> + IsLast,
{
    async fn init(&mut self) -> Result<(), Error> {
        self.0.init().await?;
        self.1.init().await
    }

    async fn run(
        &mut self,
        chunk: &mut Vec<T>,
        out: &mut Vec<O>,
        control: &Control,
    ) -> Result<(), Error> {
        let feed = self.0.feed();
        if R::LAST {
            std::mem::swap(feed, chunk);
        } else {
            feed.extend_from_slice(chunk);
        }
        self.0.pull(out, control).await?;
        self.1.run(chunk, out, control).await
    }

    async fn close(&mut self) -> Result<(), Error> {
        let first = self.0.close().await;
        let rest = self.1.close().await;
        first.and(rest)
    }
}

/// Whether a list of branches is empty: the branch before it is the last
/// and takes the chunk itself rather than a clone.
pub trait IsLast {
    /// `true` for the empty list.
    const LAST: bool;
}

impl IsLast for () {
    const LAST: bool = true;
}

impl<B, R> IsLast for (B, R) {
    const LAST: bool = false;
}

/// The chain `A` (ending in a fan-out), its `branches`, and the merge of
/// their outputs, as one chain emitting `O`: the branches' common output,
/// named by the caller so that the type stays well-formed even when the
/// branches disagree, which is reported where they meet.
pub struct DiamondOf<A: Outputs, B, O> {
    upstream: A,
    branches: B,
    chunk: Vec<A::Out>,
    _out: std::marker::PhantomData<fn() -> O>,
}

impl<A: Outputs, B, O> DiamondOf<A, B, O> {
    /// `upstream`'s chunks through each of `branches`, merged.
    pub fn new(upstream: A, branches: B) -> Self {
        DiamondOf {
            upstream,
            branches,
            chunk: Vec::new(),
            _out: std::marker::PhantomData,
        }
    }
}

impl<A: Outputs, B, O> Outputs for DiamondOf<A, B, O> {
    type Out = O;
}

impl<A: Outputs, B: fmt::Debug, O> fmt::Debug for DiamondOf<A, B, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiamondOf")
            .field("branches", &self.branches)
            .finish_non_exhaustive()
    }
}

impl<A, B, O> Chain for DiamondOf<A, B, O>
where
    A: Chain + Outputs<Out = <A as Chain>::Out>,
    B: Branches<<A as Chain>::Out, O>,
{
    type Out = O;

    async fn init(&mut self) -> Result<(), Error> {
        self.upstream.init().await?;
        self.branches.init().await
    }

    async fn pull(&mut self, out: &mut Vec<O>, control: &Control) -> Result<Pull, Error> {
        let pull = self.upstream.pull(&mut self.chunk, control).await?;
        if !self.chunk.is_empty() {
            self.branches.run(&mut self.chunk, out, control).await?;
        }
        Ok(pull)
    }

    /// Closes the chain before the fan-out, then each branch, so each sees
    /// its input end before it closes.
    async fn close(&mut self) -> Result<(), Error> {
        let upstream = self.upstream.close().await;
        let branches = self.branches.close().await;
        upstream.and(branches)
    }
}
