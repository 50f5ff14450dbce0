use std::fmt;
use std::future::Future;
use std::sync::Arc;

use crate::channel::EdgeSender;
use crate::metrics::EdgeStats;

/// Where a chain's output goes when the chain does not end in a sink: into
/// one or more edges.
pub trait Outlet<T> {
    /// Ships a chunk, waiting for room on every edge. Drains `chunk`.
    fn send(&mut self, chunk: &mut Vec<T>) -> impl Future<Output = ()>;

    /// Ships anything still buffered and lets go of the edges, so the
    /// chains downstream see the end of their input.
    fn close(self) -> impl Future<Output = ()>;
}

/// One edge leaving a chain, with the counters it reports under.
pub struct Output<T> {
    tx: EdgeSender<T>,
    stats: Arc<EdgeStats>,
}

impl<T> Output<T> {
    /// An output into `tx`, counted in `stats`.
    pub fn new(tx: EdgeSender<T>, stats: Arc<EdgeStats>) -> Self {
        Output { tx, stats }
    }

    /// Ships `items`. If the edge's receiver is gone (its chain failed or
    /// the pipeline was aborted) the items are counted as dropped on the
    /// edge, never silently lost.
    pub async fn ship(&mut self, items: Vec<T>) {
        let count = items.len() as u64;
        if count == 0 {
            return;
        }
        match self.tx.send_chunk(items).await {
            Ok(()) => self.stats.record_sent(count),
            Err(closed) => {
                let lost = closed.into_inner().len() as u64;
                self.stats.record_sent(count.saturating_sub(lost));
                self.stats.record_dropped(lost);
            }
        }
    }

    /// Flushes and drops the sender.
    pub async fn finish(mut self) {
        if let Err(closed) = self.tx.flush().await {
            self.stats.record_dropped(closed.into_inner().len() as u64);
        }
    }
}

impl<T> fmt::Debug for Output<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Output")
            .field("from", &self.stats.from())
            .field("to", &self.stats.to())
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
        last.ship(std::mem::take(chunk)).await;
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
