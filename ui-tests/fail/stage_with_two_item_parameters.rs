use pipeline::prelude::*;

#[stage]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

fn main() {
    let _ = add(1, 2);
    let _ = pipeline! {
        iter(0..3u64) >> add >> for_each(|n: u64| println!("{n}"));
    };
}
