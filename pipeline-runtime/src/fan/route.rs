use std::fmt;
use std::sync::Arc;

use super::outlet::{Broadcast, Outlet};
use crate::metrics::StageStats;

/// One of a branch's output ports, as its closure sees it.
///
/// In `branch(|o: &Order, [big, small]| if o.amount > 100 { big } else { small })`
/// the closure receives one `Port` per declared name and returns the one the
/// item goes to. Ports cannot be made any other way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port(usize);

impl Port {
    /// The port's position in the branch's list, from 0.
    pub fn index(self) -> usize {
        self.0
    }

    /// The `N` ports of a branch, in declaration order.
    pub fn all<const N: usize>() -> [Port; N] {
        std::array::from_fn(Port)
    }
}

/// Sends each item to the one output its closure picks: a `branch`.
///
/// Each port's items go to a [`Broadcast`], so one port may feed several
/// chains.
pub struct Route<T, F, const N: usize> {
    pick: F,
    outputs: Vec<Broadcast<T>>,
    buffers: Vec<Vec<T>>,
    stats: Arc<StageStats>,
}

impl<T, F, const N: usize> Route<T, F, N> {
    /// A branch choosing among `outputs` (one per port, in order) with
    /// `pick`, counting the items it routes in `stats`.
    pub fn new<R>(pick: F, outputs: [Broadcast<T>; N], stats: Arc<StageStats>) -> Self
    where
        F: FnMut(&T, [Port; N]) -> R,
        R: Into<Port>,
    {
        Route {
            pick,
            outputs: outputs.into(),
            buffers: (0..N).map(|_| Vec::new()).collect(),
            stats,
        }
    }
}

impl<T, F, R, const N: usize> Outlet<T> for Route<T, F, N>
where
    F: FnMut(&T, [Port; N]) -> R,
    R: Into<Port>,
{
    async fn send(&mut self, chunk: &mut Vec<T>) {
        let ports = Port::all::<N>();
        let items = chunk.len() as u64;
        let mut failed = 0;
        let pick = &mut self.pick;
        for item in chunk.drain(..) {
            // A panic in the closure fails its item, as in any stage; it
            // must not unwind through the pipeline and lose the others.
            let picked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                pick(&item, ports).into().index()
            }));
            let port = match picked {
                Ok(port) => port,
                Err(panic) => {
                    failed += 1;
                    let message = crate::policy::panic_message(&*panic);
                    tracing::warn!(stage = self.stats.name(), panic = %message, "the branch closure panicked; its item failed");
                    self.stats
                        .record_error(format_args!("the branch closure panicked: {message}"));
                    continue;
                }
            };
            // A port always comes from `ports`, so it is in range; the last
            // buffer is a safe home should that ever change.
            let last = self.buffers.len().saturating_sub(1);
            if let Some(buffer) = self.buffers.get_mut(port.min(last)) {
                buffer.push(item);
            }
        }
        self.stats.record_chunk(items, items - failed, 0, failed);
        for (output, buffer) in self.outputs.iter_mut().zip(&mut self.buffers) {
            if !buffer.is_empty() {
                output.send(buffer).await;
            }
        }
    }

    async fn close(self) {
        for output in self.outputs {
            output.close().await;
        }
    }
}

impl<T, F, const N: usize> fmt::Debug for Route<T, F, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route")
            .field("outputs", &self.outputs)
            .finish()
    }
}
