use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        evens = iter(vec![1u64, 2, 3]) >> filter(|x| *x % 2 == 0);
        iter(vec![4u64]) >> discard();
    };
}
