use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        iter(0..10u64) >> batch(max_bytes = 1KiB) >> discard();
    };
}
