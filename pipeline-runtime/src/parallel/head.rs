//! The head of a parallel node's chain: hands chunks to workers (through
//! its [`Core`], in `dispatch.rs`), settles their failed items and emits
//! their outputs.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use foldhash::fast::FixedState;

use super::dispatch::{Core, KeyHash, Order, Slot};
use super::worker::{Done, Msg, Prototype, Rules, Spawn};
use crate::chain::{Chain, Outputs};
use crate::channel::{EdgeReceiver, take_now};
use crate::control::Control;
use crate::error::Error;
use crate::fan::{CloneInto, FailureRoute, LogFailures, clone_into};
use crate::metrics::{DEFAULT_PIPELINE_NAME, StageStats};
use crate::options::{Ordering, Parallelism, StageOptions};
use crate::policy::run::SharedBreaker;
use crate::policy::{self, CircuitBreaker, Settle};
use crate::stage::{Failed, Pull, Stage, StageError};

/// The hash `by_key` sends an item's key to a worker by: the same for
/// equal keys in every run.
pub fn key_hash<K: Hash>(key: K) -> u64 {
    FixedState::with_seed(0).hash_one(key)
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

/// How many items a parallel stage hands a worker at a time: 16 for
/// `io`, whose workers take their chunk's items one after another (a long
/// chunk would keep items from idle workers while one waits), else a
/// segment's chunk ([`DEFAULT_CHUNK`](crate::chain::DEFAULT_CHUNK)).
pub fn chunk_for(parallelism: Parallelism) -> usize {
    match parallelism {
        Parallelism::Io { .. } => 16,
        Parallelism::Fixed(_) | Parallelism::Cpu => crate::chain::DEFAULT_CHUNK,
    }
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

    /// The head of a parallel node set up by its options: as many workers
    /// as `parallel` says (one if unset), emitting in its `ordering`
    /// (input order if unset), with chunks sized for its parallelism
    /// ([`chunk_for`]). What `pipeline!` builds for `#[parallel = ..]`.
    pub fn from_options(
        rx: EdgeReceiver<In>,
        stages: M,
        spawn: Spawn<In, M, O, E>,
        options: &StageOptions,
        stats: Arc<StageStats>,
    ) -> Self {
        let parallelism = options.parallel.unwrap_or(Parallelism::Fixed(1));
        ParallelHead::new(
            rx,
            stages,
            spawn,
            parallelism,
            options.ordering.unwrap_or(Ordering::Ordered),
            stats,
            chunk_for(parallelism),
        )
    }

    /// [`from_options`](Self::from_options) with a `by_key` ordering: see
    /// [`by_key`](Self::by_key).
    pub fn by_key_from_options<K, H>(
        rx: EdgeReceiver<In>,
        stages: M,
        spawn: Spawn<In, M, O, E>,
        options: &StageOptions,
        key: K,
        stats: Arc<StageStats>,
    ) -> Self
    where
        K: Fn(&In) -> H + Send + Sync + 'static,
        H: Hash,
    {
        let parallelism = options.parallel.unwrap_or(Parallelism::Fixed(1));
        ParallelHead::by_key(
            rx,
            stages,
            spawn,
            parallelism,
            key,
            stats,
            chunk_for(parallelism),
        )
    }

    /// [`from_options`](Self::from_options) for a stage whose own defaults
    /// may order by key: with `hash` (the hash of an item's key) and an
    /// ordering that is `by_key` or unset, items of one key go to one
    /// worker ([`by_hash`](Self::by_hash)); otherwise the options' ordering
    /// holds and `hash` is not used.
    pub fn from_options_keyed_by(
        rx: EdgeReceiver<In>,
        stages: M,
        spawn: Spawn<In, M, O, E>,
        options: &StageOptions,
        hash: Option<fn(&In) -> u64>,
        stats: Arc<StageStats>,
    ) -> Self {
        match (options.ordering, hash) {
            (Some(Ordering::ByKey) | None, Some(hash)) => {
                let parallelism = options.parallel.unwrap_or(Parallelism::Fixed(1));
                ParallelHead::by_hash(
                    rx,
                    stages,
                    spawn,
                    parallelism,
                    hash,
                    stats,
                    chunk_for(parallelism),
                )
            }
            _ => ParallelHead::from_options(rx, stages, spawn, options, stats),
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
