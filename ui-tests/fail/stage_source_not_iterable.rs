use pipeline::prelude::*;

#[stage(source)]
fn answer() -> u64 {
    42
}

fn main() {
    let _ = answer();
}
