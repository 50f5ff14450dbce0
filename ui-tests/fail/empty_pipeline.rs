use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {};
}
