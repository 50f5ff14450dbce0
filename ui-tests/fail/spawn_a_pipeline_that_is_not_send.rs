use std::rc::Rc;

use pipeline::prelude::*;

#[tokio::main]
async fn main() {
    let shared = Rc::new(3u64);
    let handle = pipeline! {
        iter(0..10u64) >> map(move |x| x * *shared) >> discard();
    }
    .spawn();
    let _ = handle.join().await;
}
