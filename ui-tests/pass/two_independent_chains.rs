use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        iter(vec![1, 2, 3]) >> for_each(|x| println!("{x}"));
        iter(vec![4, 5, 6]) >> discard();
    };
}
