use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        doubled = iter(vec![1u64, 2]) >> map(|x| x * 2);
        doubled >> discard();
        doubled[errors] >> discard();
    };
}
