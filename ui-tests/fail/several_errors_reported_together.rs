use pipeline::prelude::*;

fn main() {
    // Two independent mistakes: an unknown option and a chain that does not
    // end in a sink. Both are reported.
    let _ = pipeline! {
        iter(vec![1, 2, 3]) >> #[bufer = 8] map(|x| x + 1) >> filter(|x| *x > 2);
    };
}
