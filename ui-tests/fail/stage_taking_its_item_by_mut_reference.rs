use pipeline::prelude::*;

#[derive(Debug)]
struct Order {
    cents: u64,
}

#[stage]
fn normalize(order: &mut Order) {
    order.cents *= 100;
}

fn main() {
    let orders = vec![Order { cents: 1 }];
    let _ = pipeline! {
        iter(orders) >> normalize >> for_each(|order: Order| println!("{order:?}"));
    };
}
