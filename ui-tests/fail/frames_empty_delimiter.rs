use pipeline::prelude::*;

fn main() {
    let input: &[u8] = b"HELO\nQUIT\n";
    let _ = pipeline! {
        frames(input, b"") >> for_each(|frame| println!("{frame:?}"));
    };
}
