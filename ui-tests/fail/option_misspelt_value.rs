use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        iter(0..10u64) >> #[on_full = drop_oldset] map(|x| x + 1) >> discard();
    };
}
