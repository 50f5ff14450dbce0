use pipeline::prelude::*;
fn main() {
    let _ = pipeline! {
        iter(vec!["a".to_string()]) >> filter(|x| x.len()) >> discard();
    };
}
