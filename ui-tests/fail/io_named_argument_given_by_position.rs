use pipeline::prelude::*;

fn main() {
    let input: &[u8] = b"HELO\nQUIT\n";
    let _ = pipeline! {
        frames(input, b"\n", 1024) >> for_each(|frame| println!("{frame:?}"));
    };
}
