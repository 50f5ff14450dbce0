use pipeline::prelude::*;

#[stage]
fn parse(line: String) -> Result<u64, std::num::ParseIntError> {
    line.parse()
}

fn main() {
    let _ = pipeline! {
        numbers = iter(vec!["1".to_string()]) >> #[on_error = dead_letter] parse;
        numbers >> discard();
    };
}
