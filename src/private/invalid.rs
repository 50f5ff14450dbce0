//! The stub pipelines the expansion ends with after an error, so the code
//! around the `pipeline!` still type-checks.

use pipeline_runtime::error::Error;
use pipeline_runtime::lifecycle::{Control, Pipeline};
use pipeline_runtime::open::OpenPipeline;

/// The body of [`invalid`].
pub type InvalidBody = fn(Control) -> std::future::Ready<Result<(), Error>>;

/// A pipeline that cannot run, standing in for one that did not compile,
/// so the code around the `pipeline!` still type-checks.
pub fn invalid() -> Pipeline<InvalidBody> {
    Pipeline::new(Vec::new(), |_| std::future::ready(Err(Error::Invalid)))
}

/// An open pipeline that cannot run, standing in for one that did not
/// compile. Its item type is left to inference, so the code reading the
/// stream still type-checks.
pub fn invalid_open<T>() -> OpenPipeline<InvalidBody, T> {
    OpenPipeline::new(invalid(), pipeline_runtime::io::stream_sink(1).1)
}
