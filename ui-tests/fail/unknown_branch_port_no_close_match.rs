use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        split = iter(vec![1u64, 200]) >> branch(|x, [big, small]| if *x > 100 { big } else { small });
        split[big] >> discard();
        split[small] >> discard();
        split[medium] >> discard();
    };
}
