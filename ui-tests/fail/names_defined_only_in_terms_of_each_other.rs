use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        a = b;
        b = a;
        a >> discard();
    };
}
