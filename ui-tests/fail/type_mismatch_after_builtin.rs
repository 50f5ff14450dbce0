use pipeline::prelude::*;

#[stage]
fn upper(s: String) -> String {
    s.to_uppercase()
}

fn main() {
    let _ = pipeline! {
        iter(vec!["a".to_string()]) >> map(|s| s.len()) >> upper >> discard();
    };
}
