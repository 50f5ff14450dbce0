use pipeline::prelude::*;
use std::rc::Rc;

fn main() {
    let shards = Rc::new(4u64);
    let _ = pipeline! {
        iter(0..10u64)
            >> #[parallel = 2] #[by_key(move |x: &u64| *x % *shards)] map(|x| x + 1)
            >> discard();
    };
}
