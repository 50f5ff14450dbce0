use pipeline::prelude::*;

#[stage]
fn len(x: &str) -> usize {
    x.len()
}

fn main() {
    let _ = len("abc");
}
