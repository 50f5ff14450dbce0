use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        numbers = iter(vec![1u64]);
        iter(vec![2u64]) >> discard();
    };
}
