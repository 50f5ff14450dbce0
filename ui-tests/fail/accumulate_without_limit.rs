use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        iter(0..1000u64) >> accumulate(key = |x| x % 10) >> discard();
    };
}
