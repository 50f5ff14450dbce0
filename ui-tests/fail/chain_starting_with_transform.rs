use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        map(|x: u32| x + 1) >> for_each(|x| println!("{x}"));
    };
}
