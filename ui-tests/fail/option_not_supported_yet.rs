use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        iter(vec![1, 2, 3]) >> #[parallel = 2] map(|x| x + 1) >> discard();
    };
}
