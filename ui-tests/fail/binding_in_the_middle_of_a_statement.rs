use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        a = b = iter(vec![1]) >> discard();
    };
}
