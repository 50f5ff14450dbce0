//! Where fused chains meet: the channel boundaries of a graph.
//!
//! A pipeline is cut into fused chains at every point where items do not
//! simply flow from one stage to the next: a fan-out (one output feeding
//! several chains), a merge (several chains feeding one node), a branch
//! (each item routed to one of several ports) and an `errors` port. At each
//! cut, the upstream chain ends in an [`Outlet`] that ships its chunks into
//! batched bounded [edges](crate::channel), and each downstream chain
//! starts at an [`Inlet`] that reads them.
//!
//! Every send waits for room (`block` back-pressure), so a slow branch slows
//! the source and nothing is lost.

mod diamond;
mod errors;
mod hop;
mod inlet;
mod outlet;
mod route;

pub use diamond::{Branches, DiamondOf, Feed, IsLast};
pub use errors::{CloneInto, ErrorsPort, FailureRoute, LogFailures, clone_into};
pub use hop::{Hopped, hop_edge};
pub use inlet::Inlet;
pub use outlet::{Broadcast, Outlet, Output};
pub use route::{Port, Route};
