use pipeline::prelude::*;

struct Ticket(u64);

fn main() {
    let _ = pipeline! {
        tickets = iter(vec![Ticket(1), Ticket(2)]) >> map(|t| t);
        tickets >> for_each(|t| println!("{}", t.0));
        tickets >> discard();
    };
}
