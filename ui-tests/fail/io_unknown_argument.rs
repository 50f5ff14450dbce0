use pipeline::prelude::*;

fn main() {
    let input: &[u8] = b"HELO\r\nQUIT\r\n";
    let _ = pipeline! {
        frames(input, b"\r\n", max_frames = 64KiB) >> for_each(|frame| println!("{frame:?}"));
    };
}
