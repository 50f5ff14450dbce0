//! How a stage of a chain ends its `init` or its `close`: marked
//! finished, or failed with the error it ends with.

use crate::error::Error;
use crate::metrics::StageStats;

/// The error of a stage whose `init` failed, which is marked failed.
pub(super) fn failed_init(stats: &StageStats, source: crate::stage::BoxError) -> Error {
    stats.record_error(format_args!("init failed: {source}"));
    stats.finish(false);
    Error::Init {
        stage: stats.name(),
        source,
    }
}

/// Marks a stage that closed as finished, or failed if its `close` failed
/// or it failed an item under `on_error = fail` (`fatal`), and returns the
/// error it ends with (`fatal` first).
pub(super) fn closed_stage(
    stats: &StageStats,
    closed: Result<(), crate::stage::BoxError>,
    fatal: Option<Error>,
) -> Result<(), Error> {
    let closed = closed.map_err(|source| {
        stats.record_error(format_args!("close failed: {source}"));
        Error::Close {
            stage: stats.name(),
            source,
        }
    });
    stats.finish(closed.is_ok() && fatal.is_none());
    match fatal {
        Some(fatal) => Err(fatal),
        None => closed,
    }
}
