use pipeline::prelude::*;

struct Job(u64);

fn main() {
    let _ = pipeline! {
        iter(vec![Job(1)]) >> #[parallel = 2] #[on_error = retry(3, backoff = 10ms)] map(|j: Job| j.0) >> discard();
    };
}
