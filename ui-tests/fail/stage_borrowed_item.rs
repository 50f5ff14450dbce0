use pipeline::prelude::*;

#[stage]
fn len(x: &str) -> usize {
    x.len()
}

fn main() {
    let _ = len("abc");
    let _ = pipeline! {
        iter(vec![String::from("abc")]) >> len >> for_each(|n: usize| println!("{n}"));
    };
}
