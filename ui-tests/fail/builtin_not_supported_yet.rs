use pipeline::prelude::*;

fn main() {
    let reader = std::io::empty();
    let _ = pipeline! {
        lines(reader) >> for_each(|line| println!("{line}"));
    };
}
