use pipeline::prelude::*;

#[stage(source)]
async fn numbers() -> Vec<u64> {
    vec![1, 2, 3]
}

fn main() {
    let _ = numbers();
}
