use pipeline::prelude::*;

#[stage]
struct Double;

fn main() {
    let _ = Double;
}
