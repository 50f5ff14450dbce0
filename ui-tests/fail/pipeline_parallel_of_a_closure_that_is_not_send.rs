use pipeline::prelude::*;
use std::rc::Rc;

fn main() {
    let offset = Rc::new(1u64);
    let _ = pipeline! {
        #![parallel = 2]
        iter(vec![1u64, 2]) >> map(move |x| x + *offset) >> discard();
    };
}
