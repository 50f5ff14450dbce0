use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        iter(0..10u64) >> #[buffer = 0] map(|x| x + 1) >> discard();
    };
}
