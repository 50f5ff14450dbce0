use pipeline::prelude::*;

#[stage]
fn answer() -> u64 {
    42
}

fn main() {
    let _ = answer();
    let _ = pipeline! {
        iter(0..3u64) >> answer >> for_each(|n: u64| println!("{n}"));
    };
}
