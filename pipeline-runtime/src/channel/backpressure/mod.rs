//! Back-pressure strategies: how a producer is held back beyond the edge's
//! buffer (`backpressure = ..` on a node, [`Backpressure`] at run time).
//!
//! A strategy belongs to an edge: [`edge_with`](crate::channel::edge_with)
//! takes it, and both ends of the edge follow it. The consumer side runs in
//! the [`EdgeReceiver`](crate::channel::EdgeReceiver) (so an
//! [`Inlet`](crate::fan::Inlet), an accumulator or any other reader takes
//! part); the producer side runs in a [`Pacer`], which
//! [`Output::new`](crate::fan::Output::new) builds from the sender it wraps.
//! Every producer of a merge shares the edge's credits, requests or token
//! bucket.
//!
//! | strategy | producer | consumer | guarantee |
//! | --- | --- | --- | --- |
//! | [`Credit { initial, replenish }`](Backpressure::Credit) | takes one credit per item, waits when it has none | grants `replenish` credits each time it has taken `replenish` items | items sent and not yet received never exceed `initial` |
//! | [`Rate { per_sec, burst }`](Backpressure::Rate) | waits for tokens (on `tokio::time`) | - | at most `burst + per_sec * t` items in any span of `t` seconds; a full bucket lets `burst` through at once |
//! | [`Adaptive { min, max }`](Backpressure::Adaptive) | ships chunks of its current size, doubled when the edge is shallow, halved when deep | - | every chunk it ships holds at most `max` items; the size stays in `min..=max` |
//! | [`Pull { window }`](Backpressure::Pull) | takes one request per item, waits when none is left | each time it is asked for items, tops its outstanding requests back up to `window` | nothing is sent before the consumer asks; items sent and not yet received never exceed `window` |
//!
//! Values that would hang are clamped: `initial` and `window` to at least 1,
//! `replenish` to `1..=initial` (a consumer that waits for more items than it
//! granted would wait forever), `burst` to at least 1, `min` and `max` to
//! `1..=capacity` with `min <= max`. A rate that is not a positive number is
//! no limit. [`EdgeSender::backpressure`](crate::channel::EdgeSender::backpressure)
//! shows the values in force.
//!
//! Items an edge drops under its [`OnFull`](crate::options::OnFull) policy
//! give their credits or requests back, so a strategy never waits for items
//! that will not arrive.
//!
//! # Adaptive chunk size
//!
//! Before each chunk it ships, the producer looks at the edge's depth (items
//! queued, not yet received): at most a quarter of the capacity is
//! *shallow*, at least three quarters is *deep*. Shallow doubles the chunk
//! size (up to `max`): the consumer keeps up, so larger chunks cut per-chunk
//! costs without filling the edge. Deep halves it (down to `min`): the
//! consumer is behind, and a smaller chunk fits into the room it frees
//! sooner, so items flow steadily instead of in bursts. In between, the size
//! holds. It starts at `min`. The producer never holds items back to fill a
//! chunk (that would add latency), so chunks are also no larger than what
//! the producer has at hand.

mod rate;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;

use tokio::sync::{Semaphore, TryAcquireError};

use super::{Closed, EdgeSender};
use crate::options::Backpressure;

use rate::Bucket;

/// The largest batch of permits taken at once.
const MAX_BATCH: usize = u32::MAX as usize;

/// The state of an edge's strategy that both of its ends share.
pub(crate) struct Link {
    kind: Kind,
    /// The strategy, with its values clamped.
    spec: Backpressure,
}

enum Kind {
    /// Credits the producers hold; the consumer adds to them.
    Credit {
        credits: Semaphore,
        replenish: usize,
    },
    /// Items requested and not yet sent; the consumer adds to them.
    Pull {
        requests: Semaphore,
        window: usize,
    },
    /// `None`: no limit.
    Rate(Option<Bucket>),
    Adaptive {
        min: usize,
        max: usize,
    },
}

impl Link {
    /// The shared state of `spec` on an edge of `capacity` items.
    pub(crate) fn new(spec: Backpressure, capacity: usize) -> Link {
        let (kind, spec) = match spec {
            Backpressure::Credit { initial, replenish } => {
                let initial = initial.clamp(1, Semaphore::MAX_PERMITS);
                let replenish = replenish.clamp(1, initial);
                (
                    Kind::Credit {
                        credits: Semaphore::new(initial),
                        replenish,
                    },
                    Backpressure::Credit { initial, replenish },
                )
            }
            Backpressure::Pull { window } => {
                let window = window.clamp(1, Semaphore::MAX_PERMITS);
                (
                    Kind::Pull {
                        requests: Semaphore::new(0),
                        window,
                    },
                    Backpressure::Pull { window },
                )
            }
            Backpressure::Rate { per_sec, burst } => {
                let burst = burst.max(1);
                (
                    Kind::Rate(Bucket::new(per_sec, burst)),
                    Backpressure::Rate { per_sec, burst },
                )
            }
            Backpressure::Adaptive { min, max } => {
                let capacity = capacity.max(1);
                let min = min.clamp(1, capacity);
                let max = max.clamp(min, capacity);
                (
                    Kind::Adaptive { min, max },
                    Backpressure::Adaptive { min, max },
                )
            }
        };
        Link { kind, spec }
    }

    /// The strategy, with its values clamped.
    pub(crate) fn backpressure(&self) -> Backpressure {
        self.spec
    }

    /// `items` the edge dropped: their credits or requests come back.
    pub(crate) fn returned(&self, items: usize) {
        match &self.kind {
            Kind::Credit { credits: s, .. } | Kind::Pull { requests: s, .. } => grant(s, items),
            Kind::Rate(_) | Kind::Adaptive { .. } => {}
        }
    }

    /// The consumer is gone: wake producers waiting for credits or requests.
    pub(crate) fn close(&self) {
        match &self.kind {
            Kind::Credit { credits: s, .. } | Kind::Pull { requests: s, .. } => s.close(),
            Kind::Rate(_) | Kind::Adaptive { .. } => {}
        }
    }
}

/// Adds `n` permits, never beyond what a semaphore can hold (only reachable
/// if producers bypass the strategy and the consumer keeps granting).
fn grant(semaphore: &Semaphore, n: usize) {
    let room = Semaphore::MAX_PERMITS.saturating_sub(semaphore.available_permits());
    let n = n.min(room);
    if n > 0 {
        semaphore.add_permits(n);
    }
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Link").field(&self.spec).finish()
    }
}

/// The consumer side of a strategy, run by the edge's receiver.
#[derive(Debug)]
pub(crate) struct Demand {
    link: Arc<Link>,
    /// Credit: items taken since the last grant. Pull: items requested and
    /// not yet received.
    count: usize,
}

impl Demand {
    /// The consumer side of `link`, if its strategy has one.
    pub(crate) fn new(link: &Arc<Link>) -> Option<Demand> {
        match link.kind {
            Kind::Credit { .. } | Kind::Pull { .. } => Some(Demand {
                link: Arc::clone(link),
                count: 0,
            }),
            Kind::Rate(_) | Kind::Adaptive { .. } => None,
        }
    }

    /// The consumer asks for items: a pull tops its requests back up to the
    /// window.
    pub(crate) fn ask(&mut self) {
        if let Kind::Pull { requests, window } = &self.link.kind {
            let more = window.saturating_sub(self.count);
            if more > 0 {
                grant(requests, more);
                self.count = *window;
            }
        }
    }

    /// The consumer took `items` off the edge.
    pub(crate) fn received(&mut self, items: usize) {
        match &self.link.kind {
            Kind::Credit { credits, replenish } => {
                self.count += items;
                if self.count >= *replenish {
                    let grants = self.count / replenish * replenish;
                    self.count -= grants;
                    grant(credits, grants);
                }
            }
            Kind::Pull { .. } => self.count = self.count.saturating_sub(items),
            Kind::Rate(_) | Kind::Adaptive { .. } => {}
        }
    }
}

/// The producer side of an edge's back-pressure strategy: how many items a
/// producer may ship now, and when.
///
/// [`Output`](crate::fan::Output) uses one for an edge built with a strategy;
/// a producer of its own asks [`admit`](Pacer::admit) before each shipment
/// and ships at most what it returns. Producers that bypass it (a bare
/// [`EdgeSender`]) are not held back.
pub struct Pacer {
    link: Arc<Link>,
    /// Adaptive: the current chunk size.
    size: usize,
}

impl Pacer {
    /// The producer side of `tx`'s edge strategy, or `None` if the edge has
    /// none.
    pub fn of<T>(tx: &EdgeSender<T>) -> Option<Pacer> {
        let link = Arc::clone(tx.link()?);
        let size = match link.kind {
            Kind::Adaptive { min, .. } => min,
            _ => 0,
        };
        Some(Pacer { link, size })
    }

    /// The strategy, with its values clamped.
    pub fn backpressure(&self) -> Backpressure {
        self.link.spec
    }

    /// For an adaptive strategy, the size of the next chunk before it looks
    /// at the edge's depth again; `None` for the other strategies.
    pub fn chunk_size(&self) -> Option<usize> {
        match self.link.kind {
            Kind::Adaptive { .. } => Some(self.size),
            _ => None,
        }
    }

    /// Waits until some of `wanted` items may be shipped into `tx`'s edge and
    /// returns how many (`1..=wanted`; `0` only if `wanted` is 0). The
    /// caller must then ship exactly that many: the credits, requests or
    /// tokens are spent.
    ///
    /// Cancel-safe: if the future is dropped, nothing was spent.
    ///
    /// # Errors
    ///
    /// `Closed` if the edge's receiver is gone.
    pub async fn admit<T>(
        &mut self,
        wanted: usize,
        tx: &EdgeSender<T>,
    ) -> Result<usize, Closed<()>> {
        if wanted == 0 {
            return Ok(0);
        }
        if tx.is_closed() {
            return Err(Closed(()));
        }
        match &self.link.kind {
            Kind::Credit { credits: s, .. } | Kind::Pull { requests: s, .. } => {
                let first = s.acquire().await.map_err(|_| Closed(()))?;
                first.forget();
                Ok(1 + take_available(s, wanted - 1))
            }
            Kind::Rate(None) => Ok(wanted),
            Kind::Rate(Some(bucket)) => loop {
                match bucket.take(wanted, tokio::time::Instant::now()) {
                    Ok(n) => return Ok(n),
                    Err(at) => tokio::time::sleep_until(at).await,
                }
                if tx.is_closed() {
                    return Err(Closed(()));
                }
            },
            Kind::Adaptive { .. } => Ok(self.adapt(wanted, tx)),
        }
    }

    /// Non-waiting [`admit`](Self::admit): how many of `wanted` items may be
    /// shipped right now, possibly 0.
    ///
    /// # Errors
    ///
    /// `Closed` if the edge's receiver is gone.
    pub fn try_admit<T>(&mut self, wanted: usize, tx: &EdgeSender<T>) -> Result<usize, Closed<()>> {
        if tx.is_closed() {
            return Err(Closed(()));
        }
        if wanted == 0 {
            return Ok(0);
        }
        match &self.link.kind {
            Kind::Credit { credits: s, .. } | Kind::Pull { requests: s, .. } => {
                Ok(take_available(s, wanted))
            }
            Kind::Rate(None) => Ok(wanted),
            Kind::Rate(Some(bucket)) => Ok(bucket
                .take(wanted, tokio::time::Instant::now())
                .unwrap_or(0)),
            Kind::Adaptive { .. } => Ok(self.adapt(wanted, tx)),
        }
    }

    /// Moves the adaptive chunk size with the edge's depth, then returns the
    /// next chunk's size for `wanted` items.
    fn adapt<T>(&mut self, wanted: usize, tx: &EdgeSender<T>) -> usize {
        let Kind::Adaptive { min, max } = self.link.kind else {
            return wanted;
        };
        let depth = tx.queued_items();
        let capacity = tx.capacity();
        if depth.saturating_mul(4) <= capacity {
            self.size = self.size.saturating_mul(2).min(max);
        } else if depth.saturating_mul(4) >= capacity.saturating_mul(3) {
            self.size = (self.size / 2).max(min);
        }
        wanted.min(self.size)
    }
}

/// Takes up to `wanted` permits that are free right now; returns how many.
fn take_available(semaphore: &Semaphore, wanted: usize) -> usize {
    loop {
        let n = wanted.min(semaphore.available_permits()).min(MAX_BATCH);
        if n == 0 {
            return 0;
        }
        // `n <= MAX_BATCH`, so it fits.
        match semaphore.try_acquire_many(n as u32) {
            Ok(permit) => {
                permit.forget();
                return n;
            }
            // Another producer took some in between: look again.
            Err(TryAcquireError::NoPermits) => continue,
            Err(TryAcquireError::Closed) => return 0,
        }
    }
}

impl fmt::Debug for Pacer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pacer")
            .field("backpressure", &self.link.spec)
            .field("chunk_size", &self.chunk_size())
            .finish()
    }
}
