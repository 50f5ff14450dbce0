use pipeline::prelude::*;
use std::rc::Rc;

fn main() {
    let _ = pipeline! {
        iter(vec![Rc::new(1u64)]) >> #[parallel = 2] map(|x| *x) >> discard();
    };
}
