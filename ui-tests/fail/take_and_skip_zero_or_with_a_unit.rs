use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        iter(vec![1u64, 2, 3]) >> take(0) >> skip(0) >> take(5ms) >> skip("one") >> discard();
    };
}
