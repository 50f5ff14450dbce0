use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        lengths = iter(vec!["a".to_string()]) >> map(|w| w.len());
        lengths >> discard();
        lengths[rejected] >> discard();
    };
}
