use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        iter(0..10u64) >> #[parallel = 2] #[ordered] #[unordered] map(|x| x + 1) >> discard();
    };
}
