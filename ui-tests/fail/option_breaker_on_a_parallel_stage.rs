use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        iter(vec![1, 2, 3]) >> #[parallel = 2] #[breaker(error_rate = 0.5, window = 10s, min_calls = 20, cooldown = 5s)] map(|x| x + 1) >> discard();
    };
}
