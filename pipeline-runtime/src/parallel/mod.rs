//! Parallel execution of one stage: `parallel = N | cpu | io`, with
//! `ordered`, `unordered` or `by_key(f)`.
//!
//! A parallel node heads its own fused chain. Its [`ParallelHead`] reads
//! chunks from the node's input edge (as an [`Inlet`](crate::fan::Inlet)
//! does), hands them, a chunk at a time, to workers that each run their
//! own instance of the stage, and emits what they return into the rest of
//! its chain.
//!
//! # Workers
//!
//! | `parallel =` | workers | chunks in flight |
//! | --- | --- | --- |
//! | `N` ([`Parallelism::Fixed`]) | `N` (at least 1) | up to 2 per worker |
//! | `cpu` ([`Parallelism::Cpu`]) | [`std::thread::available_parallelism`] | up to 2 per worker |
//! | `io` ([`Parallelism::Io`]) | up to `max`, started as needed | 1 per worker, [adapted](AimdLimit) between 1 and `max` |
//!
//! Each worker is a tokio task, spawned with [`tokio::spawn`], so on a
//! multi-thread runtime the workers of a CPU-bound stage really use the
//! runtime's cores; on a current-thread runtime they run concurrently
//! (an I/O-bound stage still overlaps its waits). A second chunk queued
//! behind the one a worker is busy with keeps it from idling while the
//! head hands out the next one; more would only let workers run further
//! ahead of the output.
//!
//! Work goes out in chunks of up to `chunk` items, never per item, so a
//! chunk costs one channel send and one wake-up each way. When the input
//! holds fewer items than free workers could take, it is split evenly
//! between them, so a trickle of input is still spread.
//!
//! A worker handles the items of its chunk one after the other (unless the
//! stage's `process_chunk` does better), so for `io` the concurrency is in
//! chunks: a small `chunk` (1 to 16) gives the limit fine steps and many
//! latency samples; a large one suits a stage that batches its calls per
//! chunk.
//!
//! # Bounds, and why
//!
//! Workers run on other threads, so everything that crosses to them must
//! be `Send + 'static`: the input items, the stage (or its
//! [`Factory`]), its outputs and its errors. Each worker needs its own
//! instance of the stage: [`clones`] of a `Clone` stage, or a
//! [`factory`] function. The futures of the stage's `init`,
//! `process_chunk` and `close` must be `Send` too, as a worker awaits them
//! on whichever thread it runs; stable Rust cannot state that as a bound
//! on a generic stage, so the code building the head (the expansion of
//! `pipeline!`, where the stage's type is concrete) passes the
//! [`Spawn`] function `|worker| spawn(worker.run())`, and the compiler
//! checks it there.
//!
//! # Ordering
//!
//! * [`Ordering::Ordered`]: outputs leave in the order their inputs were
//!   read from the edge, whatever order the workers finish in. Chunks are
//!   numbered as they are handed out and reordered in a buffer; at most
//!   `2 × workers` chunks (for `io`, the current limit) are between being
//!   handed out and leaving, so a slow chunk holds up at most that many
//!   behind it, and the buffer stays bounded.
//! * [`Ordering::Unordered`]: each chunk's outputs leave as soon as it is
//!   done (in order within the chunk).
//! * [`Ordering::ByKey`] (with [`ParallelHead::by_key`]): each item goes
//!   to the worker its key hashes to, so all items of a key are handled
//!   by one worker, in input order, and their outputs leave in that order;
//!   different keys run in parallel and interleave freely. The hash is
//!   fixed (foldhash with a fixed seed), so a key maps to the same worker
//!   in every run. A hot key is limited to one worker; items wait for it,
//!   within a bound of `chunk` items per chunk in flight, before the edge
//!   is read further.
//!
//! [`ParallelHead::new`] with `Ordering::ByKey` has no key function and
//! keeps the input order instead, which implies per-key order.
//!
//! # Failures
//!
//! Each worker records its chunk's filtered and failed items as a fused
//! stage does; the head adds them to the node's [`StageStats`] (`items_in`,
//! `items_out`, `filtered`, `failed`, `dead_lettered`), so
//! `in = passed + filtered + failed + dead_lettered` holds for the node.
//! A failed item is handled by the node's `on_error` ([`with_options`],
//! [`with_route`]): `ignore` (the default: counted and logged at `warn`
//! with its position), `dead_letter` (sent to the `errors` port, as a
//! [`Failed`](crate::stage::Failed) with its input) or `fail` (the sources
//! stop, what is in flight drains, and `close` returns
//! [`Error::ItemFailed`](crate::Error::ItemFailed)). Positions count the
//! items in the order they were handed to workers.
//!
//! A panic in the stage fails items, never the run: the stage's default
//! `process_chunk` loops catch a panic per item; a panic escaping
//! `process_chunk` fails every item of its chunk, and the worker drops
//! that instance of the stage (without `close`, as it may be broken) and
//! goes on with a fresh one, `init`ed first. A worker task that dies
//! anyway (a panic in `init`, in `clone` or in a `drop`) fails the run with
//! [`Error::Panicked`](crate::Error::Panicked) instead of leaving the head
//! waiting for its chunks.
//!
//! # Lifecycle
//!
//! `init` starts the workers (for `io`, the first one; the others start
//! when the limit first lets them) and waits until each has `init`ed its
//! stage; an `init` error fails the run, as [`Fuse`](crate::chain::Fuse)'s
//! does. When the edge closes, the head hands out what it still holds,
//! waits for every chunk in flight, emits the rest of the ordered output,
//! and returns [`Pull::Done`](crate::stage::Pull::Done); `close` then lets
//! go of the workers, which `close` their stages, and joins them. Like an
//! inlet, the head ignores a graceful stop: it drains its input. Dropping
//! the head without `close` (the run failed or was aborted) aborts its
//! workers; their stages are not closed.
//!
//! [`with_options`]: ParallelHead::with_options
//! [`with_route`]: ParallelHead::with_route
//! [`Parallelism::Fixed`]: crate::options::Parallelism::Fixed
//! [`Parallelism::Cpu`]: crate::options::Parallelism::Cpu
//! [`Parallelism::Io`]: crate::options::Parallelism::Io
//! [`Ordering::Ordered`]: crate::options::Ordering::Ordered
//! [`Ordering::Unordered`]: crate::options::Ordering::Unordered
//! [`Ordering::ByKey`]: crate::options::Ordering::ByKey
//! [`StageStats`]: crate::metrics::StageStats

mod dispatch;
mod head;
mod limit;
mod worker;

#[cfg(test)]
mod tests;

pub use head::{ParallelHead, chunk_for, key_hash};
pub use limit::AimdLimit;
pub use worker::{Clones, Factory, Prototype, Spawn, Worker, clones, factory, spawn};

/// The handle of a spawned worker, as [`Spawn`] returns it.
pub use tokio::task::JoinHandle;

/// Chunks a worker of `parallel = N` or `cpu` may hold at once: the one it
/// processes and the next.
pub const IN_FLIGHT_PER_WORKER: usize = 2;
