//! A fused stage's chunk under its policy: the breaker, then the failed
//! items retried, ignored, dead-lettered or failing the pipeline.

use super::Fuse;
use crate::chain::Chain;
use crate::control::Control;
use crate::fan::FailureRoute;
use crate::metrics::StageStats;
use crate::policy::Settle;
use crate::policy::run::{Retrying, one_by_one, retry_failed, run_chunk};
use crate::stage::{Stage, StageError};

impl<A, B, M, O, E, P> Fuse<A, B, M, O, E, P>
where
    A: Chain<Out = M>,
    B: Stage<M, Out = O, Error = E>,
    E: std::fmt::Display,
    P: FailureRoute<M, E>,
{
    /// Runs the chunk in `self.input` through the stage under its policy,
    /// appending to `out`; returns how many of its items were filtered,
    /// failed and dead-lettered.
    pub(super) async fn process(&mut self, out: &mut Vec<O>, control: &Control) -> (u64, u64, u64) {
        let breaker = match &mut self.policy {
            None => None,
            Some(policy) => {
                if let Some(clone) = policy.keep {
                    policy.kept.clear();
                    clone(&self.input, &mut policy.kept);
                }
                policy
                    .rules
                    .breaker
                    .as_mut()
                    .map(|breaker| (breaker, &mut policy.one))
            }
        };
        let mut filtered = match breaker {
            None => {
                run_chunk(
                    &mut self.stage,
                    &mut self.input,
                    out,
                    &mut self.failures,
                    &self.ctx,
                    0,
                    &mut self.failed,
                )
                .await
                .filtered
            }
            // Boxed: a future that only stages behind a breaker need.
            Some((breaker, one)) => {
                Box::pin(one_by_one(
                    &mut self.stage,
                    &mut self.input,
                    out,
                    &mut self.failures,
                    breaker,
                    one,
                    &self.ctx,
                    &mut self.failed,
                ))
                .await
                .filtered
            }
        };
        let (mut failed, mut dead_lettered) = (0, 0);
        if !self.failed.is_empty() {
            if self.policy.is_none() {
                failed = self.failed.len() as u64;
                ignore(self.ctx.stats(), self.taken, self.failed.drain(..));
            } else {
                // Boxed: failures are the slow path, and its future
                // (retries, the errors port) is large.
                let settled = Box::pin(self.settle(out, control)).await;
                filtered += settled.filtered;
                failed = settled.failed;
                dead_lettered = settled.dead_lettered;
            }
        }
        (filtered, failed, dead_lettered)
    }
}

/// Logs failed items at `warn` and drops them: `ignore`. The last one's
/// error becomes the stage's last error.
fn ignore<E: std::fmt::Display>(
    stats: &StageStats,
    taken: u64,
    failed: impl Iterator<Item = (usize, StageError<E>)>,
) {
    let stage = stats.name();
    let mut last = None;
    for (index, error) in failed {
        let position = taken + index as u64;
        tracing::warn!(stage, position, %error, "item failed; dropped");
        last = Some(error);
    }
    if let Some(error) = last {
        stats.record_error(error);
    }
}

/// How the failed items of a chunk finally ended.
struct Settled {
    /// Items that succeeded on a retry but emitted nothing.
    filtered: u64,
    /// Items counted as failed (ignored, or failing the pipeline).
    failed: u64,
    /// Items handed to the `errors` port.
    dead_lettered: u64,
}

impl<A, B, M, O, E, P> Fuse<A, B, M, O, E, P>
where
    B: Stage<M, Out = O, Error = E>,
    E: std::fmt::Display,
    P: FailureRoute<M, E>,
{
    /// Retries the chunk's failed items (in `self.failed`) as the policy
    /// says, then settles those still failing. Only for a stage with a
    /// policy.
    async fn settle(&mut self, out: &mut Vec<O>, control: &Control) -> Settled {
        let policy = self
            .policy
            .as_deref_mut()
            .expect("only a stage with a policy settles");
        let mut filtered = 0;
        // The inputs of the failed items, in the order of `self.failed`,
        // when the policy keeps them.
        let mut inputs = Vec::new();
        if policy.keep.is_some() {
            let mut wanted = self.failed.iter().map(|(index, _)| *index).peekable();
            for (index, item) in policy.kept.drain(..).enumerate() {
                if wanted.next_if_eq(&index).is_some() {
                    inputs.push(item);
                }
            }
        }
        let settle = policy.rules.settle;
        if let Some((retry, backoff)) = &mut policy.rules.retry {
            let retrying = Retrying {
                retry,
                backoff,
                clone: policy.keep.expect("a retrying stage keeps its inputs"),
                keep_last: settle == Settle::DeadLetter,
            };
            filtered += retry_failed(
                &mut self.stage,
                retrying,
                policy.rules.breaker.as_mut(),
                &mut policy.one,
                &mut self.failures,
                &self.ctx,
                &mut self.failed,
                &mut inputs,
                out,
            )
            .await
            .filtered;
        }
        let stage = self.ctx.name();
        let count = self.failed.len() as u64;
        match settle {
            Settle::Ignore => {
                ignore(self.ctx.stats(), self.taken, self.failed.drain(..));
                Settled {
                    filtered,
                    failed: count,
                    dead_lettered: 0,
                }
            }
            Settle::DeadLetter => {
                debug_assert_eq!(inputs.len(), self.failed.len());
                if let Some((_, error)) = self.failed.last() {
                    self.ctx.stats().record_error(error);
                }
                let failed = self
                    .failed
                    .drain(..)
                    .zip(inputs)
                    .map(|((_, error), input)| crate::stage::Failed {
                        stage,
                        input,
                        error,
                    })
                    .collect();
                self.on_failure.hand_on(failed).await;
                Settled {
                    filtered,
                    failed: 0,
                    dead_lettered: count,
                }
            }
            Settle::Fail => {
                // The last error of the chunk is the stage's last error,
                // recorded once (it formats and locks).
                if let Some((_, last)) = self.failed.last() {
                    self.ctx.stats().record_error(last);
                }
                let taken = self.taken;
                let failed = self
                    .failed
                    .drain(..)
                    .map(|(index, error)| (taken + index as u64, error));
                crate::policy::fail_run(stage, &mut policy.fatal, control, failed);
                Settled {
                    filtered,
                    failed: count,
                    dead_lettered: 0,
                }
            }
        }
    }
}
