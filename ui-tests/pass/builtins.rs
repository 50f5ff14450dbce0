// Every builtin transform and sink of the linear DSL, with closures whose
// parameter types are inferred from upstream.
use pipeline::prelude::*;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut seen = Vec::new();
    pipeline! {
        iter(vec![1u32, 2, 3])
            >> then(|x| async move { x + 1 })
            >> flat_map(|x| vec![x; 2])
            >> filter_map(|x| (x % 2 == 0).then_some(x * 10))
            >> inspect(|x| assert!(*x > 0))
            >> map(|x| x.to_string())
            >> for_each(|s| seen.push(s));
    }
    .run()
    .await
    .unwrap();
    assert_eq!(seen, ["20", "20", "40", "40"]);

    pipeline! {
        iter(["a", "b"]) >> for_each(|s| async move { println!("{s}") });
    }
    .run()
    .await
    .unwrap();

    pipeline! {
        stream(futures::stream::iter(0..10u8)) >> map(|x| x * 2) >> discard();
    }
    .run()
    .await
    .unwrap();
}
