use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        iter(0..10u64) >> #[on_error = fail] batch(max_items = 5) >> discard();
    };
}
