use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        printed = iter(vec![1, 2, 3]) >> for_each(|x| println!("{x}"));
    };
}
