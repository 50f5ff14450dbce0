use pipeline::prelude::*;
use std::rc::Rc;

fn main() {
    let _ = pipeline! {
        iter(0..10u64) >> #[parallel = 2] map(Rc::new) >> discard();
    };
}
