// A pipeline can be built without running it; its type is nameable
// through `Pipeline<_>`.
use pipeline::prelude::*;

#[stage]
fn len(s: String) -> usize {
    s.len()
}

fn main() {
    let pipeline: Pipeline<_> = pipeline! {
        iter(vec![String::new()]) >> len >> discard();
    };
    drop(pipeline);
}
