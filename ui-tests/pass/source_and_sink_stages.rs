// `#[stage(source)]` and `#[stage(sink)]` functions at both ends of a chain.
use pipeline::prelude::*;

#[stage(source)]
fn numbers() -> Vec<u64> {
    vec![1, 2, 3]
}

#[stage(source)]
fn letters() -> impl Iterator<Item = char> + Send {
    "abc".chars()
}

#[stage]
fn square(x: u64) -> u64 {
    x * x
}

#[stage(sink)]
fn print(x: u64) {
    println!("{x}");
}

#[stage(sink)]
fn check(c: char) -> Result<(), String> {
    if c.is_alphabetic() {
        Ok(())
    } else {
        Err(format!("{c:?} is not a letter"))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    pipeline! {
        numbers >> square >> print;
    }
    .run()
    .await
    .unwrap();
    pipeline! {
        letters >> check;
    }
    .run()
    .await
    .unwrap();
    // The functions stay callable as plain functions.
    assert_eq!(numbers(), vec![1, 2, 3]);
    print(square(3));
}
