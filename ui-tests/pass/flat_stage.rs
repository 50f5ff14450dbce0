// `#[stage(flat)]` emits every item of the collection it returns;
// `impl Iterator` return types are flat without the annotation.
use pipeline::prelude::*;

#[stage(flat)]
fn words(line: String) -> Vec<String> {
    line.split_whitespace().map(String::from).collect()
}

#[stage]
fn chars(word: String) -> impl Iterator<Item = char> {
    word.chars().collect::<Vec<_>>().into_iter()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let out = Collected::new();
    pipeline! {
        iter(["ab c".to_string()]) >> words >> chars >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(out.take(), vec!['a', 'b', 'c']);
}
