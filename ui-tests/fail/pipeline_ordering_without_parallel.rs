use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        #![unordered]
        iter(vec![1u64, 2]) >> map(|x| x + 1) >> discard();
    };
}
