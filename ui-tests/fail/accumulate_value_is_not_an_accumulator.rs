use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        iter(0..10u64) >> accumulate(42u32, ttl = 1s) >> discard();
    };
}
