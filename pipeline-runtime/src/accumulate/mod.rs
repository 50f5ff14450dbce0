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
//!
//! The design (the engine's map and deadline queue, flush reasons, spill
//! files, accounting) is in `README.md` beside this file.

mod accumulator;
mod batch_by;
pub mod codec;
mod engine;
mod head;
mod intake;
mod lifecycle;
mod policy;
mod slots;
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
