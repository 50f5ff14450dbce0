use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        iter(vec!["a b".to_string()])
            >> map(|line| line.split(' ').count())
            >> #[bufer = 2] filter(|n| *n > 1)
            >> for_each(|n| println!("{}", n.pow(2)));
    };
}
