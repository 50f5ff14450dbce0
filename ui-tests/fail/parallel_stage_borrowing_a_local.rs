use pipeline::prelude::*;

fn main() {
    let offset = 10u64;
    let offset = &offset;
    let _ = pipeline! {
        iter(0..10u64) >> #[parallel = 2] map(|x| x + *offset) >> discard();
    };
}
