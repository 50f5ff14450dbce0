use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        iter(vec![1]) >> discard();
        #![buffer = 8]
        iter(vec![2]) >> discard();
    };
}
