use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        a = b >> map(|x: u64| x + 1);
        b = a >> inspect(|x| println!("{x}"));
        a >> for_each(|x| println!("{x}"));
    };
}
