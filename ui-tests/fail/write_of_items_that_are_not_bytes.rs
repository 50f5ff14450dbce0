use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        iter(1..=3u64) >> write_lines(tokio::io::stdout());
    };
}
