use pipeline::prelude::*;

fn main() {
    let _ = pipeline! {
        words = iter(vec!["a b".to_string()]) >> flat_map(|line| line.split(' ').map(str::to_owned).collect::<Vec<_>>());
        lengths = words >> map(|w| w.len());
        lengths >> for_each(|n| println!("{n}"));
        words >> filter(|w| w.len() > 3) >> for_each(|w| println!("{}", w.to_uppercase()));
        lengths[erors] >> discard();
    };
}
