use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        iter(0..10u64) >> #[backpressure = adaptive(64, 8)] map(|x| x + 1) >> discard();
    };
}
