use pipeline::prelude::*;

struct Math;

impl Math {
    #[stage]
    fn double(x: u64) -> u64 {
        x * 2
    }
}

fn main() {
    let _ = Math::double(1);
}
