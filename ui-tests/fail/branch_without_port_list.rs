use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        split = iter(vec![1u64, 200]) >> branch(|x: &u64| *x > 100);
        split >> discard();
    };
}
