use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        iter(vec![1u64, 2, 3]) >> #[parallel = 4] take(2) >> #[ordered] skip(1) >> discard();
    };
}
