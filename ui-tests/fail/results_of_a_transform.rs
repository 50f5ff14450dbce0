use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        results(map(|x: u64| x + 1)) >> ok() >> for_each(|x| println!("{x}"));
    };
}
