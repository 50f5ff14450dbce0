//! The head of a parallel node's chain: hands chunks to workers and emits
//! their outputs.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::time::Duration;

use foldhash::fast::FixedState;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::IN_FLIGHT_PER_WORKER;
use super::limit::AimdLimit;
use super::worker::{Done, Job, Msg, Prototype, Rules, Spawn, Worker};
use crate::chain::{Chain, Outputs};
use crate::channel::{EdgeReceiver, take_now};
use crate::control::Control;
use crate::error::Error;
use crate::fan::{CloneInto, FailureRoute, LogFailures, clone_into};
use crate::metrics::{DEFAULT_PIPELINE_NAME, StageStats};
use crate::options::{Ordering, Parallelism, StageOptions};
use crate::policy::run::SharedBreaker;
use crate::policy::{self, CircuitBreaker, Settle};
use crate::stage::{Failed, Pull, Stage, StageContext, StageError};

/// The hash `by_key` sends an item's key to a worker by: the same for
/// equal keys in every run.
pub fn key_hash<K: Hash>(key: K) -> u64 {
    FixedState::with_seed(0).hash_one(key)
}

/// A key function, hashed.
type KeyHash<In> = Box<dyn Fn(&In) -> u64 + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Ordered,
    Unordered,
    ByKey,
}

/// A started worker, as the head sees it.
struct Slot<In> {
    tx: mpsc::UnboundedSender<Job<In>>,
    handle: Option<JoinHandle<Result<(), Error>>>,
    /// Chunks handed to it and not yet back.
    in_flight: usize,
}

/// The workers, by index; `None` for one not started (yet).
struct Pool<In> {
    slots: Vec<Option<Slot<In>>>,
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
struct Core<In, M, O, E> {
    rx: EdgeReceiver<In>,
    /// Whether the edge may still deliver items.
    open: bool,
    prototype: M,
    spawn: Spawn<In, M, O, E>,
    order: Order,
    key: Option<KeyHash<In>>,
    ctx: StageContext,
    chunk: usize,
    /// Workers it may start.
    slots: usize,
    per_worker: usize,
    /// For `parallel = io`.
    limit: Option<AimdLimit>,
    pool: Pool<In>,
    results_tx: mpsc::UnboundedSender<Msg<O, E>>,
    results: mpsc::UnboundedReceiver<Msg<O, E>>,
    /// Where the edge is read into.
    incoming: Vec<In>,
    /// Items read, not yet handed out (ordered, unordered).
    backlog: Vec<In>,
    /// Items read, not yet handed out, by worker (by key).
    pending: Vec<Vec<In>>,
    pending_items: usize,
    /// The worker `by_key` dispatch looks at first, for fairness.
    next_look: usize,
    /// Chunks that could not be handed to their worker, as if done.
    returned: VecDeque<Done<O, E>>,
    /// The number of the next chunk handed out.
    next_id: u64,
    /// The number of the next chunk to leave (ordered).
    next_emit: u64,
    /// The outputs of chunks `next_emit..next_id`, once done (ordered).
    reorder: VecDeque<Option<Vec<O>>>,
    /// Chunks handed to workers and not yet back.
    in_flight: usize,
    /// Items handed out so far: the position of the next one.
    taken: u64,
    /// Clones a chunk's inputs when failed items are handed on with them.
    keep: Option<CloneInto<In>>,
    kept: HashMap<u64, Vec<In>>,
    /// What each worker does about failed items: retries, the breaker.
    rules: Rules<In>,
    started: bool,
}

/// The failure route and what it is used for.
struct Policy<P> {
    route: P,
    settle: Settle,
    /// The first item failed under `on_error = fail`, returned by `close`.
    fatal: Option<Error>,
}

/// The head of the chain of a parallel node: reads the node's input edge
/// and runs the node's stage on several workers. See the
/// [module](crate::parallel) for the guarantees.
///
/// `In` is the stage's input, `M` where workers get their stage
/// ([`Clones`](super::Clones) or [`Factory`](super::Factory)), `O` and `E`
/// the stage's output and error, `P` its failure route.
///
/// ```
/// use std::sync::Arc;
///
/// use pipeline_runtime::chain::Chain;
/// use pipeline_runtime::channel::edge;
/// use pipeline_runtime::graph::NodeKind;
/// use pipeline_runtime::lifecycle::Control;
/// use pipeline_runtime::metrics::StageStats;
/// use pipeline_runtime::options::{Ordering, Parallelism};
/// use pipeline_runtime::parallel::{ParallelHead, clones, spawn};
/// use pipeline_runtime::stage::{Emit, Pull, StageContext, SyncStage};
///
/// #[derive(Clone)]
/// struct Square;
///
/// impl SyncStage<u64> for Square {
///     type Out = u64;
///     type Error = std::convert::Infallible;
///     fn process(&mut self, x: u64, out: &mut Emit<'_, u64>, _: &StageContext) -> Result<(), Self::Error> {
///         out.emit(x * x);
///         Ok(())
///     }
/// }
/// pipeline_runtime::sync_stage!(Square: u64);
///
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> Result<(), pipeline_runtime::Error> {
/// let (mut tx, rx) = edge::<u64>(1024, 64);
/// let stats = Arc::new(StageStats::new("square", NodeKind::Transform));
/// let mut head = ParallelHead::new(
///     rx,
///     clones(Square),
///     |worker| spawn(worker.run()),
///     Parallelism::Fixed(2),
///     Ordering::Ordered,
///     stats.clone(),
///     16,
/// );
/// tokio::spawn(async move {
///     tx.send_chunk((0..100).collect()).await.unwrap();
///     tx.close().await.unwrap();
/// });
/// let control = Control::new();
/// head.init().await?;
/// let mut out = Vec::new();
/// while head.pull(&mut out, &control).await? == Pull::More {}
/// head.close().await?;
/// assert_eq!(out, (0..100).map(|x| x * x).collect::<Vec<u64>>());
/// assert_eq!((stats.items_in(), stats.items_out()), (100, 100));
/// # Ok(())
/// # }
/// ```
pub struct ParallelHead<In, M, O, E, P = LogFailures> {
    core: Core<In, M, O, E>,
    policy: Policy<P>,
}

impl<In, M, O, E> ParallelHead<In, M, O, E>
where
    In: Send + 'static,
    M: Prototype,
    M::Stage: Stage<In, Out = O, Error = E> + Send + 'static,
    O: Send + 'static,
    E: Send + 'static,
{
    /// The head of a parallel node reading `rx`, whose workers run stages
    /// from `stages` ([`clones`](super::clones) of a stage, or a
    /// [`factory`](super::factory)), started with `spawn` (write
    /// `|worker| spawn(worker.run())`: see [`Spawn`] for why), as many and
    /// as adaptive as `parallelism` says, emitting in `ordering`, counting
    /// into the node's `stats`, and handing out chunks of up to `chunk`
    /// items.
    ///
    /// `Ordering::ByKey` needs a key function: use
    /// [`by_key`](Self::by_key). Given here, it keeps the input order
    /// instead, which also keeps the order within each key.
    ///
    /// Failed items are ignored (counted and logged) unless
    /// [`with_options`](Self::with_options) or
    /// [`with_route`](Self::with_route) say otherwise.
    pub fn new(
        rx: EdgeReceiver<In>,
        stages: M,
        spawn: Spawn<In, M, O, E>,
        parallelism: Parallelism,
        ordering: Ordering,
        stats: Arc<StageStats>,
        chunk: usize,
    ) -> Self {
        let order = match ordering {
            Ordering::Unordered => Order::Unordered,
            Ordering::Ordered | Ordering::ByKey => Order::Ordered,
        };
        ParallelHead {
            core: Core::new(rx, stages, spawn, parallelism, order, None, stats, chunk),
            policy: Policy {
                route: LogFailures,
                settle: Settle::Ignore,
                fatal: None,
            },
        }
    }

    /// Like [`new`](Self::new) with [`Ordering::ByKey`]: each item goes to
    /// the worker that `key(&item)` hashes to, so the items of one key are
    /// processed, and leave, in input order.
    pub fn by_key<K, H>(
        rx: EdgeReceiver<In>,
        stages: M,
        spawn: Spawn<In, M, O, E>,
        parallelism: Parallelism,
        key: K,
        stats: Arc<StageStats>,
        chunk: usize,
    ) -> Self
    where
        K: Fn(&In) -> H + Send + Sync + 'static,
        H: Hash,
    {
        ParallelHead::by_hash(
            rx,
            stages,
            spawn,
            parallelism,
            move |item| key_hash(key(item)),
            stats,
            chunk,
        )
    }

    /// Like [`by_key`](Self::by_key), given the key's hash rather than the
    /// key: for a key function that hashes with [`key_hash`] itself, so
    /// that nothing hashes twice.
    pub fn by_hash<K>(
        rx: EdgeReceiver<In>,
        stages: M,
        spawn: Spawn<In, M, O, E>,
        parallelism: Parallelism,
        hash: K,
        stats: Arc<StageStats>,
        chunk: usize,
    ) -> Self
    where
        K: Fn(&In) -> u64 + Send + Sync + 'static,
    {
        let key: KeyHash<In> = Box::new(hash);
        ParallelHead {
            core: Core::new(
                rx,
                stages,
                spawn,
                parallelism,
                Order::ByKey,
                Some(key),
                stats,
                chunk,
            ),
            policy: Policy {
                route: LogFailures,
                settle: Settle::Ignore,
                fatal: None,
            },
        }
    }
}

impl<In, M, O, E, P> ParallelHead<In, M, O, E, P> {
    /// Handles failed items as `options.on_error` and `options.breaker`
    /// say (its other options are not the head's business; `parallel` and
    /// the ordering were given to the constructor), keeping the failure
    /// route: `ignore` (the default), `fail`, or `dead_letter` if the
    /// route hands items on (else `dead_letter` means `ignore`).
    ///
    /// Each worker retries its own failed items, after its own backoff;
    /// one breaker, shared by the workers, gates every call.
    ///
    /// # Panics
    ///
    /// If `options` asks for `on_error = retry(..)`, which needs a copy
    /// of each input: use [`with_options_cloning`](Self::with_options_cloning)
    /// or [`with_route`](Self::with_route) with a route that clones.
    pub fn with_options(self, options: StageOptions) -> Self
    where
        P: FailureRoute<In, E>,
    {
        let ParallelHead { core, policy } = self;
        ParallelHead::build(core, policy.route, &options, None)
    }

    /// Like [`with_options`](Self::with_options), for an input type that
    /// can be cloned, so that `on_error = retry(..)` can call the stage
    /// again on a failed item. Inputs are cloned only when `options` asks
    /// for a retry.
    pub fn with_options_cloning(self, options: StageOptions) -> Self
    where
        In: Clone,
        P: FailureRoute<In, E>,
    {
        let ParallelHead { core, policy } = self;
        ParallelHead::build(core, policy.route, &options, Some(clone_into::<In>))
    }

    /// Like [`with_options`](Self::with_options), with `clone` to copy
    /// inputs if `options` retries (`None` if the input cannot be copied).
    ///
    /// # Panics
    ///
    /// If `options` asks for `on_error = retry(..)` and `clone` is `None`.
    pub fn with_options_cloned_by(self, options: StageOptions, clone: Option<CloneInto<In>>) -> Self
    where
        P: FailureRoute<In, E>,
    {
        let ParallelHead { core, policy } = self;
        ParallelHead::build(core, policy.route, &options, clone)
    }

    /// Sends dead-lettered items to `route` (the node's connected `errors`
    /// port, [`ErrorsPort`](crate::fan::ErrorsPort)), with failed items
    /// handled as `options` says (see [`with_options`](Self::with_options));
    /// an unset `on_error` means `dead_letter` if the route hands items
    /// on. Dead-lettering keeps a clone of each chunk's inputs until the
    /// chunk is back.
    ///
    /// # Panics
    ///
    /// If `options` asks for `on_error = retry(..)` and the route cannot
    /// [clone](FailureRoute::cloner) the input.
    pub fn with_route<Q>(self, options: StageOptions, route: Q) -> ParallelHead<In, M, O, E, Q>
    where
        Q: FailureRoute<In, E>,
    {
        ParallelHead::build(self.core, route, &options, None)
    }

    /// Like [`with_route`](Self::with_route), with `clone` to copy inputs
    /// if the route cannot.
    ///
    /// # Panics
    ///
    /// If `options` asks for `on_error = retry(..)` and neither `clone`
    /// nor the route can clone the input.
    pub fn with_route_cloned_by<Q>(
        self,
        options: StageOptions,
        route: Q,
        clone: Option<CloneInto<In>>,
    ) -> ParallelHead<In, M, O, E, Q>
    where
        Q: FailureRoute<In, E>,
    {
        ParallelHead::build(self.core, route, &options, clone)
    }

    fn build(
        mut core: Core<In, M, O, E>,
        route: P,
        options: &StageOptions,
        clone: Option<CloneInto<In>>,
    ) -> Self
    where
        P: FailureRoute<In, E>,
    {
        let stage = core.ctx.name();
        let on_error = crate::policy::on_error_or_default(options.on_error, P::HANDS_ON);
        // A dead letter needs the route's copy of each input to hand on.
        let keeps_inputs = P::HANDS_ON.then(|| route.cloner()).flatten();
        let (settle, retry) = crate::policy::settle_of(on_error, keeps_inputs.is_some());
        let clone = clone.or_else(|| route.cloner());
        let retry = retry.map(|retry| {
            let clone = clone.unwrap_or_else(|| {
                panic!(
                    "stage `{stage}`: `on_error = retry(..)` needs a clone of each input; build the parallel stage with `with_options_cloning` or `with_route`"
                )
            });
            (retry, clone)
        });
        let breaker = options.breaker.map(|config| {
            SharedBreaker::new(CircuitBreaker::new(config, Arc::clone(core.ctx.stats())))
        });
        core.rules = Rules { retry, breaker };
        core.keep = (settle == Settle::DeadLetter)
            .then_some(keeps_inputs)
            .flatten();
        ParallelHead {
            core,
            policy: Policy {
                route,
                settle,
                fatal: None,
            },
        }
    }

    /// How many chunks may be in flight now: `2 × workers`, or for
    /// `parallel = io` the adaptive limit.
    pub fn concurrency(&self) -> usize {
        self.core.cap()
    }

    /// How many workers have been started.
    pub fn workers(&self) -> usize {
        self.core.pool.slots.iter().flatten().count()
    }
}

impl<In, M, O, E> Core<In, M, O, E> {
    #[allow(clippy::too_many_arguments)]
    fn new(
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
    fn cap(&self) -> usize {
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
    fn can_read(&self) -> bool {
        self.open
            && match self.order {
                Order::ByKey => self.pending_items < self.chunk * self.cap(),
                Order::Ordered | Order::Unordered => self.backlog.is_empty() && self.free() > 0,
            }
    }

    /// Whether everything read has left.
    fn finished(&self) -> bool {
        !self.open
            && self.backlog.is_empty()
            && self.pending_items == 0
            && self.in_flight == 0
            && self.returned.is_empty()
            && self.reorder.is_empty()
    }

    /// Takes what was read into `incoming`.
    fn accept(&mut self) {
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
    fn feed(&mut self)
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

    fn start_worker(&mut self, index: usize)
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
    async fn died(&mut self, worker: usize) -> Error {
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

/// What a wait in `pull` ended with.
enum Event<O, E> {
    Msg(Option<Msg<O, E>>),
    Input(bool),
    Stuck,
}

impl<In, M, O, E, P> ParallelHead<In, M, O, E, P>
where
    M: Prototype,
    E: fmt::Display,
    P: FailureRoute<In, E>,
{
    /// Handles a worker's message; returns whether a chunk came back.
    async fn handle(
        &mut self,
        msg: Msg<O, E>,
        out: &mut Vec<O>,
        control: &Control,
    ) -> Result<bool, Error> {
        match msg {
            Msg::Ready => Ok(false),
            Msg::Done(done) => {
                let core = &mut self.core;
                let saturated = core.in_flight >= core.cap();
                if let Some(slot) = core.pool.slots[done.worker].as_mut() {
                    slot.in_flight -= 1;
                }
                core.in_flight -= 1;
                if let Some(limit) = &mut core.limit
                    && done.items > 0
                    && !done.panicked
                {
                    limit.observe(done.elapsed.div_f64(done.items as f64), saturated);
                }
                self.complete(done, out, control).await;
                Ok(true)
            }
            Msg::Fatal(error) => Err(error),
            Msg::Died { worker } => Err(self.core.died(worker).await),
        }
    }

    /// Counts a chunk that came back, settles its failed items and emits
    /// its outputs (in order, if ordered).
    async fn complete(&mut self, done: Done<O, E>, out: &mut Vec<O>, control: &Control) {
        let Done {
            id,
            base,
            items,
            out: mut outputs,
            filtered,
            failed,
            elapsed,
            ..
        } = done;
        let kept = self.core.kept.remove(&id);
        let (failed, dead_lettered) = if failed.is_empty() {
            (0, 0)
        } else {
            self.settle(base, failed, kept, control).await
        };
        let stats = self.core.ctx.stats();
        stats.record_chunk(items as u64, outputs.len() as u64, filtered, failed);
        stats.record_chunk_time(elapsed);
        stats.record_dead_lettered(dead_lettered);
        let core = &mut self.core;
        if core.order == Order::Ordered {
            let at = (id - core.next_emit) as usize;
            core.reorder[at] = Some(outputs);
            while let Some(Some(_)) = core.reorder.front() {
                if let Some(Some(mut ready)) = core.reorder.pop_front() {
                    out.append(&mut ready);
                }
                core.next_emit += 1;
            }
        } else {
            out.append(&mut outputs);
        }
    }

    /// Handles a chunk's failed items (by index in the chunk, in order) as
    /// the policy says; returns how many count as failed and how many as
    /// dead-lettered.
    async fn settle(
        &mut self,
        base: u64,
        failed: Vec<(usize, StageError<E>)>,
        kept: Option<Vec<In>>,
        control: &Control,
    ) -> (u64, u64) {
        let stage = self.core.ctx.name();
        let count = failed.len() as u64;
        if let Some((_, last)) = failed.last() {
            self.core.ctx.stats().record_error(last);
        }
        match (self.policy.settle, kept) {
            (Settle::DeadLetter, Some(kept)) => {
                let mut failed = failed.into_iter().peekable();
                let mut handed = Vec::with_capacity(failed.len());
                for (index, input) in kept.into_iter().enumerate() {
                    if let Some((_, error)) = failed.next_if(|(i, _)| *i == index) {
                        handed.push(Failed {
                            stage,
                            input,
                            error,
                        });
                    }
                }
                self.policy.route.hand_on(handed).await;
                (0, count)
            }
            (Settle::Fail, _) => {
                let failed = failed
                    .into_iter()
                    .map(|(index, error)| (base + index as u64, error));
                crate::policy::fail_run(stage, &mut self.policy.fatal, control, failed);
                (count, 0)
            }
            _ => {
                for (index, error) in failed {
                    let position = base + index as u64;
                    tracing::warn!(stage, position, %error, "item failed; dropped");
                }
                (count, 0)
            }
        }
    }
}

impl<In, M, O, E, P> Outputs for ParallelHead<In, M, O, E, P> {
    type Out = O;
}

impl<In, M, O, E, P> Chain for ParallelHead<In, M, O, E, P>
where
    In: Send + 'static,
    M: Prototype,
    M::Stage: Stage<In, Out = O, Error = E>,
    O: Send + 'static,
    E: fmt::Display + Send + 'static,
    P: FailureRoute<In, E>,
{
    type Out = O;

    /// Starts the workers (for `io`, the first) and waits until each has
    /// initialised its stage.
    async fn init(&mut self) -> Result<(), Error> {
        let core = &mut self.core;
        if core.started {
            return Ok(());
        }
        core.started = true;
        core.ctx.stats().observe(DEFAULT_PIPELINE_NAME);
        let initial = if core.limit.is_some() { 1 } else { core.slots };
        for index in 0..initial {
            core.start_worker(index);
        }
        let mut ready = 0;
        while ready < initial {
            match core.results.recv().await {
                Some(Msg::Ready) => ready += 1,
                Some(Msg::Fatal(error)) => return Err(error),
                Some(Msg::Died { worker }) => return Err(core.died(worker).await),
                Some(Msg::Done(_)) | None => {
                    unreachable!("no chunk was handed out, and the head holds a sender")
                }
            }
        }
        Ok(())
    }

    async fn pull(&mut self, out: &mut Vec<O>, control: &Control) -> Result<Pull, Error> {
        if !self.core.started {
            self.init().await?;
        }
        loop {
            self.core.feed();
            let mut back = false;
            while let Some(done) = self.core.returned.pop_front() {
                self.complete(done, out, control).await;
                back = true;
            }
            if !back {
                if self.core.finished() {
                    return Ok(Pull::Done);
                }
                let core = &mut self.core;
                let can_read = core.can_read();
                let waiting = core.in_flight > 0;
                let event = tokio::select! {
                    biased;
                    msg = core.results.recv(), if waiting => Event::Msg(msg),
                    more = core.rx.recv_into(&mut core.incoming, core.chunk), if can_read => {
                        Event::Input(more)
                    }
                    else => Event::Stuck,
                };
                match event {
                    Event::Msg(Some(msg)) => {
                        back = self.handle(msg, out, control).await?;
                        // Not tokio's `try_recv`, which may park this
                        // thread and so lose a wake-up of the pipeline's
                        // task: see `take_now`.
                        while let Some(msg) = take_now(&mut self.core.results) {
                            back |= self.handle(msg, out, control).await?;
                        }
                    }
                    Event::Input(true) => self.core.accept(),
                    Event::Input(false) => self.core.open = false,
                    Event::Msg(None) | Event::Stuck => {
                        return Err(Error::Panicked {
                            message: format!(
                                "the parallel stage `{}` lost track of its chunks",
                                self.core.ctx.name()
                            ),
                        });
                    }
                }
            }
            if back {
                // Keep the workers busy while the chain goes on with these
                // outputs.
                self.core.feed();
                return Ok(if self.core.finished() {
                    Pull::Done
                } else {
                    Pull::More
                });
            }
        }
    }

    /// Lets go of the workers, which close their stages, and joins them.
    /// Returns the first of: an item failed under `on_error = fail`
    /// ([`Error::ItemFailed`]), a stage's `close` error, a worker's panic.
    async fn close(&mut self) -> Result<(), Error> {
        let mut handles = Vec::new();
        for slot in &mut self.core.pool.slots {
            if let Some(Slot { tx, handle, .. }) = slot.take() {
                drop(tx);
                handles.extend(handle);
            }
        }
        let mut first = None;
        for handle in handles {
            let result = match handle.await {
                Ok(result) => result,
                Err(join) => Err(Error::Panicked {
                    message: if join.is_panic() {
                        policy::panic_message(&*join.into_panic())
                    } else {
                        "a worker was cancelled".to_owned()
                    },
                }),
            };
            if let Err(error) = result {
                first.get_or_insert(error);
            }
        }
        let stats = self.core.ctx.stats();
        if let Some(error) = &first {
            stats.record_error(error);
        }
        let result = match self.policy.fatal.take() {
            Some(fatal) => Err(fatal),
            None => first.map_or(Ok(()), Err),
        };
        stats.finish(result.is_ok());
        result
    }
}

impl<In, M, O, E, P> fmt::Debug for ParallelHead<In, M, O, E, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParallelHead")
            .field("stage", &self.core.ctx.name())
            .field("order", &self.core.order)
            .field("workers", &self.workers())
            .field("concurrency", &self.concurrency())
            .field("in_flight", &self.core.in_flight)
            .finish()
    }
}
