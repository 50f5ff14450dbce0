use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        split = iter(vec![1u64]) >> branch(|x, [ok, errors]| ok);
        split[ok] >> discard();
        split[errors] >> discard();
    };
}
