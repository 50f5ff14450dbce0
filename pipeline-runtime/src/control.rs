//! The stop signal a pipeline's tasks share: [`Control`].
//!
//! Its own module because every layer of the runtime reads it (sources,
//! chains, edges, parallel heads, accumulators), while the rest of
//! [`lifecycle`](crate::lifecycle) (running, spawning, joining) sits on
//! top of them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The stop signal shared by a pipeline's tasks.
#[derive(Debug, Clone, Default)]
pub struct Control {
    inner: Arc<ControlInner>,
}

#[derive(Debug, Default)]
struct ControlInner {
    stopping: AtomicBool,
    notify: Notify,
    /// Cancelled by [`Control::stop`]; see [`Control::cancel_on_stop`].
    on_stop: std::sync::Mutex<Vec<CancellationToken>>,
}

impl Control {
    /// A control that has not been stopped.
    pub fn new() -> Self {
        Control::default()
    }

    /// Asks the sources to stop; in-flight items still drain.
    pub fn stop(&self) {
        self.inner.stopping.store(true, Ordering::Release);
        self.inner.notify.notify_waiters();
        let tokens = std::mem::take(&mut *self.on_stop());
        for token in tokens {
            token.cancel();
        }
    }

    /// Cancels `token` when the pipeline is stopped (at once if it already
    /// is), from whatever task calls [`stop`](Control::stop).
    ///
    /// For what must learn of a stop while nothing polls it: a
    /// [`push`](crate::io::push) source cancels its handles' sends this
    /// way, while the chain it heads may be busy with an item.
    pub fn cancel_on_stop(&self, token: CancellationToken) {
        let mut tokens = self.on_stop();
        // Checked under the lock `stop` takes after setting the flag, so a
        // token is either cancelled here or taken by `stop`.
        if self.is_stopping() {
            drop(tokens);
            token.cancel();
        } else {
            tokens.push(token);
        }
    }

    fn on_stop(&self) -> std::sync::MutexGuard<'_, Vec<CancellationToken>> {
        // A vector of tokens stays consistent whatever panicked.
        self.inner
            .on_stop
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether [`stop`](Control::stop) has been called.
    pub fn is_stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::Acquire)
    }

    /// Completes once [`stop`](Control::stop) has been called.
    pub async fn stopping(&self) {
        let notified = self.inner.notify.notified();
        tokio::pin!(notified);
        // Registering before the check closes the race with a concurrent stop.
        notified.as_mut().enable();
        if self.is_stopping() {
            return;
        }
        notified.await;
    }
}
