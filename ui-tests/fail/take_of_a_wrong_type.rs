use pipeline::prelude::*;

fn main() {
    let limit: u64 = 10;
    let _ = pipeline! {
        iter(vec![1u64, 2, 3]) >> take(limit) >> discard();
    };
}
