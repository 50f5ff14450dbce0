use pipeline::prelude::*;

fn main() {
    let (requests, _rx) = futures::channel::mpsc::channel::<u64>(4);
    let (_tx, answers) = futures::channel::mpsc::channel::<u64>(4);
    let _ = pipeline! {
        iter(vec![1u64]) >> #[on_error = fail] through(requests, answers) >> discard();
    };
}
