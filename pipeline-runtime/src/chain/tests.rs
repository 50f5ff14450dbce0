use std::sync::Arc;

use super::*;
use crate::control::Control;
use crate::graph::NodeKind;
use crate::io::{Collected, collect, iter};
use crate::metrics::StageStats;
use crate::transform::{filter, map};

fn stats(name: &'static str, kind: NodeKind) -> Arc<StageStats> {
    Arc::new(StageStats::new(name, kind))
}

#[tokio::test]
async fn a_hand_built_chain_runs_in_chunks_and_counts_per_stage() {
    let out = Collected::new();
    let source = stats("iter", NodeKind::Source);
    let double = stats("map", NodeKind::Transform);
    let odd = stats("filter", NodeKind::Transform);
    let sink = stats("collect", NodeKind::Sink);
    // A chunk of 3 makes the 10 items cross four chunks.
    let chain = Head::new(iter(0..10u32), source.clone(), 3);
    let chain: Fuse<_, _, u32, u32, crate::stage::Never> =
        Fuse::new(chain, map(|x: u32| x * 2 + 1), double.clone());
    let chain: Fuse<_, _, u32, u32, crate::stage::Never> =
        Fuse::new(chain, filter(|x: &u32| !x.is_multiple_of(3)), odd.clone());
    let chain: Fuse<_, _, u32, crate::stage::Never, crate::stage::Never> =
        Fuse::new(chain, collect(&out), sink.clone());
    drive(chain, Control::new()).await.unwrap();
    assert_eq!(out.take(), vec![1, 5, 7, 11, 13, 17, 19]);
    assert_eq!(source.items_out(), 10);
    assert_eq!((double.items_in(), double.items_out()), (10, 10));
    assert_eq!(
        (odd.items_in(), odd.filtered(), odd.items_out()),
        (10, 3, 7)
    );
    assert_eq!((sink.items_in(), sink.passed(), sink.filtered()), (7, 7, 0));
}

#[tokio::test]
async fn a_chain_stopped_before_it_starts_reads_nothing_and_still_closes() {
    let out = Collected::new();
    let control = Control::new();
    control.stop();
    let source = stats("iter", NodeKind::Source);
    let chain = Head::new(iter(0..10u32), source.clone(), 4);
    let chain: Fuse<_, _, u32, crate::stage::Never, crate::stage::Never> =
        Fuse::new(chain, collect(&out), stats("collect", NodeKind::Sink));
    drive(chain, control).await.unwrap();
    assert!(out.is_empty());
    assert_eq!(source.items_out(), 0);
}
