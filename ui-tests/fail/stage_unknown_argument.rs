use pipeline::prelude::*;

#[stage(sinkk)]
fn print(x: u64) {
    println!("{x}");
}

fn main() {
    print(1);
    let _ = pipeline! {
        iter(0..3u64) >> print;
    };
}
