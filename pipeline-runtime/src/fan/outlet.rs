use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use crate::channel::EdgeSender;
use crate::channel::backpressure::Pacer;
use crate::metrics::EdgeStats;

/// Where a chain's output goes when the chain does not end in a sink: into
/// one or more edges.
pub trait Outlet<T> {
    /// Ships a chunk into every edge, as each edge's `on_full` policy and
    /// back-pressure strategy say (by default, waiting for room). Drains
    /// `chunk`.
    fn send(&mut self, chunk: &mut Vec<T>) -> impl Future<Output = ()>;

    /// Ships anything still buffered and lets go of the edges, so the
    /// chains downstream see the end of their input.
    fn close(self) -> impl Future<Output = ()>;
}

/// One edge leaving a chain, with the counters it reports under.
///
/// It counts, on its [`EdgeStats`], every item it ships as `sent`, and as
/// `dropped` every one of those that never reaches the consumer: refused or
/// evicted by the edge's [`OnFull`](crate::options::OnFull) policy (the edge
/// records those itself, through
/// [`EdgeSender::count_drops_in`]), or lost because the edge's receiver is
/// gone (its chain failed, or the pipeline was aborted). Once the edge is
/// drained, the consumer has received `sent - dropped` of them.
///
/// If the edge was built with a back-pressure strategy
/// ([`edge_with`](crate::channel::edge_with)), the output follows its
/// producer side (see [`crate::channel::backpressure`]): it ships only what its
/// [`Pacer`] admits, holding the rest until then. Without one, shipping is a
/// single [`EdgeSender::send_chunk`].
///
/// # Cancellation
///
/// A cancelled [`ship`](Output::ship) loses nothing: items not yet handed to
/// the edge stay in the output and go first on the next `ship` or on
/// [`finish`](Output::finish). Items still held when the output is dropped
/// without `finish` are counted as dropped.
pub struct Output<T> {
    tx: EdgeSender<T>,
    stats: Arc<EdgeStats>,
    /// The producer side of the edge's strategy, if it has one. Boxed, so
    /// that an output without one stays as small as before.
    paced: Option<Box<Paced<T>>>,
}

/// The state of an output that follows a strategy.
struct Paced<T> {
    pacer: Pacer,
    /// Items shipped to the output that the pacer has not admitted yet.
    pending: VecDeque<T>,
}

impl<T> Output<T> {
    /// An output into `tx`, counted in `stats`: the edge's drops of this
    /// output's items are counted there too, and the edge's back-pressure
    /// strategy, if any, applies.
    pub fn new(mut tx: EdgeSender<T>, stats: Arc<EdgeStats>) -> Self {
        tx.count_drops_in(Arc::clone(&stats));
        let paced = Pacer::of(&tx).map(|pacer| {
            Box::new(Paced {
                pacer,
                pending: VecDeque::new(),
            })
        });
        Output { tx, stats, paced }
    }

    /// Ships `items`, following the edge's back-pressure strategy if it has
    /// one. If the edge's receiver is gone (its chain failed or the pipeline
    /// was aborted) the items are counted as dropped on the edge, never
    /// silently lost.
    ///
    /// The time it takes, waits for room included, goes to the edge's
    /// `pipeline_send_wait_seconds` when a `metrics` recorder records.
    pub async fn ship(&mut self, items: Vec<T>) {
        if items.is_empty() {
            return;
        }
        let started = self.stats.start_send();
        if self.paced.is_some() {
            // Boxed: the paced path's waits would otherwise grow the future
            // of every output, paced or not.
            Box::pin(self.ship_paced(items)).await;
        } else {
            // `hand_over`, inlined: one future less in every chain's state.
            self.stats.record_sent(items.len() as u64);
            if let Err(closed) = self.tx.send_chunk(items).await {
                self.stats.record_dropped(closed.into_inner().len() as u64);
            }
        }
        self.stats.finish_send(started);
    }

    /// Ships anything held back, flushes and drops the sender.
    pub async fn finish(mut self) {
        let started = self.stats.start_send();
        if self.held() > 0 {
            Box::pin(self.drain_pending()).await;
        }
        if let Err(closed) = self.tx.flush().await {
            self.stats.record_dropped(closed.into_inner().len() as u64);
        }
        self.stats.finish_send(started);
    }

    /// The edge's counters.
    pub fn stats(&self) -> &Arc<EdgeStats> {
        &self.stats
    }

    /// The producer side of the edge's back-pressure strategy, if any.
    pub fn pacer(&self) -> Option<&Pacer> {
        self.paced.as_deref().map(|paced| &paced.pacer)
    }

    /// Items shipped to this output and held back by its strategy, not yet
    /// handed to the edge (only after a cancelled [`ship`](Self::ship)).
    pub fn held(&self) -> usize {
        self.paced.as_deref().map_or(0, |paced| paced.pending.len())
    }

    /// Hands `items` to the edge (waiting for room on a `Block` edge) and
    /// counts them.
    async fn hand_over(&mut self, items: Vec<T>) {
        let count = items.len() as u64;
        if count == 0 {
            return;
        }
        // Counted first, so that a cancelled send, whose items stay in the
        // sender and go later, is counted too.
        self.stats.record_sent(count);
        if let Err(closed) = self.tx.send_chunk(items).await {
            self.stats.record_dropped(closed.into_inner().len() as u64);
        }
    }

    async fn ship_paced(&mut self, mut items: Vec<T>) {
        let Some(paced) = self.paced.as_deref_mut() else {
            return self.hand_over(items).await;
        };
        if items.is_empty() {
            return;
        }
        if paced.pending.is_empty() {
            match paced.pacer.try_admit(items.len(), &self.tx) {
                Ok(n) if n == items.len() => return self.hand_over(items).await,
                Ok(n) => {
                    // Held before the first await, so a cancelled ship keeps
                    // them.
                    paced.pending.extend(items.split_off(n));
                    self.hand_over(items).await;
                }
                Err(_) => return self.lose(items.len()),
            }
        } else {
            paced.pending.extend(items);
        }
        self.drain_pending().await;
    }

    /// Ships the held items as the pacer admits them.
    async fn drain_pending(&mut self) {
        loop {
            let Some(paced) = self.paced.as_deref_mut() else {
                return;
            };
            let wanted = paced.pending.len();
            if wanted == 0 {
                return;
            }
            let admitted = match paced.pacer.admit(wanted, &self.tx).await {
                Ok(admitted) => admitted,
                Err(_) => {
                    paced.pending.clear();
                    return self.lose(wanted);
                }
            };
            // No await between the admission and handing the items over: the
            // admitted items are never left spent but unsent.
            let piece: Vec<T> = if admitted >= wanted {
                Vec::from(std::mem::take(&mut paced.pending))
            } else {
                paced.pending.drain(..admitted).collect()
            };
            self.hand_over(piece).await;
        }
    }

    /// Counts `items` that could not be handed to the edge because its
    /// receiver is gone.
    fn lose(&self, items: usize) {
        self.stats.record_sent(items as u64);
        self.stats.record_dropped(items as u64);
    }
}

impl<T> Drop for Output<T> {
    fn drop(&mut self) {
        let held = self.held();
        if held > 0 {
            self.lose(held);
        }
    }
}

impl<T> fmt::Debug for Output<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Output")
            .field("from", &self.stats.from())
            .field("to", &self.stats.to())
            .field("pacer", &self.pacer())
            .field("held", &self.held())
            .finish()
    }
}

/// Sends every item to every output: a fan-out, or, with one output, the
/// edge into a merge.
///
/// Every output but the last gets a clone of each chunk; the last gets the
/// chunk itself. The clone is captured as a function when the outlet is
/// made (where `T: Clone` is checked), so that a type that cannot be cloned
/// is reported once, at the edge that needs the clone.
pub struct Broadcast<T> {
    outputs: Vec<Output<T>>,
    clone: fn(&[T]) -> Vec<T>,
}

impl<T> Broadcast<T> {
    /// Sends each chunk to all of `outputs`, cloning it as needed.
    pub fn new(outputs: Vec<Output<T>>) -> Self
    where
        T: Clone,
    {
        Broadcast {
            outputs,
            clone: <[T]>::to_vec,
        }
    }

    /// Sends each chunk to `output` alone; nothing is cloned.
    pub fn single(output: Output<T>) -> Self {
        Broadcast {
            outputs: vec![output],
            // Never called: the one output takes the chunk itself.
            clone: |_| Vec::new(),
        }
    }
}

impl<T> Outlet<T> for Broadcast<T> {
    async fn send(&mut self, chunk: &mut Vec<T>) {
        if chunk.is_empty() {
            return;
        }
        let Some((last, others)) = self.outputs.split_last_mut() else {
            chunk.clear();
            return;
        };
        for output in others {
            output.ship((self.clone)(chunk)).await;
        }
        // The receiver keeps the chunk, so the next one needs a fresh
        // buffer: sized like this one, so it fills without regrowing.
        let capacity = chunk.len();
        last.ship(std::mem::replace(chunk, Vec::with_capacity(capacity)))
            .await;
    }

    async fn close(self) {
        for output in self.outputs {
            output.finish().await;
        }
    }
}

impl<T> fmt::Debug for Broadcast<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broadcast")
            .field("outputs", &self.outputs)
            .finish()
    }
}
