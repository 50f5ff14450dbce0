use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        iter(0..10u64) >> #[ordered] map(|x| x + 1) >> discard();
    };
}
