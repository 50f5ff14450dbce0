use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        iter(vec![1u64]) >> output();
        iter(vec![2u64]) >> output();
    };
}
