use pipeline::prelude::*;

#[stage]
fn parse(line: String) -> Result<u64, std::num::ParseIntError> {
    line.parse()
}

fn main() {
    let _ = pipeline! {
        orders = iter(vec!["1".to_string()]) >> parse;
        orders >> discard();
        ordrs[errors] >> for_each(|failed| println!("{failed}"));
    };
}
