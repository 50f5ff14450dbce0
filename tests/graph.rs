//! Graph pipelines at run time: fan-out, merge, branch and `errors` ports,
//! names used before they are bound, back-pressure across a fan-out, and
//! the graph and per-edge counts a pipeline reports. Each test is named
//! after the behaviour a user relies on.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pipeline::graph::NodeKind;
use pipeline::prelude::*;
use pipeline::stages::Failed;

#[stage]
fn parse(line: String) -> Result<u64, std::num::ParseIntError> {
    line.trim().parse()
}

fn lines(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn fan_out_gives_every_branch_every_item() {
    let left = Collected::new();
    let right = Collected::new();
    let report = pipeline! {
        numbers = iter(1..=1000u64) >> map(|x| x * 3);
        numbers >> collect(&left);
        numbers >> filter(|x| x.is_multiple_of(2)) >> collect(&right);
    }
    .run()
    .await
    .unwrap();
    let expected: Vec<u64> = (1..=1000).map(|x| x * 3).collect();
    assert_eq!(left.take(), expected);
    let evens: Vec<u64> = expected
        .iter()
        .copied()
        .filter(|x| x.is_multiple_of(2))
        .collect();
    assert_eq!(right.take(), evens);
    assert!(report.is_balanced(), "{report}");
    assert_eq!(report.edge("numbers", "collect").unwrap().sent, 1000);
    assert_eq!(report.edge("numbers", "filter").unwrap().sent, 1000);
}

#[tokio::test]
async fn merge_delivers_the_items_of_every_chain() {
    let all = Collected::new();
    let report = pipeline! {
        everything = collect(&all);
        iter(0..500u64) >> everything;
        iter(1000..1300u64) >> map(|x| x + 1) >> everything;
    }
    .run()
    .await
    .unwrap();
    let mut got = all.take();
    got.sort_unstable();
    let mut expected: Vec<u64> = (0..500).chain(1001..1301).collect();
    expected.sort_unstable();
    assert_eq!(got, expected);
    assert_eq!(report.stage("everything").unwrap().items_in, 800);
    assert_eq!(report.edge("iter", "everything").unwrap().sent, 500);
    assert_eq!(report.edge("map", "everything").unwrap().sent, 300);
}

#[tokio::test]
async fn merge_keeps_the_order_of_each_input_chain() {
    let all = Collected::new();
    pipeline! {
        sink = collect(&all);
        iter(0..2000u64) >> sink;
        iter(10_000..12_000u64) >> sink;
    }
    .run()
    .await
    .unwrap();
    let got = all.take();
    let low: Vec<u64> = got.iter().copied().filter(|x| *x < 10_000).collect();
    let high: Vec<u64> = got.iter().copied().filter(|x| *x >= 10_000).collect();
    assert_eq!(low, (0..2000).collect::<Vec<_>>());
    assert_eq!(high, (10_000..12_000).collect::<Vec<_>>());
}

#[tokio::test]
async fn branch_sends_each_item_to_the_port_its_closure_returns() {
    let big = Collected::new();
    let small = Collected::new();
    let report = pipeline! {
        split = iter(vec![5u64, 500, 50, 5000]) >> branch(|x: &u64, [large, tiny]| if *x >= 100 { large } else { tiny });
        split[large] >> collect(&big);
        split[tiny] >> collect(&small);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(big.take(), vec![500, 5000]);
    assert_eq!(small.take(), vec![5, 50]);
    assert_eq!(
        report.port("split", "large").map(|e| e.sent).sum::<u64>(),
        2
    );
    assert_eq!(report.port("split", "tiny").map(|e| e.sent).sum::<u64>(), 2);
    assert_eq!(report.stage("split").unwrap().items_in, 4);
}

#[tokio::test]
async fn a_branch_port_can_fan_out_to_several_chains() {
    let a = Collected::new();
    let b = Collected::new();
    pipeline! {
        split = iter(1..=6u64) >> branch(|x: &u64, [odd, even]| if x % 2 == 1 { odd } else { even });
        split[odd] >> collect(&a);
        split[odd] >> map(|x| x * 10) >> collect(&b);
        split[even] >> discard();
    }
    .run()
    .await
    .unwrap();
    assert_eq!(a.take(), vec![1, 3, 5]);
    assert_eq!(b.take(), vec![10, 30, 50]);
}

#[tokio::test]
async fn the_errors_port_carries_each_failed_input_with_its_error() {
    let bad: Collected<Failed<String, std::num::ParseIntError>> = Collected::new();
    let good = Collected::new();
    let report = pipeline! {
        numbers = iter(lines(&["1", "x", "3", "", "5"])) >> parse;
        numbers >> collect(&good);
        numbers[errors] >> collect(&bad);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(good.take(), vec![1, 3, 5]);
    let bad = bad.take();
    let inputs: Vec<&str> = bad.iter().map(|f| f.input.as_str()).collect();
    assert_eq!(inputs, ["x", ""]);
    assert!(bad.iter().all(|f| f.stage == "numbers"));
    assert_eq!(bad[0].error.to_string(), "invalid digit found in string");
    // Handed on, not lost: dead-lettered rather than failed.
    let numbers = report.stage("numbers").unwrap();
    assert_eq!((numbers.failed, numbers.dead_lettered), (0, 2));
    assert_eq!(
        report
            .port("numbers", "errors")
            .map(|e| e.sent)
            .sum::<u64>(),
        2
    );
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test]
async fn names_can_be_used_before_the_statement_that_binds_them() {
    let out = Collected::new();
    pipeline! {
        doubled >> collect(&out);
        doubled = iter(1..=3u64) >> map(|x| x * 2);
    }
    .run()
    .await
    .unwrap();
    assert_eq!(out.take(), vec![2, 4, 6]);
}

#[tokio::test]
async fn the_issue_example_runs_end_to_end() {
    #[derive(Clone, Debug, PartialEq)]
    struct Order {
        amount: u64,
    }
    #[stage]
    fn to_order(line: String) -> Result<Order, std::num::ParseIntError> {
        Ok(Order {
            amount: line.trim().parse()?,
        })
    }
    let alerts = Collected::new();
    let totals = Collected::new();
    let audited = Collected::new();
    let bad_lines = Collected::new();
    let report = pipeline! {
        orders = iter(lines(&["20000", "15", "oops", "30"])) >> to_order;
        orders[errors] >> map(|f| f.input) >> collect(&bad_lines);
        split = orders >> branch(|o: &Order, [big, small]| if o.amount > 10_000 { big } else { small });
        split[big] >> map(|o| o.amount) >> collect(&alerts);
        split[small] >> map(|o| o.amount) >> collect(&totals);
        audit = collect(&audited);
        orders >> audit;
        replayed >> audit;
        replayed = iter(vec![7u64, 8]) >> map(|amount| Order { amount });
    }
    .run()
    .await
    .unwrap();
    assert_eq!(alerts.take(), vec![20000]);
    assert_eq!(totals.take(), vec![15, 30]);
    assert_eq!(bad_lines.take(), vec!["oops".to_string()]);
    let mut audited: Vec<u64> = audited.take().into_iter().map(|o| o.amount).collect();
    audited.sort_unstable();
    assert_eq!(audited, vec![7, 8, 15, 30, 20000]);
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test(start_paused = true)]
async fn a_slow_branch_slows_the_source_and_loses_nothing() {
    const ITEMS: u64 = 20_000;
    let fast_seen = Arc::new(AtomicU64::new(0));
    let slow_seen = Arc::new(AtomicU64::new(0));
    let max_lead = Arc::new(AtomicU64::new(0));
    let (fast, slow, lead) = (fast_seen.clone(), slow_seen.clone(), max_lead.clone());
    let report = pipeline! {
        numbers = iter(0..ITEMS);
        numbers >> for_each(move |_| {
            let ahead = fast.fetch_add(1, Ordering::SeqCst) + 1 - slow.load(Ordering::SeqCst);
            lead.fetch_max(ahead, Ordering::SeqCst);
        });
        numbers >> then(|x| async move {
            if x.is_multiple_of(100) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            x
        }) >> for_each(|_| {
            slow_seen.fetch_add(1, Ordering::SeqCst);
        });
    }
    .run()
    .await
    .unwrap();
    assert_eq!(fast_seen.load(Ordering::SeqCst), ITEMS);
    assert_eq!(slow_seen.load(Ordering::SeqCst), ITEMS);
    // The fast branch can run ahead by what the edges buffer, not more: the
    // source waits for the slow branch's edge to have room.
    let bound = 2 * pipeline::__private::DEFAULT_BUFFER as u64
        + 2 * pipeline::__private::DEFAULT_CHUNK as u64;
    let lead = max_lead.load(Ordering::SeqCst);
    assert!(
        lead <= bound,
        "the fast branch ran {lead} items ahead (bound {bound})"
    );
    assert!(report.edges.iter().all(|e| e.dropped == 0), "{report}");
}

#[tokio::test(start_paused = true)]
async fn stop_drains_every_branch_of_a_graph() {
    let left = Collected::new();
    let right = Collected::new();
    let (left_out, right_out) = (left.clone(), right.clone());
    let handle = pipeline! {
        ticks = stream(futures::stream::unfold(0u64, |n| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            Some((n, n + 1))
        }));
        ticks >> collect(&left_out);
        ticks >> collect(&right_out);
    }
    .spawn();
    tokio::time::sleep(Duration::from_millis(30)).await;
    handle.stop();
    let report = handle.join().await.unwrap();
    assert!(report.stopped);
    let (left, right) = (left.take(), right.take());
    assert!(!left.is_empty());
    assert_eq!(
        left, right,
        "both branches get every item the source produced"
    );
    assert_eq!(report.stage("ticks").unwrap().items_out, left.len() as u64);
}

#[tokio::test]
async fn graph_describes_nodes_kinds_ports_edges_and_source_lines() {
    let iter_line = line!() + 2;
    let pipeline = pipeline! {
        numbers = iter(1..=4u64) >> parse_free;
        split = numbers >> branch(|x: &u64, [even, odd]| if x.is_multiple_of(2) { even } else { odd });
        split[even] >> discard();
        split[odd] >> sink;
        numbers >> sink;
        sink = discard();
    };
    let graph = pipeline.graph();
    let names: Vec<&str> = graph.nodes().iter().map(|n| n.name).collect();
    assert_eq!(
        names,
        [
            "iter",
            "numbers",
            "split",
            "discard",
            "sink",
            "merge into sink"
        ]
    );
    let kinds: Vec<NodeKind> = graph.nodes().iter().map(|n| n.kind).collect();
    assert_eq!(
        kinds,
        [
            NodeKind::Source,
            NodeKind::Transform,
            NodeKind::Branch,
            NodeKind::Sink,
            NodeKind::Sink,
            NodeKind::Merge
        ]
    );
    assert_eq!(graph.node("split").unwrap().ports, ["even", "odd"]);
    assert_eq!(graph.node("iter").unwrap().line, iter_line);
    assert_eq!(graph.node("iter").unwrap().column, 19);
    insta::assert_snapshot!(graph.to_mermaid());
}

#[stage]
fn parse_free(x: u64) -> u64 {
    x
}

#[tokio::test]
async fn graph_of_the_issue_example_renders_as_mermaid_and_dot() {
    #[derive(Clone)]
    struct Order {
        amount: u64,
    }
    #[stage]
    fn to_order(line: String) -> Result<Order, std::num::ParseIntError> {
        Ok(Order {
            amount: line.trim().parse()?,
        })
    }
    let pipeline = pipeline! {
        orders = iter(lines(&["1"])) >> to_order;
        orders[errors] >> for_each(|f| eprintln!("{f}"));
        split = orders >> branch(|o: &Order, [big, small]| if o.amount > 10_000 { big } else { small });
        split[big] >> map(|o| o.amount) >> alerts;
        split[small] >> discard();
        alerts = for_each(|amount| println!("{amount}"));
        orders >> audit;
        replayed >> audit;
        audit = discard();
        replayed = iter(Vec::<Order>::new()) >> inspect(|_| ());
    };
    insta::assert_snapshot!("issue_example_mermaid", pipeline.graph().to_mermaid());
    insta::assert_snapshot!("issue_example_dot", pipeline.graph().to_dot());
}

#[tokio::test]
async fn a_fan_out_that_merges_back_is_fused_and_counts_every_branch() {
    let total = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sum = total.clone();
    let report = pipeline! {
        xs = iter(0..1_000u64);
        xs >> map(|x| x * 2) >> all;
        xs >> map(|x| x + 7) >> filter(|x: &u64| x.is_multiple_of(2)) >> all;
        xs >> all;
        all = for_each(move |x: u64| {
            sum.fetch_add(x, std::sync::atomic::Ordering::Relaxed);
        });
    }
    .run()
    .await
    .unwrap();
    let expected: u64 = (0..1_000u64)
        .map(|x| x * 2 + if (x + 7).is_multiple_of(2) { x + 7 } else { 0 } + x)
        .sum();
    assert_eq!(total.load(std::sync::atomic::Ordering::Relaxed), expected);
    let all = report.stage("all").unwrap();
    assert_eq!(all.items_in, 1_000 + 500 + 1_000, "{report}");
    assert_eq!(report.edge("xs", "all").unwrap().sent, 1_000, "{report}");
    assert_eq!(report.edge("filter", "all").unwrap().sent, 500, "{report}");
    assert_eq!(report.edge("map", "all").unwrap().sent, 1_000, "{report}");
    assert!(report.is_balanced(), "{report}");
}

#[tokio::test]
async fn a_fused_diamond_merges_each_chunk_branch_by_branch() {
    let out = Collected::new();
    pipeline! {
        xs = iter(0..3u64);
        xs >> map(|x| x * 2) >> all;
        xs >> map(|x| x + 7) >> filter(|x: &u64| x.is_multiple_of(2)) >> all;
        xs >> all;
        all = collect(&out);
    }
    .run()
    .await
    .unwrap();
    // One chunk, through each branch in the order they were written.
    assert_eq!(out.take(), vec![0, 2, 4, 8, 0, 1, 2]);
}
