use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        interval(0ms) >> for_each(|tick| println!("{tick:?}"));
    };
}
