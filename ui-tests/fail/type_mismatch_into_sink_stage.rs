use pipeline::prelude::*;

#[stage(sink)]
fn print(s: String) {
    println!("{s}");
}

fn main() {
    let _ = pipeline! {
        iter(vec![1u64, 2]) >> print;
    };
}
