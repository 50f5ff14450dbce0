use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        iter(["a", "b"]) >> write_lines(tokio::io::stdout(), flush_every = 32Kib);
    };
}
