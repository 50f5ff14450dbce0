use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        push::<u64>(16) >> for_each(|n| println!("{n}"));
    };
}
