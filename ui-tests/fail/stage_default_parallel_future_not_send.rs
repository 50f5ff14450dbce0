use pipeline::prelude::*;
use std::rc::Rc;

async fn pause() {}

#[stage(parallel = 2)]
async fn hold(x: u64) -> u64 {
    let shared = Rc::new(x);
    pause().await;
    *shared
}

fn main() {
    let _ = pipeline! {
        iter(0..10u64) >> hold >> discard();
    };
}
