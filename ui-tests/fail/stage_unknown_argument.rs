use pipeline::prelude::*;

#[stage(sinkk)]
fn print(x: u64) {
    println!("{x}");
}

fn main() {
    print(1);
}
