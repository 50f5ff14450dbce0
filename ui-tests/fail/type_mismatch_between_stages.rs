use pipeline::prelude::*;

#[stage]
fn count(line: String) -> u64 {
    line.len() as u64
}

#[stage]
fn upper(s: String) -> String {
    s.to_uppercase()
}

fn main() {
    let _ = pipeline! {
        iter(vec!["a".to_string()]) >> count >> upper >> for_each(|s| println!("{s}"));
    };
}
