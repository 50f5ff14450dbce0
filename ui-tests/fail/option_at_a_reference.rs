use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        parsed = iter(vec![1u64, 2, 3]) >> map(|x| x + 1);
        #[buffer = 64] parsed >> discard();
    };
}
