use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        #[buffer = 64] iter(0..10u64) >> discard();
    };
}
