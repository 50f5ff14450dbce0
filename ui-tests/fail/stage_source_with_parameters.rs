use pipeline::prelude::*;

#[stage(source)]
fn numbers(n: u64) -> Vec<u64> {
    (0..n).collect()
}

fn main() {
    let _ = numbers(3);
}
