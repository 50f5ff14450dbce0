//! Keyed accumulation: `accumulate(..)` and `batch(..)`, with optional
//! spilling of cold state to disk.
//!
//! * [`Accumulator`] is how items of one key are gathered into a state and
//!   the state into an output; [`BatchBy`] (from [`batch_by`] and [`batch`])
//!   is the built-in one, gathering [`Batch`](crate::batch::Batch)es.
//! * [`Policy`] says when a state is let go of: `max_items`, `max_bytes`,
//!   `max_latency`, `ttl`, `partial_flush` and `spill`.
//! * [`AccumulateHead`] runs them: the head of a chain fed by an edge,
//!   waking at the next deadline even when no input arrives, or fused
//!   after the chain before it ([`Pulled`]) when it has no deadlines.
//! * [`Intake`] is where its items come from: an edge or a [`Pulled`]
//!   chain.
//! * [`Unfinished`] is what the accumulation's `errors` port carries.
//! * [`codec`] and [`spill`] write spilled state to disk.

mod accumulator;
mod batch_by;
pub mod codec;
mod head;
mod intake;
mod policy;
pub mod spill;
mod spiller;
mod unfinished;

#[cfg(test)]
mod tests;

pub use accumulator::{Accumulator, Completeness};
pub use batch_by::{BatchBy, BatchState, ByteTotal, FixedSize, batch, batch_by};
pub use codec::{Spill, SpillError};
pub use head::{AccumulateHead, default_size};
pub use intake::{Intake, Pulled};
pub use policy::{Policy, SpillPolicy};
pub use spiller::{DiskSpill, NoSpill, Spiller};
pub use unfinished::{Unfinished, UnfinishedReason};

pub use crate::metrics::FlushReason;

/// Items per chunk read by the head of a chain that ends in a fused
/// accumulation (one without deadlines, pulling the chain before it):
/// eight times [`DEFAULT_CHUNK`](crate::chain::DEFAULT_CHUNK).
///
/// An accumulation's work per item is a random access into its per-key
/// state, while its input is read in order. Reading that input in longer
/// runs between the random accesses was measured to matter: with chunks
/// of 512 items, the `benches/accumulate` pipeline was about 0.1x further
/// from its hand-written baseline. A source that has fewer items ready
/// returns what it has, so a larger chunk holds nothing back.
pub const ACCUMULATE_CHUNK: usize = 4096;
