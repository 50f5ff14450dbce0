use pipeline::prelude::*;
use std::rc::Rc;

#[stage(parallel = 2)]
fn count(items: Rc<Vec<u64>>) -> usize {
    items.len()
}

fn main() {
    let _ = count(Rc::new(vec![1]));
    let _ = pipeline! {
        iter(vec![Rc::new(vec![1u64])]) >> count >> discard();
    };
}
