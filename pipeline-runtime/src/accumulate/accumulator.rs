//! The [`Accumulator`] trait: how items of one key are gathered into an
//! output.

use std::hash::Hash;

use super::Policy;

/// What [`Accumulator::check`] says about a key's state after an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completeness<O> {
    /// Not complete yet: keep gathering (the limits of the policy still
    /// apply).
    Incomplete,
    /// Complete: emit this output and close the key. The next item of the
    /// key opens a new state.
    Complete(O),
    /// Expired: the state will never complete (a gap in a sequence, a
    /// cancelled session, ...). The key is closed as if its `ttl` had run
    /// out, with this as its partial output: emitted if the policy's
    /// `partial_flush` is `true`, otherwise sent to the `errors` port inside
    /// an [`Unfinished`](super::Unfinished).
    Expired(Option<O>),
}

/// Gathers the items of each key into a state and turns the state into an
/// output: the logic of an `accumulate(..)` node.
///
/// The [engine](super::AccumulateHead) keeps one state per key. For each
/// item it asks for the [`key`](Self::key), [`open`](Self::open)s a state
/// if the key has none, [`update`](Self::update)s it with the item and
/// [`check`](Self::check)s whether it is complete. The policy's limits,
/// latency and ttl, and the end of the input, close a state early with
/// [`flush`](Self::flush).
///
/// The built-in [`BatchBy`](super::BatchBy) (for `accumulate(key = ..)`
/// and `batch(..)`) gathers items into a [`Batch`](crate::batch::Batch) and
/// never completes on its own. An accumulator that knows when a group is
/// whole completes it itself:
///
/// ```
/// use pipeline_runtime::accumulate::{Accumulator, Completeness};
///
/// /// Reassembles each message from its three parts: `(id, part)`.
/// struct Reassemble;
///
/// impl Accumulator<(u32, u8)> for Reassemble {
///     type Key = u32;
///     type State = Vec<u8>;
///     type Out = (u32, Vec<u8>);
///
///     fn key(&mut self, item: &(u32, u8)) -> u32 {
///         item.0
///     }
///     fn open(&mut self, _: &u32) -> Vec<u8> {
///         Vec::new()
///     }
///     fn update(&mut self, _: &u32, parts: &mut Vec<u8>, item: (u32, u8)) {
///         parts.push(item.1);
///     }
///     fn check(&mut self, id: &u32, parts: &mut Vec<u8>) -> Completeness<Self::Out> {
///         if parts.len() == 3 {
///             Completeness::Complete((*id, std::mem::take(parts)))
///         } else {
///             Completeness::Incomplete
///         }
///     }
///     fn flush(&mut self, id: u32, parts: Vec<u8>) -> Option<Self::Out> {
///         Some((id, parts))
///     }
/// }
/// ```
///
/// # Spilling
///
/// With `spill`, the engine writes the `(Key, State)` of its coldest keys to
/// disk with [`Spill`](super::codec::Spill) when their states outgrow the
/// memory budget (as [`state_bytes`](Self::state_bytes) estimates it), and
/// reads them back when they are needed. Only an accumulation with `spill`
/// needs `Key: Spill` and `State: Spill`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an accumulator of `{T}`",
    label = "this does not accumulate `{T}`",
    note = "implement `pipeline::accumulate::Accumulator<{T}>` for it, or batch by key with `accumulate(key = |item| .., max_items = ..)`"
)]
pub trait Accumulator<T> {
    /// What items are grouped by.
    type Key: Hash + Eq + Clone;
    /// What is gathered for one key.
    type State;
    /// What a state becomes when it is complete or flushed.
    type Out;

    /// The key of `item`.
    fn key(&mut self, item: &T) -> Self::Key;

    /// A new, empty state for `key`, opened for the key's first item (and
    /// for its first item after each flush).
    fn open(&mut self, key: &Self::Key) -> Self::State;

    /// Adds `item` to the state of its `key`.
    fn update(&mut self, key: &Self::Key, state: &mut Self::State, item: T);

    /// [`update`](Self::update), with the item's size as the accumulation's
    /// `size` measures it (what `max_bytes` counts). The engine calls this
    /// one; the default ignores the size and calls `update`. Override it to
    /// keep the size, as [`BatchBy`](super::BatchBy) does for
    /// [`Batch::total_bytes`](crate::batch::Batch::total_bytes).
    #[inline]
    fn update_sized(&mut self, key: &Self::Key, state: &mut Self::State, item: T, size: u64) {
        let _ = size;
        self.update(key, state, item);
    }

    /// Whether the state of `key` is complete, checked after each update.
    /// The default never completes: only the policy's limits, latency,
    /// ttl and the end of the input close a state.
    #[inline]
    fn check(&mut self, key: &Self::Key, state: &mut Self::State) -> Completeness<Self::Out> {
        let _ = (key, state);
        Completeness::Incomplete
    }

    /// The output of a state closed before it completed: a limit was
    /// reached, `max_latency` or `ttl` ran out, or the input ended. `None`
    /// emits nothing (the state's items are counted as filtered).
    fn flush(&mut self, key: Self::Key, state: Self::State) -> Option<Self::Out>;

    /// An estimate of the memory `state` takes, in bytes: what `spill`'s
    /// `max_memory` budget counts. The default is the size of the state
    /// itself, without anything it points to; override it for a state that
    /// owns heap memory.
    fn state_bytes(&self, state: &Self::State) -> usize {
        let _ = state;
        size_of::<Self::State>()
    }

    /// Called once, when the accumulation is built, with its policy: a
    /// chance to size buffers (for example a batch's capacity from
    /// `max_items`). The default does nothing.
    fn configure(&mut self, policy: &Policy) {
        let _ = policy;
    }
}
