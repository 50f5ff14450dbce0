use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        split = iter(vec![1u64]) >> branch(|x, [a, _]| a);
        split[a] >> discard();
    };
}
