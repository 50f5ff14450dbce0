use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        numbers = iter(vec![1u64, 2]) >> map(|x| x + 1);
        numbers = iter(vec![3u64, 4]) >> map(|x| x * 2);
        numbers >> discard();
    };
}
