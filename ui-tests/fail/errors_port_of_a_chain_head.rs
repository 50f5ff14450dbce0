use pipeline::prelude::*;

#[stage(source)]
fn numbers() -> Vec<u64> {
    vec![1, 2, 3]
}

fn main() {
    let _ = pipeline! {
        nums = numbers;
        nums >> discard();
        nums[errors] >> discard();
    };
}
