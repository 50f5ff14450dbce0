//! Execution options of a node: how many workers run it, in what order its
//! outputs leave, how its input edge buffers and pushes back, what happens
//! to an item it fails, and when it stops calling a failing downstream.
//!
//! `pipeline!` reads them from attributes, one option per attribute:
//!
//! ```text
//! #![buffer = 4096]                                  // pipeline default
//! a >> #[parallel = 8] #[on_error = retry(5, backoff = 20ms)] call_api >> b;   // node
//! #[stage(on_error = dead_letter)] fn parse(..)      // the stage's own default
//! ```
//!
//! A node's options are its own, else its stage's defaults, else the
//! pipeline's: [`StageOptions::or`] merges them in that order. Every value
//! here was checked at compile time (no zero where zero would hang, no
//! conflicting pair), so the runtime takes them as they are.
//!
//! The types live in `pipeline-options`, beside the declaration of each
//! option, so the macro and the runtime share them; this module re-exports
//! them.

pub use pipeline_options::*;
