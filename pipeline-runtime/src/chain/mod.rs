//! Fusion: a linear run of stages executed inside one task as direct calls.
//!
//! A fused chain is pulled chunk by chunk from its end. [`Head`] fills a
//! chunk from its [`Source`]; each [`Fuse`] pulls a chunk from the chain
//! before it and runs it through one stage. The nesting is static, so the
//! compiler sees through the whole chain and a run of synchronous stages
//! becomes one loop per stage over a chunk held in cache.
//!
//! Each stage reports as it goes (see [`crate::metrics`]): its counters
//! and `metrics` handles once per chunk, the chunk's time when a recorder
//! records, and its `tracing` span entered around the chunk. When it
//! closes, it [finishes]: finished, or failed if its `close` failed or it
//! failed an item under `on_error = fail`.
//!
//! [`Source`]: crate::stage::Source
//! [finishes]: crate::metrics::StageStats::finish

mod boxed;
mod drive;
mod finish;
mod fuse;
mod head;

#[cfg(test)]
mod tests;

pub use boxed::Boxed;
pub use drive::{drive, drive_into, join};
pub use fuse::Fuse;
pub use head::{DEFAULT_CHUNK, Head, LONG_CHUNK, LONG_CHUNK_BYTES};

use std::future::Future;

use crate::control::Control;
use crate::error::Error;
use crate::stage::Pull;

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

/// A chain whose head takes items put in by hand: a
/// [`Feed`](crate::fan::Feed), the head of a diamond's branch, reached
/// through the stages fused after it.
pub trait Fed {
    /// The items the head takes.
    type In;

    /// Where to put the next chunk.
    fn feed(&mut self) -> &mut Vec<Self::In>;
}
