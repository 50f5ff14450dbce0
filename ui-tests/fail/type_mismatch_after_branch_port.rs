use pipeline::prelude::*;

#[stage]
fn shout(s: String) -> String {
    s.to_uppercase()
}

fn main() {
    let _ = pipeline! {
        split = iter(vec![1u64, 200]) >> branch(|x: &u64, [big, small]| if *x > 100 { big } else { small });
        split[big] >> shout >> discard();
        split[small] >> discard();
    };
}
