//! Order processing as a graph: fan-out, merge, branch and the `errors` port
//! on a real input file.
//!
//! Reads `examples/data/orders.csv` and `examples/data/refunds.csv` (lines
//! of `id,customer,amount_in_cents`, a few of them malformed) and:
//!
//! * parses each line with a fallible `#[stage]`; lines that fail go out of
//!   the stage's `errors` port, with the line and the error, to a report of
//!   rejected lines (**errors port**);
//! * sends every parsed order both to a `branch` and to a ledger
//!   (**fan-out**);
//! * the branch routes orders of 1,000.00 or more to a review list and the
//!   others to per-customer totals (**branch**);
//! * the ledger also takes the refunds, parsed by a second chain, and nets
//!   them against the sales (**merge**).
//!
//! Then it prints what each sink saw, the run's `Report` (per stage and per
//! edge) and the graph as a mermaid diagram.
//!
//! Run it from the repository root with:
//!
//! ```text
//! cargo run --release --example orders
//! ```

use std::collections::BTreeMap;
use std::fmt;

use pipeline::prelude::*;
use pipeline::stages::Failed;

const ORDERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/orders.csv");
const REFUNDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/refunds.csv");

/// Orders at or above this amount (in cents) go to review.
const REVIEW_AT: i64 = 100_000;

/// A sale or, with a negative amount, a refund.
#[derive(Clone, Debug)]
struct Order {
    id: u64,
    customer: String,
    /// In cents; negative for a refund.
    cents: i64,
}

/// Why a line is not an order.
#[derive(Debug)]
enum BadLine {
    Fields(usize),
    Id(String),
    Customer,
    Amount(String),
}

impl fmt::Display for BadLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadLine::Fields(n) => write!(f, "expected 3 comma-separated fields, found {n}"),
            BadLine::Id(id) => write!(f, "`{id}` is not an order id"),
            BadLine::Customer => f.write_str("the customer is empty"),
            BadLine::Amount(amount) => write!(f, "`{amount}` is not an amount in cents"),
        }
    }
}

/// `id,customer,cents` to an [`Order`].
#[stage]
fn parse_order(line: String) -> Result<Order, BadLine> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    let [id, customer, cents] = fields[..] else {
        return Err(BadLine::Fields(fields.len()));
    };
    if customer.is_empty() {
        return Err(BadLine::Customer);
    }
    Ok(Order {
        id: id.parse().map_err(|_| BadLine::Id(id.to_owned()))?,
        customer: customer.to_owned(),
        cents: cents
            .parse()
            .map_err(|_| BadLine::Amount(cents.to_owned()))?,
    })
}

/// A refund line is an order line whose amount is paid back.
#[stage]
fn parse_refund(line: String) -> Result<Order, BadLine> {
    let order = parse_order(line)?;
    Ok(Order {
        cents: -order.cents,
        ..order
    })
}

fn read_lines(path: &str) -> std::io::Result<Vec<String>> {
    Ok(std::fs::read_to_string(path)?
        .lines()
        .map(str::to_owned)
        .collect())
}

fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, (cents % 100).abs())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let orders_in = read_lines(ORDERS)?;
    let refunds_in = read_lines(REFUNDS)?;

    let mut rejected: Vec<String> = Vec::new();
    let mut review: Vec<Order> = Vec::new();
    let mut totals: BTreeMap<String, i64> = BTreeMap::new();
    let (mut net, mut entries) = (0i64, 0u64);

    let pipeline = pipeline! {
        orders = iter(orders_in) >> parse_order;
        orders[errors] >> for_each(|failed: Failed<String, BadLine>| {
            rejected.push(format!("{:?}: {}", failed.input, failed.error));
        });
        split = orders >> branch(|o: &Order, [large, regular]| if o.cents >= REVIEW_AT { large } else { regular });
        split[large] >> for_each(|o| review.push(o));
        split[regular] >> for_each(|o: Order| *totals.entry(o.customer).or_default() += o.cents);
        ledger = for_each(|o: Order| {
            net += o.cents;
            entries += 1;
        });
        orders >> ledger;
        refunds >> ledger;
        refunds = iter(refunds_in) >> parse_refund;
        refunds[errors] >> discard();
    };
    let mermaid = pipeline.graph().to_mermaid();
    let report = pipeline.run().await?;

    println!("rejected {} lines:", rejected.len());
    for line in rejected.iter().take(5) {
        println!("  {line}");
    }
    println!("{} orders to review, the largest:", review.len());
    review.sort_by_key(|o| std::cmp::Reverse(o.cents));
    for order in review.iter().take(3) {
        println!("  #{} {} {}", order.id, order.customer, money(order.cents));
    }
    println!("regular sales by customer:");
    for (customer, cents) in &totals {
        println!("  {customer:<10} {:>12}", money(*cents));
    }
    println!("ledger: {entries} entries, net {}", money(net));
    println!();
    println!("{report}");
    println!();
    println!("{mermaid}");
    assert!(report.is_balanced(), "every item is accounted for");
    Ok(())
}
