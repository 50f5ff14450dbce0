use pipeline::prelude::*;

#[stage]
fn double(x: u64) -> u64 {
    x * 2
}

fn main() {
    let _ = pipeline! {
        iter(vec![1u64, 2, 3]) >> double;
    };
}
