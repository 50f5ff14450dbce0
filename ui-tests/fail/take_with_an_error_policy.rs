use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        iter(vec![1u64, 2, 3]) >> #[on_error = retry(3)] take(2) >> #[breaker(error_rate = 0.5)] skip(1) >> discard();
    };
}
