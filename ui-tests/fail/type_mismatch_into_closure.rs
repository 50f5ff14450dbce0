use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        iter(vec!["a".to_string()]) >> map(|x: u64| x + 1) >> discard();
    };
}
