use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        iter(vec![1, 2, 3]) >> map(|x| x + 1) for_each(|x| println!("{x}"));
    };
}
