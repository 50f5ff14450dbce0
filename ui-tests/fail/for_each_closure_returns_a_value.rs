use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        iter(vec![1u64, 2]) >> for_each(|x| x + 1);
    };
}
