use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        map(|x: u64| x);
        discard();
    };
}
