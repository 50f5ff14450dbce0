use pipeline::prelude::*;

struct Ticket(u64);

fn main() {
    let _ = pipeline! {
        iter(vec![Ticket(1)]) >> accumulate(key = |t| t.0 % 3, max_items = 5, spill, max_memory = 1MiB) >> discard();
    };
}
