use pipeline::prelude::*;

#[stage(on_error = retry(3, backoff = 10ms))]
fn double(x: u64) -> u64 {
    x * 2
}

fn main() {
    let _ = double(1);
}
