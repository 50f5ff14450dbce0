//! What a [`Pipeline`](crate::lifecycle::Pipeline) runs: one body, or
//! segments that share the caller's task when run and are each a task of
//! their own when spawned.

use std::future::Future;

use tokio::task::JoinSet;

use crate::chain::join;
use crate::error::Error;
use crate::lifecycle::Control;
use crate::policy::panic_message;

/// The work of a pipeline, run in the current task by
/// [`Pipeline::run`](crate::lifecycle::Pipeline::run).
pub trait Body {
    /// Runs every part, concurrently, in the current task.
    fn run(self, control: Control) -> impl Future<Output = Result<(), Error>>;
}

/// The work of a pipeline that can be spawned:
/// [`Pipeline::spawn`](crate::lifecycle::Pipeline::spawn) needs it.
pub trait SpawnBody: Send + 'static {
    /// Starts the work; the future returned ends with it. Spawning tasks
    /// of its own is up to the body: [`Segments`] spawns one per segment.
    fn spawn(self, control: Control) -> impl Future<Output = Result<(), Error>> + Send + 'static;
}

/// A closure is a body of one part.
impl<F, Fut> Body for F
where
    F: FnOnce(Control) -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    fn run(self, control: Control) -> impl Future<Output = Result<(), Error>> {
        self(control)
    }
}

/// Spawned, a closure's future is the whole task.
impl<F, Fut> SpawnBody for F
where
    F: FnOnce(Control) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), Error>> + Send + 'static,
{
    fn spawn(self, control: Control) -> impl Future<Output = Result<(), Error>> + Send + 'static {
        self(control)
    }
}

/// A pipeline's segments: `(first, (second, (.., ())))`, each a closure
/// that starts one part. See
/// [`Pipeline::segmented`](crate::lifecycle::Pipeline::segmented).
#[derive(Debug)]
pub struct Segments<L>(pub L);

/// A list of segments, `(first, rest)` or `()`, joined in one task.
pub trait SegmentList {
    /// Runs every segment concurrently in the current task, as
    /// [`join`] does for two.
    fn join_all(self, control: Control) -> impl Future<Output = Result<(), Error>>;
}

impl SegmentList for () {
    fn join_all(self, _: Control) -> impl Future<Output = Result<(), Error>> {
        std::future::ready(Ok(()))
    }
}

impl<F, Fut, R> SegmentList for (F, R)
where
    F: FnOnce(Control) -> Fut,
    Fut: Future<Output = Result<(), Error>>,
    R: SegmentList,
{
    #[allow(clippy::manual_async_fn)] // an `async fn` would hold each part twice
    fn join_all(self, control: Control) -> impl Future<Output = Result<(), Error>> {
        let (first, rest) = self;
        join(first(control.clone()), rest.join_all(control))
    }
}

/// A list of segments that can each be spawned as a task.
pub trait SpawnList: Send + 'static {
    /// Spawns every segment into `tasks`.
    fn spawn_into(self, control: &Control, tasks: &mut JoinSet<Result<(), Error>>);
}

impl SpawnList for () {
    fn spawn_into(self, _: &Control, _: &mut JoinSet<Result<(), Error>>) {}
}

impl<F, Fut, R> SpawnList for (F, R)
where
    F: FnOnce(Control) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), Error>> + Send + 'static,
    R: SpawnList,
{
    fn spawn_into(self, control: &Control, tasks: &mut JoinSet<Result<(), Error>>) {
        let (first, rest) = self;
        tasks.spawn(first(control.clone()));
        rest.spawn_into(control, tasks);
    }
}

impl<L: SegmentList> Body for Segments<L> {
    fn run(self, control: Control) -> impl Future<Output = Result<(), Error>> {
        self.0.join_all(control)
    }
}

/// Each segment is a task: the runtime may run them on different cores.
impl<L: SpawnList> SpawnBody for Segments<L> {
    fn spawn(self, control: Control) -> impl Future<Output = Result<(), Error>> + Send + 'static {
        let mut tasks = JoinSet::new();
        self.0.spawn_into(&control, &mut tasks);
        join_tasks(tasks)
    }
}

/// Waits for every task, with [`join`]'s rules: an error that drains the
/// pipeline ([`Error::ItemFailed`]) lets the others finish, then the first
/// is returned; any other error, or a task that panicked, ends the others
/// at once (dropping the set aborts them) and is returned. A segment's
/// task is only ever cancelled with the set, so a cancelled task is an
/// abort.
async fn join_tasks(mut tasks: JoinSet<Result<(), Error>>) -> Result<(), Error> {
    let mut draining = None;
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(error)) if error.drains() => {
                draining.get_or_insert(error);
            }
            Ok(Err(error)) => return Err(error),
            Err(join) if join.is_panic() => {
                let message = panic_message(&*join.into_panic());
                return Err(Error::Panicked { message });
            }
            Err(_) => return Err(Error::Aborted),
        }
    }
    draining.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::lifecycle::Pipeline;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spawned_segments_run_at_the_same_time_on_different_threads() {
        // Each segment waits, on its thread, until the other has started:
        // in one task that would never end.
        let (a, b) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let segment = |mine: Arc<AtomicBool>, theirs: Arc<AtomicBool>| {
            move |_: Control| async move {
                mine.store(true, Ordering::SeqCst);
                while !theirs.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                }
                Ok(())
            }
        };
        let pipeline = Pipeline::segmented(
            Vec::new(),
            (segment(Arc::clone(&a), Arc::clone(&b)), (segment(b, a), ())),
        );
        let joined = tokio::time::timeout(Duration::from_secs(10), pipeline.spawn().join()).await;
        assert!(joined.expect("both segments ran at once").is_ok());
    }

    #[tokio::test]
    async fn a_failing_segment_task_ends_the_others_and_a_draining_one_waits_for_them() {
        let failed = |error: Error| move |_: Control| async move { Err::<(), _>(error) };
        let forever = |_: Control| std::future::pending::<Result<(), Error>>();
        let pipeline = Pipeline::segmented(Vec::new(), (failed(Error::Aborted), (forever, ())));
        let ended = tokio::time::timeout(Duration::from_secs(10), pipeline.spawn().join()).await;
        assert!(matches!(
            ended.expect("the other task was ended"),
            Err(Error::Aborted)
        ));

        let item_failed = Error::ItemFailed {
            stage: "check",
            position: 3,
            error: "bad".into(),
        };
        let finished = Arc::new(AtomicBool::new(false));
        let done = Arc::clone(&finished);
        let slow = move |_: Control| async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            done.store(true, Ordering::SeqCst);
            Ok(())
        };
        let pipeline = Pipeline::segmented(Vec::new(), (failed(item_failed), (slow, ())));
        let result = pipeline.spawn().join().await;
        assert!(
            matches!(result, Err(Error::ItemFailed { position: 3, .. })),
            "{result:?}"
        );
        assert!(
            finished.load(Ordering::SeqCst),
            "the other segment drained first"
        );
    }

    #[tokio::test]
    async fn a_panicking_segment_task_fails_the_run_with_its_message() {
        async fn panics(_: Control) -> Result<(), Error> {
            panic!("segment fell over")
        }
        let fine = |_: Control| async { Ok(()) };
        let pipeline = Pipeline::segmented(Vec::new(), (panics, (fine, ())));
        let result = pipeline.spawn().join().await;
        assert!(
            matches!(&result, Err(Error::Panicked { message }) if message == "segment fell over"),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn run_joins_the_segments_in_the_calling_task() {
        let mut seen = Vec::new();
        let seen_by_first = &mut seen;
        let borrowing = move |_: Control| async move {
            seen_by_first.push(1);
            Ok(())
        };
        let fine = |_: Control| async { Ok(()) };
        Pipeline::segmented(Vec::new(), (borrowing, (fine, ())))
            .run()
            .await
            .unwrap();
        assert_eq!(seen, [1]);
    }
}
