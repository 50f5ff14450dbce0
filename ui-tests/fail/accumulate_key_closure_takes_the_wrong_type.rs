use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        iter(0..10u64) >> accumulate(key = |s: &String| s.len(), max_items = 5) >> discard();
    };
}
