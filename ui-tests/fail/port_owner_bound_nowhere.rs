use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        zzz[errors] >> discard();
        iter(vec![1u64]) >> discard();
    };
}
