use pipeline::prelude::*;

struct Scaler {
    factor: u64,
}

impl Scaler {
    #[stage]
    fn scale(&self, x: u64) -> u64 {
        x * self.factor
    }
}

fn main() {
    let s = Scaler { factor: 2 };
    let _ = s.scale(1);
}
