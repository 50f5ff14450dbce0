// The example of issue 2: an async fallible stage, a plain stage, builtins,
// and a closure whose parameter type is inferred from upstream.
use pipeline::prelude::*;

#[stage]
fn double(x: u64) -> u64 {
    x * 2
}

#[stage]
async fn parse(line: String) -> Result<u64, std::num::ParseIntError> {
    line.trim().parse()
}

#[tokio::main]
async fn main() -> Result<(), pipeline::Error> {
    let report = pipeline! {
        iter(["1", "2", "x", "4"].map(String::from)) >> parse >> double
            >> filter(|x: &u64| *x > 2) >> for_each(|x| println!("{x}"));
    }
    .run()
    .await?;
    println!("{report}");
    Ok(())
}
