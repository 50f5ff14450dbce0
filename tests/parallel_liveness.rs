//! Liveness of parallel stages in a row (issue 14, part 0): two parallel
//! stages one after the other, `run().await` on a two-worker runtime (so
//! the pipeline's task is polled by `block_on` while the workers report
//! back from other threads), must always finish. A hang is a round that
//! times out, reported with its number, not a stuck test.
//!
//! The hang was a lost wake-up (see `take_now` in the runtime's `channel`
//! module, and `pipeline-runtime/tests/edge_wakeups.rs`, which shows it
//! deterministically); it took a race, so these tests run many short
//! rounds. Small edges make chunks small and reports frequent, which is
//! where it showed most.

use std::time::Duration;

use pipeline::prelude::*;

/// Busy work, so that both stages' workers are busy at once.
#[inline(never)]
fn work(mut x: u64, salt: u64) -> u64 {
    x ^= salt;
    for _ in 0..48 {
        x ^= x >> 29;
        x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x ^= x << 17;
    }
    x
}

/// What the pipeline sums, computed without it.
fn expected(n: u64) -> u64 {
    (0..n).fold(0u64, |s, x| s.wrapping_add(work(work(x, 1), 2)))
}

/// Far more than a round takes, even on a loaded machine.
const ROUND_LIMIT: Duration = Duration::from_secs(20);

/// Runs `rounds` rounds of `n` items through `source >> [options]
/// map(work 1) >> [options] map(work 2) >> for_each(sum)`, each within
/// [`ROUND_LIMIT`], and checks the sum.
macro_rules! rounds {
    ($rounds:expr, $n:expr, [$(#[$option:meta])*]) => {{
        let n: u64 = $n;
        let want = expected(n);
        for round in 0..$rounds {
            let mut s = 0u64;
            let run = pipeline! {
                iter(0..n) >> $(#[$option])* map(|x| work(x, 1))
                    >> $(#[$option])* map(|x| work(x, 2))
                    >> for_each(|y| s = s.wrapping_add(y));
            }
            .run();
            match tokio::time::timeout(ROUND_LIMIT, run).await {
                Ok(report) => {
                    report.expect("the run succeeds");
                }
                Err(_) => panic!("round {round} hung: the pipeline did not finish"),
            }
            assert_eq!(s, want, "round {round}");
        }
    }};
}

/// The shape of the report: ordered, default edges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ordered_parallel_stages_in_a_row_always_finish() {
    rounds!(40, 20_000, [#[parallel = 2] #[ordered]]);
}

/// Edges of 8 items: chunks of a few items, a report per chunk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_unordered_parallel_stages_on_small_edges_always_finish() {
    rounds!(30, 10_000, [#[parallel = 2] #[unordered] #[buffer = 8]]);
}
