use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        iter(vec![1]) >> #[a::b = 1] map(|x| x) >> discard();
    };
}
