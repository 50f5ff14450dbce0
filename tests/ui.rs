//! Compile-time behaviour of `pipeline!` and `#[stage]`, checked with
//! trybuild.
//!
//! - `ui-tests/pass/*.rs` must compile (and, having a `main`, run).
//! - `ui-tests/fail/*.rs` must fail to compile with exactly the errors in the
//!   `.stderr` file next to each: the message, under the user's tokens, and
//!   nothing else (no follow-on errors, no warnings from the expansion).
//!
//! To regenerate the `.stderr` files after changing a diagnostic:
//!
//! ```text
//! TRYBUILD=overwrite cargo test --test ui
//! ```
//!
//! Then read every changed `.stderr` before accepting it: check that each
//! error points at the offending tokens, reads well to someone new to the
//! crate, and is not followed by errors or warnings the user did not cause.
//! A snapshot is the specification of a diagnostic, not a record of whatever
//! the compiler printed last.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui-tests/pass/*.rs");
    t.compile_fail("ui-tests/fail/*.rs");
}
