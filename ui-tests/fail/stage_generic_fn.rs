use pipeline::prelude::*;

#[stage]
fn show<T: std::fmt::Debug>(x: T) -> String {
    format!("{x:?}")
}

fn main() {
    let _ = show(1);
    let _ = pipeline! {
        iter(0..3u64) >> show >> for_each(|s: String| println!("{s}"));
    };
}
