//! What a [`Pipeline`](crate::lifecycle::Pipeline) runs: one body, or
//! segments that share the caller's task when run and are each a task of
//! their own when spawned.

use std::future::Future;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::chain::join;
use crate::control::Control;
use crate::error::Error;
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
    /// When `abort` is cancelled (by
    /// [`PipelineHandle::abort`](crate::lifecycle::PipelineHandle::abort)),
    /// the future ends the work, and returns [`Error::Aborted`] only once
    /// every task it spawned has stopped, so that nothing changes a counter
    /// after the run has ended.
    fn spawn(
        self,
        control: Control,
        abort: CancellationToken,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'static;
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

/// Spawned, a closure's future is the whole task; an abort drops it.
impl<F, Fut> SpawnBody for F
where
    F: FnOnce(Control) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), Error>> + Send + 'static,
{
    fn spawn(
        self,
        control: Control,
        abort: CancellationToken,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'static {
        let work = self(control);
        async move {
            tokio::select! {
                biased;
                () = abort.cancelled() => Err(Error::Aborted),
                result = work => result,
            }
        }
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
    fn spawn(
        self,
        control: Control,
        abort: CancellationToken,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'static {
        let mut tasks = JoinSet::new();
        self.0.spawn_into(&control, &mut tasks);
        join_tasks(tasks, abort)
    }
}

/// Waits for every task, with [`join`]'s rules: an error that drains the
/// pipeline ([`Error::ItemFailed`]) lets the others finish, then the first
/// is returned; any other error, a task that panicked, or `abort` cancelled,
/// ends the others at once and is returned. Either way it returns only
/// once every task has stopped: a task still running could change
/// counters after the run was reported.
async fn join_tasks(
    mut tasks: JoinSet<Result<(), Error>>,
    abort: CancellationToken,
) -> Result<(), Error> {
    let mut draining = None;
    let result = loop {
        let done = tokio::select! {
            biased;
            () = abort.cancelled() => break Err(Error::Aborted),
            done = tasks.join_next() => done,
        };
        match done {
            None => break draining.map_or(Ok(()), Err),
            Some(Ok(Ok(()))) => {}
            Some(Ok(Err(error))) if error.drains() => {
                draining.get_or_insert(error);
            }
            Some(Ok(Err(error))) => break Err(error),
            Some(Err(join)) if join.is_panic() => {
                let message = panic_message(&*join.into_panic());
                break Err(Error::Panicked { message });
            }
            // Only the set cancels its tasks, when it is dropped.
            Some(Err(_)) => break Err(Error::Aborted),
        }
    };
    tasks.shutdown().await;
    result
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::lifecycle::Pipeline;

    /// Sets its flag when dropped: when the future holding it is gone.
    struct Dropped(Arc<AtomicBool>);

    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

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
                // Spinning, so as not to give the thread to the other
                // segment; with a deadline, so that a regression fails
                // rather than hangs.
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while !theirs.load(Ordering::SeqCst) {
                    if std::time::Instant::now() > deadline {
                        return Err(Error::Invalid);
                    }
                    std::thread::yield_now();
                }
                Ok(())
            }
        };
        let pipeline = Pipeline::segmented(
            Vec::new(),
            (segment(Arc::clone(&a), Arc::clone(&b)), (segment(b, a), ())),
        );
        let joined = pipeline.spawn().join().await;
        assert!(joined.is_ok(), "both segments ran at once: {joined:?}");
    }

    #[tokio::test]
    async fn a_failing_segment_task_ends_the_others_and_a_draining_one_waits_for_them() {
        let failed = |error: Error| move |_: Control| async move { Err::<(), _>(error) };
        let ended = Arc::new(AtomicBool::new(false));
        let flag = Dropped(Arc::clone(&ended));
        let forever = move |_: Control| async move {
            let _flag = flag;
            std::future::pending::<Result<(), Error>>().await
        };
        let pipeline = Pipeline::segmented(Vec::new(), (failed(Error::Invalid), (forever, ())));
        let result = tokio::time::timeout(Duration::from_secs(10), pipeline.spawn().join()).await;
        assert!(
            matches!(result.expect("the run ended"), Err(Error::Invalid)),
            "the failing segment's own error"
        );
        assert!(
            ended.load(Ordering::SeqCst),
            "the other segment's task had stopped when the run ended"
        );

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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn abort_returns_once_every_segment_task_has_stopped() {
        // The segment is busy in a long poll on a worker thread when the
        // abort comes: `join` must wait for that poll to end and the
        // segment's future to be dropped.
        let started = Arc::new(AtomicBool::new(false));
        let running = Arc::clone(&started);
        let ended = Arc::new(AtomicBool::new(false));
        let flag = Dropped(Arc::clone(&ended));
        let busy = move |_: Control| async move {
            let _flag = flag;
            running.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(300));
            std::future::pending::<Result<(), Error>>().await
        };
        let idle = |_: Control| std::future::pending::<Result<(), Error>>();
        let handle = Pipeline::segmented(Vec::new(), (busy, (idle, ()))).spawn();
        while !started.load(Ordering::SeqCst) {
            tokio::task::yield_now().await;
        }
        handle.abort();
        let result = tokio::time::timeout(Duration::from_secs(10), handle.join()).await;
        assert!(matches!(
            result.expect("the run ended"),
            Err(Error::Aborted)
        ));
        assert!(
            ended.load(Ordering::SeqCst),
            "no segment task outlived the run"
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
