// A `#[stage]` may take `&StageContext` as its second parameter.
use pipeline::prelude::*;

#[stage]
fn tag(x: u32, ctx: &StageContext) -> String {
    format!("{}:{x}", ctx.name())
}

#[stage]
async fn tag_async(x: String, ctx: &StageContext) -> String {
    format!("{}:{x}", ctx.name())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let out = Collected::new();
    pipeline! {
        iter([1u32, 2]) >> tag >> tag_async >> collect(&out);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(out.take(), vec!["tag_async:tag:1", "tag_async:tag:2"]);
}
