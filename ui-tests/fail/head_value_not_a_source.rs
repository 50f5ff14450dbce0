use pipeline::prelude::*;

fn main() {
    let numbers = vec![1u64, 2, 3];
    let _ = pipeline! {
        numbers >> for_each(|n| println!("{n}"));
    };
}
