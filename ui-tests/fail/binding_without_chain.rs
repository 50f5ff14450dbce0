use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        x = ;
        iter(vec![2]) >> discard();
    };
}
