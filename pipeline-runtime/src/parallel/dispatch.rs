//! A parallel head's state apart from its failure route, [`Core`]: its
//! workers, what it read from the edge and has not handed out, the chunks
//! in flight and those held for order; and how it hands chunks to the
//! workers (to the least busy, or by key).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::IN_FLIGHT_PER_WORKER;
use super::limit::AimdLimit;
use super::worker::{Done, Job, Msg, Prototype, Rules, Spawn, Worker};
use crate::channel::EdgeReceiver;
use crate::error::Error;
use crate::fan::CloneInto;
use crate::metrics::StageStats;
use crate::options::Parallelism;
use crate::policy;
use crate::stage::{StageContext, StageError};

/// A key function, hashed.
pub(super) type KeyHash<In> = Box<dyn Fn(&In) -> u64 + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Order {
    Ordered,
    Unordered,
    ByKey,
}

/// A started worker, as the head sees it.
pub(super) struct Slot<In> {
    pub(super) tx: mpsc::UnboundedSender<Job<In>>,
    pub(super) handle: Option<JoinHandle<Result<(), Error>>>,
    /// Chunks handed to it and not yet back.
    pub(super) in_flight: usize,
}

/// The workers, by index; `None` for one not started (yet).
pub(super) struct Pool<In> {
    pub(super) slots: Vec<Option<Slot<In>>>,
}

impl<In> Drop for Pool<In> {
    /// A head dropped without `close` (its run failed or was aborted)
    /// stops its workers: what they hold is dropped, as everywhere else
    /// in an aborted pipeline.
    fn drop(&mut self) {
        for slot in self.slots.iter().flatten() {
            if let Some(handle) = &slot.handle {
                handle.abort();
            }
        }
    }
}

/// Everything but the failure route.
pub(super) struct Core<In, M, O, E> {
    pub(super) rx: EdgeReceiver<In>,
    /// Whether the edge may still deliver items.
    pub(super) open: bool,
    prototype: M,
    spawn: Spawn<In, M, O, E>,
    pub(super) order: Order,
    key: Option<KeyHash<In>>,
    pub(super) ctx: StageContext,
    pub(super) chunk: usize,
    /// Workers it may start.
    pub(super) slots: usize,
    per_worker: usize,
    /// For `parallel = io`.
    pub(super) limit: Option<AimdLimit>,
    pub(super) pool: Pool<In>,
    results_tx: mpsc::UnboundedSender<Msg<O, E>>,
    pub(super) results: mpsc::UnboundedReceiver<Msg<O, E>>,
    /// Where the edge is read into.
    pub(super) incoming: Vec<In>,
    /// Items read, not yet handed out (ordered, unordered).
    backlog: Vec<In>,
    /// Items read, not yet handed out, by worker (by key).
    pending: Vec<Vec<In>>,
    pending_items: usize,
    /// The worker `by_key` dispatch looks at first, for fairness.
    next_look: usize,
    /// Chunks that could not be handed to their worker, as if done.
    pub(super) returned: VecDeque<Done<O, E>>,
    /// The number of the next chunk handed out.
    next_id: u64,
    /// The number of the next chunk to leave (ordered).
    pub(super) next_emit: u64,
    /// The outputs of chunks `next_emit..next_id`, once done (ordered).
    pub(super) reorder: VecDeque<Option<Vec<O>>>,
    /// Chunks handed to workers and not yet back.
    pub(super) in_flight: usize,
    /// Items handed out so far: the position of the next one.
    taken: u64,
    /// Clones a chunk's inputs when failed items are handed on with them.
    pub(super) keep: Option<CloneInto<In>>,
    pub(super) kept: HashMap<u64, Vec<In>>,
    /// What each worker does about failed items: retries, the breaker.
    pub(super) rules: Rules<In>,
    pub(super) started: bool,
}

impl<In, M, O, E> Core<In, M, O, E> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        rx: EdgeReceiver<In>,
        prototype: M,
        spawn: Spawn<In, M, O, E>,
        parallelism: Parallelism,
        order: Order,
        key: Option<KeyHash<In>>,
        stats: Arc<StageStats>,
        chunk: usize,
    ) -> Self {
        let slots = match parallelism {
            Parallelism::Fixed(n) => n,
            Parallelism::Cpu => std::thread::available_parallelism().map_or(1, |n| n.get()),
            Parallelism::Io { max } => max,
        }
        .max(1);
        let (limit, per_worker) = match parallelism {
            Parallelism::Io { .. } => (Some(AimdLimit::new(slots)), 1),
            _ => (None, IN_FLIGHT_PER_WORKER),
        };
        let (results_tx, results) = mpsc::unbounded_channel();
        let pending = if order == Order::ByKey {
            (0..slots).map(|_| Vec::new()).collect()
        } else {
            Vec::new()
        };
        Core {
            rx,
            open: true,
            prototype,
            spawn,
            order,
            key,
            ctx: StageContext::new(stats),
            chunk: chunk.max(1),
            slots,
            per_worker,
            limit,
            pool: Pool {
                slots: (0..slots).map(|_| None).collect(),
            },
            results_tx,
            results,
            incoming: Vec::new(),
            backlog: Vec::new(),
            pending,
            pending_items: 0,
            next_look: 0,
            returned: VecDeque::new(),
            next_id: 0,
            next_emit: 0,
            reorder: VecDeque::new(),
            in_flight: 0,
            taken: 0,
            keep: None,
            kept: HashMap::new(),
            rules: Rules::NONE,
            started: false,
        }
    }

    /// How many chunks may be in flight.
    pub(super) fn cap(&self) -> usize {
        match &self.limit {
            Some(limit) => limit.limit(),
            None => self.per_worker * self.slots,
        }
    }

    /// How many more chunks may be handed out now (ordered, unordered).
    fn free(&self) -> usize {
        let cap = self.cap();
        let free = cap.saturating_sub(self.in_flight);
        if self.order == Order::Ordered {
            // Chunks done but held for order count too.
            let window = (self.next_id - self.next_emit) as usize;
            free.min(cap.saturating_sub(window))
        } else {
            free
        }
    }

    /// Whether to read more from the edge: only when what was read can be
    /// handed out, so items wait on the edge (pushing back) rather than
    /// here.
    pub(super) fn can_read(&self) -> bool {
        self.open
            && match self.order {
                Order::ByKey => self.pending_items < self.chunk * self.cap(),
                Order::Ordered | Order::Unordered => self.backlog.is_empty() && self.free() > 0,
            }
    }

    /// Whether everything read has left.
    pub(super) fn finished(&self) -> bool {
        !self.open
            && self.backlog.is_empty()
            && self.pending_items == 0
            && self.in_flight == 0
            && self.returned.is_empty()
            && self.reorder.is_empty()
    }

    /// Takes what was read into `incoming`.
    pub(super) fn accept(&mut self) {
        let incoming = std::mem::take(&mut self.incoming);
        match (&self.key, self.order) {
            (Some(key), Order::ByKey) => {
                let mut failed = 0;
                for item in incoming {
                    // A panic in the key function fails its item, as a
                    // panic in the stage would; the others go on.
                    let hash =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| key(&item)));
                    match hash {
                        Ok(hash) => {
                            self.pending_items += 1;
                            self.pending[bucket(hash, self.slots)].push(item);
                        }
                        Err(panic) => {
                            failed += 1;
                            let message = policy::panic_message(&*panic);
                            let stats = self.ctx.stats();
                            tracing::warn!(stage = stats.name(), panic = %message, "the by_key function panicked; its item failed");
                            stats.record_error(format_args!(
                                "the by_key function panicked: {message}"
                            ));
                        }
                    }
                }
                if failed > 0 {
                    self.ctx.stats().record_chunk(failed, 0, 0, failed);
                }
            }
            _ if self.backlog.is_empty() => self.backlog = incoming,
            _ => self.backlog.extend(incoming),
        }
    }

    /// Hands out what it can, reading the edge as long as items are
    /// available at once and can be handed out.
    pub(super) fn feed(&mut self)
    where
        M: Prototype,
    {
        loop {
            match self.order {
                Order::ByKey => self.dispatch_keyed(),
                Order::Ordered | Order::Unordered => self.dispatch_shared(),
            }
            if !self.can_read() {
                return;
            }
            match self.rx.try_recv_chunk() {
                Some(chunk) => {
                    self.incoming = chunk;
                    self.accept();
                }
                None => return,
            }
        }
    }

    /// Ordered, unordered: the backlog goes to the least busy workers, in
    /// chunks of up to `chunk` items, split evenly when there are fewer.
    fn dispatch_shared(&mut self)
    where
        M: Prototype,
    {
        while !self.backlog.is_empty() {
            let free = self.free();
            if free == 0 {
                return;
            }
            let n = self.backlog.len().div_ceil(free).min(self.chunk);
            let items = if n >= self.backlog.len() {
                std::mem::take(&mut self.backlog)
            } else {
                self.backlog.drain(..n).collect()
            };
            let worker = self.least_busy();
            self.send(worker, items);
        }
    }

    /// The started worker with the fewest chunks, if one has room; else
    /// a newly started one (for `io`, below the limit).
    fn least_busy(&mut self) -> usize
    where
        M: Prototype,
    {
        let mut best: Option<(usize, usize)> = None;
        for (index, slot) in self.pool.slots.iter().enumerate() {
            if let Some(slot) = slot
                && slot.in_flight < self.per_worker
                && best.is_none_or(|(busy, _)| slot.in_flight < busy)
            {
                best = Some((slot.in_flight, index));
            }
        }
        match best {
            Some((_, index)) => index,
            None => {
                let index = self
                    .pool
                    .slots
                    .iter()
                    .position(Option::is_none)
                    .expect("room below the limit means a worker with room or one to start");
                self.start_worker(index);
                index
            }
        }
    }

    /// By key: each worker's pending items go to it while it has room,
    /// looking at the workers in turn.
    fn dispatch_keyed(&mut self)
    where
        M: Prototype,
    {
        loop {
            let mut sent = false;
            for k in 0..self.slots {
                if self.in_flight >= self.cap() {
                    return;
                }
                let worker = (self.next_look + k) % self.slots;
                if self.pending[worker].is_empty() {
                    continue;
                }
                let busy = self.pool.slots[worker].as_ref().map(|s| s.in_flight);
                match busy {
                    Some(busy) if busy >= self.per_worker => continue,
                    Some(_) => {}
                    None => self.start_worker(worker),
                }
                let pending = &mut self.pending[worker];
                let n = pending.len().min(self.chunk);
                let items = if n == pending.len() {
                    std::mem::take(pending)
                } else {
                    pending.drain(..n).collect()
                };
                self.pending_items -= n;
                self.send(worker, items);
                sent = true;
            }
            self.next_look = (self.next_look + 1) % self.slots;
            if !sent {
                return;
            }
        }
    }

    /// Hands `items` to `worker` as the next chunk.
    fn send(&mut self, worker: usize, items: Vec<In>) {
        let id = self.next_id;
        self.next_id += 1;
        let base = self.taken;
        self.taken += items.len() as u64;
        if let Some(clone) = self.keep {
            let mut kept = Vec::with_capacity(items.len());
            clone(&items, &mut kept);
            self.kept.insert(id, kept);
        }
        if self.order == Order::Ordered {
            self.reorder.push_back(None);
        }
        let slot = self.pool.slots[worker]
            .as_mut()
            .expect("a chunk goes to a started worker");
        match slot.tx.send(Job { id, base, items }) {
            Ok(()) => {
                slot.in_flight += 1;
                self.in_flight += 1;
            }
            Err(mpsc::error::SendError(job)) => {
                // The worker stopped (its `init` failed or its task died),
                // and said so: the run fails with that. Until then the
                // chunk is accounted for as failed.
                let count = job.items.len();
                self.returned.push_back(Done {
                    worker,
                    id,
                    base,
                    items: count,
                    out: Vec::new(),
                    filtered: 0,
                    failed: (0..count)
                        .map(|i| (i, StageError::Panicked("its worker had stopped".into())))
                        .collect(),
                    elapsed: Duration::ZERO,
                    panicked: true,
                });
            }
        }
    }

    pub(super) fn start_worker(&mut self, index: usize)
    where
        M: Prototype,
    {
        let (tx, jobs) = mpsc::unbounded_channel();
        let worker = Worker::new(
            index,
            self.prototype.clone(),
            jobs,
            self.results_tx.clone(),
            self.ctx.clone(),
            self.rules.clone(),
        );
        let handle = (self.spawn)(worker);
        self.pool.slots[index] = Some(Slot {
            tx,
            handle: Some(handle),
            in_flight: 0,
        });
    }

    /// The error a worker's death fails the run with, with its panic's
    /// message.
    pub(super) async fn died(&mut self, worker: usize) -> Error {
        let handle = self
            .pool
            .slots
            .get_mut(worker)
            .and_then(Option::as_mut)
            .and_then(|slot| slot.handle.take());
        let message = match handle {
            Some(handle) => match handle.await {
                Err(join) if join.is_panic() => policy::panic_message(&*join.into_panic()),
                _ => "its task ended".to_owned(),
            },
            None => "its task ended".to_owned(),
        };
        Error::Panicked {
            message: format!(
                "a worker of the parallel stage `{}` died: {message}",
                self.ctx.name()
            ),
        }
    }
}

/// The worker for a key's hash, out of `slots`.
fn bucket(hash: u64, slots: usize) -> usize {
    // The high bits of hash × slots: uniform, without a division.
    ((u128::from(hash) * slots as u128) >> 64) as usize
}
