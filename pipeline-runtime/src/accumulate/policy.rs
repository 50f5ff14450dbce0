//! When an accumulation lets go of a state: [`Policy`].

use std::path::PathBuf;
use std::time::Duration;

/// The policy fields of `accumulate(..)` and `batch(..)`: when a key's state
/// is flushed, expires or goes to disk.
///
/// Every field works alone and with the others; `None` turns a limit off.
///
/// ```
/// use std::time::Duration;
/// use pipeline_runtime::accumulate::Policy;
///
/// // accumulate(key = .., max_items = 100, max_latency = 50ms)
/// let policy = Policy {
///     max_items: Some(100),
///     max_latency: Some(Duration::from_millis(50)),
///     ..Policy::default()
/// };
/// assert!(policy.partial_flush);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Flush a state when it holds this many items. `Some(0)` means 1.
    /// A state never holds more than `u32::MAX` items: one that gets there
    /// is flushed as if that were its `max_items` (`None` or larger).
    pub max_items: Option<usize>,
    /// Flush a state when its items weigh this many bytes (as the
    /// accumulation's `size` measures them). A state never goes over it:
    /// an item that would take it over flushes the state first, and an item
    /// larger than the limit on its own is flushed alone.
    pub max_bytes: Option<u64>,
    /// Flush a state at the latest this long after its first item.
    pub max_latency: Option<Duration>,
    /// A state not complete this long after its first item expires: with
    /// `partial_flush` its flushed output is emitted, otherwise it goes to
    /// the `errors` port as an [`Unfinished`](super::Unfinished).
    pub ttl: Option<Duration>,
    /// Whether a state that expires, or is still open when the input ends,
    /// is flushed into the output (`true`, the default) or sent to the
    /// `errors` port (`false`).
    pub partial_flush: bool,
    /// Whether, and how, cold state may be moved to disk.
    pub spill: Option<SpillPolicy>,
}

impl Default for Policy {
    /// No limits, `partial_flush = true`, no spilling.
    fn default() -> Self {
        Policy {
            max_items: None,
            max_bytes: None,
            max_latency: None,
            ttl: None,
            partial_flush: true,
            spill: None,
        }
    }
}

/// `spill(max_memory = .., dir = ..)`: move the state of the coldest keys
/// (least recently updated first) to disk while the states in memory weigh
/// more than `max_memory`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpillPolicy {
    /// The memory budget of the states, in bytes, as
    /// [`Accumulator::state_bytes`](super::Accumulator::state_bytes)
    /// estimates them.
    pub max_memory: u64,
    /// Where spill files go; `None` for a fresh directory under the system's
    /// temporary directory.
    pub dir: Option<PathBuf>,
}
