use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        all = for_each(|x| println!("{x}"));
        iter(vec![1u64, 2]) >> all;
        iter(vec!["three".to_string()]) >> all;
    };
}
