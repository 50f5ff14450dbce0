//! The [`Accumulator`] trait: how items of one key are gathered into an
//! output.

use std::hash::Hash;

use tokio::time::Instant;

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
/// [`flush`](Self::flush). (It calls the `open_at`, `update_sized` and
/// `flush_window` forms, which also tell the time or the item's size; their
/// defaults call the plain ones.)
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

    /// [`open`](Self::open), told the time: when the chunk of input that
    /// holds the key's first item was taken. The engine calls this one, and
    /// reads the clock once per chunk rather than once per state; the
    /// default ignores the time and calls `open`. Override it to keep the
    /// time, as [`BatchBy`](super::BatchBy) does for the window start of a
    /// [`Batch`](crate::batch::Batch).
    #[inline]
    fn open_at(&mut self, key: &Self::Key, now: Instant) -> Self::State {
        let _ = now;
        self.open(key)
    }

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

    /// Whether every state keeps count of its items and of the sizes
    /// [`update_sized`](Self::update_sized) gave it, which
    /// [`held`](Self::held) reads, as [`BatchBy`](super::BatchBy)'s does
    /// (its batch's length and byte total). The engine needs both counts
    /// (for `max_items` and `max_bytes`, and for the items and bytes it
    /// reports); when the states keep them, it keeps none of its own beside
    /// each state, which makes its per-key memory smaller and saves a write
    /// on every item. The default, `false`, has the engine count.
    const COUNTS_ITSELF: bool = false;

    /// How many items `state` holds, and the sizes
    /// [`update_sized`](Self::update_sized) gave them, summed: read only
    /// when [`COUNTS_ITSELF`](Self::COUNTS_ITSELF) is `true`, and then it
    /// must count every item given since [`open`](Self::open). The default
    /// returns zeros.
    #[inline]
    fn held(&self, state: &Self::State) -> (usize, u64) {
        let _ = state;
        (0, 0)
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

    /// [`flush`](Self::flush), told the time: when the engine let go of the
    /// state (the time it took the chunk of input, or woke up for a
    /// deadline, or saw the input end). The engine calls this one; the
    /// default ignores the time and calls `flush`. Override it to keep the
    /// time, as [`BatchBy`](super::BatchBy) does for the window end of a
    /// [`Batch`](crate::batch::Batch).
    #[inline]
    fn flush_at(&mut self, key: Self::Key, state: Self::State, now: Instant) -> Option<Self::Out> {
        let _ = now;
        self.flush(key, state)
    }

    /// [`flush_at`](Self::flush_at), told also when the state was opened
    /// (the time [`open_at`](Self::open_at) was given), so that a state
    /// need not keep that time itself: the engine keeps it beside its
    /// states, at no cost per item. The engine calls this one; the default
    /// ignores `opened` and calls `flush_at`. [`BatchBy`](super::BatchBy)
    /// overrides it for the window of a [`Batch`](crate::batch::Batch);
    /// an accumulator that wraps another should pass it on.
    #[inline]
    fn flush_window(
        &mut self,
        key: Self::Key,
        state: Self::State,
        opened: Instant,
        now: Instant,
    ) -> Option<Self::Out> {
        let _ = opened;
        self.flush_at(key, state, now)
    }

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
