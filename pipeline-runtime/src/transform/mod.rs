//! Built-in transforms: closures turned into stages.
//!
//! Each carries its input type as a parameter so that `pipeline!` can tell
//! the closure its argument type, as an iterator chain does.

mod compose;
mod counted;
mod filter;
mod filter_map;
mod flat_map;
mod inspect;
mod map;
mod then;

pub use compose::{Composed, Counts, First, MAX_STEPS, Misses, Next, Step, Steps};
pub use counted::{Counted, Keeps, Leading, Skip, Take, Trailing, skip, take};
pub use filter::{Filter, filter};
pub use filter_map::{FilterMap, filter_map};
pub use flat_map::{FlatMap, flat_map};
pub use inspect::{Inspect, inspect};
pub use map::{Map, map};
pub use then::{Then, then};
