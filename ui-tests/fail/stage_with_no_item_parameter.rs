use pipeline::prelude::*;

#[stage]
fn answer() -> u64 {
    42
}

fn main() {
    let _ = answer();
}
