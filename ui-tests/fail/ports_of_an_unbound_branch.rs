use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        iter(vec![1u64, 200]) >> branch(|x: &u64, [big, small]| if *x > 100 { big } else { small });
    };
}
