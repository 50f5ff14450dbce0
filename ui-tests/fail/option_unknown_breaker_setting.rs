use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        iter(0..10u64) >> #[breaker(error_rate = 0.5, cooldwn = 5s)] map(|x| x + 1) >> discard();
    };
}
