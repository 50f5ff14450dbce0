use pipeline::prelude::*;

fn main() {
    let dir = std::env::temp_dir();
    let _ = pipeline! {
        iter(0..1000u64) >> accumulate(key = |x: &u64| *x % 10, max_items = 100, spill = &dir) >> discard();
    };
}
