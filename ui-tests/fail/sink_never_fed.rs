use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        audit = for_each(|x: u64| println!("{x}"));
        iter(vec![1u64, 2]) >> discard();
    };
}
