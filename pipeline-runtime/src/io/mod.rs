//! Built-in sources and sinks.

mod collect;
mod discard;
mod for_each;
mod iter;
mod stream;

pub use collect::{Collect, Collected, collect};
pub use discard::{Discard, discard};
pub use for_each::{
    ForEach, ForEachAsync, SinkResult, for_each, for_each_async, for_each_unchecked,
};
pub use iter::{Iter, iter};
pub use stream::{StreamSource, stream};

/// The stream trait that [`stream`] reads from, re-exported so that
/// generated code and users name the same trait.
pub use futures::Stream;
