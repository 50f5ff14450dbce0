use pipeline::prelude::*;

fn main() {
    let input: &[u8] = b"HELO\nQUIT\n";
    let _ = pipeline! {
        frames(input, max_frame = 1KiB) >> for_each(|frame| println!("{frame:?}"));
        lines(max_line = 1KiB, input) >> for_each(|line| println!("{line}"));
        interval(1s, take = 0) >> write(tokio::io::stdout(), flush_every = 1KiB, flush_every = 2KiB);
    };
}
