use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        iter(vec![1, 2, 3]) >> #[buffer = 8] map(|x| x + 1) >> discard();
    };
}
