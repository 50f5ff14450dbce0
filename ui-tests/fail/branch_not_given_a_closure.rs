use pipeline::prelude::*;

fn main() {
    let pick = |x: &u64| *x > 100;
    let _ = pipeline! {
        split = iter(vec![1u64]) >> branch(pick);
        split >> discard();
    };
}
