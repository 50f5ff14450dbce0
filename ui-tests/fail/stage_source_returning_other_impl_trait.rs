use pipeline::prelude::*;

#[stage(source)]
fn numbers() -> impl std::fmt::Debug {
    vec![1u64, 2]
}

fn main() {}
