//! The queue of an edge that drops instead of waiting
//! ([`OnFull::DropNewest`], [`OnFull::DropOldest`]).
//!
//! A tokio channel cannot evict what it has queued, so these edges keep their
//! chunks in a mutex-protected deque that both the senders (to evict) and the
//! receiver (to take) reach. Senders never wait: the lock is held only to
//! move chunks in or out, never across an `.await`, and dropped items are
//! destroyed after it is released. The receiver waits on a [`Notify`]; there
//! is exactly one receiver, so `notify_one`'s stored permit closes the race
//! between its check of the queue and its wait.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use super::Shared;
use crate::metrics::EdgeStats;
use crate::options::OnFull;

/// The shared queue of a dropping edge.
pub(super) struct Ring<T> {
    state: Mutex<State<T>>,
    /// Wakes the receiver after a push, or when the last sender is gone.
    ready: Notify,
    /// Set when the receiver is dropped.
    closed: AtomicBool,
    /// `DropNewest` or `DropOldest`.
    policy: OnFull,
}

struct State<T> {
    pieces: VecDeque<Piece<T>>,
    /// Items in `pieces`.
    len: usize,
    /// Live senders; the receiver sees the end once it is zero and `pieces`
    /// is empty.
    senders: usize,
}

/// A queued chunk and, on a `DropOldest` edge, the counters of the producer
/// that sent it, which its evicted items are charged to.
struct Piece<T> {
    items: Vec<T>,
    origin: Option<Arc<EdgeStats>>,
}

/// What [`Ring::try_pop`] found.
pub(super) enum Popped<T> {
    /// The oldest chunk.
    Items(Vec<T>),
    /// Nothing queued right now.
    Empty,
    /// Nothing queued and every sender gone.
    Ended,
}

impl<T> Ring<T> {
    /// An empty queue with one sender.
    pub(super) fn new(policy: OnFull) -> Self {
        debug_assert!(policy != OnFull::Block);
        Ring {
            state: Mutex::new(State {
                pieces: VecDeque::new(),
                len: 0,
                senders: 1,
            }),
            ready: Notify::new(),
            closed: AtomicBool::new(false),
            policy,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing panics while the lock is held, but a poisoned queue is still
        // consistent: every update completes before the guard drops.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the receiver has been dropped.
    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Queues `items` (at most the edge's capacity, which the sender
    /// guarantees), dropping what the policy says to make them fit. Drops are
    /// counted on the edge and on `stats` (the pushing sender's counters), or,
    /// for evicted items, on the counters of the sender that queued them.
    ///
    /// Never waits. Returns the items untouched if the receiver is gone.
    pub(super) fn push(
        &self,
        shared: &Shared,
        mut items: Vec<T>,
        stats: Option<&Arc<EdgeStats>>,
    ) -> Result<(), Vec<T>> {
        if items.is_empty() {
            return Ok(());
        }
        // Destroyed once the lock is released.
        let mut dropped: Vec<Vec<T>> = Vec::new();
        {
            let mut state = self.lock();
            if self.is_closed() {
                return Err(items);
            }
            let capacity = shared.capacity;
            match self.policy {
                OnFull::DropNewest => {
                    let room = capacity.saturating_sub(state.len);
                    if items.len() > room {
                        let rejected = items.split_off(room);
                        shared.record_dropped(rejected.len(), stats.map(Arc::as_ref));
                        dropped.push(rejected);
                    }
                }
                _ => {
                    let mut excess = (state.len + items.len()).saturating_sub(capacity);
                    while excess > 0 {
                        let Some(front) = state.pieces.front_mut() else {
                            break;
                        };
                        let evicted = if front.items.len() <= excess {
                            let piece = state.pieces.pop_front().expect("front exists");
                            shared.record_dropped(piece.items.len(), piece.origin.as_deref());
                            piece.items
                        } else {
                            let rest = front.items.split_off(excess);
                            shared.record_dropped(excess, front.origin.as_deref());
                            std::mem::replace(&mut front.items, rest)
                        };
                        excess -= evicted.len();
                        state.len -= evicted.len();
                        shared.queued.fetch_sub(evicted.len(), Ordering::Relaxed);
                        dropped.push(evicted);
                    }
                    if excess > 0 {
                        // More new items than the whole capacity: the oldest
                        // of them go too.
                        let kept = items.split_off(excess);
                        shared.record_dropped(excess, stats.map(Arc::as_ref));
                        dropped.push(std::mem::replace(&mut items, kept));
                    }
                }
            }
            if !items.is_empty() {
                state.len += items.len();
                shared.queued.fetch_add(items.len(), Ordering::Relaxed);
                let origin = match self.policy {
                    OnFull::DropOldest => stats.cloned(),
                    _ => None,
                };
                state.pieces.push_back(Piece { items, origin });
            }
        }
        self.ready.notify_one();
        shared.queue_changed();
        drop(dropped);
        Ok(())
    }

    /// Takes the oldest chunk, if any, without waiting.
    pub(super) fn try_pop(&self, shared: &Shared) -> Popped<T> {
        let mut state = self.lock();
        match state.pieces.pop_front() {
            Some(piece) => {
                state.len -= piece.items.len();
                shared
                    .queued
                    .fetch_sub(piece.items.len(), Ordering::Relaxed);
                drop(state);
                shared.queue_changed();
                Popped::Items(piece.items)
            }
            None if state.senders == 0 => Popped::Ended,
            None => Popped::Empty,
        }
    }

    /// Waits for the oldest chunk; `None` once every sender is gone and the
    /// queue is drained. Cancel-safe: nothing is taken until it returns.
    pub(super) async fn pop(&self, shared: &Shared) -> Option<Vec<T>> {
        loop {
            match self.try_pop(shared) {
                Popped::Items(items) => return Some(items),
                Popped::Ended => return None,
                // A push after the check above stores a permit in `ready`, so
                // this wait cannot miss it.
                Popped::Empty => self.ready.notified().await,
            }
        }
    }

    /// Registers one more sender (a clone).
    pub(super) fn add_sender(&self) {
        self.lock().senders += 1;
    }

    /// Unregisters a sender; the last one wakes the receiver to see the end.
    pub(super) fn remove_sender(&self) {
        let last = {
            let mut state = self.lock();
            state.senders -= 1;
            state.senders == 0
        };
        if last {
            self.ready.notify_one();
        }
    }

    /// Marks the receiver as gone: later pushes fail.
    pub(super) fn close(&self) {
        let _state = self.lock();
        self.closed.store(true, Ordering::Release);
    }
}
