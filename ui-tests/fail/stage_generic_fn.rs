use pipeline::prelude::*;

#[stage]
fn show<T: std::fmt::Debug>(x: T) -> String {
    format!("{x:?}")
}

fn main() {
    let _ = show(1);
}
