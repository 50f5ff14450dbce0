use pipeline::prelude::*;

#[stage]
fn parse(line: String) -> Result<u64, std::num::ParseIntError> {
    line.parse()
}

fn main() {
    let _ = pipeline! {
        iter(vec!["1".to_string()]) >> parse >> discard();
        parse[errors] >> for_each(|e| println!("{e:?}"));
    };
}
