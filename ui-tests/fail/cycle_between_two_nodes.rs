use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        step = iter(vec![1u64]) >> map(|x| x + 1);
        back = step >> filter(|x| *x < 10);
        back >> step;
        back >> discard();
    };
}
