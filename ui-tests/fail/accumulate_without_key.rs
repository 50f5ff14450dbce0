use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        iter(0..1000u64) >> accumulate(max_items = 100) >> discard();
    };
}
