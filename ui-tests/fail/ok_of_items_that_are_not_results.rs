use pipeline::prelude::*;

fn main() {
    let input: &[u8] = b"1\n2\n";
    let _ = pipeline! {
        lines(input) >> ok() >> for_each(|line| println!("{line}"));
    };
}
