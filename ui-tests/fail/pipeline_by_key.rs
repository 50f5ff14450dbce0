use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        #![parallel = 2]
        #![by_key(|x: &u64| *x)]
        iter(vec![1u64, 2]) >> map(|x| x + 1) >> discard();
    };
}
